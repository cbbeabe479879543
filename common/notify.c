/* notify.c - see notify.h. */
#include "common/notify.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "common/clock.h"
#include "common/log.h"

bool notify_enabled(void)
{
    const char *p = getenv("NOTIFY_SOCKET");
    return p && *p;
}

/* sd_notify returns < 0 on a send error, 0 when there is no socket. A lost
 * notification is logged, never fatal: the service keeps serving. */
static void send_state(const char *state)
{
    if (!notify_enabled())
        return;
    int rc = sd_notify(0, state);
    if (rc < 0)
        log_warn("sd_notify(%.*s): %s", (int)strcspn(state, "\n"), state, strerror(-rc));
}

void notify_ready(void) { send_state("READY=1"); }
void notify_stopping(void) { send_state("STOPPING=1"); }
void notify_watchdog(void) { send_state("WATCHDOG=1"); }

void notify_reloading(void)
{
    char msg[64];
    snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)(mono_ns() / 1000u));
    send_state(msg);
}

void notify_status(const char *fmt, ...)
{
    char msg[256] = "STATUS=";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + 7, sizeof msg - 7, fmt, ap);
    va_end(ap);
    send_state(msg);
}

uint64_t notify_watchdog_usec(void)
{
    uint64_t usec = 0;
    int rc = sd_watchdog_enabled(0, &usec);
    if (rc < 0) {
        log_warn("$WATCHDOG_USEC: %s; watchdog off", strerror(-rc));
        return 0;
    }
    return rc > 0 ? usec : 0;
}
