/* render_cli_main.c - a test binary that is only `certstream-server render`. */
#include "ingest/render_cli.h"

int main(int argc, char **argv)
{
    argv[0] = "render";
    return render_cli_main(argc, argv);
}
