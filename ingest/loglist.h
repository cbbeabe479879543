/* loglist.h - which CT logs to follow, and how they are grouped into ingest
 * processes.
 *
 * Built from Chrome's v3 log list (cfg->ct_logs_url) plus cfg->custom_logs
 * (RFC 6962) and cfg->static_logs (static-ct-api). A log's position in
 * loglist.logs is its log_id: the index of its row in the shared per-log
 * stats table (stats_log). Groups point into loglist.logs; the supervisor
 * forks one ingest process per group (ingest_run, ingest.h).
 *
 * Rules (docs/ingest.md):
 *  - list logs are kept when their state is usable, qualified or readonly;
 *    retired, rejected, pending and state-less logs are skipped;
 *  - config logs are always kept; their operator is the URL's host, so logs
 *    on one host share pacing and (with group_by "operator") a process;
 *  - a URL seen twice is kept once (first wins);
 *  - at most STATS_MAX_LOGS logs; more are dropped with a warning. */
#ifndef CS_LOGLIST_H
#define CS_LOGLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/config.h"

enum loglist_kind { LOGLIST_RFC6962 = 0, LOGLIST_TILED = 1 };

struct loglist_log {
    char *name;              /* message source.name: description or config name */
    char *url;               /* RFC 6962 log URL / tiled monitoring URL; ends in '/' */
    char *origin;            /* tiled: expected checkpoint origin (submission URL without
                              * scheme and trailing '/'); NULL = not checked */
    char *operator_name;     /* pacing domain */
    char *fetch_url;         /* NULL = url. Tests point a log at a loopback server
                              * while url (what messages say) stays the real one. */
    uint8_t *key;            /* the list's `key` (DER SubjectPublicKeyInfo): STH and
                              * checkpoint signatures are verified with it; NULL
                              * (config logs) = not verified */
    size_t key_len;
    enum loglist_kind kind;
    unsigned log_id;         /* index in loglist.logs == stats per-log slot */
    /* per-log control (log_overrides, custom_logs/static_logs items);
     * 0 = the ct_log.* value */
    uint8_t id[32];          /* the list's log_id (SHA-256 of the key) */
    bool have_id;            /* false: a configured log no list names */
    uint32_t batch_size, poll_interval_ms, fetch_concurrency;
    char *refused;           /* non-NULL: not followed, and why (expected_log_id);
                              * shown in /health/deep and counted */
    unsigned operator_processes; /* ingest processes holding logs of this operator:
                                  * operator_pacing is split between them */
};

struct loglist_group {
    char *name;              /* operator name, log name, "all", or names joined by '+' */
    struct loglist_log **logs;
    size_t n_logs;
};

struct loglist {
    struct loglist_log *logs;
    size_t n_logs;
    struct loglist_group *groups;
    size_t n_groups;
    size_t n_listed, n_skipped;   /* logs in the fetched list; of those not followed (state, duplicate, over the limit) */
};

/* Downloads cfg->ct_logs_url (file://, http://, https://) with libcurl,
 * timeout cfg->ct_log.request_timeout_secs. With cfg->apple_logs_url set,
 * Apple's list is downloaded too and its operators appended to the
 * document (a failure there is logged and the first list used alone).
 * *json_out is malloc'd and NUL-terminated. Returns 0 or -1 with err filled. */
int loglist_fetch(const struct config *cfg, char **json_out, size_t *len, char *err, size_t errlen);

/* Appends the operators of a second list (Apple's, same v3 form) to those
 * of the first: a malloc'd document, or NULL (with err) when either does
 * not parse. Exposed for tests. */
char *loglist_merge(const char *first, size_t first_len, const char *second, size_t second_len,
                    size_t *out_len, char *err, size_t errlen);

/* Builds the log set and groups. json may be NULL (list unavailable): only
 * the config's logs are used. Returns 0, or -1 with err filled (malformed
 * list, or no log at all). Free with loglist_free. */
int loglist_build(const struct config *cfg, const char *json, size_t len, struct loglist *out,
                  char *err, size_t errlen);

void loglist_free(struct loglist *ll);

#endif
