/* supervisor.c - the master process (compare nginx's master cycle).
 *
 * It creates the shared memory (ring + stats) and one eventfd per fanout
 * worker before forking, then forks the producers (ingest processes, or the
 * replay source) and `workers` fanout processes. Its loop only waits for
 * signals: SIGCHLD reaps and restarts a dead child with exponential backoff
 * (logged with the cause, counted in metrics), SIGTERM/SIGINT stop everyone
 * gracefully, SIGHUP re-reads the configuration. It never serves a client and
 * never fetches a CT log. */
#include "supervisor.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/notify.h"
#include "common/probe.h"
#include "fanout/fanout.h"
#include "ingest/ingest.h"
#include "ingest/loglist.h"
#include "ingest/replay.h"
#include "ingest/state.h"
#include "shm/dedup.h"
#include "shm/positions.h"
#include "shm/ring.h"
#include "shm/stats.h"

#define SUP_STOP_GRACE_MS 5000
#define SUP_BACKOFF_MIN_MS 100
#define SUP_BACKOFF_MAX_MS 30000
#define SUP_STABLE_MS 10000      /* a child that lived this long resets its backoff */
#define SUP_STATE_SAVE_MS 10000  /* state file period */
#define SUP_LOGLIST_RETRY_MIN_MS 10000
#define SUP_LOGLIST_RETRY_MAX_MS 300000
#define SUP_LOGLIST_REFRESH_MS (6 * 3600 * 1000ull)
#define SUP_LOGLIST_MAX_BYTES (16u << 20)

enum child_role { ROLE_FANOUT, ROLE_REPLAY, ROLE_INGEST, ROLE_LOGLIST };

struct child {
    enum child_role role;
    unsigned index;              /* worker index / producer index */
    unsigned stats_slot;
    unsigned producer_id;
    pid_t pid;                   /* 0 = not running */
    uint64_t started_ms;
    uint64_t restart_at_ms;      /* when to start it again (0 = now) */
    uint32_t backoff_ms;
    unsigned restarts;
    bool active;                 /* false: do not (re)start; slot free once reaped */
};

struct supervisor {
    struct config *cfg;
    const struct supervisor_opts *opts;
    struct ring *ring;
    struct stats *stats;
    struct dedup *dedup;         /* shared by the ingest processes; NULL with --replay */
    struct replay_source *replay; /* --replay: decoded once, inherited by the replay child */
    struct child *children;
    unsigned n_children;         /* slots in use (fanout first, then producers) */
    unsigned cap_children;
    unsigned workers;
    unsigned max_producers;
    bool stopping;
    sigset_t old_mask;

    /* following CT logs (no --replay) */
    struct loglist loglist;
    bool have_loglist;           /* loglist holds a built list (maybe config logs only) */
    bool list_from_url;          /* ... including the fetched log list */
    struct state state;
    int loglist_fd;              /* memfd the fetcher child writes the list into */
    uint64_t loglist_next_ms;    /* when to fetch (again) */
    uint32_t loglist_backoff_ms;
    uint64_t state_saved_ms;
    uint64_t loglist_hash;       /* of the list applied, to skip an unchanged refresh */
    struct positions *positions; /* crash-proof positions beside the state file (or NULL) */
};

static const char *role_name(enum child_role r)
{
    switch (r) {
    case ROLE_FANOUT: return "fanout";
    case ROLE_REPLAY: return "replay";
    case ROLE_LOGLIST: return "loglist";
    default: return "ingest";
    }
}

/* The log list is fetched in a short-lived child so the supervisor never
 * blocks on the network: it writes the body into a memfd the supervisor
 * reads after reaping it (exit 0 = complete). */
static int fetch_loglist_child(struct supervisor *s)
{
    char *json = NULL, err[512];
    size_t len = 0;
    if (loglist_fetch(s->cfg, &json, &len, err, sizeof err) != 0) {
        log_warn("%s", err);
        return 1;
    }
    if (len > SUP_LOGLIST_MAX_BYTES) {
        log_warn("log list %s: %zu bytes, more than the %u accepted", s->cfg->ct_logs_url, len,
                 SUP_LOGLIST_MAX_BYTES);
        free(json);
        return 1;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = pwrite(s->loglist_fd, json + off, len - off, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            log_warn("log list: writing to the supervisor: %s", strerror(errno));
            free(json);
            return 1;
        }
        off += (size_t)w;
    }
    free(json);
    return ftruncate(s->loglist_fd, (off_t)len) == 0 ? 0 : 1;
}

/* In the child: take the role and never return. */
static void child_main(struct supervisor *s, const struct child *c)
{
    log_set_role(role_name(c->role), (int)c->index);
    /* Die with the supervisor: a child without its master would serve stale config forever. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
        log_warn("prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
    if (getppid() == 1)
        _exit(0);
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigemptyset(&dfl.sa_mask);
    int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (sigaction(sigs[i], &dfl, NULL) != 0)
            log_warn("sigaction(%d): %s", sigs[i], strerror(errno));
    if (sigprocmask(SIG_SETMASK, &s->old_mask, NULL) != 0)
        log_warn("sigprocmask: %s", strerror(errno));

    int rc = 1;
    switch (c->role) {
    case ROLE_FANOUT: {
        struct fanout_params fp = {
            .cfg = s->cfg, .ring = s->ring, .stats = s->stats, .index = c->index,
            .stats_slot = c->stats_slot, .wake_fd = ring_waiter_fd(s->ring, c->index),
        };
        rc = fanout_run(&fp);
        break;
    }
    case ROLE_REPLAY: {
        struct replay_params rp = {
            .cfg = s->cfg, .ring = s->ring, .stats = s->stats, .producer_id = c->producer_id,
            .stats_slot = c->stats_slot, .src = s->replay, .rate = s->opts->replay_rate,
            .loop = s->opts->replay_loop, .bench_stamp = s->opts->bench_stamp,
        };
        rc = replay_run(&rp);
        break;
    }
    case ROLE_INGEST: {
        const struct loglist_group *g = &s->loglist.groups[c->index];
        struct ingest_params ip = {
            .cfg = s->cfg, .ring = s->ring, .stats = s->stats, .producer_id = c->producer_id,
            .stats_slot = c->stats_slot, .logs = (struct loglist_log *const *)g->logs,
            .n_logs = g->n_logs, .dedup = s->dedup, .positions = s->positions,
        };
        log_info("following %zu log(s) of group %s", g->n_logs, g->name);
        rc = ingest_run(&ip) == 0 ? 0 : 1;
        break;
    }
    case ROLE_LOGLIST:
        rc = fetch_loglist_child(s);
        break;
    }
    _exit(rc);
}

static int child_start(struct supervisor *s, struct child *c)
{
    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork %s[%u]: %s", role_name(c->role), c->index, strerror(errno));
        return -1;
    }
    if (pid == 0)
        child_main(s, c);
    c->pid = pid;
    c->started_ms = mono_ms();
    c->restart_at_ms = 0;
    log_info("started %s[%u] pid=%ld", role_name(c->role), c->index, (long)pid);
    return 0;
}

static void describe_status(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by signal %d (%s)%s", WTERMSIG(status),
                 strsignal(WTERMSIG(status)), WCOREDUMP(status) ? ", core dumped" : "");
    else
        snprintf(buf, len, "status 0x%x", status);
}

static void loglist_result(struct supervisor *s, bool ok);

/* Reaps every dead child; schedules restarts unless stopping. */
static void reap(struct supervisor *s)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            return;
        struct child *c = NULL;
        for (unsigned i = 0; i < s->n_children; i++)
            if (s->children[i].pid == pid)
                c = &s->children[i];
        if (!c)
            continue;
        c->pid = 0;
        char why[128];
        describe_status(status, why, sizeof why);
        bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (c->role == ROLE_LOGLIST) {
            c->active = false;
            if (!s->stopping)
                loglist_result(s, clean);
            continue;
        }
        /* Its claim in the ring (if a producer died mid-record) must not stall readers,
         * and its connection gauges must stop counting. */
        if (c->role != ROLE_FANOUT)
            ring_repair(s->ring, c->producer_id);
        stats_slot_reset(s->stats, c->stats_slot);
        if (s->stopping || !c->active) {
            log_info("%s[%u] %s", role_name(c->role), c->index, why);
            continue;
        }
        uint64_t now = mono_ms();
        if (now - c->started_ms >= SUP_STABLE_MS)
            c->backoff_ms = SUP_BACKOFF_MIN_MS;
        else
            c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : SUP_BACKOFF_MIN_MS;
        if (c->backoff_ms > SUP_BACKOFF_MAX_MS)
            c->backoff_ms = SUP_BACKOFF_MAX_MS;
        c->restart_at_ms = now + c->backoff_ms;
        c->restarts++;
        stats_add(s->stats, 0, ST_CHILD_RESTARTS, 1);
        if (c->role == ROLE_FANOUT && !clean)
            stats_add(s->stats, 0, ST_WORKER_PANICS, 1);
        if (c->role != ROLE_FANOUT)
            stats_add(s->stats, 0, ST_INGEST_RESTARTS, 1);
        log_warn("%s[%u] pid=%ld %s; restarting in %u ms (restart #%u)", role_name(c->role),
                 c->index, (long)pid, why, c->backoff_ms, c->restarts);
    }
}

static void start_due(struct supervisor *s)
{
    uint64_t now = mono_ms();
    for (unsigned i = 0; i < s->n_children; i++) {
        struct child *c = &s->children[i];
        if (c->active && c->pid == 0 && c->restart_at_ms <= now && child_start(s, c) != 0)
            c->restart_at_ms = now + SUP_BACKOFF_MAX_MS; /* fork failed: try later */
    }
}

static unsigned running(const struct supervisor *s, int role /* -1 = any */)
{
    unsigned n = 0;
    for (unsigned i = 0; i < s->n_children; i++)
        n += s->children[i].pid != 0 && (role < 0 || (int)s->children[i].role == role);
    return n;
}

/* SIGTERM to every running child of `role` (-1 = all), then wait for them,
 * SIGKILL after the grace period. */
static void stop_children(struct supervisor *s, int role)
{
    for (unsigned i = 0; i < s->n_children; i++) {
        struct child *c = &s->children[i];
        if (role >= 0 && (int)c->role != role)
            continue;
        c->active = false;
        if (c->pid > 0 && kill(c->pid, SIGTERM) != 0 && errno != ESRCH)
            log_warn("kill %ld: %s", (long)c->pid, strerror(errno));
    }
    uint64_t deadline = mono_ms() + SUP_STOP_GRACE_MS;
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    while (running(s, role) > 0) {
        uint64_t now = mono_ms();
        if (now >= deadline) {
            for (unsigned i = 0; i < s->n_children; i++) {
                struct child *c = &s->children[i];
                if (c->pid > 0 && (role < 0 || (int)c->role == role)) {
                    log_warn("%s[%u] did not stop in %d ms: SIGKILL", role_name(c->role), c->index,
                             SUP_STOP_GRACE_MS);
                    if (kill(c->pid, SIGKILL) != 0 && errno != ESRCH)
                        log_warn("kill %ld: %s", (long)c->pid, strerror(errno));
                }
            }
            deadline = now + 1000;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 100 * 1000000L};
        if (sigtimedwait(&chld, NULL, &ts) < 0 && errno != EAGAIN && errno != EINTR)
            log_warn("sigtimedwait: %s", strerror(errno));
        reap(s);
    }
}

static void stop_all(struct supervisor *s)
{
    s->stopping = true;
    stop_children(s, -1);
}

static unsigned cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

/* A free child slot (reaped and inactive), or a new one. */
static struct child *child_slot(struct supervisor *s)
{
    for (unsigned i = s->workers; i < s->n_children; i++)
        if (!s->children[i].active && s->children[i].pid == 0)
            return &s->children[i];
    if (s->n_children >= s->cap_children)
        return NULL;
    return &s->children[s->n_children++];
}

static int add_producer(struct supervisor *s, enum child_role role, unsigned index)
{
    struct child *c = child_slot(s);
    if (!c || index >= s->max_producers)
        return -1;
    *c = (struct child){.role = role, .index = index, .producer_id = index,
                        .stats_slot = 1 + s->workers + index, .active = true};
    return 0;
}

/* Fanout workers take stats slots 1..W; producers the slots after them. */
static int plan_children(struct supervisor *s)
{
    s->workers = s->cfg->workers ? s->cfg->workers : cpu_count();
    if (1 + s->workers + 1 > STATS_MAX_SLOTS) {
        log_error("workers: at most %d fanout workers (process slots)", STATS_MAX_SLOTS - 2);
        return -1;
    }
    s->max_producers = STATS_MAX_SLOTS - 1 - s->workers;
    if (s->max_producers > RING_MAX_PRODUCERS)
        s->max_producers = RING_MAX_PRODUCERS;
    s->cap_children = s->workers + s->max_producers + 1; /* + the log list fetcher */
    s->children = calloc(s->cap_children, sizeof *s->children);
    if (!s->children)
        return -1;
    for (unsigned i = 0; i < s->workers; i++)
        s->children[i] = (struct child){.role = ROLE_FANOUT, .index = i, .stats_slot = 1 + i,
                                         .active = true};
    s->n_children = s->workers;
    if (s->opts->replay_file)
        return add_producer(s, ROLE_REPLAY, 0);
    return 0;
}

/* ---------------------------------------------------------- following CT logs */

static void save_state(struct supervisor *s)
{
    char err[512];
    if (!s->have_loglist || !s->cfg->ct_log.state_file || !*s->cfg->ct_log.state_file)
        return;
    if (state_update(&s->state, s->stats) != 0 ||
        state_save(s->cfg->ct_log.state_file, &s->state, err, sizeof err) != 0)
        log_warn("state file: %s", s->cfg->ct_log.state_file[0] ? err : "out of memory");
    if (positions_sync(s->positions) != 0)
        log_warn("position store: msync: %s", strerror(errno));
    s->state_saved_ms = mono_ms();
}

/* Row shown while the log list cannot be had and no log is configured: the
 * server follows nothing, and says so as one unhealthy "log" (the list). */
static void show_loglist_unavailable(struct supervisor *s)
{
    stats_set_log_count(s->stats, 1);
    struct stats_log *l = stats_log(s->stats, 0);
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "CT log list (unavailable)");
    snprintf(l->url, sizeof l->url, "%s", s->cfg->ct_logs_url);
    l->health = LOG_UNHEALTHY;
}

/* Replaces the followed log set: stops the current ingest processes (their
 * positions are in shared memory), carries positions over through the state,
 * and forks one ingest process per group of the new list. */
static void apply_loglist(struct supervisor *s, const char *json, size_t len)
{
    struct loglist fresh;
    char err[512];
    if (loglist_build(s->cfg, json, len, &fresh, err, sizeof err) != 0) {
        log_warn("log list: %s", err);
        if (!s->have_loglist)
            show_loglist_unavailable(s);
        return;
    }
    if (s->have_loglist) {
        stop_children(s, ROLE_INGEST);
        if (state_update(&s->state, s->stats) != 0)
            log_warn("state: out of memory; positions of the previous list may be lost");
        loglist_free(&s->loglist);
    }
    s->loglist = fresh;
    s->have_loglist = true;
    state_apply(&s->state, &s->loglist, s->stats);
    state_positions_apply(s->positions, &s->loglist, s->stats);
    size_t groups = s->loglist.n_groups;
    if (groups > s->max_producers) {
        log_error("%zu ingest groups but only %u producer slots: set ingest.max_processes",
                  groups, s->max_producers);
        groups = s->max_producers;
    }
    for (unsigned g = 0; g < groups; g++)
        if (add_producer(s, ROLE_INGEST, g) != 0)
            log_error("no process slot for ingest group %s", s->loglist.groups[g].name);
    stats_set_workers(s->stats, s->workers, (unsigned)groups);
    malloc_trim(0); /* the parsed list is freed; children are forked next */
    log_info("following %zu logs in %zu ingest processes%s", s->loglist.n_logs, groups,
             json ? "" : " (configured logs only: the log list is unavailable)");
}

static void loglist_result(struct supervisor *s, bool ok)
{
    uint64_t now = mono_ms();
    if (ok) {
        struct stat st;
        char *json = NULL;
        if (fstat(s->loglist_fd, &st) == 0 && st.st_size > 0 && (size_t)st.st_size <= SUP_LOGLIST_MAX_BYTES &&
            (json = malloc((size_t)st.st_size + 1)) != NULL &&
            pread(s->loglist_fd, json, (size_t)st.st_size, 0) == st.st_size) {
            json[st.st_size] = '\0';
            uint64_t h = 1469598103934665603ull; /* FNV-1a: only to notice a change */
            for (off_t i = 0; i < st.st_size; i++)
                h = (h ^ (uint8_t)json[i]) * 1099511628211ull;
            if (!s->list_from_url || h != s->loglist_hash)
                apply_loglist(s, json, (size_t)st.st_size);
            else
                log_info("log list unchanged");
            s->loglist_hash = h;
            s->list_from_url = true;
            s->loglist_backoff_ms = 0;
            s->loglist_next_ms = now + SUP_LOGLIST_REFRESH_MS;
            free(json);
            return;
        }
        free(json);
        log_warn("log list: could not read what the fetcher wrote");
    }
    s->loglist_backoff_ms = s->loglist_backoff_ms ? s->loglist_backoff_ms * 2 : SUP_LOGLIST_RETRY_MIN_MS;
    if (s->loglist_backoff_ms > SUP_LOGLIST_RETRY_MAX_MS)
        s->loglist_backoff_ms = SUP_LOGLIST_RETRY_MAX_MS;
    s->loglist_next_ms = now + s->loglist_backoff_ms;
    if (!s->have_loglist)
        apply_loglist(s, NULL, 0); /* the configured logs, if any, go ahead */
    log_warn("log list unavailable; next attempt in %u s", s->loglist_backoff_ms / 1000);
}

static void maybe_fetch_loglist(struct supervisor *s)
{
    if (s->opts->replay_file || s->stopping || mono_ms() < s->loglist_next_ms)
        return;
    for (unsigned i = 0; i < s->n_children; i++)
        if (s->children[i].role == ROLE_LOGLIST && (s->children[i].active || s->children[i].pid))
            return;
    if (ftruncate(s->loglist_fd, 0) != 0) {
        log_warn("log list memfd: %s", strerror(errno));
        return;
    }
    struct child *c = child_slot(s);
    if (!c)
        return;
    *c = (struct child){.role = ROLE_LOGLIST, .active = true};
    s->loglist_next_ms = UINT64_MAX; /* until the fetcher reports */
    if (child_start(s, c) != 0) {
        c->active = false;
        s->loglist_next_ms = mono_ms() + SUP_LOGLIST_RETRY_MIN_MS;
    }
}

static void on_reload(struct supervisor *s, const char *why)
{
    /* Hook: re-validate the configuration so an operator learns about a bad edit
     * at once. Applying it (rolling worker restarts) is the operations work. */
    struct config fresh;
    struct config_error err;
    struct config_flags flags = {.config_path = s->cfg->source_path};
    extern char **environ;
    if (config_load(&fresh, &flags, environ, &err) != 0) {
        log_error("%s: configuration refused, keeping the running one: %s", why, err.message);
        return;
    }
    log_info("%s: configuration %s is valid; changes apply at the next restart", why,
             fresh.source_path ? fresh.source_path : "(built-in defaults)");
    config_free(&fresh);
}

/* hot_reload: the watched file is polled (stat once a second) rather than
 * watched with inotify, so editors that replace the file, and files that
 * appear later, are seen the same way. A change runs the SIGHUP hook. */
struct watch_state {
    bool known;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    uint64_t next_ms;
};

static void poll_watch(struct supervisor *s, struct watch_state *w)
{
    const char *path = s->cfg->hot_reload.watch_path && *s->cfg->hot_reload.watch_path
                           ? s->cfg->hot_reload.watch_path : s->cfg->source_path;
    uint64_t now = mono_ms();
    if (!s->cfg->hot_reload.enabled || !path || now < w->next_ms)
        return;
    w->next_ms = now + 1000;
    struct stat st;
    if (stat(path, &st) != 0) {
        if (w->known)
            log_warn("hot_reload: %s: %s", path, strerror(errno));
        w->known = false;
        return;
    }
    bool changed = w->known && (st.st_dev != w->dev || st.st_ino != w->ino || st.st_size != w->size ||
                                st.st_mtim.tv_sec != w->mtime.tv_sec || st.st_mtim.tv_nsec != w->mtime.tv_nsec);
    *w = (struct watch_state){.known = true, .dev = st.st_dev, .ino = st.st_ino, .size = st.st_size,
                              .mtime = st.st_mtim, .next_ms = w->next_ms};
    if (changed)
        on_reload(s, "hot_reload");
}

/* The position store beside the state file (shm/positions.h). Waits for the
 * processes of an earlier server on the same file to exit. */
static int open_positions(struct supervisor *s)
{
    char path[4096], err[4608];
    bool created = false;
    const char *sf = s->cfg->ct_log.state_file;
    if (!sf || !*sf)
        return 0;
    if (positions_path_for(sf, path, sizeof path) != 0) {
        log_error("state file path too long: %s", sf);
        return -1;
    }
    s->positions = positions_open(path, 30000, &created, err, sizeof err);
    if (!s->positions) {
        log_error("position store: %s", err);
        return -1;
    }
    if (created)
        log_info("position store %s created; positions imported from %s", path, sf);
    return 0;
}

/* ---------------------------------------------------------- systemd (sd_notify)
 * Only with $NOTIFY_SOCKET set (Type=notify): READY=1 once every fanout
 * worker runs and one answered an HTTP request on the listen port (so the
 * port is bound and workers accept); WATCHDOG=1 every half $WATCHDOG_USEC,
 * but only while the children are fresh and the port still answers;
 * STATUS= with clients, logs and lag. docs/operations.md. */
#define SUP_PROBE_TIMEOUT_MS 1000
#define SUP_STATUS_MS 2000

struct sd_state {
    bool on;                     /* $NOTIFY_SOCKET is set */
    bool ready;                  /* READY=1 sent */
    bool stale_logged;
    uint64_t watchdog_ms;        /* send period; 0 = no watchdog */
    uint64_t next_probe_ms, next_watchdog_ms, next_status_ms;
    char status[192];
};

/* Every child that should run is running and not stopped or a zombie
 * (/proc/PID/stat state T, t, Z): a SIGSTOPped or wedged child must starve
 * the watchdog. */
static bool children_fresh(const struct supervisor *s)
{
    for (unsigned i = 0; i < s->n_children; i++) {
        const struct child *c = &s->children[i];
        if (!c->active || c->role == ROLE_LOGLIST)
            continue;
        if (c->pid == 0)
            return false;
        char path[64], buf[256];
        snprintf(path, sizeof path, "/proc/%ld/stat", (long)c->pid);
        FILE *f = fopen(path, "r");
        if (!f)
            return false;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        if (fclose(f) != 0)
            return false;
        buf[n] = '\0';
        const char *st = strrchr(buf, ')'); /* "pid (comm) S ..." */
        if (!st || st[1] != ' ' || strchr("TtZX", st[2]))
            return false;
    }
    return true;
}

static void sd_status(struct supervisor *s, struct sd_state *n)
{
    static const enum stat_id gauges[] = {ST_CONN_WS_FULL, ST_CONN_WS_LITE, ST_CONN_WS_DOMAINS,
                                          ST_CONN_SSE_FULL, ST_CONN_SSE_LITE, ST_CONN_SSE_DOMAINS};
    uint64_t clients = 0, lag = 0;
    for (size_t i = 0; i < sizeof gauges / sizeof gauges[0]; i++)
        clients += stats_sum(s->stats, gauges[i]);
    unsigned logs = stats_log_count(s->stats), healthy = 0;
    for (unsigned i = 0; i < logs; i++) {
        const struct stats_log *l = stats_log(s->stats, i);
        healthy += l->health == LOG_HEALTHY;
        if (l->tree_size > l->next_index)
            lag += l->tree_size - l->next_index;
    }
    char msg[sizeof n->status];
    snprintf(msg, sizeof msg, "%llu clients, %u/%u logs healthy, lag %llu entries%s",
             (unsigned long long)clients, healthy, logs, (unsigned long long)lag,
             n->ready ? "" : ", starting");
    if (strcmp(msg, n->status) != 0) {
        memcpy(n->status, msg, sizeof msg);
        notify_status("%s", msg);
    }
}

static void sd_init(struct sd_state *n)
{
    *n = (struct sd_state){.on = notify_enabled()};
    uint64_t usec = n->on ? notify_watchdog_usec() : 0;
    if (usec)
        n->watchdog_ms = usec / 2000u ? usec / 2000u : 1; /* sd_watchdog_enabled(3): half the interval */
}

static void sd_tick(struct supervisor *s, struct sd_state *n)
{
    if (!n->on || s->stopping)
        return;
    uint64_t now = mono_ms();
    if (!n->ready && now >= n->next_probe_ms) {
        n->next_probe_ms = now + 100;
        if (running(s, ROLE_FANOUT) == s->workers &&
            probe_http(s->cfg->host, s->cfg->port, "/health", SUP_PROBE_TIMEOUT_MS) == 0) {
            n->ready = true;
            n->next_watchdog_ms = 0;
            notify_ready();
            log_info("ready: %s:%u answers", s->cfg->host, s->cfg->port);
        }
    }
    if (n->ready && n->watchdog_ms && now >= n->next_watchdog_ms) {
        if (children_fresh(s) && probe_http(s->cfg->host, s->cfg->port, "/health", SUP_PROBE_TIMEOUT_MS) == 0) {
            notify_watchdog();
            n->stale_logged = false;
            n->next_watchdog_ms = mono_ms() + n->watchdog_ms;
        } else {
            if (!n->stale_logged)
                log_warn("watchdog: a child is not running or the port does not answer; not notifying");
            n->stale_logged = true;
            n->next_watchdog_ms = mono_ms() + 200;
        }
    }
    if (now >= n->next_status_ms) {
        n->next_status_ms = now + SUP_STATUS_MS;
        sd_status(s, n);
    }
}

int supervisor_run(struct config *cfg, const struct supervisor_opts *opts)
{
    struct supervisor s = {.cfg = cfg, .opts = opts, .loglist_fd = -1};
    int rc = 1;
    char err[512];

    if (opts->replay_file && !(s.replay = replay_open(opts->replay_file, err, sizeof err))) {
        log_error("--replay: %s", err);
        return 2;
    }
    /* A state file that exists but cannot be read is refused: overwriting it
     * would lose every position (docs/ingest.md). */
    if (!opts->replay_file && cfg->ct_log.state_file && *cfg->ct_log.state_file &&
        state_load(cfg->ct_log.state_file, &s.state, err, sizeof err) != 0) {
        log_error("state file: %s", err);
        return 2;
    }
    if (!opts->replay_file && open_positions(&s) != 0) {
        state_free(&s.state);
        return 2;
    }
    /* Signals are handled synchronously in the loop below (sigtimedwait), so
     * they are blocked here and the children restore the old mask. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &mask, &s.old_mask) != 0) {
        log_error("sigprocmask: %s", strerror(errno));
        goto out;
    }
    /* A client that goes away mid-write must not kill a worker: EPIPE instead. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        log_error("signal(SIGPIPE): %s", strerror(errno));
        goto out;
    }

    s.ring = ring_create((size_t)cfg->ring_size);
    if (!s.ring) {
        log_error("ring_create(%llu bytes): %s", (unsigned long long)cfg->ring_size, strerror(errno));
        goto out;
    }
    s.stats = stats_create();
    if (!s.stats) {
        log_error("stats_create: %s", strerror(errno));
        goto out;
    }
    stats_set_started(s.stats, (uint64_t)time(NULL));
    if (plan_children(&s) != 0)
        goto out;
    for (unsigned i = 0; i < s.workers; i++) {
        int efd = eventfd(0, EFD_NONBLOCK);
        if (efd < 0 || ring_add_waiter(s.ring, efd) != 0) {
            log_error("eventfd for worker %u: %s", i, strerror(errno));
            goto out;
        }
    }
    stats_set_workers(s.stats, s.workers, s.n_children - s.workers);
    if (s.replay)
        replay_register_logs(s.replay, s.stats);
    if (!opts->replay_file) {
        /* A certificate logged to several logs is sent once (ARCHITECTURE.md). */
        s.dedup = dedup_create(cfg->dedup.capacity, cfg->dedup.ttl_secs);
        if (!s.dedup) {
            log_error("dedup table (%u entries): %s", cfg->dedup.capacity, strerror(errno));
            goto out;
        }
        s.loglist_fd = memfd_create("certstream-loglist", MFD_CLOEXEC);
        if (s.loglist_fd < 0) {
            log_error("memfd_create: %s", strerror(errno));
            goto out;
        }
    }
    log_info("certstream-server %s: %s:%u, %u fanout workers, ring %llu bytes, %s",
             CERTSTREAM_VERSION, cfg->host, cfg->port, s.workers,
             (unsigned long long)cfg->ring_size,
             opts->replay_file ? "replay source" : "following CT logs");

    /* Setup parsed files (replay corpus, configuration) and freed their
     * parse trees: give that heap back before the children are forked. */
    malloc_trim(0);
    struct watch_state watch = {0};
    poll_watch(&s, &watch); /* the starting point */
    struct sd_state sd;
    sd_init(&sd);
    start_due(&s);
    for (;;) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 200 * 1000000L};
        int sig = sigtimedwait(&mask, NULL, &ts);
        if (sig < 0 && errno != EAGAIN && errno != EINTR) {
            log_error("sigtimedwait: %s", strerror(errno));
            break;
        }
        if (sig == SIGTERM || sig == SIGINT) {
            log_info("%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            if (sd.on)
                notify_stopping();
            break;
        }
        if (sig == SIGHUP) {
            if (sd.on)
                notify_reloading();
            on_reload(&s, "SIGHUP");
            if (sd.ready)
                notify_ready();
        }
        poll_watch(&s, &watch);
        reap(&s);
        maybe_fetch_loglist(&s);
        start_due(&s);
        if (s.have_loglist && mono_ms() - s.state_saved_ms >= SUP_STATE_SAVE_MS)
            save_state(&s);
        sd_tick(&s, &sd);
    }
    stop_all(&s);
    save_state(&s);
    log_info("stopped");
    rc = 0;
out:
    if (!s.stopping && s.children)
        stop_all(&s);
    free(s.children);
    if (s.have_loglist)
        loglist_free(&s.loglist);
    state_free(&s.state);
    positions_close(s.positions);
    replay_close(s.replay);
    if (s.loglist_fd >= 0 && close(s.loglist_fd) != 0)
        log_warn("close: %s", strerror(errno));
    if (s.dedup)
        dedup_destroy(s.dedup);
    if (s.stats)
        stats_destroy(s.stats);
    if (s.ring)
        ring_destroy(s.ring);
    return rc;
}
