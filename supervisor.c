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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "fanout/fanout.h"
#include "ingest/replay.h"
#include "shm/ring.h"
#include "shm/stats.h"

#define SUP_STOP_GRACE_MS 5000
#define SUP_BACKOFF_MIN_MS 100
#define SUP_BACKOFF_MAX_MS 30000
#define SUP_STABLE_MS 10000      /* a child that lived this long resets its backoff */

enum child_role { ROLE_FANOUT, ROLE_REPLAY, ROLE_INGEST };

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
};

struct supervisor {
    struct config *cfg;
    const struct supervisor_opts *opts;
    struct ring *ring;
    struct stats *stats;
    struct child *children;
    unsigned n_children;
    unsigned workers;
    bool stopping;
    sigset_t old_mask;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const char *role_name(enum child_role r)
{
    switch (r) {
    case ROLE_FANOUT: return "fanout";
    case ROLE_REPLAY: return "replay";
    default: return "ingest";
    }
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
        sigaction(sigs[i], &dfl, NULL);
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
            .stats_slot = c->stats_slot, .file = s->opts->replay_file, .rate = s->opts->replay_rate,
            .loop = s->opts->replay_loop, .bench_stamp = s->opts->bench_stamp,
        };
        rc = replay_run(&rp);
        break;
    }
    case ROLE_INGEST:
        rc = 1;
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
        /* Its claim in the ring (if a producer died mid-record) must not stall readers,
         * and its connection gauges must stop counting. */
        if (c->role != ROLE_FANOUT)
            ring_repair(s->ring, c->producer_id);
        stats_slot_reset(s->stats, c->stats_slot);
        if (s->stopping) {
            log_info("%s[%u] %s", role_name(c->role), c->index, why);
            continue;
        }
        bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
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
        if (c->pid == 0 && c->restart_at_ms <= now && child_start(s, c) != 0)
            c->restart_at_ms = now + SUP_BACKOFF_MAX_MS; /* fork failed: try later */
    }
}

static unsigned running(const struct supervisor *s)
{
    unsigned n = 0;
    for (unsigned i = 0; i < s->n_children; i++)
        n += s->children[i].pid != 0;
    return n;
}

static void stop_all(struct supervisor *s)
{
    s->stopping = true;
    for (unsigned i = 0; i < s->n_children; i++)
        if (s->children[i].pid > 0 && kill(s->children[i].pid, SIGTERM) != 0 && errno != ESRCH)
            log_warn("kill %ld: %s", (long)s->children[i].pid, strerror(errno));
    uint64_t deadline = mono_ms() + SUP_STOP_GRACE_MS;
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    while (running(s) > 0) {
        uint64_t now = mono_ms();
        if (now >= deadline) {
            for (unsigned i = 0; i < s->n_children; i++)
                if (s->children[i].pid > 0) {
                    log_warn("%s[%u] did not stop in %d ms: SIGKILL", role_name(s->children[i].role),
                             s->children[i].index, SUP_STOP_GRACE_MS);
                    kill(s->children[i].pid, SIGKILL);
                }
            deadline = now + 1000;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 100 * 1000000L};
        if (sigtimedwait(&chld, NULL, &ts) < 0 && errno != EAGAIN && errno != EINTR)
            log_warn("sigtimedwait: %s", strerror(errno));
        reap(s);
    }
}

static unsigned cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

/* Children: fanout workers in slots 1..W, producers after them. */
static int plan_children(struct supervisor *s)
{
    s->workers = s->cfg->workers ? s->cfg->workers : cpu_count();
    unsigned producers = s->opts->replay_file ? 1 : 0;
    if (1 + s->workers + producers > STATS_MAX_SLOTS) {
        log_error("workers: %u fanout workers plus %u producers exceed the %d process slots",
                  s->workers, producers, STATS_MAX_SLOTS - 1);
        return -1;
    }
    s->n_children = s->workers + producers;
    s->children = calloc(s->n_children, sizeof *s->children);
    if (!s->children)
        return -1;
    for (unsigned i = 0; i < s->workers; i++)
        s->children[i] = (struct child){.role = ROLE_FANOUT, .index = i, .stats_slot = 1 + i};
    for (unsigned j = 0; j < producers; j++)
        s->children[s->workers + j] = (struct child){
            .role = ROLE_REPLAY, .index = j, .stats_slot = 1 + s->workers + j, .producer_id = j};
    return 0;
}

static void on_reload(struct supervisor *s)
{
    /* Hook: re-validate the configuration so an operator learns about a bad edit
     * at once. Applying it (rolling worker restarts) is the operations work. */
    struct config fresh;
    struct config_error err;
    struct config_flags flags = {.config_path = s->cfg->source_path};
    extern char **environ;
    if (config_load(&fresh, &flags, environ, &err) != 0) {
        log_error("SIGHUP: configuration refused, keeping the running one: %s", err.message);
        return;
    }
    log_info("SIGHUP: configuration %s is valid; changes apply at the next restart",
             fresh.source_path ? fresh.source_path : "(built-in defaults)");
    config_free(&fresh);
}

int supervisor_run(struct config *cfg, const struct supervisor_opts *opts)
{
    struct supervisor s = {.cfg = cfg, .opts = opts};
    int rc = 1;
    char err[512];

    if (opts->replay_file && replay_check_file(opts->replay_file, err, sizeof err) < 0) {
        log_error("--replay: %s", err);
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
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);

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
    if (opts->replay_file && replay_register_logs(s.stats, opts->replay_file, err, sizeof err) != 0) {
        log_error("--replay: %s", err);
        goto out;
    }
    log_info("certstream-server %s: %s:%u, %u fanout workers, ring %llu bytes, %s",
             CERTSTREAM_VERSION, cfg->host, cfg->port, s.workers,
             (unsigned long long)cfg->ring_size,
             opts->replay_file ? "replay source" : "following CT logs");

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
            break;
        }
        if (sig == SIGHUP)
            on_reload(&s);
        reap(&s);
        start_due(&s);
    }
    stop_all(&s);
    log_info("stopped");
    rc = 0;
out:
    if (!s.stopping && s.children)
        stop_all(&s);
    free(s.children);
    if (s.stats)
        stats_destroy(s.stats);
    if (s.ring)
        ring_destroy(s.ring);
    return rc;
}
