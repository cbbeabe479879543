/* test_ackstore.c - nats/ackstore.c, the ingest node's CT positions as far as
 * JetStream acknowledged them, against a real position store file:
 *  - a log seen for the first time gets its row seeded with its position,
 *    and nothing moves;
 *  - the publisher's notes only move a row forward;
 *  - at a server start (a fresh process here: the "first time" is per
 *    process) a log whose ingest position is past what was acknowledged
 *    resumes at the acknowledged one, in the position store and in the
 *    shared stats row the ingest process starts from; a later apply (a
 *    reload, same ring) moves nothing back;
 *  - a row ahead of the ingest position (moved back by hand) follows it;
 *  - "caught up" stores each log's ingest position as acknowledged.
 * Usage: test_ackstore. Prints "N passed, N failed". */
#include "nats/ackstore.h"
#include "conf/config.h"
#include "shm/positions.h"
#include "shm/stats.h"

#include "test/unit_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *URL_A = "https://log-a.example/2026/", *URL_B = "https://log-b.example/";
static char dir[64], state[128], pospath[160], ackpath[160];

static struct positions *open_store(const char *path)
{
    bool created;
    char err[512];
    struct positions *p = positions_open(path, 1000, &created, err, sizeof err);
    if (!p) fprintf(stderr, "  positions_open %s: %s\n", path, err);
    return p;
}

static void set_log(struct stats *st, unsigned id, const char *url, uint64_t next)
{
    struct stats_log *sl = stats_log(st, id);
    snprintf(sl->url, sizeof sl->url, "%s", url);
    snprintf(sl->name, sizeof sl->name, "log %u", id);
    sl->next_index = next;
}

/* The acknowledged position of url, read from the file as a restarted
 * server would (its own mapping). */
static uint64_t acked_of(const char *url)
{
    struct positions *p = open_store(ackpath);
    struct position_row *r = p ? positions_row(p, url, false) : NULL;
    uint64_t v = position_known(r) ? position_next(r) : UINT64_MAX;
    if (p) positions_close(p);
    return v;
}

static void test_acked_positions(void)
{
    struct config cfg;
    config_defaults(&cfg);
    free(cfg.ct_log.state_file);
    cfg.ct_log.state_file = strdup(state);
    cfg.nats.publish = true;
    struct positions *pos = open_store(pospath);
    struct stats *st = stats_create();
    CHECK(pos && st);
    if (!pos || !st) {
        config_free(&cfg);
        return;
    }
    struct position_row *ra = positions_row(pos, URL_A, true), *rb = positions_row(pos, URL_B, true);
    position_store(ra, 500);
    position_store(rb, 800);
    stats_set_log_count(st, 2);
    set_log(st, 0, URL_A, 500);
    set_log(st, 1, URL_B, 800);

    /* first run (each run is a process of its own, as servers are): rows
     * seeded, nothing moves; then the publisher's notes */
    pid_t pid = fork();
    if (pid == 0) {
        int bad = 0;
        if (ackstore_open(&cfg) != 0) bad++;
        ackstore_apply(pos, st);
        if (position_next(ra) != 500 || stats_log(st, 0)->next_index != 500) bad++;
        ackstore_note(st, 0, 321);   /* below the seed: no move */
        ackstore_note(st, 0, 600);
        ackstore_note(st, 0, 550);   /* older: ignored */
        ackstore_note(st, 1, 900);
        ackstore_close();
        _exit(bad);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(acked_of(URL_A) == 600);
    CHECK(acked_of(URL_B) == 900);

    /* ingest went on to 700 on A; B was moved back to 850 by hand */
    position_store(ra, 700);
    position_store(rb, 850);
    pid = fork();
    if (pid == 0) {
        /* a server start: a fresh process */
        set_log(st, 0, URL_A, 700);
        set_log(st, 1, URL_B, 850);
        int bad = 0;
        if (ackstore_open(&cfg) != 0) bad++;
        ackstore_apply(pos, st);
        if (position_next(ra) != 600 || stats_log(st, 0)->next_index != 600) bad++;   /* moved back */
        if (position_next(rb) != 850 || stats_log(st, 1)->next_index != 850) bad++;   /* not moved */
        if (bad)
            fprintf(stderr, "  restart: A %llu/%llu, B %llu/%llu\n", (unsigned long long)position_next(ra),
                    (unsigned long long)stats_log(st, 0)->next_index, (unsigned long long)position_next(rb),
                    (unsigned long long)stats_log(st, 1)->next_index);
        /* a reload in the same process: no more moving back */
        position_store(ra, 650);
        stats_log(st, 0)->next_index = 650;
        ackstore_apply(pos, st);
        if (position_next(ra) != 650) bad++;
        /* caught up: every log's ingest position is acknowledged */
        stats_log(st, 0)->next_index = 1000;
        ackstore_caught_up_read(st);
        stats_log(st, 0)->next_index = 1005;   /* after the read: not taken */
        ackstore_caught_up_commit(st);
        ackstore_close();
        _exit(bad);
    }
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(acked_of(URL_A) == 1000);
    CHECK(acked_of(URL_B) == 850);   /* followed the hand-moved position */
    positions_close(pos);
    stats_destroy(st);
    config_free(&cfg);
}

/* Without a state file (or on an edge) there is no store and nothing moves. */
static void test_no_state_file(void)
{
    struct config cfg;
    config_defaults(&cfg);
    cfg.ct_log.state_file[0] = 0;
    cfg.nats.publish = true;
    CHECK(ackstore_open(&cfg) == 0);
    struct stats *st = stats_create();
    CHECK(st != NULL);
    if (!st) {
        config_free(&cfg);
        return;
    }
    stats_set_log_count(st, 1);
    set_log(st, 0, URL_A, 42);
    ackstore_note(st, 0, 7);   /* no store: a no-op */
    CHECK(stats_log(st, 0)->next_index == 42);
    stats_destroy(st);
    config_free(&cfg);
}

int main(void)
{
    snprintf(dir, sizeof dir, "%s/cs-ackstore-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    snprintf(state, sizeof state, "%s/state.json", dir);
    snprintf(pospath, sizeof pospath, "%s.positions", state);
    snprintf(ackpath, sizeof ackpath, "%s.nats-acked", state);
    static const struct unit_test tests[] = {
        {"acked_positions", test_acked_positions},
        {"no_state_file", test_no_state_file},
    };
    int rc = run_unit_tests(tests, sizeof tests / sizeof tests[0]);
    unlink(pospath);
    unlink(ackpath);
    rmdir(dir);
    return rc;
}
