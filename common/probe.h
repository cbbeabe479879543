/* probe.h - does a listener answer? One HTTP request over loopback.
 *
 * The supervisor uses it to tell systemd READY=1 only once a fanout worker
 * has accepted a connection and answered, and to keep feeding the watchdog
 * only while that stays true. A successful connect() alone would prove
 * nothing: the kernel completes the handshake into the listen backlog even
 * when no worker ever calls accept(). */
#ifndef CS_PROBE_H
#define CS_PROBE_H

/* Connects to host:port ("0.0.0.0"/"" probe 127.0.0.1, "::" probes ::1),
 * sends "GET <path> HTTP/1.1" and waits up to timeout_ms in all for a
 * status line. 0 when one came back (any status), -1 otherwise. Blocking,
 * bounded by timeout_ms. */
int probe_http(const char *host, unsigned port, const char *path, int timeout_ms);

#endif
