/* loglist.c - fetch and parse Chrome's v3 log list, add the config's logs,
 * and group the result into ingest processes. See loglist.h for the rules. */
#include "ingest/loglist.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <mbedtls/base64.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/file.h"
#include "ingest/jsondoc.h"
#include "ingest/listsig.h"
#include "common/log.h"
#include "shm/stats.h"

#define LOGLIST_MAX_BYTES (16u << 20)   /* the real list is ~100 KB */


/* ---- fetch ---- */

static int fetch_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    int rc;
    if (!f) return -1;
    rc = file_read_all(f, out, len);
    fclose(f);
    return rc;
}

struct fetch_buf { char *p; size_t len, cap; int too_big; };

static size_t fetch_write(char *data, size_t sz, size_t nm, void *ud)
{
    struct fetch_buf *b = ud;
    size_t n = sz * nm;
    if (b->len + n + 1 > LOGLIST_MAX_BYTES) { b->too_big = 1; return 0; }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + n + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) return 0;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

/* Downloads url (http, https, file) into *out (malloc'd, NUL-terminated). */
static int fetch_url(const struct config *cfg, const char *url, char **json_out, size_t *len, char *err,
                     size_t errlen)
{
    struct fetch_buf b = {0};
    long code = 0;
    CURLcode rc;
    CURL *c = curl_easy_init();

    if (!c) {
        jsondoc_err(err, errlen, "curl_easy_init failed");
        goto err;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,file");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)(cfg->ct_log.request_timeout_secs ? cfg->ct_log.request_timeout_secs : 30));
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "certstream-server/" CERTSTREAM_VERSION);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fetch_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        jsondoc_err(err, errlen, "log list %s: %s", url,
               b.too_big ? "larger than 16 MiB" : curl_easy_strerror(rc));
        goto err;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (code != 0 && code != 200) {   /* file:// reports 0 */
        jsondoc_err(err, errlen, "log list %s: HTTP %ld", url, code);
        goto err;
    }
    if (!b.p) {
        jsondoc_err(err, errlen, "log list %s: empty", url);
        goto err;
    }
    curl_easy_cleanup(c);
    *json_out = b.p;
    *len = b.len;
    return 0;
err:
    if (c) curl_easy_cleanup(c);
    free(b.p);
    return -1;
}

#define DEFAULT_LIST_URL "https://www.gstatic.com/ct/log_list/v3/all_logs_list.json"

/* The list's signature (listsig.h): checked for the default URL, and for any
 * URL when ct_logs_signature is required. 0 = use the list. */
static int check_signature(const struct config *cfg, const char *list, size_t len, char *err, size_t errlen)
{
    const char *mode = cfg->ct_logs_signature ? cfg->ct_logs_signature : "optional";
    bool required = strcmp(mode, "required") == 0;
    char sig_url[4200], why[512];
    char *sig = NULL, *pem = NULL;
    size_t sig_len = 0, pem_len = 0;
    int rc = -1;
    if (strcmp(mode, "off") == 0 || (!required && strcmp(cfg->ct_logs_url, DEFAULT_LIST_URL) != 0)) return 0;
    if (listsig_url(cfg->ct_logs_url, sig_url, sizeof sig_url) != 0) {
        snprintf(why, sizeof why, "signature URL too long");
    } else if (cfg->ct_logs_public_key && *cfg->ct_logs_public_key &&
               fetch_file(cfg->ct_logs_public_key, &pem, &pem_len) != 0) {
        snprintf(why, sizeof why, "ct_logs_public_key %s cannot be read", cfg->ct_logs_public_key);
    } else if (fetch_url(cfg, sig_url, &sig, &sig_len, why, sizeof why) != 0) {
        /* why says it */
    } else if (listsig_verify((const uint8_t *)list, len, (const uint8_t *)sig, sig_len, pem, why, sizeof why) == 0) {
        log_info("log list signature verified (%s)", sig_url);
        rc = 0;
    }
    free(sig);
    free(pem);
    if (rc == 0) return 0;
    if (required) {
        jsondoc_err(err, errlen, "log list %s refused (ct_logs_signature: required): %s", cfg->ct_logs_url, why);
        return -1;
    }
    log_warn("log list %s: signature not verified (%s); used anyway (ct_logs_signature: optional)",
             cfg->ct_logs_url, why);
    return 0;
}

int loglist_fetch(const struct config *cfg, char **json_out, size_t *len, char *err, size_t errlen)
{
    *json_out = NULL;
    *len = 0;
    if (!cfg->ct_log.list_enabled) {
        /* Configured logs only: an empty list, not an error to retry. */
        static const char empty[] = "{\"operators\":[]}";
        if (!(*json_out = strdup(empty))) return -1;
        *len = sizeof empty - 1;
        return 0;
    }
    if (!cfg->ct_logs_url || !*cfg->ct_logs_url) {
        jsondoc_err(err, errlen, "ct_logs_url is empty");
        return -1;
    }
    if (fetch_url(cfg, cfg->ct_logs_url, json_out, len, err, errlen) != 0) return -1;
    if (check_signature(cfg, *json_out, *len, err, errlen) != 0) {
        free(*json_out);
        *json_out = NULL;
        return -1;
    }
    return 0;
}

/* ---- build ---- */

struct builder {
    const struct config *cfg;
    struct loglist *ll;
    size_t cap;
    int dropped;
};

static char *dup_slash(const char *url)
{
    size_t n = strlen(url);
    int add = n == 0 || url[n - 1] != '/';
    char *s = malloc(n + 2);
    if (!s) return NULL;
    memcpy(s, url, n);
    if (add) s[n++] = '/';
    s[n] = '\0';
    return s;
}

/* "https://host:port/path/" -> "host" (for a config log's pacing domain). */
static char *url_host(const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t n = strcspn(p, "/:?#");
    char *s = malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* Submission URL -> checkpoint origin: no scheme, no trailing slashes. */
static char *url_origin(const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t n = strlen(p);
    while (n > 0 && p[n - 1] == '/') n--;
    char *s = malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static void log_clear(struct loglist_log *l)
{
    free(l->name);
    free(l->url);
    free(l->origin);
    free(l->operator_name);
    free(l->fetch_url);
    free(l->key);
    memset(l, 0, sizeof *l);
}

/* Adds one log; 0 = added or skipped (duplicate / table full), -1 = OOM. */
static int add_log(struct builder *b, enum loglist_kind kind, const char *name, const char *url,
                   const char *submission_url, const char *operator_name, const char *key_b64)
{
    struct loglist *ll = b->ll;
    struct loglist_log l = {0};

    if ((kind == LOGLIST_RFC6962 && !b->cfg->ct_log.rfc6962_enabled) ||
        (kind == LOGLIST_TILED && !b->cfg->ct_log.static_enabled))
        return 0;   /* ct_log.rfc6962_enabled / static_enabled: false */
    l.url = dup_slash(url);
    if (!l.url) return -1;
    for (size_t i = 0; i < ll->n_logs; i++) {
        if (strcmp(ll->logs[i].url, l.url) == 0) {
            log_debug("log list: %s listed twice, keeping the first", l.url);
            free(l.url);
            return 0;
        }
    }
    if (ll->n_logs >= STATS_MAX_LOGS) {
        b->dropped++;
        free(l.url);
        return 0;
    }
    if (ll->n_logs == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        struct loglist_log *nl = realloc(ll->logs, cap * sizeof *nl);
        if (!nl) goto err;
        ll->logs = nl;
        b->cap = cap;
    }
    l.kind = kind;
    l.name = strdup(name);
    l.operator_name = operator_name ? strdup(operator_name) : url_host(l.url);
    l.origin = submission_url ? url_origin(submission_url) : NULL;
    if (!l.name || !l.operator_name || (submission_url && !l.origin)) goto err;
    if (key_b64) {
        size_t kl = strlen(key_b64), olen = 0;
        l.key = malloc(kl / 4 * 3 + 3);
        if (!l.key) goto err;
        if (mbedtls_base64_decode(l.key, kl / 4 * 3 + 3, &olen, (const unsigned char *)key_b64, kl) != 0 || olen == 0) {
            /* A key we cannot read: follow the log without verification. */
            log_warn("log list: %s: unreadable key, signatures not verified", name);
            free(l.key);
            l.key = NULL;
        }
        l.key_len = l.key ? olen : 0;
    }
    l.log_id = (unsigned)ll->n_logs;
    ll->logs[ll->n_logs++] = l;
    return 0;
err:
    log_clear(&l);
    return -1;
}

/* usable/qualified/readonly are followed; anything else (or no state) not. */
static int state_followed(const cJSON *log)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(log, "state");
    if (!cJSON_IsObject(st)) return 0;
    return cJSON_GetObjectItemCaseSensitive(st, "usable") != NULL ||
           cJSON_GetObjectItemCaseSensitive(st, "qualified") != NULL ||
           cJSON_GetObjectItemCaseSensitive(st, "readonly") != NULL;
}

static const char *str_item(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(it) && it->valuestring[0] ? it->valuestring : NULL;
}

static int add_list(struct builder *b, const char *json, size_t len, char *err, size_t errlen)
{
    cJSON *root;
    const cJSON *op;
    size_t before = b->ll->n_logs;
    const cJSON *ops = jsondoc_member(json, len, "operators", cJSON_Array, "log list", &root, err, errlen);
    if (!ops)
        goto err;
    cJSON_ArrayForEach(op, ops) {
        const char *opname = str_item(op, "name");
        const cJSON *logs = cJSON_GetObjectItemCaseSensitive(op, "logs");
        const cJSON *tiled = cJSON_GetObjectItemCaseSensitive(op, "tiled_logs");
        const cJSON *l;
        if (!cJSON_IsObject(op) || !opname) {
            jsondoc_err(err, errlen, "log list: an operator has no name");
            goto err;
        }
        if (cJSON_IsArray(logs)) {
            cJSON_ArrayForEach(l, logs) {
                b->ll->n_listed++;
                const char *d = str_item(l, "description"), *u = str_item(l, "url");
                if (!d || !u || !state_followed(l)) continue;
                if (add_log(b, LOGLIST_RFC6962, d, u, NULL, opname, str_item(l, "key")) != 0) goto oom;
            }
        }
        if (cJSON_IsArray(tiled)) {
            cJSON_ArrayForEach(l, tiled) {
                b->ll->n_listed++;
                const char *d = str_item(l, "description"), *m = str_item(l, "monitoring_url");
                const char *s = str_item(l, "submission_url");
                if (!d || !m || !state_followed(l)) continue;
                if (add_log(b, LOGLIST_TILED, d, m, s, opname, str_item(l, "key")) != 0) goto oom;
            }
        }
    }
    b->ll->n_skipped = b->ll->n_listed - (b->ll->n_logs - before);
    cJSON_Delete(root);
    return 0;
oom:
    jsondoc_err(err, errlen, "log list: out of memory");
err:
    cJSON_Delete(root);
    return -1;
}

/* ---- groups ---- */

static int group_add(struct loglist_group *g, struct loglist_log *l)
{
    struct loglist_log **nl = realloc(g->logs, (g->n_logs + 1) * sizeof *nl);
    if (!nl) return -1;
    g->logs = nl;
    g->logs[g->n_logs++] = l;
    return 0;
}

static struct loglist_group *group_new(struct loglist *ll, const char *name)
{
    struct loglist_group *ng = realloc(ll->groups, (ll->n_groups + 1) * sizeof *ng);
    if (!ng) return NULL;
    ll->groups = ng;
    struct loglist_group *g = &ll->groups[ll->n_groups];
    memset(g, 0, sizeof *g);
    g->name = strdup(name);
    if (!g->name) return NULL;
    ll->n_groups++;
    return g;
}

static void groups_free(struct loglist *ll)
{
    for (size_t i = 0; i < ll->n_groups; i++) {
        free(ll->groups[i].name);
        free(ll->groups[i].logs);
    }
    free(ll->groups);
    ll->groups = NULL;
    ll->n_groups = 0;
}

static int build_groups(struct loglist *ll, const char *by)
{
    for (size_t i = 0; i < ll->n_logs; i++) {
        struct loglist_log *l = &ll->logs[i];
        struct loglist_group *g = NULL;
        if (strcmp(by, "single") == 0) {
            g = ll->n_groups ? &ll->groups[0] : group_new(ll, "all");
        } else if (strcmp(by, "log") == 0) {
            g = group_new(ll, l->name);
        } else {   /* operator: logs of one operator, in list order */
            for (size_t k = 0; k < ll->n_groups; k++)
                if (strcmp(ll->groups[k].name, l->operator_name) == 0) g = &ll->groups[k];
            if (!g) g = group_new(ll, l->operator_name);
        }
        if (!g || group_add(g, l) != 0) return -1;
    }
    return 0;
}

/* Merges groups round-robin into max of them: group i joins group i % max.
 * Whole groups move, so an operator is never split across processes. */
static int merge_groups(struct loglist *ll, size_t max)
{
    if (max == 0 || ll->n_groups <= max) return 0;
    for (size_t i = max; i < ll->n_groups; i++) {
        struct loglist_group *src = &ll->groups[i], *dst = &ll->groups[i % max];
        for (size_t k = 0; k < src->n_logs; k++)
            if (group_add(dst, src->logs[k]) != 0) return -1;
        size_t nl = strlen(dst->name), sl = strlen(src->name);
        char *nn = realloc(dst->name, nl + sl + 2);
        if (!nn) return -1;
        nn[nl] = '+';
        memcpy(nn + nl + 1, src->name, sl + 1);
        dst->name = nn;
        free(src->name);
        free(src->logs);
        src->name = NULL;
        src->logs = NULL;
    }
    ll->n_groups = max;
    return 0;
}

int loglist_build(const struct config *cfg, const char *json, size_t len, struct loglist *out,
                  char *err, size_t errlen)
{
    struct builder b = {.cfg = cfg, .ll = out};
    const char *by = cfg->ingest.group_by && *cfg->ingest.group_by ? cfg->ingest.group_by : "operator";

    memset(out, 0, sizeof *out);
    if (strcmp(by, "operator") != 0 && strcmp(by, "log") != 0 && strcmp(by, "single") != 0) {
        jsondoc_err(err, errlen, "ingest.group_by: unknown value '%s' (operator|log|single)", by);
        goto err;
    }
    if (json && add_list(&b, json, len, err, errlen) != 0) goto err;
    for (size_t i = 0; i < cfg->n_custom_logs; i++) {
        const struct config_log *c = &cfg->custom_logs[i];
        if (!c->url || !*c->url) continue;
        if (add_log(&b, LOGLIST_RFC6962, c->name && *c->name ? c->name : c->url, c->url, NULL, NULL, NULL) != 0)
            goto oom;
    }
    for (size_t i = 0; i < cfg->n_static_logs; i++) {
        const struct config_log *c = &cfg->static_logs[i];
        if (!c->url || !*c->url) continue;
        /* A configured static log is checked against no origin: its
         * submission prefix is not known from the config. */
        if (add_log(&b, LOGLIST_TILED, c->name && *c->name ? c->name : c->url, c->url, NULL, NULL, NULL) != 0)
            goto oom;
    }
    if (b.dropped)
        log_warn("log list: %d logs dropped: at most %d logs are followed", b.dropped, STATS_MAX_LOGS);
    if (out->n_logs == 0) {
        jsondoc_err(err, errlen, "no CT log to follow (log list has no usable log and no custom/static logs)");
        goto err;
    }
    if (build_groups(out, by) != 0 || merge_groups(out, cfg->ingest.max_processes) != 0) goto oom;
    return 0;
oom:
    jsondoc_err(err, errlen, "log list: out of memory");
err:
    loglist_free(out);
    return -1;
}

void loglist_free(struct loglist *ll)
{
    groups_free(ll);
    for (size_t i = 0; i < ll->n_logs; i++) log_clear(&ll->logs[i]);
    free(ll->logs);
    memset(ll, 0, sizeof *ll);
}
