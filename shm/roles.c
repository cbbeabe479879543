/* roles.c - names of the process roles (see roles.h). */
#include "shm/roles.h"

const char *proc_role_name(enum proc_role r)
{
    static const char *const names[ROLE_COUNT] = {
        [ROLE_SUPERVISOR] = "supervisor", [ROLE_FANOUT] = "fanout", [ROLE_INGEST] = "ingest",
        [ROLE_REPLAY] = "replay",         [ROLE_LOGLIST] = "loglist", [ROLE_NATS] = "nats",
    };
    return (unsigned)r < ROLE_COUNT ? names[r] : "unknown";
}
