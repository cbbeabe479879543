/* probe.c - see probe.h. */
#include "common/probe.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"

/* Waits until fd is ready for `events` or the deadline passes. */
static int wait_fd(int fd, short events, uint64_t deadline_ms)
{
    for (;;) {
        uint64_t now = mono_ms();
        if (now >= deadline_ms)
            return -1;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)(deadline_ms - now));
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

int probe_http(const char *host, unsigned port, const char *path, int timeout_ms)
{
    if (!host || !*host || strcmp(host, "0.0.0.0") == 0)
        host = "127.0.0.1";
    else if (strcmp(host, "::") == 0)
        host = "::1";
    uint64_t deadline = mono_ms() + (uint64_t)timeout_ms;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res = NULL;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", port);
    if (getaddrinfo(host, portstr, &hints, &res) != 0)
        return -1;
    int rc = -1;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto out;
    if (connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        int soerr = 0;
        socklen_t len = sizeof soerr;
        if (errno != EINPROGRESS || wait_fd(fd, POLLOUT, deadline) != 0 ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0)
            goto out;
    }
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: certstream-server-probe\r\n"
                     "Connection: close\r\n\r\n", path, host);
    if (n < 0 || (size_t)n >= sizeof req || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        goto out;
    char head[16];
    size_t got = 0;
    while (got < 9) { /* "HTTP/1.x " */
        if (wait_fd(fd, POLLIN, deadline) != 0)
            goto out;
        ssize_t r = recv(fd, head + got, 9 - got, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            goto out;
        got += (size_t)r;
    }
    rc = memcmp(head, "HTTP/1.", 7) == 0 ? 0 : -1;
out:
    if (fd >= 0 && close(fd) != 0)
        log_debug("probe: close: %s", strerror(errno));
    freeaddrinfo(res);
    return rc;
}
