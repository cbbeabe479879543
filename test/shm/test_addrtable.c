/* test_addrtable.c - the exact per-address table and the rate limiter:
 * addresses never merge (even when their hashes collide: a table of 16
 * entries holds 16 addresses whatever they are), counts are per address
 * across processes, a dead slot's holdings go exactly, a full table says so,
 * a process killed while holding the lock does not wedge the table; the
 * token bucket's exact arithmetic. */
#include "shm_test.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shm/addrtable.h"
#include "shm/ratelimit.h"

static void key4(uint8_t k[16], uint32_t v4)
{
    memset(k, 0, 16);
    k[10] = k[11] = 0xff;
    k[12] = (uint8_t)(v4 >> 24);
    k[13] = (uint8_t)(v4 >> 16);
    k[14] = (uint8_t)(v4 >> 8);
    k[15] = (uint8_t)v4;
}

static void test_exact(void)
{
    struct addrtable *t = addrtable_create(16);
    CHECK(t != NULL);
    if (!t) return;
    uint8_t k[16];
    uint32_t e[16][3];
    /* 16 addresses, each exactly 2 */
    for (uint32_t i = 0; i < 16; i++) {
        key4(k, 0x7f000001u + i * 977u);
        CHECK(addrtable_acquire(t, 1, k, 2, &e[i][0]) == ADDR_OK);
        CHECK(addrtable_acquire(t, 2, k, 2, &e[i][1]) == ADDR_OK);
        CHECK(addrtable_acquire(t, 1, k, 2, &e[i][2]) == ADDR_OVER_LIMIT);
        CHECK(addrtable_count(t, k) == 2);
    }
    CHECK(addrtable_used(t) == 16);
    key4(k, 0x0a000001u);
    uint32_t x;
    CHECK(addrtable_acquire(t, 1, k, 2, &x) == ADDR_TABLE_FULL);
    CHECK(addrtable_count(t, k) == 0);
    /* slot 2 dies: every address drops to 1, none to 0 */
    addrtable_slot_reset(t, 2);
    for (uint32_t i = 0; i < 16; i++) {
        key4(k, 0x7f000001u + i * 977u);
        CHECK(addrtable_count(t, k) == 1);
    }
    CHECK(addrtable_used(t) == 16);
    /* slot 1 releases address 0: its entry is free for a new address */
    addrtable_release(t, 1, e[0][0]);
    CHECK(addrtable_used(t) == 15);
    key4(k, 0x0a000001u);
    CHECK(addrtable_acquire(t, 3, k, 2, &x) == ADDR_OK);
    CHECK(addrtable_count(t, k) == 1);
    /* a release without a hold changes nothing */
    addrtable_release(t, 5, x);
    CHECK(addrtable_count(t, k) == 1);
    addrtable_destroy(t);
}

/* Children in other processes acquire for their own slots; the sum is
 * exact and the limit holds across them. */
static void test_processes(void)
{
    struct addrtable *t = addrtable_create(1024);
    if (!t) { CHECK(0); return; }
    uint8_t k[16];
    key4(k, 0x7f000001u);
    pid_t kids[4];
    for (int i = 0; i < 4; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            uint32_t e;
            int ok = 0;
            for (int j = 0; j < 50; j++) ok += addrtable_acquire(t, (unsigned)i + 1, k, 100, &e) == ADDR_OK;
            _exit(ok);
        }
    }
    int total = 0, got[4];
    for (int i = 0; i < 4; i++) {
        int st;
        waitpid(kids[i], &st, 0);
        got[i] = WEXITSTATUS(st);
        total += got[i];
    }
    CHECK(total == 100);
    CHECK(addrtable_count(t, k) == 100);
    addrtable_slot_reset(t, 3);
    CHECK(addrtable_count(t, k) == (uint32_t)(100 - got[2]));   /* exactly slot 3's go */
    for (unsigned s = 1; s <= 4; s++) addrtable_slot_reset(t, s);
    CHECK(addrtable_count(t, k) == 0 && addrtable_used(t) == 0);
    addrtable_destroy(t);
}

/* A process killed in the middle of its critical section: the robust mutex
 * hands the lock on, and the table still works. */
static void test_dead_holder(void)
{
    struct addrtable *t = addrtable_create(64);
    if (!t) { CHECK(0); return; }
    uint8_t k[16];
    key4(k, 0x7f000002u);
    pid_t p = fork();
    if (p == 0) {
        uint32_t e;
        for (;;) addrtable_acquire(t, 1, k, 0, &e);   /* killed at some point, maybe inside */
    }
    usleep(20000);
    kill(p, SIGKILL);
    waitpid(p, NULL, 0);
    addrtable_slot_reset(t, 1);
    uint32_t e;
    CHECK(addrtable_count(t, k) == 0);
    CHECK(addrtable_acquire(t, 2, k, 1, &e) == ADDR_OK);
    CHECK(addrtable_acquire(t, 2, k, 1, &e) == ADDR_OVER_LIMIT);
    addrtable_destroy(t);
}

static void test_counters(void)
{
    struct addrtable *t = addrtable_create(16);
    if (!t) { CHECK(0); return; }
    edge_count(t, 0, EDGE_REJECT_RATE);
    edge_count(t, 7, EDGE_REJECT_RATE);
    edge_count(t, 7, EDGE_TLS_HANDSHAKES);
    CHECK(edge_counter_sum(t, EDGE_REJECT_RATE) == 2);
    CHECK(edge_counter_sum(t, EDGE_TLS_HANDSHAKES) == 1);
    addrtable_slot_reset(t, 7);   /* counters are monotonic: kept */
    CHECK(edge_counter_sum(t, EDGE_REJECT_RATE) == 2);
    addrtable_destroy(t);
}

static void test_ratelimit(void)
{
    struct ratelimit *r = ratelimit_create(64);
    if (!r) { CHECK(0); return; }
    uint8_t a[16], b[16];
    key4(a, 0x7f000001u);
    key4(b, 0x7f000002u);
    uint32_t ra = 0;
    uint64_t t0 = 1000000000u;   /* µs */
    /* 60 a minute (one per second), burst 3 */
    for (int i = 0; i < 3; i++) CHECK(ratelimit_take(r, a, t0, 60, 3, &ra));
    CHECK(!ratelimit_take(r, a, t0, 60, 3, &ra) && ra == 1);
    CHECK(ratelimit_take(r, b, t0, 60, 3, &ra));             /* another address */
    CHECK(!ratelimit_take(r, a, t0 + 999999, 60, 3, &ra) && ra == 1);
    CHECK(ratelimit_take(r, a, t0 + 1000000, 60, 3, &ra));   /* one token back */
    CHECK(!ratelimit_take(r, a, t0 + 1000000, 60, 3, &ra));
    CHECK(ratelimit_take(r, a, t0 + 10000000, 60, 3, &ra));  /* full again after 3 s */
    CHECK(ratelimit_take(r, a, t0 + 10000000, 60, 3, &ra));
    CHECK(ratelimit_take(r, a, t0 + 10000000, 60, 3, &ra));
    CHECK(!ratelimit_take(r, a, t0 + 10000000, 60, 3, &ra));
    /* 6 a minute: the wait is 10 s */
    CHECK(ratelimit_take(r, b, t0 + 20000000, 6, 1, &ra));
    CHECK(!ratelimit_take(r, b, t0 + 20000000, 6, 1, &ra) && ra == 10);
    CHECK(ratelimit_take(r, a, t0, 0, 1, &ra));              /* 0 = off */
    ratelimit_destroy(r);
}

int main(void)
{
    RUN(test_exact);
    RUN(test_processes);
    RUN(test_dead_holder);
    RUN(test_counters);
    RUN(test_ratelimit);
    return test_report();
}
