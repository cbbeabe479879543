/* render_cli.h - `certstream-server render`: the pipeline as an offline
 * command (get-entries JSON or a data tile in, one message per line out). */
#ifndef CS_RENDER_CLI_H
#define CS_RENDER_CLI_H

/* argv[0] = "render". Returns the process exit status. */
int render_cli_main(int argc, char **argv);

#endif
