/* stats.c - shared counters, per-log state and connection accounting.
 *
 * One MAP_SHARED anonymous region, created before fork:
 *   header (start time, worker counts, log count, highest connection slot)
 *   retired row: counters of slots reset after their process died
 *   STATS_MAX_SLOTS rows of ST_COUNT counters + the slot's connection count,
 *     each row on its own cache lines (one writer per row, no false sharing)
 *   STATS_MAX_LOGS per-log records
 *   per-slot IP tables (page aligned): STATS_IP_BUCKETS uint32 counters per
 *     slot, indexed by a hash of the client address.
 * The IP tables are 256 KiB per slot and 32 MiB of address space in all, but
 * only pages that acceptors touched are backed (at most 256 KiB for each of
 * the slots up to the highest that held a connection: 2.3 MiB for 8 workers);
 * startup touches none of them.
 *
 * Connection limits are checked by "increment, then sum, then roll back":
 * every counter is written only by its slot's process (so a dead process's
 * connections go away with stats_slot_reset), and with sequentially
 * consistent increments and loads two racing acceptors cannot both miss each
 * other: at worst both roll back, so a limit is never exceeded. Sums run over
 * the slots that ever held a connection (conn_slots), not all 128. */
#include "shm/stats.h"

#include "common/log.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define STATS_MAGIC 0x3173746174737363ULL   /* "csstats1" */

_Static_assert((STATS_IP_BUCKETS & (STATS_IP_BUCKETS - 1)) == 0, "buckets: power of two");

struct stats_row {
    _Alignas(64) _Atomic int64_t c[ST_COUNT];
    _Atomic int64_t conns;
};

struct stats_shm {
    uint64_t magic;
    _Atomic uint64_t started;
    _Atomic uint32_t fanout_workers, ingest_procs, log_count;
    _Atomic uint32_t conn_slots;   /* 1 + highest slot that ever held a connection */
    struct stats_row retired;
    struct stats_row rows[STATS_MAX_SLOTS];
    struct stats_log logs[STATS_MAX_LOGS];
    struct stats_nats nats;
    struct stats_server server;
    struct {
        _Atomic uint32_t role;     /* enum proc_role + 1; 0 = slot unused */
        _Atomic uint32_t index;
        _Atomic int32_t pid;
    } procs[STATS_MAX_SLOTS];
};

struct stats {
    struct stats_shm *shm;
    _Atomic uint32_t *ip;          /* STATS_MAX_SLOTS * STATS_IP_BUCKETS */
    size_t map_len;
    size_t ip_off;
};

#define IP_TABLE_BYTES ((size_t)STATS_IP_BUCKETS * sizeof(_Atomic uint32_t))

static bool is_gauge(unsigned id)
{
    return (id >= ST_CONN_WS_FULL && id <= ST_CONN_SSE_DOMAINS) ||
           (id >= ST_FILTERS_DISTINCT && id <= ST_CLIENTS_DEFLATE) || id == ST_ISSUER_CACHE_SIZE ||
           id == ST_LOGS_REFUSED || id == ST_CLIENTS_DEFLATE_SHARED;
}

const char *stats_cause_name(unsigned cause)
{
    static const char *const names[STATS_NCAUSES] = { "clean_exit", "error_exit", "signal" };
    return cause < STATS_NCAUSES ? names[cause] : "unknown";
}

const char *stats_fail_name(unsigned reason)
{
    static const char *const names[STATS_NFAIL] = { "timeout", "network", "http_status", "rate_limited",
                                                    "malformed", "too_large" };
    return reason < STATS_NFAIL ? names[reason] : "unknown";
}

struct stats *stats_create(void)
{
    struct stats *s = NULL;
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0) {
        errno = EINVAL;
        return NULL;
    }
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->ip_off = (sizeof(struct stats_shm) + (size_t)page - 1) & ~((size_t)page - 1);
    s->map_len = s->ip_off + (size_t)STATS_MAX_SLOTS * IP_TABLE_BYTES;
    /* NORESERVE: the IP tables are charged only when a page is touched. */
    void *p = mmap(NULL, s->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        goto err;
    s->shm = p;
    s->ip = (_Atomic uint32_t *)((uint8_t *)p + s->ip_off);
    s->shm->magic = STATS_MAGIC;
    return s;

err:;
    int saved = errno;
    free(s);
    errno = saved;
    return NULL;
}

void stats_destroy(struct stats *s)
{
    if (s == NULL)
        return;
    if (munmap(s->shm, s->map_len) != 0)
        log_warn("stats: munmap: %s", strerror(errno));
    free(s);
}

void stats_add(struct stats *s, unsigned slot, enum stat_id id, int64_t delta)
{
    if (slot >= STATS_MAX_SLOTS || (unsigned)id >= ST_COUNT)
        return;
    atomic_fetch_add_explicit(&s->shm->rows[slot].c[id], delta, memory_order_relaxed);
}

uint64_t stats_sum(const struct stats *s, enum stat_id id)
{
    if ((unsigned)id >= ST_COUNT)
        return 0;
    int64_t sum = atomic_load_explicit(&s->shm->retired.c[id], memory_order_relaxed);
    for (unsigned i = 0; i < STATS_MAX_SLOTS; i++)
        sum += atomic_load_explicit(&s->shm->rows[i].c[id], memory_order_relaxed);
    return sum > 0 ? (uint64_t)sum : 0;
}

/* The slot's IP table: MADV_REMOVE gives the pages back (reads see zeros);
 * if the kernel refuses, zero the counters one by one. */
static void ip_table_clear(struct stats *s, unsigned slot)
{
    _Atomic uint32_t *t = s->ip + (size_t)slot * STATS_IP_BUCKETS;
    if (madvise((void *)t, IP_TABLE_BYTES, MADV_REMOVE) == 0)
        return;
    for (size_t b = 0; b < STATS_IP_BUCKETS; b++) {
        if (atomic_load_explicit(&t[b], memory_order_relaxed) != 0)
            atomic_store_explicit(&t[b], 0, memory_order_seq_cst);
    }
}

void stats_slot_reset(struct stats *s, unsigned slot)
{
    if (slot >= STATS_MAX_SLOTS)
        return;
    struct stats_row *row = &s->shm->rows[slot];
    for (unsigned id = 0; id < ST_COUNT; id++) {
        int64_t v = atomic_exchange_explicit(&row->c[id], 0, memory_order_relaxed);
        if (!is_gauge(id) && v != 0)
            atomic_fetch_add_explicit(&s->shm->retired.c[id], v, memory_order_relaxed);
    }
    atomic_store_explicit(&row->conns, 0, memory_order_seq_cst);
    if (slot < atomic_load_explicit(&s->shm->conn_slots, memory_order_seq_cst))
        ip_table_clear(s, slot);
}

unsigned stats_log_count(const struct stats *s)
{
    return atomic_load_explicit(&s->shm->log_count, memory_order_acquire);
}

void stats_set_log_count(struct stats *s, unsigned n)
{
    atomic_store_explicit(&s->shm->log_count, n > STATS_MAX_LOGS ? STATS_MAX_LOGS : n, memory_order_release);
}

struct stats_log *stats_log(struct stats *s, unsigned log_id)
{
    return log_id < STATS_MAX_LOGS ? &s->shm->logs[log_id] : NULL;
}

struct stats_server *stats_server(struct stats *s)
{
    return &s->shm->server;
}

void stats_proc_set(struct stats *s, unsigned slot, enum proc_role role, unsigned index)
{
    if (slot >= STATS_MAX_SLOTS || (unsigned)role >= ROLE_NREPORTED)
        return;
    atomic_store_explicit(&s->shm->procs[slot].index, index, memory_order_relaxed);
    atomic_store_explicit(&s->shm->procs[slot].role, (uint32_t)role + 1, memory_order_release);
}

void stats_proc_pid(struct stats *s, unsigned slot, int pid)
{
    if (slot < STATS_MAX_SLOTS)
        atomic_store_explicit(&s->shm->procs[slot].pid, pid, memory_order_release);
}

bool stats_proc_get(const struct stats *s, unsigned slot, enum proc_role *role, unsigned *index, int *pid)
{
    if (slot >= STATS_MAX_SLOTS)
        return false;
    uint32_t r = atomic_load_explicit(&s->shm->procs[slot].role, memory_order_acquire);
    if (r == 0)
        return false;
    *role = (enum proc_role)(r - 1);
    *index = atomic_load_explicit(&s->shm->procs[slot].index, memory_order_relaxed);
    *pid = atomic_load_explicit(&s->shm->procs[slot].pid, memory_order_acquire);
    return true;
}

int64_t stats_slot_value(const struct stats *s, unsigned slot, enum stat_id id)
{
    if (slot >= STATS_MAX_SLOTS || (unsigned)id >= ST_COUNT)
        return 0;
    return atomic_load_explicit(&s->shm->rows[slot].c[id], memory_order_relaxed);
}

void stats_set_started(struct stats *s, uint64_t unix_secs)
{
    atomic_store_explicit(&s->shm->started, unix_secs, memory_order_relaxed);
}

uint64_t stats_started(const struct stats *s)
{
    return atomic_load_explicit(&s->shm->started, memory_order_relaxed);
}

void stats_set_workers(struct stats *s, unsigned fanout_workers, unsigned ingest_procs)
{
    atomic_store_explicit(&s->shm->fanout_workers, fanout_workers, memory_order_relaxed);
    atomic_store_explicit(&s->shm->ingest_procs, ingest_procs, memory_order_relaxed);
}

void stats_get_workers(const struct stats *s, unsigned *fanout_workers, unsigned *ingest_procs)
{
    if (fanout_workers)
        *fanout_workers = atomic_load_explicit(&s->shm->fanout_workers, memory_order_relaxed);
    if (ingest_procs)
        *ingest_procs = atomic_load_explicit(&s->shm->ingest_procs, memory_order_relaxed);
}

/* --- connection accounting --- */

/* Bucket of an IP address, or -1 for other families. IPv4-mapped IPv6 is the
 * IPv4 address. FNV-1a then a final mix, so neighbouring addresses spread. */
static long ip_bucket(const struct sockaddr *addr)
{
    const uint8_t *p;
    size_t n;
    if (addr == NULL)
        return -1;
    if (addr->sa_family == AF_INET) {
        p = (const uint8_t *)&((const struct sockaddr_in *)(const void *)addr)->sin_addr;
        n = 4;
    } else if (addr->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr;
        p = a6->s6_addr;
        n = 16;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            p += 12;
            n = 4;
        }
    } else {
        return -1;
    }
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    h ^= h >> 15;
    h *= 0x2c1b3c6du;
    h ^= h >> 12;
    return (long)(h & (STATS_IP_BUCKETS - 1));
}

static void conn_slots_note(struct stats *s, unsigned slot)
{
    uint32_t cur = atomic_load_explicit(&s->shm->conn_slots, memory_order_seq_cst);
    while (cur < slot + 1 &&
           !atomic_compare_exchange_weak_explicit(&s->shm->conn_slots, &cur, slot + 1,
                                                  memory_order_seq_cst, memory_order_seq_cst))
        ;
}

static uint64_t conn_sum(const struct stats *s)
{
    unsigned n = atomic_load_explicit(&s->shm->conn_slots, memory_order_seq_cst);
    int64_t sum = 0;
    for (unsigned i = 0; i < n && i < STATS_MAX_SLOTS; i++)
        sum += atomic_load_explicit(&s->shm->rows[i].conns, memory_order_seq_cst);
    return sum > 0 ? (uint64_t)sum : 0;
}

static uint64_t ip_sum(const struct stats *s, long bucket)
{
    unsigned n = atomic_load_explicit(&s->shm->conn_slots, memory_order_seq_cst);
    uint64_t sum = 0;
    for (unsigned i = 0; i < n && i < STATS_MAX_SLOTS; i++)
        sum += atomic_load_explicit(&s->ip[(size_t)i * STATS_IP_BUCKETS + (size_t)bucket], memory_order_seq_cst);
    return sum;
}

bool stats_conn_acquire(struct stats *s, unsigned slot, const struct sockaddr *addr,
                        uint32_t max_total, uint32_t per_ip)
{
    if (s == NULL || slot >= STATS_MAX_SLOTS)
        return false;
    conn_slots_note(s, slot);
    struct stats_row *row = &s->shm->rows[slot];
    atomic_fetch_add_explicit(&row->conns, 1, memory_order_seq_cst);
    if (max_total != 0 && conn_sum(s) > max_total) {
        atomic_fetch_sub_explicit(&row->conns, 1, memory_order_seq_cst);
        return false;
    }
    long b = ip_bucket(addr);
    if (b >= 0) {
        _Atomic uint32_t *cell = &s->ip[(size_t)slot * STATS_IP_BUCKETS + (size_t)b];
        atomic_fetch_add_explicit(cell, 1, memory_order_seq_cst);
        if (per_ip != 0 && ip_sum(s, b) > per_ip) {
            atomic_fetch_sub_explicit(cell, 1, memory_order_seq_cst);
            atomic_fetch_sub_explicit(&row->conns, 1, memory_order_seq_cst);
            return false;
        }
    }
    return true;
}

/* Only the slot's own process writes these counters, so "decrement if
 * positive" needs no CAS; a release without an acquire is ignored rather than
 * loosening the limits. */
void stats_conn_release(struct stats *s, unsigned slot, const struct sockaddr *addr)
{
    if (s == NULL || slot >= STATS_MAX_SLOTS)
        return;
    struct stats_row *row = &s->shm->rows[slot];
    if (atomic_load_explicit(&row->conns, memory_order_relaxed) > 0)
        atomic_fetch_sub_explicit(&row->conns, 1, memory_order_seq_cst);
    long b = ip_bucket(addr);
    if (b >= 0 && slot < atomic_load_explicit(&s->shm->conn_slots, memory_order_relaxed)) {
        _Atomic uint32_t *cell = &s->ip[(size_t)slot * STATS_IP_BUCKETS + (size_t)b];
        if (atomic_load_explicit(cell, memory_order_relaxed) > 0)
            atomic_fetch_sub_explicit(cell, 1, memory_order_seq_cst);
    }
}

uint64_t stats_conn_total(const struct stats *s)
{
    return conn_sum(s);
}

struct stats_nats *stats_nats(struct stats *s)
{
    return &s->shm->nats;
}

bool stats_nats_gate_closed(struct stats *s, uint64_t ring_tail)
{
    const struct stats_nats *n = &s->shm->nats;
    if (atomic_load_explicit(&n->role, memory_order_relaxed) != NATS_ROLE_PUBLISHER)
        return false;
    uint64_t acked = atomic_load_explicit(&n->ring_acked, memory_order_acquire);
    uint64_t gate = atomic_load_explicit(&n->gate_bytes, memory_order_relaxed);
    return gate != 0 && ring_tail > acked && ring_tail - acked > gate;
}

bool stats_nats_degraded(struct stats *s)
{
    const struct stats_nats *n = &s->shm->nats;
    if (atomic_load_explicit(&n->role, memory_order_relaxed) != NATS_ROLE_PUBLISHER)
        return false;
    return !atomic_load_explicit(&n->connected, memory_order_relaxed) ||
           atomic_load_explicit(&n->lag_ms, memory_order_relaxed) >
               atomic_load_explicit(&n->lag_limit_ms, memory_order_relaxed);
}
