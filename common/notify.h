/* notify.h - telling systemd (or whatever set $NOTIFY_SOCKET) about the
 * service's state: READY=1, RELOADING=1, STOPPING=1, STATUS=..., WATCHDOG=1.
 *
 * A thin layer over libsystemd's sd_notify(3): the protocol (a datagram to
 * $NOTIFY_SOCKET, abstract or path socket, credentials) is libsystemd's.
 * Without $NOTIFY_SOCKET every call is a no-op, so the server runs the same
 * outside systemd. Only the supervisor calls these (the unit's default
 * NotifyAccess=main ignores messages from other processes anyway). */
#ifndef CS_NOTIFY_H
#define CS_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* True when $NOTIFY_SOCKET is set (messages go somewhere). */
bool notify_enabled(void);
void notify_ready(void);
/* RELOADING=1 with MONOTONIC_USEC (what Type=notify-reload expects; older
 * systemd ignores the extra field). */
void notify_reloading(void);
void notify_stopping(void);
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void notify_watchdog(void);
/* The watchdog interval systemd asked for ($WATCHDOG_USEC for this pid), in
 * microseconds; 0 when the watchdog is off. */
uint64_t notify_watchdog_usec(void);

#endif
