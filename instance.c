/* instance.c - the instance lock and the listen probe (see instance.h). */
#include "instance.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int resolve(const char *host, uint16_t port, struct addrinfo **res, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", (unsigned)port);
    if (!host || !*host)
        host = "0.0.0.0";
    int rc = getaddrinfo(host, portstr, &hints, res);
    if (rc != 0) {
        snprintf(err, errlen, "listen address \"%s\" does not resolve: %s",
                 host, rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return -1;
    }
    return 0;
}

int instance_resolve(const char *host, uint16_t port, char *err, size_t errlen)
{
    struct addrinfo *res = NULL;
    if (resolve(host, port, &res, err, errlen) != 0)
        return -1;
    freeaddrinfo(res);
    return 0;
}

/* Bind without SO_REUSEPORT (SO_REUSEADDR only, so TIME_WAIT does not count):
 * fails while any socket holds the address, reuseport group or not. */
static int probe(const struct addrinfo *ai, const char *host, uint16_t port, char *err, size_t errlen)
{
    int one = 1, zero = 0;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "listen on %s:%u: socket: %s", host, (unsigned)port, strerror(errno));
        return -1;
    }
    bool ok = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0;
    /* as the workers do: "::" is both families, another IPv6 address only itself */
    if (ok && ai->ai_family == AF_INET6)
        ok = setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, strcmp(host, "::") == 0 ? &zero : &one,
                        sizeof one) == 0;
    if (ok)
        ok = bind(fd, ai->ai_addr, ai->ai_addrlen) == 0;
    if (!ok) {
        int e = errno;
        if (e == EADDRINUSE)
            snprintf(err, errlen, "listen on %s:%u: address already in use (another program or "
                     "another certstream-server holds it)", host, (unsigned)port);
        else if (e == EACCES)
            snprintf(err, errlen, "listen on %s:%u: permission denied (ports below 1024 need "
                     "CAP_NET_BIND_SERVICE)", host, (unsigned)port);
        else
            snprintf(err, errlen, "listen on %s:%u: %s", host, (unsigned)port, strerror(e));
    }
    if (close(fd) != 0 && ok) {
        snprintf(err, errlen, "listen probe on %s:%u: close: %s", host, (unsigned)port, strerror(errno));
        ok = false;
    }
    return ok ? 0 : -1;
}

int instance_probe(const char *host, uint16_t port, char *err, size_t errlen)
{
    struct addrinfo *res = NULL;
    if (resolve(host, port, &res, err, errlen) != 0)
        return -1;
    int rc = probe(res, host && *host ? host : "0.0.0.0", port, err, errlen);
    freeaddrinfo(res);
    return rc;
}

int instance_claim(struct instance *in, const char *host, uint16_t port, char *err, size_t errlen)
{
    struct addrinfo *res = NULL;
    char addr[INET6_ADDRSTRLEN + 1] = "?";
    in->lock_fd = -1;
    if (!host || !*host)
        host = "0.0.0.0";
    if (resolve(host, port, &res, err, errlen) != 0)
        return -1;
    int rc = getnameinfo(res->ai_addr, res->ai_addrlen, addr, sizeof addr, NULL, 0, NI_NUMERICHOST);
    if (rc != 0)
        snprintf(addr, sizeof addr, "%s", host);
    snprintf(in->name, sizeof in->name, "certstream-server %s port %u", addr, (unsigned)port);

    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    size_t n = strlen(in->name);
    memcpy(sun.sun_path + 1, in->name, n); /* sun_path[0] = 0: the abstract namespace */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "instance lock: socket: %s", strerror(errno));
        goto err;
    }
    if (bind(fd, (struct sockaddr *)&sun, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)) != 0) {
        if (errno == EADDRINUSE)
            snprintf(err, errlen, "another certstream-server is already running on %s:%u "
                     "(instance lock \"@%s\" is held); stop it or choose another port",
                     host, (unsigned)port, in->name);
        else
            snprintf(err, errlen, "instance lock @%s: %s", in->name, strerror(errno));
        close(fd);
        goto err;
    }
    in->lock_fd = fd;
    if (probe(res, host, port, err, errlen) != 0) {
        instance_release(in);
        goto err;
    }
    freeaddrinfo(res);
    return 0;
err:
    freeaddrinfo(res);
    return -1;
}

void instance_release(struct instance *in)
{
    if (in->lock_fd >= 0)
        close(in->lock_fd);
    in->lock_fd = -1;
}
