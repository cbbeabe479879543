/* addrtable.h - exact per-address connection accounting across the fanout
 * workers, and the network edge's counters.
 *
 * One shared mapping, created by the supervisor before fork. A bounded hash
 * table keyed by the address itself (16 bytes: IPv4 as IPv4-mapped IPv6,
 * IPv6 already cut to connection_limit.ipv6_prefix by the caller): two
 * addresses never share an entry, so one client cannot use up another's
 * quota. Each entry holds, per process slot, how many connections that slot
 * owns for the address; the count of an address is the sum over the slots,
 * so when a worker dies the supervisor drops exactly its holdings
 * (addrtable_slot_reset) and nobody else's.
 *
 * Concurrency: one process-shared robust mutex around short critical
 * sections (a bounded probe and a few counter updates, only when a stream
 * starts or ends). Every update has a single commit point (the slot's count),
 * so a process killed inside the section leaves the table consistent; the
 * next locker marks the mutex consistent and goes on.
 *
 * When the probe window of a new address has no free entry the address is
 * refused (the caller answers 503) and counted, never merged with another. */
#ifndef CS_ADDRTABLE_H
#define CS_ADDRTABLE_H

#include <stdbool.h>
#include <stdint.h>

#define ADDRTABLE_MAX_SLOTS 128     /* = STATS_MAX_SLOTS */
#define ADDRTABLE_PROBE 32          /* entries looked at for one address */

/* Counters of the network edge (per slot, summed by readers). */
enum edge_counter {
    EDGE_REJECT_TABLE_FULL,       /* 503: no room for a new address */
    EDGE_REJECT_PER_ADDRESS,      /* 429: per_ip_limit reached for the address */
    EDGE_REJECT_RATE,             /* 429: rate_limit for the address */
    EDGE_REJECT_STREAMS_ACL,      /* 403: not in access.streams_allow */
    EDGE_REJECT_METRICS_ACL,      /* 403: not in access.metrics_allow */
    EDGE_PROXY_REJECTED,          /* PROXY header missing/bad, or from an untrusted peer */
    EDGE_TLS_HANDSHAKES,          /* completed TLS handshakes */
    EDGE_TLS_FAILURES,            /* failed TLS handshakes (plain HTTP to the TLS port included) */
    EDGE_TLS_RESUMED,             /* TLS handshakes that resumed a session from a ticket */
    EDGE_COUNT
};

struct addrtable;

/* capacity: entries, rounded up to a power of two (>= 16). NULL on error. */
struct addrtable *addrtable_create(uint32_t capacity);
void addrtable_destroy(struct addrtable *t);

enum addr_result { ADDR_OK = 0, ADDR_OVER_LIMIT = 1, ADDR_TABLE_FULL = 2, ADDR_ERROR = 3 };

/* Counts one connection of `slot` for the address if fewer than `limit`
 * (0 = unlimited) are held for it by all slots. On ADDR_OK *entry is what
 * addrtable_release takes. */
enum addr_result addrtable_acquire(struct addrtable *t, unsigned slot, const uint8_t key[16],
                                   uint32_t limit, uint32_t *entry);
void addrtable_release(struct addrtable *t, unsigned slot, uint32_t entry);
/* Connections held for an address by all slots (tests, diagnostics). */
uint32_t addrtable_count(struct addrtable *t, const uint8_t key[16]);
/* Addresses with at least one connection. */
uint32_t addrtable_used(struct addrtable *t);
/* Supervisor, after reaping the process of `slot`: its holdings go. */
void addrtable_slot_reset(struct addrtable *t, unsigned slot);

void edge_count(struct addrtable *t, unsigned slot, enum edge_counter c);
uint64_t edge_counter_sum(const struct addrtable *t, enum edge_counter c);

#endif
