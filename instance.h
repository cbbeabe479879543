/* instance.h - one server per listen address, and failing fast on start.
 *
 * Fanout workers share host:port through SO_REUSEPORT, which would also let
 * a second server of the same user bind it and take a share of the clients.
 * Before anything is forked the supervisor:
 *   1. resolves host (an address that does not resolve is an error);
 *   2. takes the instance lock: an abstract Unix socket named after the
 *      resolved address and port, held for the life of the server (the
 *      kernel releases it when the last process holding it dies; nothing is
 *      left in the file system), so two servers starting at once cannot both
 *      win;
 *   3. binds a probe socket WITHOUT SO_REUSEPORT: if any socket (another
 *      program, or a server of another address such as 0.0.0.0 vs 127.0.0.1)
 *      holds the port, bind fails with EADDRINUSE; EACCES for a privileged
 *      port.
 * Each failure is one line and exit status 2 (RestartPreventExitStatus=2). */
#ifndef CS_INSTANCE_H
#define CS_INSTANCE_H

#include <stddef.h>
#include <stdint.h>

struct instance {
    int lock_fd;       /* the abstract socket; -1 = not held */
    char name[128];    /* "certstream-server <addr> port <port>" */
};

/* Resolves host:port as the workers will bind it. 0, or -1 with err. */
int instance_resolve(const char *host, uint16_t port, char *err, size_t errlen);
/* Steps 1-3 above. 0, or -1 with err (nothing held). */
int instance_claim(struct instance *in, const char *host, uint16_t port, char *err, size_t errlen);
/* Steps 1 and 3 only: can the workers bind host:port? (for a reload that
 * changes the address while the old one is still held). */
int instance_probe(const char *host, uint16_t port, char *err, size_t errlen);
void instance_release(struct instance *in);

#endif
