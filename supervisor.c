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
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/notify.h"
#include "common/probe.h"
#include "fanout/fanout.h"
#include "fanout/tls.h"
#include "ingest/ingest.h"
#include "ingest/loglist.h"
#include "ingest/replay.h"
#include "ingest/state.h"
#include "config_watch.h"
#include "instance.h"
#include "reload_plan.h"
#include "shm/addrtable.h"
#include "fanout/deep.h"
#include "nats/ackstore.h"
#include "nats/history.h"
#include "nats/natsnode.h"
#include "shm/dedup.h"
#include "shm/positions.h"
#include "shm/proctable.h"
#include "shm/ratelimit.h"
#include "shm/ring.h"
#include "shm/ring_test.h"
#include "shm/roles.h"
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
#define SUP_TICK_MS 100          /* the loop's period: watchdogs, restarts, the watch */
#define SUP_FD_RESERVE 64        /* descriptors a worker needs besides its clients */

struct child {
    enum proc_role role;         /* its own (ROLE_NATS too); counted under role_reported() */
    unsigned index;              /* worker index / producer index */
    unsigned fslot;              /* fanout: its worker slot (ring waiter fslot, stats slot 1 + fslot) */
    unsigned gen;                /* fanout: the generation it belongs to (a reload that
                                  * replaces workers starts a new one) */
    unsigned stats_slot;
    unsigned producer_id;
    pid_t pid;                   /* 0 = not running */
    uint64_t started_ms;
    uint64_t restart_at_ms;      /* when to start it again (0 = now) */
    uint32_t backoff_ms;
    unsigned restarts;
    bool active;                 /* false: do not (re)start; slot free once reaped */
    bool killed;                 /* SIGKILLed by a watchdog: said why, wait for the reap */
    bool retiring;               /* ingest: its group changed; stop_children(STOP_RETIRING) */
    uint64_t claim_pos;          /* producers: the open ring claim last seen ... */
    uint64_t claim_seen_ms;      /* ... and since when (0 = none open) */
    struct ring *ring;           /* the ring it runs on (a ring_size reload makes a new one) */
};

struct supervisor {
    struct config *cfg;
    const struct supervisor_opts *opts;
    struct ring *ring;
    struct stats *stats;
    struct dedup *dedup;         /* shared by the ingest processes; NULL with --replay */
    struct addrtable *addrs;     /* network edge: exact per-address counts */
    struct ratelimit *ratelimit; /* network edge: new connections per address */
    struct replay_source *replay; /* --replay: decoded once, inherited by the replay child */
    struct child *children;
    unsigned n_children;         /* slots in use (fanout first, then producers) */
    unsigned cap_children;
    unsigned workers;            /* fanout workers of the current generation */
    unsigned fanout_slots;       /* worker slots: current workers plus room for a replacement */
    unsigned max_producers;
    unsigned gen;                /* current fanout generation */
    /* a replacement in progress: the new generation starts, the old one is
     * told to drain once every new worker accepts */
    bool replacing;
    uint64_t replace_deadline_ms;
    struct config *prev_cfg;     /* the configuration before it (restored on failure) */
    struct instance prev_inst;   /* the old address's lock, released when done */
    struct config_watch *watch;  /* hot_reload */
    uint32_t inplace_owed;       /* reloads applied in place, counted once every worker loaded them */
    bool reload_deferred;        /* a reload arrived during a replacement: run it after */
    struct reload_plan plan;     /* what a reload applies besides the workers (reload_plan.h);
                                  * with a worker replacement, once the new workers accept */
    struct dedup *plan_dedup;    /* ... and the new dedup table it made for that */
    struct ring *prev_ring;      /* a ring_size reload: the running ring, until the new
                                  * workers accept and the producers move to s->ring */
    bool stopping;
    bool ready;                  /* every fanout worker has accepted once (on_ready ran) */
    bool sd_on, sd_ready;        /* sd_notify: $NOTIFY_SOCKET set / READY=1 sent */
    sigset_t old_mask;
    struct proctable *procs;     /* heartbeats (shm/proctable.h) */
    struct instance inst;        /* the one-instance-per-address lock */

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

/* Test hook (docs/operations.md, "Watchdogs"): CERTSTREAM_TEST_STOP_IN_CLAIM=N
 * makes a producer stop itself (SIGSTOP) between claim and commit of its Nth
 * record ("N@G": only the ingest process of group index G), as a debugger or a hung process would, so the tests can measure how
 * long one stuck producer holds up the others. Only a producer's first run
 * arms it. Unset in production. */
/* CERTSTREAM_TEST_KILL_AFTER_COMMIT=N (or "N@G") likewise makes the producer
 * kill itself (SIGKILL) right after its Nth record is committed, before the
 * ingest process stores the entry's position: the one instant a restarted
 * process must find the entry already in the ring (docs/ingest.md). With
 * ":server" after it ("N:server", "N@G:server") the producer kills its whole
 * process group instead, every process of the server at once: the restarted
 * server has a new ring and must send that entry again. */
static unsigned long g_stop_in_claim, g_claims, g_kill_after_commit, g_commits;
static bool g_kill_server;

static void producer_test_hook(enum ring_test_phase phase, uint64_t pos, void *arg)
{
    (void)pos;
    (void)arg;
    if (phase == RING_TEST_OPENED && ++g_claims == g_stop_in_claim) {
        log_warn("test hook CERTSTREAM_TEST_STOP_IN_CLAIM: stopping inside ring claim %lu", g_claims);
        raise(SIGSTOP);
    }
    if (phase == RING_TEST_COMMITTED && ++g_commits == g_kill_after_commit) {
        log_warn("test hook CERTSTREAM_TEST_KILL_AFTER_COMMIT: killed after ring commit %lu%s", g_commits,
                 g_kill_server ? " with the whole server" : "");
        if (g_kill_server) (void)kill(0, SIGKILL);
        raise(SIGKILL);
    }
}

/* "N" or "N@G" (only the producer of ingest group index G): N, else 0;
 * *server tells whether ":server" follows. */
static unsigned long test_hook_count(const char *name, unsigned producer_index, bool *server)
{
    const char *v = getenv(name);
    char *end;
    unsigned long n;
    if (!v || (n = strtoul(v, &end, 10)) == 0)
        return 0;
    if (*end == '@' && strtoul(end + 1, &end, 10) != producer_index)
        return 0;
    if (server) *server = strcmp(end, ":server") == 0;
    return n;
}

static void arm_test_hooks(unsigned producer_index)
{
    g_stop_in_claim = test_hook_count("CERTSTREAM_TEST_STOP_IN_CLAIM", producer_index, NULL);
    g_kill_after_commit = test_hook_count("CERTSTREAM_TEST_KILL_AFTER_COMMIT", producer_index, &g_kill_server);
    if (g_stop_in_claim || g_kill_after_commit)
        ring_test_set_hook(producer_test_hook, NULL);
}

/* Each fanout worker says how many descriptors it may hold (one per client). */
static void log_fd_limit(const struct config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        log_warn("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
        return;
    }
    unsigned long long need = (unsigned long long)cfg->connection_limit.max_connections + SUP_FD_RESERVE;
    if (rl.rlim_cur < need)
        log_warn("file descriptors: this worker may hold %llu, less than "
                 "connection_limit.max_connections (%u) + %u; clients past that are refused "
                 "(raise LimitNOFILE or ulimit -Hn)", (unsigned long long)rl.rlim_cur,
                 cfg->connection_limit.max_connections, SUP_FD_RESERVE);
    else
        log_info("file descriptors: this worker may hold %llu", (unsigned long long)rl.rlim_cur);
}

/* In the child: take the role and never return. */
static void child_main(struct supervisor *s, const struct child *c)
{
    log_set_role(proc_role_name(c->role), (int)c->index);
    if (c->role != ROLE_LOGLIST)
        proctable_set_self(c->stats_slot);
    /* Die with the supervisor: a child without its master would serve stale config forever. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
        log_warn("prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
    if (getppid() == 1)
        _exit(0);
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigemptyset(&dfl.sa_mask);
    int sigs[] = {SIGCHLD, SIGTERM, SIGINT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (sigaction(sigs[i], &dfl, NULL) != 0)
            log_warn("sigaction(%d): %s", sigs[i], strerror(errno));
    /* SIGHUP and SIGUSR1 are the supervisor's (reload, log reopen); `systemctl
     * kill -s HUP` reaches every process of the unit and must not stop one. */
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigemptyset(&ign.sa_mask);
    if (sigaction(SIGHUP, &ign, NULL) != 0 || sigaction(SIGUSR1, &ign, NULL) != 0)
        log_warn("sigaction(SIGHUP/SIGUSR1): %s", strerror(errno));
    if (sigprocmask(SIG_SETMASK, &s->old_mask, NULL) != 0)
        log_warn("sigprocmask: %s", strerror(errno));

    int rc = 1;
    if ((c->role == ROLE_REPLAY || c->role == ROLE_INGEST) && c->restarts == 0)
        arm_test_hooks(c->index); /* first run only: its replacement runs normally */
    switch (c->role) {
    case ROLE_FANOUT: {
        log_fd_limit(s->cfg);
        struct fanout_params fp = {
            .cfg = s->cfg, .ring = c->ring, .stats = s->stats, .index = c->index,
            .stats_slot = c->stats_slot, .wake_fd = ring_waiter_fd(c->ring, c->fslot),
            .flags = s->opts->flags,
            .addrs = s->addrs, .ratelimit = s->ratelimit,
        };
        rc = fanout_run(&fp);
        break;
    }
    case ROLE_REPLAY: {
        struct replay_params rp = {
            .cfg = s->cfg, .ring = c->ring, .stats = s->stats, .producer_id = c->producer_id,
            .stats_slot = c->stats_slot, .src = s->replay, .rate = s->opts->replay_rate,
            .loop = s->opts->replay_loop, .bench_stamp = s->opts->bench_stamp,
        };
        rc = replay_run(&rp);
        break;
    }
    case ROLE_INGEST: {
        const struct loglist_group *g = &s->loglist.groups[c->index];
        struct ingest_params ip = {
            .cfg = s->cfg, .ring = c->ring, .stats = s->stats, .producer_id = c->producer_id,
            .stats_slot = c->stats_slot, .logs = (struct loglist_log *const *)g->logs,
            .n_logs = g->n_logs, .dedup = s->dedup, .positions = s->positions,
            .start_marks = ackstore_positions(),
        };
        log_info("following %zu log(s) of group %s", g->n_logs, g->name);
        rc = ingest_run(&ip) == 0 ? 0 : 1;
        break;
    }
    case ROLE_LOGLIST:
        rc = fetch_loglist_child(s);
        break;
    case ROLE_NATS: {
        struct natsnode_params np = {
            .cfg = s->cfg, .ring = c->ring, .stats = s->stats, .producer_id = c->producer_id,
            .stats_slot = c->stats_slot,
        };
        rc = natsnode_run(&np);
        break;
    }
    case ROLE_SUPERVISOR: /* never a child */
    case ROLE_COUNT:
        break;
    }
    _exit(rc);
}

static int child_start(struct supervisor *s, struct child *c)
{
    /* The row is reset before fork: the child may beat and say RUNNING before
     * the parent runs again. */
    if (c->role != ROLE_LOGLIST)
        proctable_set_child(s->procs, c->stats_slot, role_reported(c->role), c->index, 0);
    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork %s[%u]: %s", proc_role_name(c->role), c->index, strerror(errno));
        return -1;
    }
    if (pid == 0)
        child_main(s, c);
    c->pid = pid;
    c->started_ms = mono_ms();
    /* process metrics: the fetcher is short-lived and has no counter slot */
    stats_log_add(&stats_server(s->stats)->starts[role_reported(c->role)], 1);
    if (c->role != ROLE_LOGLIST) {
        stats_proc_set(s->stats, c->stats_slot, role_reported(c->role), c->index);
        stats_proc_pid(s->stats, c->stats_slot, (int)pid);
    }
    c->restart_at_ms = 0;
    c->killed = false;
    c->claim_seen_ms = 0;
    if (c->role != ROLE_LOGLIST)
        proctable_set_pid(s->procs, c->stats_slot, pid);
    log_info("started %s[%u] pid=%ld", proc_role_name(c->role), c->index, (long)pid);
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
        struct rusage ru;
        pid_t pid = wait4(-1, &status, WNOHANG, &ru);
        if (pid <= 0)
            return;
        struct child *c = NULL;
        for (unsigned i = 0; i < s->n_children; i++)
            if (s->children[i].pid == pid)
                c = &s->children[i];
        if (!c)
            continue;
        c->pid = 0;
        /* its CPU time stays in the per-role total (a counter never goes back) */
        stats_log_add(&stats_server(s->stats)->retired_cpu_us[role_reported(c->role)],
                      (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
                          (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec);
        if (c->role != ROLE_LOGLIST)
            stats_proc_pid(s->stats, c->stats_slot, 0);
        char why[128];
        describe_status(status, why, sizeof why);
        bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (c->role == ROLE_LOGLIST) {
            c->active = false;
            /* A download error was logged by the fetcher itself; a signal was not. */
            if (WIFSIGNALED(status))
                log_warn("log list download (loglist pid=%ld) %s", (long)pid, why);
            if (!s->stopping)
                loglist_result(s, clean);
            continue;
        }
        proctable_clear(s->procs, c->stats_slot);
        /* Its claim in the ring (if a producer died mid-record) must not stall readers,
         * and its connection gauges must stop counting. */
        if (c->role != ROLE_FANOUT)
            ring_repair(c->ring, c->producer_id);
        stats_slot_reset(s->stats, c->stats_slot);
        addrtable_slot_reset(s->addrs, c->stats_slot);   /* exactly its per-address holdings */
        if (c->role == ROLE_FANOUT && (s->stopping || !c->active))
            ring_waiter_set_active(c->ring, c->fslot, false);
        if (s->stopping || !c->active) {
            log_info("%s[%u] %s", proc_role_name(c->role), c->index, why);
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
        stats_log_add(&stats_server(s->stats)->restarts[role_reported(c->role)]
                                                      [clean ? STATS_EXIT_CLEAN
                                                       : WIFSIGNALED(status) ? STATS_EXIT_SIGNAL
                                                                             : STATS_EXIT_ERROR], 1);
        if (c->role == ROLE_FANOUT && !clean)
            stats_add(s->stats, 0, ST_WORKER_PANICS, 1);
        if (c->role != ROLE_FANOUT)
            stats_add(s->stats, 0, ST_INGEST_RESTARTS, 1);
        log_warn("%s[%u] pid=%ld %s%s; restarting in %u ms (restart #%u)", proc_role_name(c->role),
                 c->index, (long)pid, why, c->killed ? " by the watchdog" : "", c->backoff_ms,
                 c->restarts);
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

#define STOP_RETIRING (-2)      /* stop_children(): the children marked retiring */

static bool stop_match(const struct child *c, int role /* -1 = any */)
{
    if (role == STOP_RETIRING)
        return c->retiring;
    return role < 0 || (int)c->role == role;
}

static unsigned running(const struct supervisor *s, int role)
{
    unsigned n = 0;
    for (unsigned i = 0; i < s->n_children; i++)
        n += s->children[i].pid != 0 && stop_match(&s->children[i], role);
    return n;
}

/* SIGTERM to every running child of `role` (-1 = all), then wait for them,
 * SIGKILL after the grace period. */
static void stop_children(struct supervisor *s, int role)
{
    for (unsigned i = 0; i < s->n_children; i++) {
        struct child *c = &s->children[i];
        if (!stop_match(c, role))
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
                if (c->pid > 0 && stop_match(c, role)) {
                    log_warn("%s[%u] did not stop in %d ms: SIGKILL", proc_role_name(c->role), c->index,
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
    for (unsigned i = 0; i < s->n_children; i++)
        if (role == STOP_RETIRING)
            s->children[i].retiring = false;
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
    for (unsigned i = 0; i < s->n_children; i++)
        if (!s->children[i].active && s->children[i].pid == 0)
            return &s->children[i];
    if (s->n_children >= s->cap_children)
        return NULL;
    return &s->children[s->n_children++];
}

/* Producer ids (ring claim slot; stats slot 1 + F + id) are handed out from a
 * pool, not by group index, so a group that keeps running across a log list
 * change keeps its id while the others come and go. */
static bool producer_id_used(const struct supervisor *s, unsigned id)
{
    for (unsigned i = 0; i < s->n_children; i++) {
        const struct child *c = &s->children[i];
        if ((c->role == ROLE_INGEST || c->role == ROLE_REPLAY) && c->producer_id == id && (c->active || c->pid))
            return true;
    }
    return false;
}

static int add_producer(struct supervisor *s, enum proc_role role, unsigned index)
{
    unsigned id = 0;
    while (id < s->max_producers && producer_id_used(s, id))
        id++;
    struct child *c = id < s->max_producers ? child_slot(s) : NULL;
    if (!c)
        return -1;
    *c = (struct child){.role = role, .index = index, .producer_id = id,
                        .stats_slot = 1 + s->fanout_slots + id, .active = true, .ring = s->ring};
    return 0;
}

static bool fslot_used(const struct supervisor *s, unsigned k)
{
    for (unsigned i = 0; i < s->n_children; i++) {
        const struct child *c = &s->children[i];
        if (c->role == ROLE_FANOUT && c->fslot == k && (c->active || c->pid))
            return true;
    }
    return false;
}

static unsigned fslots_free(const struct supervisor *s)
{
    unsigned n = 0;
    for (unsigned k = 0; k < s->fanout_slots; k++)
        n += !fslot_used(s, k);
    return n;
}

/* Worker `index` of the current generation, in a free worker slot. */
static int add_worker(struct supervisor *s, unsigned index)
{
    unsigned k = 0;
    while (k < s->fanout_slots && fslot_used(s, k))
        k++;
    struct child *c = k < s->fanout_slots ? child_slot(s) : NULL;
    if (!c)
        return -1;
    *c = (struct child){.role = ROLE_FANOUT, .index = index, .fslot = k, .stats_slot = 1 + k,
                        .gen = s->gen, .active = true, .ring = s->ring};
    ring_waiter_set_active(s->ring, k, true);
    return 0;
}

static unsigned configured_workers(const struct config *cfg)
{
    return cfg->workers ? cfg->workers : cpu_count();
}

/* Worker slots come first in the stats slots (1..F), producers after them.
 * F = max(4 W, W + 8) leaves room for new generations beside the current one
 * and older ones still draining their clients (a reload that changes workers,
 * host, port or any client setting), while at least 32 producer slots remain. */
#define SUP_MIN_PRODUCER_SLOTS 32
static int plan_children(struct supervisor *s)
{
    s->workers = configured_workers(s->cfg);
    if (1 + s->workers + 1 > STATS_MAX_SLOTS) {
        log_error("workers: at most %d fanout workers (process slots)", STATS_MAX_SLOTS - 2);
        return -1;
    }
    unsigned room = s->workers * 4 > s->workers + 8 ? s->workers * 4 : s->workers + 8;
    unsigned cap = STATS_MAX_SLOTS - 1 - SUP_MIN_PRODUCER_SLOTS;
    s->fanout_slots = room < cap ? room : cap;
    if (s->fanout_slots < s->workers)
        s->fanout_slots = s->workers;
    s->max_producers = STATS_MAX_SLOTS - 1 - s->fanout_slots;
    if (s->max_producers > RING_MAX_PRODUCERS)
        s->max_producers = RING_MAX_PRODUCERS;
    s->cap_children = s->fanout_slots + s->max_producers + 1; /* + the log list fetcher */
    s->children = calloc(s->cap_children, sizeof *s->children);
    if (!s->children)
        return -1;
    return 0;
}

static int start_workers_plan(struct supervisor *s)
{
    for (unsigned i = 0; i < s->workers; i++)
        if (add_worker(s, i) != 0)
            return -1;
    if (s->opts->replay_file)
        return add_producer(s, ROLE_REPLAY, 0);
    return 0;
}

/* The NATS process (docs/scale-out.md): publisher on an ingest node, consumer
 * on an edge node. It takes the last producer slot, so ingest groups never
 * collide with it; an edge follows no CT log. */
static int plan_nats(struct supervisor *s)
{
    if (!natsnode_wanted(s->cfg))
        return 0;
    bool edge = strcmp(s->cfg->ingest.source, "nats") == 0;
    if (edge && s->opts->replay_file) {
        log_error("--replay needs ingest.source: logs (an edge node is fed by NATS)");
        return -1;
    }
    if (s->max_producers < 2)
        return -1;
    unsigned id = --s->max_producers;
    struct child *c = child_slot(s);
    if (!c)
        return -1;
    *c = (struct child){.role = ROLE_NATS, .index = 0, .producer_id = id,
                        .stats_slot = 1 + s->fanout_slots + id, .active = true, .ring = s->ring};
    if (natsnode_prepare(s->cfg, s->stats, s->ring) != 0) {
        log_error("NATS publisher wakeup: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static bool is_edge(const struct supervisor *s)
{
    return strcmp(s->cfg->ingest.source, "nats") == 0;
}

/* ---------------------------------------------------------- following CT logs */

static void save_state(struct supervisor *s)
{
    char err[512];
    if (!s->have_loglist || !s->cfg->ct_log.state_file || !*s->cfg->ct_log.state_file)
        return;
    struct stats_server *sv = stats_server(s->stats);
    if (state_update(&s->state, s->stats) != 0 ||
        state_save(s->cfg->ct_log.state_file, &s->state, err, sizeof err) != 0) {
        log_every(LOG_WARN, 60, "state file: %s", s->cfg->ct_log.state_file[0] ? err : "out of memory");
        stats_log_add(&sv->state_write_failures, 1);
        if (stats_log_load(&sv->state_failing_since_ms) == 0)
            stats_log_store(&sv->state_failing_since_ms, wall_ms());
    } else {
        stats_log_store(&sv->state_last_write_ms, wall_ms());
        stats_log_store(&sv->state_failing_since_ms, 0);
    }
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
    l->kind = 2;   /* not a log: the list itself */
}

/* A group of the running list that the new list has unchanged: same logs,
 * in the same order, with the same ids (stats rows). Its process keeps
 * running; returns the group's index in fresh, or -1. */
static long kept_group(const struct loglist_group *old, const struct loglist *fresh)
{
    for (size_t j = 0; j < fresh->n_groups; j++) {
        const struct loglist_group *g = &fresh->groups[j];
        if (!g->name || !old->name || strcmp(g->name, old->name) != 0 || g->n_logs != old->n_logs)
            continue;
        bool same = true;
        for (size_t k = 0; same && k < g->n_logs; k++) {
            const struct loglist_log *a = old->logs[k], *b = g->logs[k];
            same = a->log_id == b->log_id && a->kind == b->kind && strcmp(a->url, b->url) == 0 &&
                   strcmp(a->name, b->name) == 0 &&
                   /* per-log control (log_overrides, operator_pacing's split) */
                   a->batch_size == b->batch_size && a->poll_interval_ms == b->poll_interval_ms &&
                   a->fetch_concurrency == b->fetch_concurrency && !a->refused == !b->refused &&
                   a->operator_processes == b->operator_processes &&
                   ((!a->fetch_url && !b->fetch_url) ||
                    (a->fetch_url && b->fetch_url && strcmp(a->fetch_url, b->fetch_url) == 0));
        }
        if (same)
            return (long)j;
    }
    return -1;
}

/* Replaces the followed log set. Groups that are unchanged keep their ingest
 * process (unless restart_all: ct_log.* or ingest.* changed); the others
 * stop (their positions are in shared memory), positions are carried over
 * through the state, and one ingest process starts per new or changed group. */
static void apply_loglist(struct supervisor *s, const char *json, size_t len, bool restart_all)
{
    struct loglist fresh;
    char err[512];
    if (loglist_build(s->cfg, json, len, &fresh, err, sizeof err) != 0) {
        if (!json)
            log_warn("the log list could not be had and no custom_logs or static_logs are "
                     "configured: following nothing until the list downloads");
        else
            log_warn("log list: %s", err);
        if (!s->have_loglist)
            show_loglist_unavailable(s);
        return;
    }
    bool *kept_log = calloc(fresh.n_logs ? fresh.n_logs : 1, sizeof *kept_log);
    bool *kept_group_j = calloc(fresh.n_groups ? fresh.n_groups : 1, sizeof *kept_group_j);
    if (!kept_log || !kept_group_j)
        restart_all = true; /* out of memory: the simple way */
    unsigned kept = 0, restarted = 0;
    if (s->have_loglist) {
        for (unsigned i = 0; i < s->n_children; i++) {
            struct child *c = &s->children[i];
            if (c->role != ROLE_INGEST || (!c->active && !c->pid))
                continue;
            long j = restart_all || c->index >= s->loglist.n_groups
                         ? -1 : kept_group(&s->loglist.groups[c->index], &fresh);
            if (j >= 0 && !kept_group_j[j]) {
                kept_group_j[j] = true;
                c->index = (unsigned)j; /* a restart takes the new list's group */
                for (size_t k = 0; k < fresh.groups[j].n_logs; k++)
                    kept_log[fresh.groups[j].logs[k]->log_id] = true;
                kept++;
            } else {
                c->retiring = true;
                restarted++;
            }
        }
        stop_children(s, STOP_RETIRING);
        if (state_update(&s->state, s->stats) != 0)
            log_warn("state: out of memory; positions of the previous list may be lost");
        loglist_free(&s->loglist);
    }
    s->loglist = fresh;
    s->have_loglist = true;
    struct stats_server *sv = stats_server(s->stats);
    stats_log_store(&sv->loglist_listed, s->loglist.n_listed);
    stats_log_store(&sv->loglist_skipped, s->loglist.n_skipped);
    stats_log_store(&sv->loglist_followed, s->loglist.n_logs);
    if (kept == 0) {
        state_apply(&s->state, &s->loglist, s->stats);
        state_positions_apply(s->positions, &s->loglist, s->stats);
        ackstore_apply(s->positions, s->stats);
    } else {
        /* the rows of running groups are theirs: only the others are (re)seeded */
        size_t n = s->loglist.n_logs < STATS_MAX_LOGS ? s->loglist.n_logs : STATS_MAX_LOGS;
        stats_set_log_count(s->stats, (unsigned)n);
        for (size_t i = 0; i < n; i++)
            if (!kept_log[s->loglist.logs[i].log_id]) {
                state_apply_log(&s->state, &s->loglist.logs[i], s->stats);
                state_positions_apply_log(s->positions, &s->loglist.logs[i], s->stats);
            }
        ackstore_apply(s->positions, s->stats);
    }
    size_t groups = s->loglist.n_groups, started = 0;
    if (groups > s->max_producers) {
        log_error("%zu ingest groups but only %u producer slots: set ingest.max_processes",
                  groups, s->max_producers);
        groups = s->max_producers;
    }
    for (unsigned g = 0; g < groups; g++) {
        if (kept_group_j && kept_group_j[g])
            continue;
        if (add_producer(s, ROLE_INGEST, g) != 0)
            log_error("no process slot for ingest group %s", s->loglist.groups[g].name);
        else
            started++;
    }
    free(kept_log);
    free(kept_group_j);
    stats_set_workers(s->stats, s->workers, (unsigned)groups);
    malloc_trim(0); /* the parsed list is freed; children are forked next */
    log_info("following %zu logs in %zu ingest processes%s", s->loglist.n_logs, groups,
             json ? "" : " (configured logs only: the log list is unavailable)");
    if (kept || restarted)
        log_info("log list change: %u ingest processes kept running, %u stopped, %zu started",
                 kept, restarted, started);
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
                apply_loglist(s, json, (size_t)st.st_size, false);
            else
                log_info("log list unchanged");
            s->loglist_hash = h;
            s->list_from_url = true;
            stats_log_store(&stats_server(s->stats)->loglist_last_success_ms, wall_ms());
            __atomic_store_n(&stats_server(s->stats)->loglist_failing, 0, __ATOMIC_RELAXED);
            s->loglist_backoff_ms = 0;
            s->loglist_next_ms = now + SUP_LOGLIST_REFRESH_MS;
            free(json);
            return;
        }
        free(json);
        log_warn("log list: could not read what the fetcher wrote");
    }
    stats_log_add(&stats_server(s->stats)->loglist_failures, 1);
    __atomic_store_n(&stats_server(s->stats)->loglist_failing, 1, __ATOMIC_RELAXED);
    s->loglist_backoff_ms = s->loglist_backoff_ms ? s->loglist_backoff_ms * 2 : SUP_LOGLIST_RETRY_MIN_MS;
    if (s->loglist_backoff_ms > SUP_LOGLIST_RETRY_MAX_MS)
        s->loglist_backoff_ms = SUP_LOGLIST_RETRY_MAX_MS;
    s->loglist_next_ms = now + s->loglist_backoff_ms;
    if (!s->have_loglist)
        apply_loglist(s, NULL, 0, false); /* the configured logs, if any, go ahead */
    log_warn("log list unavailable; next attempt in %u s", s->loglist_backoff_ms / 1000);
}

static void maybe_fetch_loglist(struct supervisor *s)
{
    if (s->opts->replay_file || is_edge(s) || s->stopping || mono_ms() < s->loglist_next_ms)
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

/* ------------------------------------------------------------- watchdogs */

static void watchdog_kill(struct supervisor *s, struct child *c, const char *why)
{
    log_error("%s[%u] pid=%ld %s: SIGKILL, it will be replaced", proc_role_name(c->role), c->index,
              (long)c->pid, why);
    if (kill(c->pid, SIGKILL) != 0 && errno != ESRCH) {
        log_error("kill %ld: %s", (long)c->pid, strerror(errno));
        return;
    }
    c->killed = true;
    proctable_count_watchdog_kill(s->procs, role_reported(c->role));
}

/* A child whose event loop has not beaten for watchdog_secs (stopped,
 * spinning, deadlocked) is killed; reap() restarts it. The kernel keeps
 * routing connections to a stopped worker's listener, so waiting is worse. */
static void check_heartbeats(struct supervisor *s, uint64_t now)
{
    uint32_t wd = s->cfg->watchdog_secs * 1000u;
    for (unsigned i = 0; wd && i < s->n_children; i++) {
        struct child *c = &s->children[i];
        struct proc_row row;
        if (c->pid <= 0 || c->killed || c->role == ROLE_LOGLIST ||
            !proctable_row(s->procs, c->stats_slot, &row) || proctable_fresh(&row, now, wd))
            continue;
        char why[96];
        snprintf(why, sizeof why, "missed its heartbeat for %llu ms (watchdog_secs: %u)",
                 (unsigned long long)(now - (row.beat_ms ? row.beat_ms : row.started_ms)),
                 s->cfg->watchdog_secs);
        watchdog_kill(s, c, why);
    }
}

/* A producer stopped between its ring claim and the commit holds up every
 * reader at that record, so every log. A claim open longer than
 * ring_claim_timeout_ms gets the producer killed; reap() pads the claim
 * (ring_repair) and readers move on. */
static void check_claims(struct supervisor *s, uint64_t now)
{
    uint32_t limit = s->cfg->ring_claim_timeout_ms;
    for (unsigned i = 0; limit && i < s->n_children; i++) {
        struct child *c = &s->children[i];
        uint64_t pos;
        if (c->pid <= 0 || c->killed || (c->role != ROLE_INGEST && c->role != ROLE_REPLAY))
            continue;
        if (!ring_claim_open(c->ring, c->producer_id, &pos)) {
            c->claim_seen_ms = 0;
            continue;
        }
        if (c->claim_seen_ms == 0 || c->claim_pos != pos) {
            c->claim_pos = pos;
            c->claim_seen_ms = now;
            continue;
        }
        if (now - c->claim_seen_ms >= limit) {
            char why[128];
            snprintf(why, sizeof why, "held ring claim %llu uncommitted for %llu ms "
                     "(ring_claim_timeout_ms: %u)", (unsigned long long)pos,
                     (unsigned long long)(now - c->claim_seen_ms), limit);
            watchdog_kill(s, c, why);
        }
    }
}

bool supervisor_children_fresh(void)
{
    const struct proctable *t = proctable_get();
    uint64_t now = mono_ms();
    uint32_t wd = proctable_watchdog_ms(t);
    struct proc_row row;
    for (unsigned i = 0; t && i < PROCTABLE_SLOTS; i++)
        if (proctable_row(t, i, &row) && !proctable_fresh(&row, now, wd))
            return false;
    return true;
}

/* ------------------------------------------------ service manager points
 * Where the service manager hears about the server (sd_notify, see sd_tick
 * for READY=1, WATCHDOG=1 and STATUS=). */

/* Listeners are bound and every fanout worker accepts (logged; READY=1 follows
 * from sd_tick once a worker answers on the port). */
static void on_ready(struct supervisor *s)
{
    log_info("ready: %u fanout workers accept on %s:%u", s->workers,
             s->cfg->host && *s->cfg->host ? s->cfg->host : "0.0.0.0", (unsigned)s->cfg->port);
}

/* A reload starts (RELOADING=1) / has ended, applied or refused (READY=1,
 * once the server was ready). A reload that replaces workers ends when the
 * new workers accept (end_replacement). SIGHUP and hot_reload alike. */
static void on_reload_begin(struct supervisor *s, const char *why)
{
    (void)why;
    if (s->sd_on)
        notify_reloading();
}

static void on_reload_end(struct supervisor *s, bool applied)
{
    (void)applied;
    if (s->sd_ready)
        notify_ready();
}

static void check_ready(struct supervisor *s)
{
    if (s->ready)
        return;
    for (unsigned i = 0; i < s->n_children; i++) {
        struct proc_row row;
        const struct child *c = &s->children[i];
        if (c->role == ROLE_FANOUT && c->active &&
            (!proctable_row(s->procs, c->stats_slot, &row) || row.state != PROC_RUNNING))
            return;
    }
    s->ready = true;
    on_ready(s);
}

/* Soft RLIMIT_NOFILE up to the hard limit: each client is a descriptor, and
 * distributions start services with a soft limit of 1024. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        log_warn("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
        return;
    }
    rlim_t was = rl.rlim_cur;
    if (rl.rlim_cur != rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            log_warn("file descriptors: cannot raise the soft limit %llu to the hard limit %llu: %s",
                     (unsigned long long)was, (unsigned long long)rl.rlim_max, strerror(errno));
            return;
        }
        log_info("file descriptors: soft limit raised from %llu to %llu (the hard limit)",
                 (unsigned long long)was, (unsigned long long)rl.rlim_cur);
    } else {
        log_info("file descriptors: limit %llu (soft = hard)", (unsigned long long)rl.rlim_cur);
    }
}

static uint32_t log_file_generation(void)
{
    return proctable_generation(proctable_get(), PROC_GEN_LOG_FILE);
}

/* log_file / log_format changed by a reload: this process at once, every
 * child at its next line (through the process table's generation). */
static void apply_log_output(struct supervisor *s, const char *why)
{
    bool json = strcmp(s->cfg->log_format, "json") == 0;
    if (proctable_set_log_output(s->procs, s->cfg->log_file, json) != 0) {
        log_error("%s: log_file %s: path too long; logging stays where it was", why, s->cfg->log_file);
        return;
    }
    log_set_json(json);
    if (log_set_path(s->cfg->log_file) != 0 || log_reopen() != 0)
        log_error("%s: log_file %s: %s", why, s->cfg->log_file, strerror(errno));
    proctable_bump(s->procs, PROC_GEN_LOG_FILE);
    log_info("%s: logging to %s as %s", why, *s->cfg->log_file ? s->cfg->log_file : "stderr",
             s->cfg->log_format);
}

static void on_reopen_logs(struct supervisor *s)
{
    const char *path = s->cfg->log_file;
    if (!path || !*path) {
        log_info("SIGUSR1: no log_file is set (logging to stderr); nothing to reopen");
        return;
    }
    if (log_reopen() != 0) {
        log_error("SIGUSR1: log_file %s: %s; still writing to the old file", path, strerror(errno));
        return;
    }
    proctable_bump(s->procs, PROC_GEN_LOG_FILE); /* children reopen at their next line */
    log_info("SIGUSR1: reopened log_file %s", path);
}

/* The file a reload reads: hot_reload.watch_path when set, else the file the
 * server started from (NULL: the search order again, docs/configuration.md). */
static const char *reload_path(const struct supervisor *s)
{
    if (s->cfg->hot_reload.watch_path && *s->cfg->hot_reload.watch_path)
        return s->cfg->hot_reload.watch_path;
    return s->cfg->source_path;
}

static void watch_open(struct supervisor *s, struct config_watch *w);
static void reload_logs(struct supervisor *s, bool url_changed, bool settings_changed);

/* Everything a reload changes except the workers: in place (log level,
 * watchdogs, log output, the watch), then the log list and ingest processes
 * (with a new dedup table if it changed). */
static void apply_plan(struct supervisor *s, const char *why)
{
    const struct reload_plan *p = &s->plan;
    int level = log_level_parse(s->cfg->log_level);
    if (level >= 0) {
        log_set_level((enum log_level)level);
        proctable_set_log_level(s->procs, (enum log_level)level);
    }
    proctable_set_watchdog_ms(s->procs, s->cfg->watchdog_secs * 1000u);
    if (p->log_output)
        apply_log_output(s, why);
    if (p->watch && s->watch)
        watch_open(s, s->watch);
    struct dedup *old_dedup = NULL;
    if (s->plan_dedup) { /* restarted ingest processes get it at fork */
        old_dedup = s->dedup;
        s->dedup = s->plan_dedup;
        s->plan_dedup = NULL;
    }
    if (p->ingest)
        reload_logs(s, p->url, p->settings);
    dedup_destroy(old_dedup); /* this process's mapping; stopped processes had theirs */
    s->plan = (struct reload_plan){0};
}

/* Starts a new generation of fanout workers with the running configuration.
 * The old generation keeps accepting until every new worker accepts
 * (check_replacement), then drains. */
static bool replace_workers(struct supervisor *s)
{
    unsigned want = configured_workers(s->cfg), free_slots = fslots_free(s);
    s->gen++; /* end_replacement(false) takes it back */
    if (want > free_slots) {
        log_error("reload: %u new fanout workers needed but only %u of %u worker slots are free "
                  "(replaced workers still draining, or workers grew past the room planned at start)",
                  want, free_slots, s->fanout_slots);
        return false;
    }
    for (unsigned i = 0; i < want; i++)
        if (add_worker(s, i) != 0) {
            log_error("reload: no slot for new fanout worker %u", i);
            return false;
        }
    s->workers = want;
    s->replacing = true;
    s->replace_deadline_ms = mono_ms() + 30000;
    log_info("reload: starting %u new fanout workers on %s:%u", want,
             s->cfg->host && *s->cfg->host ? s->cfg->host : "0.0.0.0", (unsigned)s->cfg->port);
    return true;
}

static void end_replacement(struct supervisor *s, bool ok)
{
    s->replacing = false;
    unsigned old = 0;
    for (unsigned i = 0; i < s->n_children; i++) {
        struct child *c = &s->children[i];
        if (c->role != ROLE_FANOUT || (ok ? c->gen == s->gen : c->gen != s->gen))
            continue;
        /* ok: the old generation drains; failed: the new one stops */
        c->active = false;
        if (c->pid > 0) {
            old++;
            if (kill(c->pid, ok ? SIGUSR2 : SIGTERM) != 0 && errno != ESRCH)
                log_warn("kill %ld: %s", (long)c->pid, strerror(errno));
        } else {
            ring_waiter_set_active(c->ring, c->fslot, false);
        }
    }
    if (ok && s->prev_ring) {
        /* the old ring gets nothing new from now on: its workers close their
         * clients (1001) at once instead of draining; they reconnect to the new
         * workers. The producers continue from their positions on the new ring. */
        for (unsigned i = 0; i < s->n_children; i++) {
            struct child *c = &s->children[i];
            if (c->role == ROLE_FANOUT && c->ring == s->prev_ring && c->pid > 0 &&
                kill(c->pid, SIGTERM) != 0 && errno != ESRCH)
                log_warn("kill %ld: %s", (long)c->pid, strerror(errno));
            if ((c->role == ROLE_INGEST || c->role == ROLE_REPLAY) && c->active && c->ring == s->prev_ring)
                c->retiring = true;
        }
        stop_children(s, STOP_RETIRING); /* reaps and repairs on the old ring */
        for (unsigned i = 0; i < s->n_children; i++) {
            struct child *c = &s->children[i];
            if ((c->role == ROLE_INGEST || c->role == ROLE_REPLAY) && !c->active && c->ring == s->prev_ring &&
                c->pid == 0) {
                c->ring = s->ring;
                c->active = true;
                c->restart_at_ms = 0;
            }
        }
        log_info("reload: ring_size: the new ring (%zu bytes) is in use; the old workers close "
                 "their clients (1001), producers continue from their positions", ring_size(s->ring));
        for (unsigned i = 0; i < s->n_children; i++) /* nothing may point at the old mapping */
            if (s->children[i].ring == s->prev_ring)
                s->children[i].ring = s->ring;
        ring_destroy(s->prev_ring);
        s->prev_ring = NULL;
    }
    if (ok) {
        log_info("reload: %u new fanout workers accept; %u old workers drain their clients "
                 "(at most %u s, then close 1001)", s->workers, old, s->cfg->shutdown.drain_timeout_secs);
        instance_release(&s->prev_inst);
        apply_plan(s, "reload");
    } else {
        dedup_destroy(s->plan_dedup);
        s->plan_dedup = NULL;
        s->plan = (struct reload_plan){0};
        /* back to the configuration the old workers run */
        log_error("reload: the new fanout workers did not start (see above); the old workers keep "
                  "serving with the previous configuration");
        if (s->prev_inst.lock_fd >= 0) { /* the address had changed */
            instance_release(&s->inst);
            s->inst = s->prev_inst;
        }
        if (s->prev_ring) { /* the new ring was only the new workers' */
            for (unsigned i = 0; i < s->n_children; i++)
                if (s->children[i].ring == s->ring)
                    s->children[i].ring = s->prev_ring;
            ring_destroy(s->ring);
            s->ring = s->prev_ring;
            s->prev_ring = NULL;
        }
        config_free(s->cfg);
        *s->cfg = *s->prev_cfg;
        s->gen--;
        s->workers = 0;
        for (unsigned i = 0; i < s->n_children; i++)
            s->workers += s->children[i].role == ROLE_FANOUT && s->children[i].active;
        proctable_count_reload(s->procs, false, (uint64_t)time(NULL));
        free(s->prev_cfg);
        s->prev_cfg = NULL;
        s->prev_inst.lock_fd = -1;
        on_reload_end(s, false);
        return;
    }
    s->prev_inst.lock_fd = -1;
    if (s->prev_cfg) {
        config_free(s->prev_cfg);
        free(s->prev_cfg);
        s->prev_cfg = NULL;
    }
    stats_set_workers(s->stats, s->workers, s->opts->replay_file ? 1 : (unsigned)s->loglist.n_groups);
    proctable_count_reload(s->procs, true, (uint64_t)time(NULL));
    on_reload_end(s, true);
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
    if (!s->positions && errno == EWOULDBLOCK) {
        log_error("position store: %s", err);   /* another server on this state file */
        return -1;
    }
    if (!s->positions) {
        /* Like an unwritable state file: run, with positions saved only
         * every 10 s (a crash may repeat up to 10 s of entries). */
        log_warn("position store: %s; positions are kept only in the state file", err);
        return 0;
    }
    if (created)
        log_info("position store %s created; positions imported from %s", path, sf);
    return 0;
}

/* What /metrics and /health/deep need to know about the configuration and
 * the supervisor itself (slot 0). */
static void publish_server_facts(struct supervisor *s)
{
    struct stats_server *sv = stats_server(s->stats);
    sv->loglist_configured = !s->opts->replay_file && s->cfg->ct_logs_url && *s->cfg->ct_logs_url;
    sv->custom_logs = (uint32_t)(s->cfg->n_custom_logs + s->cfg->n_static_logs);
    sv->state_configured = !s->opts->replay_file && s->cfg->ct_log.state_file && *s->cfg->ct_log.state_file;
    stats_proc_set(s->stats, 0, ROLE_SUPERVISOR, 0);
    stats_proc_pid(s->stats, 0, (int)getpid());
    stats_log_add(&sv->starts[ROLE_SUPERVISOR], 1);
}

/* certstream_dedup_cache_size: live entries of the shared table, counted
 * every 5 s (a scan of the table, a few ms at the default size). */
static void sample_dedup(struct supervisor *s)
{
    static uint64_t next_ms;
    uint64_t now = mono_ms();
    if (!s->dedup || now < next_ms)
        return;
    next_ms = now + 5000;
    struct stats_server *sv = stats_server(s->stats);
    stats_log_store(&sv->dedup_size, dedup_live(s->dedup, wall_ms() / 1000u));
    stats_log_store(&sv->dedup_capacity, dedup_capacity(s->dedup));
}

/* Once a second: the totals /api/stats turns into rates over the last minute. */
static void sample_rates(struct supervisor *s)
{
    static uint64_t last_sec;
    uint64_t now = wall_ms(), sec = now / 1000u;
    if (sec == last_sec)
        return;
    last_sec = sec;
    struct stats_rate_sample *r = &stats_server(s->stats)->rate[sec % STATS_RATE_SAMPLES];
    stats_log_store(&r->ms, 0);   /* readers skip it while it changes */
    uint64_t sent = 0;
    for (int f = 0; f < 3; f++)
        sent += stats_sum(s->stats, (enum stat_id)(ST_MSG_SENT_FULL + f));
    stats_log_store(&r->published, stats_sum(s->stats, ST_ENTRIES_PUBLISHED));
    stats_log_store(&r->sent, sent);
    stats_log_store(&r->bytes, stats_sum(s->stats, ST_BYTES_SENT));
    __atomic_store_n(&r->ms, now, __ATOMIC_RELEASE);
}

/* The ring's pages of records no client may still need go back to the
 * kernel (shm/ring.h, ring_release), every loop turn: a client further
 * behind than limits.slow_client_seconds (by commit time) or the byte bound
 * (limits.slow_client_bytes, at most 3/4 of ring_size) is closed as too
 * slow, and an SSE resume goes no further back, so the ring keeps that
 * history plus RING_KEEP_MARGIN_NS (a worker judges its clients when it
 * is woken: under a second late on a loaded machine) or 1/16 of the ring,
 * and, on a node that publishes to NATS, every record not yet
 * acknowledged. Resident: about (slow_client_seconds + 1) x the rate x
 * the record size, instead of ring_size (docs/architecture.md). */
#define RING_KEEP_MARGIN_NS 1000000000ull
static void release_ring(struct supervisor *s)
{
    if (!s->ring)
        return;
    uint64_t size = ring_size(s->ring), bytes = config_slow_client_bytes(s->cfg);
    if (bytes > size - size / 4)
        bytes = size - size / 4;
    struct ring_keep keep = {
        .ns = s->cfg->limits.slow_client_seconds
                  ? (uint64_t)s->cfg->limits.slow_client_seconds * 1000000000ull + RING_KEEP_MARGIN_NS
                  : 0,
        .bytes = bytes + size / 16,
        .hold = 0,
    };
    struct stats_nats *n = stats_nats(s->stats);
    if (atomic_load(&n->role) == NATS_ROLE_PUBLISHER)
        keep.hold = atomic_load(&n->ring_acked);
    ring_release(s->ring, &keep);
}

/* Once per loop turn while a replacement runs. */
static void check_replacement(struct supervisor *s, uint64_t now)
{
    if (!s->replacing)
        return;
    bool all_running = true, failed = false;
    for (unsigned i = 0; i < s->n_children; i++) {
        const struct child *c = &s->children[i];
        struct proc_row row;
        if (c->role != ROLE_FANOUT || c->gen != s->gen || !c->active)
            continue;
        if (c->restarts > 0)
            failed = true; /* died before every new worker accepted: bind failed, crash */
        if (c->pid <= 0 || !proctable_row(s->procs, c->stats_slot, &row) || row.state != PROC_RUNNING)
            all_running = false;
    }
    if (failed || (!all_running && now >= s->replace_deadline_ms))
        end_replacement(s, false);
    else if (all_running)
        end_replacement(s, true);
}

/* Log keys changed: a new list from the last download (or the configured
 * logs only), ingest processes restarted from their positions. */
static void reload_logs(struct supervisor *s, bool url_changed, bool settings_changed)
{
    if (s->opts->replay_file) {
        if (!settings_changed) {
            log_warn("reload: log settings have no effect with --replay");
            return;
        }
        /* what the producer renders or compresses changed: restart it */
        for (unsigned i = 0; i < s->n_children; i++) {
            struct child *c = &s->children[i];
            c->retiring = c->role == ROLE_REPLAY && (c->active || c->pid);
        }
        stop_children(s, STOP_RETIRING);
        for (unsigned i = 0; i < s->n_children; i++)
            if (s->children[i].role == ROLE_REPLAY && s->children[i].pid == 0 && !s->children[i].active) {
                s->children[i].active = true;
                s->children[i].restart_at_ms = 0;
                break;
            }
        return;
    }
    if (url_changed || !s->list_from_url) {
        /* download the new list now; the configured logs change at once */
        s->loglist_next_ms = 0;
        s->list_from_url = false;
    }
    struct stat st;
    char *json = NULL;
    size_t len = 0;
    if (!url_changed && s->list_from_url && s->loglist_fd >= 0 && fstat(s->loglist_fd, &st) == 0 &&
        st.st_size > 0 && (size_t)st.st_size <= SUP_LOGLIST_MAX_BYTES &&
        (json = malloc((size_t)st.st_size + 1)) != NULL) {
        if (pread(s->loglist_fd, json, (size_t)st.st_size, 0) == st.st_size) {
            json[st.st_size] = '\0';
            len = (size_t)st.st_size;
        } else {
            free(json);
            json = NULL;
        }
    }
    apply_loglist(s, json, len, settings_changed);
    free(json);
}

static void on_reload(struct supervisor *s, const char *why)
{
    on_reload_begin(s, why);
    if (s->replacing) {
        log_info("%s: a replacement of the fanout workers is still starting; this reload runs after it", why);
        s->reload_deferred = true;
        on_reload_end(s, false);
        return;
    }
    struct config fresh;
    struct config_error err;
    struct config_flags flags = s->opts->flags ? *s->opts->flags : (struct config_flags){0};
    flags.config_path = reload_path(s);
    extern char **environ;
    if (config_load(&fresh, &flags, environ, &err) != 0) {
        log_error("%s: configuration refused, nothing changed: %s", why, err.message);
        proctable_count_reload(s->procs, false, (uint64_t)time(NULL));
        on_reload_end(s, false);
        return;
    }
    struct reload_plan plan;
    reload_plan_make(&plan, s->cfg, &fresh);
    if (plan.refused) {
        log_error("%s: configuration refused, nothing changed: %s cannot change by reload on a node "
                  "with a NATS role; restart the server (docs/scale-out.md)", why, plan.refused);
        config_free(&fresh);
        proctable_count_reload(s->procs, false, (uint64_t)time(NULL));
        on_reload_end(s, false);
        return;
    }
    /* a new address is claimed (lock + probe) before anything changes */
    struct instance inst = {.lock_fd = -1};
    char ierr[512];
    if (plan.address && instance_claim(&inst, fresh.host, fresh.port, ierr, sizeof ierr) != 0) {
        log_error("%s: configuration refused, nothing changed: %s", why, ierr);
        config_free(&fresh);
        proctable_count_reload(s->procs, false, (uint64_t)time(NULL));
        on_reload_end(s, false);
        return;
    }
    if (plan.n_keys == 0)
        log_info("%s: configuration %s is valid and unchanged", why,
                 fresh.source_path ? fresh.source_path : "(built-in defaults)");
    for (size_t i = 0; i < plan.n_keys; i++)
        log_info("%s: %s changed: %s", why, plan.keys[i], reload_apply_name(plan.how[i]));

    struct config *prev = malloc(sizeof *prev);
    if (!prev) {
        log_error("%s: out of memory; nothing changed", why);
        instance_release(&inst);
        config_free(&fresh);
        proctable_count_reload(s->procs, false, (uint64_t)time(NULL));
        on_reload_end(s, false);
        return;
    }
    /* a new ring for the new workers, with the eventfds of every worker slot */
    struct ring *new_ring = NULL;
    if (plan.ring) {
        new_ring = ring_create((size_t)fresh.ring_size);
        if (new_ring && ring_set_start(new_ring, ring_tail(s->ring) + 1) != 0) {
            ring_destroy(new_ring);
            new_ring = NULL;
        }
        for (unsigned k = 0; new_ring && k < s->fanout_slots; k++) {
            if (ring_add_waiter(new_ring, ring_waiter_fd(s->ring, k)) != 0) {
                ring_destroy(new_ring);
                new_ring = NULL;
                break;
            }
            ring_waiter_set_active(new_ring, k, false);
        }
        if (!new_ring) {
            log_error("%s: ring_size %llu: %s; nothing changed", why, (unsigned long long)fresh.ring_size,
                      strerror(errno));
            instance_release(&inst);
            config_free(&fresh);
            proctable_count_reload(s->procs, false, (uint64_t)time(NULL));
            on_reload_end(s, false);
            return;
        }
    }
    /* a new dedup table for the ingest processes that restart (apply_plan) */
    s->plan = plan;
    if (s->dedup && plan.dedup) {
        struct dedup *d = dedup_create(fresh.dedup.capacity, fresh.dedup.ttl_secs);
        if (d) {
            s->plan_dedup = d;
        } else {
            log_error("%s: dedup table (%u entries): %s; keeping the running table", why,
                      fresh.dedup.capacity, strerror(errno));
            fresh.dedup = s->cfg->dedup;
        }
    }
    *prev = *s->cfg;
    *s->cfg = fresh;
    if (new_ring) {
        s->prev_ring = s->ring;
        s->ring = new_ring;
    }
    if (plan.workers) {
        s->prev_cfg = prev;
        s->prev_inst.lock_fd = -1;
        if (plan.address) {
            s->prev_inst = s->inst;
            s->inst = inst;
        }
        if (!replace_workers(s))
            end_replacement(s, false);
        return; /* applied, counted and ended by end_replacement() */
    }
    /* network edge: with TLS on and the workers kept, they re-read the
     * certificate files (rotation in place: same paths, new contents); new
     * handshakes use it, a bad file keeps the old one (fanout/edge.c) */
    /* ... and reopen the access log file (logrotate) */
    if (plan.resignal)
        for (unsigned i = 0; i < s->n_children; i++)
            if (s->children[i].role == ROLE_FANOUT && s->children[i].active && s->children[i].pid > 0 &&
                kill(s->children[i].pid, SIGHUP) != 0)
                log_warn("SIGHUP to fanout[%u]: %s", s->children[i].index, strerror(errno));
    apply_plan(s, why);
    /* the running workers load the same file at their next heartbeat */
    config_free(prev);
    free(prev);
    if (plan.fanout && proctable_set_config_path(s->procs, reload_path(s)) == 0) {
        proctable_bump(s->procs, PROC_GEN_CONFIG);
        s->inplace_owed++; /* counted and ended in check_inplace() */
        return;
    }
    if (plan.fanout)
        log_error("%s: the configuration path is too long for the workers", why);
    proctable_count_reload(s->procs, true, (uint64_t)time(NULL));
    on_reload_end(s, true);
}

/* A reload in place is counted (and READY=1 sent) once every running worker
 * of the current generation has loaded it (each does at its next heartbeat). */
static void check_inplace(struct supervisor *s)
{
    if (!s->inplace_owed)
        return;
    uint32_t gen = proctable_generation(s->procs, PROC_GEN_CONFIG);
    for (unsigned i = 0; i < s->n_children; i++) {
        const struct child *c = &s->children[i];
        struct proc_row row;
        if (c->role == ROLE_FANOUT && c->active && c->gen == s->gen && c->pid > 0 &&
            proctable_row(s->procs, c->stats_slot, &row) && row.state == PROC_RUNNING && row.config_gen != gen)
            return;
    }
    for (; s->inplace_owed; s->inplace_owed--)
        proctable_count_reload(s->procs, true, (uint64_t)time(NULL));
    log_info("reload: every fanout worker runs the new configuration");
    on_reload_end(s, true);
}


/* ---------------------------------------------------------- systemd (sd_notify)
 * Only with $NOTIFY_SOCKET set (Type=notify): READY=1 once every fanout
 * worker has accepted (check_ready, the heartbeat table) and one answered an
 * HTTP request on the listen port (so the port is bound and workers accept); WATCHDOG=1 every half $WATCHDOG_USEC,
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
        if (s->ready && running(s, ROLE_FANOUT) >= s->workers &&
            probe_http(s->cfg->host, s->cfg->port, "/health", SUP_PROBE_TIMEOUT_MS) == 0) {
            n->ready = s->sd_ready = true;
            n->next_watchdog_ms = 0;
            log_info("ready: %s:%u answers", s->cfg->host, s->cfg->port); /* logged before it is said */
            notify_ready();
        }
    }
    if (n->ready && n->watchdog_ms && now >= n->next_watchdog_ms) {
        /* running and not stopped (/proc), beating (heartbeats), answering */
        if (children_fresh(s) && supervisor_children_fresh() && probe_http(s->cfg->host, s->cfg->port, "/health", SUP_PROBE_TIMEOUT_MS) == 0) {
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

/* hot_reload: the watch (config_watch.c) says when the file changed. */
static void watch_open(struct supervisor *s, struct config_watch *w)
{
    const char *path = reload_path(s);
    config_watch_open(w, s->cfg->hot_reload.enabled && path && *path ? path : NULL);
}

int supervisor_run(struct config *cfg, const struct supervisor_opts *opts)
{
    struct supervisor s = {.cfg = cfg, .opts = opts, .loglist_fd = -1, .inst = {.lock_fd = -1},
                           .prev_inst = {.lock_fd = -1}};
    struct config_watch watch = {.fd = -1};
    int rc = 1;
    char err[512];

    /* The process table first: the log file's reopen generation lives there. */
    s.procs = proctable_create();
    if (!s.procs) {
        log_error("proctable_create: %s", strerror(errno));
        return 1;
    }
    proctable_set_watchdog_ms(s.procs, cfg->watchdog_secs * 1000u);
    if (log_set_file(cfg->log_file, log_file_generation) != 0) {
        log_error("log_file %s: %s", cfg->log_file, strerror(errno));
        proctable_destroy(s.procs);
        return 2;
    }
    if (proctable_set_log_output(s.procs, cfg->log_file, strcmp(cfg->log_format, "json") == 0) != 0) {
        log_error("log_file %s: path too long", cfg->log_file);
        proctable_destroy(s.procs);
        return 2;
    }
    log_set_refresh(proctable_log_refresh);
    raise_fd_limit();

    if (opts->replay_file && !(s.replay = replay_open(opts->replay_file, err, sizeof err))) {
        log_error("--replay: %s", err);
        proctable_destroy(s.procs);
        return 2;
    }
    /* A state file that exists but cannot be read is refused: overwriting it
     * would lose every position (docs/ingest.md). */
    if (!opts->replay_file && cfg->ct_log.state_file && *cfg->ct_log.state_file &&
        state_load(cfg->ct_log.state_file, &s.state, err, sizeof err) != 0) {
        log_error("state file: %s", err);
        state_free(&s.state);
        proctable_destroy(s.procs);
        return 2;
    }
    /* The position store first: it waits for the processes of an earlier
     * server on the same state file (a killed supervisor's children) to exit,
     * so they no longer hold the port either. */
    if (!opts->replay_file && open_positions(&s) != 0) {
        rc = 2;
        goto out;
    }
    /* ingest node: each log's position as far as JetStream acknowledged it */
    if (s.positions)
        (void)ackstore_open(cfg);
    /* edge node: resumes from further back than the ring read the stream */
    history_install(nats_history_ops(cfg));
    /* Fail fast: an address that does not resolve, a port that another
     * program or another server holds, a privileged port: one line, exit 2,
     * before anything is forked (instance.h). */
    if (instance_claim(&s.inst, cfg->host, cfg->port, err, sizeof err) != 0) {
        log_error("%s", err);
        rc = 2;
        goto out;
    }
    /* Signals are handled synchronously in the loop below (sigtimedwait), so
     * they are blocked here and the children restore the old mask. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGUSR1);
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
    /* network edge tables, shared by the fanout workers */
    s.addrs = addrtable_create(cfg->connection_limit.address_table_size);
    s.ratelimit = ratelimit_create(cfg->connection_limit.address_table_size);
    if (!s.addrs || !s.ratelimit) {
        log_error("network edge tables: %s", strerror(errno));
        goto out;
    }
    /* TLS session tickets: one secret for every worker (fanout/tls.h) */
    if (tls_ticket_secret_init(cfg->tls.ticket_rotate_secs) != 0) {
        log_error("TLS ticket secret: %s", strerror(errno));
        goto out;
    }
    stats_set_started(s.stats, (uint64_t)time(NULL));
    publish_server_facts(&s);
    proctable_set_loaded(s.procs, (uint64_t)time(NULL));
    proctable_set_log_level(s.procs, log_get_level());
    if (plan_children(&s) != 0)
        goto out;
    /* One eventfd per worker slot, all created before any producer forks, so
     * a worker started by a reload is woken too; idle slots are skipped. */
    for (unsigned i = 0; i < s.fanout_slots; i++) {
        int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (efd < 0 || ring_add_waiter(s.ring, efd) != 0) {
            log_error("eventfd for worker slot %u: %s", i, strerror(errno));
            goto out;
        }
        ring_waiter_set_active(s.ring, i, false);
    }
    if (start_workers_plan(&s) != 0)
        goto out;
    /* after the workers' wakeups: ring_waiter_fd(i) is worker i's */
    if (plan_nats(&s) != 0)
        goto out;
    stats_set_workers(s.stats, s.workers, s.opts->replay_file ? 1 : 0);
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
             opts->replay_file ? "replay source" : is_edge(&s) ? "fed by NATS" : "following CT logs");

    /* Setup parsed files (replay corpus, configuration) and freed their
     * parse trees: give that heap back before the children are forked. */
    malloc_trim(0);
    s.watch = &watch;
    watch_open(&s, &watch);
    struct sd_state sd;
    sd_init(&sd);
    s.sd_on = sd.on;
    start_due(&s);
    for (;;) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = SUP_TICK_MS * 1000000L};
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
        if (sig == SIGHUP)
            on_reload(&s, "SIGHUP"); /* RELOADING=1 ... READY=1: on_reload_begin/end */
        if (sig == SIGUSR1)
            on_reopen_logs(&s);
        uint64_t now = mono_ms();
        if (config_watch_poll(&watch, now))
            on_reload(&s, "hot_reload");
        reap(&s);
        check_heartbeats(&s, now);
        check_claims(&s, now);
        check_replacement(&s, now);
        check_inplace(&s);
        if (!s.replacing && s.reload_deferred) {
            s.reload_deferred = false;
            on_reload(&s, "reload (deferred)");
        }
        check_ready(&s);
        maybe_fetch_loglist(&s);
        start_due(&s);
        if (s.have_loglist && mono_ms() - s.state_saved_ms >= SUP_STATE_SAVE_MS)
            save_state(&s);
        sample_dedup(&s);
        sample_rates(&s);
        release_ring(&s);
        sd_tick(&s, &sd);
        tls_ticket_secret_advance(s.cfg->tls.ticket_rotate_secs); /* forget old ticket keys */
    }
    stop_all(&s);
    save_state(&s);
    log_info("stopped");
    rc = 0;
out:
    config_watch_close(&watch);
    if (!s.stopping && s.children)
        stop_all(&s);
    free(s.children);
    if (s.have_loglist)
        loglist_free(&s.loglist);
    state_free(&s.state);
    ackstore_close();
    positions_close(s.positions);
    replay_close(s.replay);
    if (s.loglist_fd >= 0 && close(s.loglist_fd) != 0)
        log_warn("close: %s", strerror(errno));
    if (s.dedup)
        dedup_destroy(s.dedup);
    if (s.stats)
        stats_destroy(s.stats);
    addrtable_destroy(s.addrs);
    ratelimit_destroy(s.ratelimit);
    if (s.ring)
        ring_destroy(s.ring);
    if (s.prev_ring)
        ring_destroy(s.prev_ring);
    instance_release(&s.inst);
    instance_release(&s.prev_inst);
    if (s.prev_cfg) {
        config_free(s.prev_cfg);
        free(s.prev_cfg);
    }
    proctable_destroy(s.procs);
    return rc;
}
