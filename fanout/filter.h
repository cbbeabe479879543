/* filter.h - server-side filters of a worker (filter.c): interned by their
 * canonical key (filter_query.h), so clients with the same filter share one
 * struct filter, its streaming lists and its per-message result.
 *
 * Cost model: a message's match result is computed at most once per
 * distinct filter, lazily (only when a client of that filter is about to be
 * sent that record), from fields extracted once per message per worker (and
 * only when some filtered client needs them). Results are kept per record
 * (a bit per filter) for the last records of the ring walk, so clients of
 * one filter that lag each other by up to buffer_size messages still share
 * one evaluation. Unfiltered clients live in the worker's own lists and
 * never touch this code. */
#ifndef CS_FANOUT_FILTER_H
#define CS_FANOUT_FILTER_H

#include <stdbool.h>
#include <stdint.h>

#include "conf/config.h"
#include "fanout/http_parser.h"
#include "shm/ring.h"
#include "shm/stats.h"

struct conn;

struct filter {
    struct filter *hnext;                    /* hash bucket */
    struct filter *next, *prev;              /* the worker's filters, for the pump */
    uint64_t hash;
    uint32_t refs;                           /* clients using it */
    struct conn *streams[3][RING_NFORMATS];  /* [proto][format], like worker.streams */
    uint32_t id;                             /* dense index: its bit in the result table */
    char *key;                               /* canonical key (owned), compared when interning */
    size_t keylen;
    char *vals;                              /* the key split into NUL-terminated values (owned) */
    char **dom;                              /* domain globs */
    void **re;                               /* pcre2_code * */
    char **iss, **log;                       /* lowercase substrings / names and URLs */
    uint32_t ndom, nre, niss, nlog;
    int8_t precert, ca;                      /* -1 any, else 0/1 */
};

struct filter_set;

struct filter_set *filter_set_new(const struct config *cfg);
void filter_set_free(struct filter_set *fs);

/* The interned filter for a stream request's query. 0: no filter (*out
 * NULL); 1: *out holds a reference; -1: refused, with the HTTP status (400
 * bad filter, 429 too many distinct filters on this worker) and a one-line
 * reason. */
int filter_acquire(struct filter_set *fs, struct http_str query, struct filter **out, int *status,
                   char *why, size_t whyn);
void filter_release(struct filter_set *fs, struct filter *f);
/* A reference that is not a client (the pump walking a filter's lists). */
void filter_hold(struct filter *f);
void filter_unhold(struct filter_set *fs, struct filter *f);

/* Does the message record at pos pass f? Cached per filter and record. */
bool filter_match(struct filter_set *fs, struct filter *f, const struct ring_record *rec, uint64_t pos);
/* The same for a message that is not in the ring (its lite JSON, or full),
 * uncached: an edge's resume from history (deep.h). */
bool filter_match_json(struct filter_set *fs, struct filter *f, const char *json, size_t len);

/* The worker's filters that have clients (iterate with ->next). */
struct filter *filter_first(const struct filter_set *fs);
uint32_t filter_count(const struct filter_set *fs);

/* Moves the pending evaluation/match counts into the shared stats. */
void filter_publish_counters(struct filter_set *fs, struct stats *st, unsigned slot);

#endif
