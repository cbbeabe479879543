/* test_stats.c - unit tests of the shared counters and connection limits
 * (shm/stats.c), with real forked processes racing for the limits. */
#include "shm/proctable.h"
#include "shm/roles.h"
#include "shm/stats.h"
#include "test/shm/shm_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static struct sockaddr_in v4(const char *ip)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(40000);
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static struct sockaddr_in6 v6(const char *ip)
{
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(40000);
    inet_pton(AF_INET6, ip, &a.sin6_addr);
    return a;
}

static bool wait_all(pid_t *pids, int n)
{
    bool ok = true;
    for (int i = 0; i < n; i++) {
        int st = 0;
        if (pids[i] <= 0 || waitpid(pids[i], &st, 0) != pids[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            ok = false;
    }
    return ok;
}

/* Resident set size in KiB (shared pages count once touched by this process). */
static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &res) != 2)
        res = -1;
    fclose(f);
    return res < 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

static void test_counters(void)
{
    long rss0 = rss_kib();
    struct stats *s = stats_create();
    CHECK(s != NULL);
    if (!s)
        return;
    long rss1 = rss_kib();
    CHECK(rss0 > 0 && rss1 - rss0 < 1024);   /* creating it touches well under 1 MiB */
    for (int id = 0; id < ST_COUNT; id++)
        CHECK(stats_sum(s, (enum stat_id)id) == 0);
    /* Four processes, each in its own slot. */
    pid_t pids[4];
    for (int i = 0; i < 4; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            for (int k = 0; k < 1000; k++) {
                stats_add(s, 1 + (unsigned)i, ST_MSG_SENT_FULL, 1);
                stats_add(s, 1 + (unsigned)i, ST_BYTES_SENT, 100);
            }
            stats_add(s, 1 + (unsigned)i, ST_CONN_WS_LITE, 3);
            _exit(0);
        }
    }
    CHECK(wait_all(pids, 4));
    stats_add(s, 0, ST_CHILD_RESTARTS, 2);
    CHECK(stats_sum(s, ST_MSG_SENT_FULL) == 4000);
    CHECK(stats_sum(s, ST_BYTES_SENT) == 400000);
    CHECK(stats_sum(s, ST_CONN_WS_LITE) == 12);
    CHECK(stats_sum(s, ST_CHILD_RESTARTS) == 2);
    CHECK(stats_sum(s, ST_MSG_SENT_LITE) == 0);
    /* Gauges go up and down. */
    stats_add(s, 1, ST_CONN_WS_LITE, -1);
    CHECK(stats_sum(s, ST_CONN_WS_LITE) == 11);
    /* Reset of slot 2: its gauge goes, its counters stay counted. */
    stats_slot_reset(s, 2);
    CHECK(stats_sum(s, ST_CONN_WS_LITE) == 8);
    CHECK(stats_sum(s, ST_MSG_SENT_FULL) == 4000);
    CHECK(stats_sum(s, ST_BYTES_SENT) == 400000);
    /* The slot is reusable by its next process, counting from zero. */
    stats_add(s, 2, ST_MSG_SENT_FULL, 5);
    stats_add(s, 2, ST_CONN_WS_LITE, 1);
    CHECK(stats_sum(s, ST_MSG_SENT_FULL) == 4005);
    CHECK(stats_sum(s, ST_CONN_WS_LITE) == 9);
    /* Out of range is ignored, never a crash. */
    stats_add(s, STATS_MAX_SLOTS, ST_MSG_SENT_FULL, 1);
    stats_add(s, 0, ST_COUNT, 1);
    stats_slot_reset(s, STATS_MAX_SLOTS);
    CHECK(stats_sum(s, ST_COUNT) == 0);
    CHECK(stats_sum(s, ST_MSG_SENT_FULL) == 4005);
    stats_destroy(s);
}

static void test_logs_and_info(void)
{
    struct stats *s = stats_create();
    CHECK(s != NULL);
    if (!s)
        return;
    CHECK(stats_log_count(s) == 0);
    stats_set_started(s, 1779302893);
    stats_set_workers(s, 4, 2);
    pid_t pid = fork();
    if (pid == 0) {
        stats_set_log_count(s, 3);
        struct stats_log *l = stats_log(s, 2);
        snprintf(l->name, sizeof l->name, "Example Log 2026h1");
        l->tree_size = 123456789012ull;
        l->health = LOG_DEGRADED;
        _exit(0);
    }
    CHECK(wait_all(&pid, 1));
    CHECK(stats_log_count(s) == 3);
    struct stats_log *l = stats_log(s, 2);
    CHECK(l != NULL && strcmp(l->name, "Example Log 2026h1") == 0);
    CHECK(l && l->tree_size == 123456789012ull && l->health == LOG_DEGRADED);
    CHECK(stats_log(s, STATS_MAX_LOGS) == NULL);
    CHECK(stats_log(s, STATS_MAX_LOGS - 1) != NULL);
    stats_set_log_count(s, STATS_MAX_LOGS + 10);
    CHECK(stats_log_count(s) == STATS_MAX_LOGS);
    CHECK(stats_started(s) == 1779302893);
    unsigned fw = 0, ip = 0;
    stats_get_workers(s, &fw, &ip);
    CHECK(fw == 4 && ip == 2);
    stats_destroy(s);
}

struct race {
    atomic_int go;
    atomic_int held;       /* connections the children hold, by their own count */
    atomic_int bad;        /* times a child saw more held than the limit */
};

enum { KIDS = 6, TRIES = 300 };

/* KIDS processes (slots 10..) race TRIES acquisitions each at the same
 * moment, keeping what they get; addr_of(kid, try) picks the address. */
static int race(struct stats *s, struct race *rc, void (*addr_of)(struct sockaddr_in *, int, int),
                uint32_t max_total, uint32_t per_ip, int limit)
{
    memset(rc, 0, sizeof *rc);
    pid_t pids[KIDS];
    for (int i = 0; i < KIDS; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            while (!atomic_load(&rc->go))
                ;
            for (int k = 0; k < TRIES; k++) {
                struct sockaddr_in a;
                addr_of(&a, i, k);
                if (stats_conn_acquire(s, 10 + (unsigned)i, (const struct sockaddr *)&a, max_total, per_ip) &&
                    atomic_fetch_add(&rc->held, 1) + 1 > limit)
                    atomic_fetch_add(&rc->bad, 1);
            }
            _exit(0);
        }
    }
    atomic_store(&rc->go, 1);
    return wait_all(pids, KIDS) ? atomic_load(&rc->held) : -1;
}

static void addr_many(struct sockaddr_in *a, int kid, int k)
{
    *a = v4("203.0.113.0");
    a->sin_addr.s_addr = htonl(0xcb007100u + (uint32_t)((kid * TRIES + k) % 250));
}

static void addr_one(struct sockaddr_in *a, int kid, int k)
{
    (void)kid;
    (void)k;
    *a = v4("192.0.2.10");
}

/* Children race for a total limit, then for a per-IP limit. */
static void test_limits_across_processes(void)
{
    enum { MAX_TOTAL = 40, PER_IP = 7 };
    struct stats *s = stats_create();
    struct race *rc = mmap(NULL, sizeof *rc, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(s != NULL && rc != MAP_FAILED);
    if (!s || rc == MAP_FAILED)
        return;
    int held = race(s, rc, addr_many, MAX_TOTAL, 0, MAX_TOTAL);
    CHECK(atomic_load(&rc->bad) == 0);
    /* connections are never given back here, so once the limit is reached it
     * stays reached; a lost race rolls back and later tries succeed: exactly
     * the limit is held */
    CHECK(held == MAX_TOTAL);
    CHECK((uint64_t)held == stats_conn_total(s));
    /* The processes exited holding their connections (as a crash would):
     * resetting their slots gives every one back. */
    for (unsigned i = 0; i < KIDS; i++)
        stats_slot_reset(s, 10 + i);
    CHECK(stats_conn_total(s) == 0);

    held = race(s, rc, addr_one, 0, PER_IP, PER_IP);
    CHECK(atomic_load(&rc->bad) == 0);
    CHECK(held == PER_IP);
    CHECK((uint64_t)held == stats_conn_total(s));
    for (unsigned i = 0; i < KIDS; i++)
        stats_slot_reset(s, 10 + i);
    CHECK(stats_conn_total(s) == 0);
    struct sockaddr_in a = v4("192.0.2.10");
    int got = 0;
    for (int k = 0; k < PER_IP + 3; k++)
        got += stats_conn_acquire(s, 1, (const struct sockaddr *)&a, MAX_TOTAL, PER_IP);
    CHECK(got == PER_IP);
    CHECK(stats_conn_total(s) == PER_IP);
    munmap(rc, sizeof *rc);
    stats_destroy(s);
}

static void test_limits_single(void)
{
    struct stats *s = stats_create();
    CHECK(s != NULL);
    if (!s)
        return;
    struct sockaddr_in a = v4("192.0.2.1"), c = v4("192.0.2.2");
    struct sockaddr_in6 m = v6("::ffff:192.0.2.1"), six = v6("2001:db8::1"), six2 = v6("2001:db8::2");
    const struct sockaddr *A = (const void *)&a, *C = (const void *)&c, *M = (const void *)&m;
    const struct sockaddr *S6 = (const void *)&six, *S62 = (const void *)&six2;
    /* per IP: 2; the v4-mapped form of a is the same client. */
    CHECK(stats_conn_acquire(s, 1, A, 0, 2));
    CHECK(stats_conn_acquire(s, 2, M, 0, 2));
    CHECK(!stats_conn_acquire(s, 3, A, 0, 2));
    CHECK(!stats_conn_acquire(s, 1, M, 0, 2));
    CHECK(stats_conn_acquire(s, 1, C, 0, 2));
    CHECK(stats_conn_acquire(s, 1, S6, 0, 2));
    CHECK(stats_conn_acquire(s, 1, S6, 0, 2));
    CHECK(!stats_conn_acquire(s, 1, S6, 0, 2));
    CHECK(stats_conn_acquire(s, 1, S62, 0, 2));
    CHECK(stats_conn_total(s) == 6);
    /* Unlimited per IP. */
    for (int i = 0; i < 100; i++)
        CHECK(stats_conn_acquire(s, 4, A, 0, 0));
    CHECK(stats_conn_total(s) == 106);
    for (int i = 0; i < 100; i++)
        stats_conn_release(s, 4, A);
    /* Release makes room, in whichever slot the connection lives. */
    stats_conn_release(s, 2, M);
    CHECK(stats_conn_acquire(s, 3, A, 0, 2));
    /* Total limit. */
    CHECK(stats_conn_total(s) == 6);
    CHECK(stats_conn_acquire(s, 1, C, 7, 0));
    CHECK(!stats_conn_acquire(s, 1, C, 7, 0));
    CHECK(stats_conn_total(s) == 7);
    /* Other families count toward the total only. */
    struct sockaddr_un un;
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    CHECK(stats_conn_acquire(s, 1, (const void *)&un, 0, 1));
    CHECK(stats_conn_acquire(s, 1, (const void *)&un, 0, 1));
    CHECK(stats_conn_acquire(s, 1, NULL, 0, 1));
    CHECK(stats_conn_total(s) == 10);
    stats_conn_release(s, 1, (const void *)&un);
    stats_conn_release(s, 1, (const void *)&un);
    stats_conn_release(s, 1, NULL);
    CHECK(stats_conn_total(s) == 7);
    /* A release that was never acquired does not loosen anything. */
    stats_conn_release(s, 9, A);
    stats_conn_release(s, 9, A);
    CHECK(stats_conn_total(s) == 7);
    CHECK(!stats_conn_acquire(s, 9, A, 0, 2));
    /* Bad slot: refused. */
    CHECK(!stats_conn_acquire(s, STATS_MAX_SLOTS, C, 0, 0));
    stats_conn_release(s, STATS_MAX_SLOTS, C);
    CHECK(stats_conn_total(s) == 7);
    stats_destroy(s);
}

/* A worker killed with SIGKILL while holding connections: reset frees them. */
static void test_crash_releases(void)
{
    struct stats *s = stats_create();
    CHECK(s != NULL);
    if (!s)
        return;
    struct sockaddr_in a = v4("192.0.2.77");
    const struct sockaddr *A = (const void *)&a;
    CHECK(stats_conn_acquire(s, 1, A, 100, 10));
    int p[2];
    CHECK(pipe(p) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 9; i++)
            if (!stats_conn_acquire(s, 5, A, 100, 10))
                _exit(1);
        stats_add(s, 5, ST_CONN_SSE_FULL, 9);
        stats_add(s, 5, ST_MSG_SENT_FULL, 1234);
        if (write(p[1], "x", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    char x;
    CHECK(read(p[0], &x, 1) == 1);
    CHECK(stats_conn_total(s) == 10);
    CHECK(!stats_conn_acquire(s, 1, A, 100, 10));
    int st = 0;
    CHECK(kill(pid, SIGKILL) == 0 && waitpid(pid, &st, 0) == pid && WIFSIGNALED(st));
    stats_slot_reset(s, 5);
    CHECK(stats_conn_total(s) == 1);
    CHECK(stats_sum(s, ST_CONN_SSE_FULL) == 0);
    CHECK(stats_sum(s, ST_MSG_SENT_FULL) == 1234);
    for (int i = 0; i < 9; i++)
        CHECK(stats_conn_acquire(s, 1, A, 100, 10));
    CHECK(!stats_conn_acquire(s, 1, A, 100, 10));
    close(p[0]);
    close(p[1]);
    stats_destroy(s);
}

/* Many distinct clients on 8 workers: the IP tables stay within their bound
 * (256 KiB per slot that takes connections, plus slot 0 read by the sums). */
static void test_ip_table_memory(void)
{
    struct stats *s = stats_create();
    CHECK(s != NULL);
    if (!s)
        return;
    long rss0 = rss_kib();
    for (uint32_t i = 0; i < 100000; i++) {
        struct sockaddr_in a = v4("10.0.0.0");
        a.sin_addr.s_addr = htonl(0x0a000000u + i);
        unsigned slot = 1 + i % 8;
        CHECK(stats_conn_acquire(s, slot, (const struct sockaddr *)&a, 0, 100));
    }
    CHECK(stats_conn_total(s) == 100000);
    long grown = rss_kib() - rss0;
    fprintf(stderr, "  100000 clients on 8 slots: +%ld KiB resident\n", grown);
    CHECK(grown > 0 && grown <= 9 * 256 + 64);
    stats_destroy(s);
}

/* The process table, per-slot values, the issuer-cache gauge and the
 * supervisor's server-wide facts, all seen from another process. */
static void test_procs_and_server(void)
{
    struct stats *s = stats_create();
    CHECK(s != NULL);
    if (!s)
        return;
    enum proc_role role;
    unsigned index;
    int pid;
    CHECK(!stats_proc_get(s, 3, &role, &index, &pid));          /* never given a role */
    stats_proc_set(s, 3, ROLE_FANOUT, 2);
    stats_proc_pid(s, 3, 4242);
    stats_proc_set(s, STATS_MAX_SLOTS, ROLE_FANOUT, 0);          /* ignored */
    stats_proc_set(s, 4, ROLE_NREPORTED, 0);                     /* ignored */
    CHECK(!stats_proc_get(s, 4, &role, &index, &pid));
    stats_proc_set(s, 4, ROLE_NATS, 0);                          /* not reported: ignored */
    CHECK(!stats_proc_get(s, 4, &role, &index, &pid));
    stats_proc_set(s, 4, role_reported(ROLE_NATS), 0);
    CHECK(stats_proc_get(s, 4, &role, &index, &pid) && role == ROLE_INGEST && index == 0);
    stats_proc_set(s, 6, ROLE_SUPERVISOR, 0);                    /* role 0 is a role, not "unused" */
    CHECK(stats_proc_get(s, 6, &role, &index, &pid) && role == ROLE_SUPERVISOR);
    pid_t child = fork();
    if (child == 0) {
        enum proc_role r;
        unsigned i;
        int p;
        bool ok = stats_proc_get(s, 3, &r, &i, &p) && r == ROLE_FANOUT && i == 2 && p == 4242;
        stats_add(s, 5, ST_ISSUER_CACHE_SIZE, 7);
        stats_add(s, 5, ST_ENTRIES_PUBLISHED, 9);
        stats_log_add(&stats_server(s)->restarts[ROLE_INGEST][STATS_EXIT_SIGNAL], 1);
        _exit(ok ? 0 : 1);
    }
    CHECK(wait_all(&child, 1));
    CHECK(stats_slot_value(s, 5, ST_ISSUER_CACHE_SIZE) == 7 && stats_slot_value(s, 5, ST_ENTRIES_PUBLISHED) == 9);
    CHECK(stats_slot_value(s, STATS_MAX_SLOTS, ST_ENTRIES_PUBLISHED) == 0);
    CHECK(stats_server(s)->restarts[ROLE_INGEST][STATS_EXIT_SIGNAL] == 1);
    /* the issuer cache is a gauge: it leaves with its process, the counter stays */
    stats_slot_reset(s, 5);
    CHECK(stats_sum(s, ST_ISSUER_CACHE_SIZE) == 0 && stats_sum(s, ST_ENTRIES_PUBLISHED) == 9);
    CHECK(strcmp(stats_cause_name(STATS_EXIT_ERROR), "error_exit") == 0);
    CHECK(strcmp(stats_fail_name(STATS_FAIL_RATE_LIMITED), "rate_limited") == 0);
    CHECK(strcmp(stats_fail_name(STATS_NFAIL), "unknown") == 0);
    stats_destroy(s);
}

/* One role enum (shm/roles.h) for the stats, the process table and the
 * supervisor: its names are the metric labels, and the NATS process is
 * counted and shown as ingest. */
static void test_roles(void)
{
    static const char *const want[] = {"supervisor", "fanout", "ingest", "replay", "loglist", "nats"};
    CHECK(ROLE_NREPORTED == 5 && ROLE_COUNT == 6);
    for (unsigned r = 0; r < ROLE_COUNT; r++)
        CHECK(strcmp(proc_role_name((enum proc_role)r), want[r]) == 0);
    CHECK(strcmp(proc_role_name(ROLE_COUNT), "unknown") == 0);
    CHECK(role_reported(ROLE_NATS) == ROLE_INGEST);
    for (unsigned r = 0; r < ROLE_NREPORTED; r++)
        CHECK(role_reported((enum proc_role)r) == (enum proc_role)r);

    struct proctable *t = proctable_create();
    CHECK(t != NULL);
    if (!t)
        return;
    struct proc_row row;
    CHECK(!proctable_row(t, 2, &row));                            /* never given a role */
    proctable_set_child(t, 2, ROLE_REPLAY, 0, 0);
    CHECK(!proctable_row(t, 2, &row));                            /* not forked yet */
    proctable_set_pid(t, 2, 777);
    CHECK(proctable_row(t, 2, &row) && row.role == ROLE_REPLAY && row.pid == 777 && row.state == PROC_STARTING);
    proctable_set_child(t, 3, ROLE_NATS, 0, 778);                 /* not a reported role: never shown */
    CHECK(!proctable_row(t, 3, &row));
    proctable_set_child(t, 3, role_reported(ROLE_NATS), 0, 778);
    CHECK(proctable_row(t, 3, &row) && row.role == ROLE_INGEST && row.pid == 778);
    proctable_clear(t, 2);
    CHECK(!proctable_row(t, 2, &row));
    proctable_set_child(t, 4, ROLE_LOGLIST, 0, 779);              /* the fetcher is always fresh */
    CHECK(proctable_row(t, 4, &row) && proctable_fresh(&row, row.started_ms + 3600000, 1000));
    proctable_count_watchdog_kill(t, ROLE_FANOUT);
    proctable_count_watchdog_kill(t, role_reported(ROLE_NATS));
    proctable_count_watchdog_kill(t, ROLE_INGEST);
    proctable_count_watchdog_kill(t, ROLE_NATS);                  /* out of range: ignored */
    CHECK(proctable_watchdog_kills(t, ROLE_FANOUT) == 1 && proctable_watchdog_kills(t, ROLE_INGEST) == 2 &&
          proctable_watchdog_kills(t, ROLE_REPLAY) == 0 && proctable_watchdog_kills(t, ROLE_NATS) == 0);
    proctable_destroy(t);
}

int main(void)
{
    RUN(test_counters);
    RUN(test_roles);
    RUN(test_procs_and_server);
    RUN(test_logs_and_info);
    RUN(test_limits_single);
    RUN(test_limits_across_processes);
    RUN(test_crash_releases);
    RUN(test_ip_table_memory);
    return test_report();
}
