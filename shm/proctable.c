/* proctable.c - heartbeats and supervisor counters in shared memory
 * (see proctable.h). Relaxed atomics: every field has one writer and readers
 * only need a recent value, never an ordering with other memory. */
#include "shm/proctable.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "common/clock.h"
#include "common/log.h"

struct proc_slot {
    _Alignas(64) _Atomic uint64_t beat_ms;
    _Atomic uint64_t started_ms;
    _Atomic int32_t pid;
    _Atomic uint32_t role;            /* enum proc_role + 1; 0 = slot unused */
    _Atomic uint32_t index;
    _Atomic uint32_t state;
    _Atomic uint32_t config_gen;      /* PROC_GEN_CONFIG this process has loaded (fanout) */
};

struct proctable {
    struct proc_slot slots[PROCTABLE_SLOTS];
    _Atomic uint64_t watchdog_kills[ROLE_NREPORTED];
    _Atomic uint64_t reloads_ok, reloads_error, last_reload_success;
    _Atomic uint32_t watchdog_ms;
    _Atomic uint32_t log_level;       /* enum log_level + 1; 0 = not set */
    _Atomic uint32_t generation[PROC_GENS];
    _Atomic uint32_t log_json;
    char log_file[1024];              /* written before PROC_GEN_LOG_FILE moves */
    char config_path[4096];           /* written before PROC_GEN_CONFIG moves; "" = search */
};

static struct proctable *g_table;
static int g_self = -1;

#define LD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define ST(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)

struct proctable *proctable_create(void)
{
    void *p = mmap(NULL, sizeof(struct proctable), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    memset(p, 0, sizeof(struct proctable));
    g_table = p;
    return p;
}

void proctable_destroy(struct proctable *t)
{
    if (!t)
        return;
    if (g_table == t)
        g_table = NULL;
    munmap(t, sizeof *t);
}

struct proctable *proctable_get(void) { return g_table; }

void proctable_set_child(struct proctable *t, unsigned slot, enum proc_role role, unsigned index, pid_t pid)
{
    if (!t || slot >= PROCTABLE_SLOTS)
        return;
    struct proc_slot *s = &t->slots[slot];
    ST(s->beat_ms, 0);
    ST(s->state, PROC_STARTING);
    ST(s->config_gen, LD(t->generation[PROC_GEN_CONFIG])); /* forked with the current one */
    ST(s->started_ms, mono_ms());
    ST(s->index, index);
    ST(s->pid, (int32_t)pid);
    ST(s->role, (uint32_t)role + 1);
}

void proctable_set_pid(struct proctable *t, unsigned slot, pid_t pid)
{
    if (t && slot < PROCTABLE_SLOTS)
        ST(t->slots[slot].pid, (int32_t)pid);
}

void proctable_clear(struct proctable *t, unsigned slot)
{
    if (!t || slot >= PROCTABLE_SLOTS)
        return;
    struct proc_slot *s = &t->slots[slot];
    ST(s->role, 0);
    ST(s->pid, 0);
    ST(s->beat_ms, 0);
    ST(s->state, PROC_STARTING);
}

void proctable_set_self(unsigned slot) { g_self = slot < PROCTABLE_SLOTS ? (int)slot : -1; }

void proctable_beat(void)
{
    if (!g_table || g_self < 0)
        return;
    ST(g_table->slots[g_self].beat_ms, mono_ms());
    /* a reloaded log_level reaches every process within one beat */
    uint32_t lv = LD(g_table->log_level);
    if (lv && lv - 1 != (uint32_t)log_get_level())
        log_set_level((enum log_level)(lv - 1));
}

void proctable_set_log_level(struct proctable *t, enum log_level level)
{
    if (t)
        ST(t->log_level, (uint32_t)level + 1);
}

void proctable_set_loaded(struct proctable *t, uint64_t unix_secs)
{
    if (t)
        ST(t->last_reload_success, unix_secs);
}

void proctable_set_config_gen(uint32_t gen)
{
    if (g_table && g_self >= 0)
        ST(g_table->slots[g_self].config_gen, gen);
}

void proctable_set_state(enum proc_state st)
{
    if (g_table && g_self >= 0)
        ST(g_table->slots[g_self].state, (uint32_t)st);
}

bool proctable_row(const struct proctable *t, unsigned slot, struct proc_row *out)
{
    if (!t || slot >= PROCTABLE_SLOTS)
        return false;
    const struct proc_slot *s = &t->slots[slot];
    uint32_t role = LD(s->role);
    if (role == 0 || role - 1 >= ROLE_NREPORTED)
        return false;
    *out = (struct proc_row){.role = (enum proc_role)(role - 1), .index = LD(s->index), .pid = LD(s->pid),
                             .state = (enum proc_state)LD(s->state), .beat_ms = LD(s->beat_ms),
                             .started_ms = LD(s->started_ms), .config_gen = LD(s->config_gen)};
    return out->pid > 0;
}

bool proctable_fresh(const struct proc_row *row, uint64_t now_ms, uint32_t watchdog_ms)
{
    if (watchdog_ms == 0 || row->role == ROLE_LOGLIST)
        return true; /* the log list fetcher is short-lived and bounded by curl timeouts */
    if (row->beat_ms == 0) /* still starting: at least PROCTABLE_START_GRACE_MS */
        return now_ms < row->started_ms ||
               now_ms - row->started_ms <= (watchdog_ms > PROCTABLE_START_GRACE_MS ? watchdog_ms : PROCTABLE_START_GRACE_MS);
    return now_ms < row->beat_ms || now_ms - row->beat_ms <= watchdog_ms;
}

void proctable_set_watchdog_ms(struct proctable *t, uint32_t ms) { if (t) ST(t->watchdog_ms, ms); }
uint32_t proctable_watchdog_ms(const struct proctable *t) { return t ? LD(t->watchdog_ms) : 0; }

void proctable_count_watchdog_kill(struct proctable *t, enum proc_role role)
{
    if (t && (unsigned)role < ROLE_NREPORTED)
        atomic_fetch_add_explicit(&t->watchdog_kills[role], 1, memory_order_relaxed);
}

uint64_t proctable_watchdog_kills(const struct proctable *t, enum proc_role role)
{
    return t && (unsigned)role < ROLE_NREPORTED ? LD(t->watchdog_kills[role]) : 0;
}

void proctable_count_reload(struct proctable *t, bool ok, uint64_t unix_secs)
{
    if (!t)
        return;
    if (ok) {
        atomic_fetch_add_explicit(&t->reloads_ok, 1, memory_order_relaxed);
        ST(t->last_reload_success, unix_secs);
    } else {
        atomic_fetch_add_explicit(&t->reloads_error, 1, memory_order_relaxed);
    }
}

void proctable_reloads(const struct proctable *t, uint64_t *ok, uint64_t *error, uint64_t *last_success_unix)
{
    *ok = t ? LD(t->reloads_ok) : 0;
    *error = t ? LD(t->reloads_error) : 0;
    *last_success_unix = t ? LD(t->last_reload_success) : 0;
}

int proctable_set_log_output(struct proctable *t, const char *path, bool json)
{
    if (!t || !path || strlen(path) >= sizeof t->log_file)
        return -1;
    memcpy(t->log_file, path, strlen(path) + 1);
    ST(t->log_json, json ? 1u : 0u);
    return 0;
}

void proctable_log_refresh(void)
{
    if (!g_table)
        return;
    char path[sizeof g_table->log_file];
    memcpy(path, g_table->log_file, sizeof path);
    path[sizeof path - 1] = '\0';
    log_set_json(LD(g_table->log_json) != 0);
    if (log_set_path(path) != 0) {
        /* keep writing where we were; nothing else to do from a log call */
    }
}

int proctable_set_config_path(struct proctable *t, const char *path)
{
    if (!t)
        return -1;
    if (!path)
        path = "";
    if (strlen(path) >= sizeof t->config_path)
        return -1;
    memcpy(t->config_path, path, strlen(path) + 1);
    return 0;
}

void proctable_config_path(const struct proctable *t, char *out, size_t len)
{
    if (!t || len == 0) {
        if (len)
            out[0] = '\0';
        return;
    }
    snprintf(out, len, "%.*s", (int)(sizeof t->config_path - 1), t->config_path);
}

void proctable_bump(struct proctable *t, enum proc_generation g)
{
    if (t && g < PROC_GENS)
        atomic_fetch_add_explicit(&t->generation[g], 1, memory_order_release);
}

uint32_t proctable_generation(const struct proctable *t, enum proc_generation g)
{
    return t && g < PROC_GENS ? atomic_load_explicit(&t->generation[g], memory_order_acquire) : 0;
}
