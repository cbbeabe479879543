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

char *loglist_merge(const char *first, size_t first_len, const char *second, size_t second_len,
                    size_t *out_len, char *err, size_t errlen)
{
    cJSON *a = NULL, *b = NULL;
    char *out = NULL;
    const cJSON *ops_a = jsondoc_member(first, first_len, "operators", cJSON_Array, "log list", &a, err, errlen);
    if (!ops_a) goto done;
    const cJSON *ops_b = jsondoc_member(second, second_len, "operators", cJSON_Array, "Apple's log list", &b,
                                        err, errlen);
    if (!ops_b) goto done;
    /* move Apple's operators, in order, after the first list's */
    cJSON *op;
    while ((op = cJSON_DetachItemFromArray((cJSON *)ops_b, 0)) != NULL) {
        if (!cJSON_AddItemToArray((cJSON *)ops_a, op)) {
            cJSON_Delete(op);
            jsondoc_err(err, errlen, "log list: out of memory");
            goto done;
        }
    }
    out = cJSON_PrintUnformatted(a);
    if (!out) jsondoc_err(err, errlen, "log list: out of memory");
    else *out_len = strlen(out);
done:
    cJSON_Delete(a);
    cJSON_Delete(b);
    return out;
}

/* Apple's list (apple_logs_url), when set, is merged into the document: its
 * logs are followed too; one both lists name is followed once (loglist_build
 * drops the second by log id or URL). Not fatal: Apple's list is an extra. */
static void add_apple(const struct config *cfg, char **json, size_t *len)
{
    char err[512], *apple = NULL, *merged;
    size_t alen = 0, mlen = 0;
    if (!cfg->apple_logs_url || !*cfg->apple_logs_url) return;
    if (fetch_url(cfg, cfg->apple_logs_url, &apple, &alen, err, sizeof err) != 0) {
        log_warn("Apple's log list not used: %s", err);
        return;
    }
    merged = loglist_merge(*json, *len, apple, alen, &mlen, err, sizeof err);
    free(apple);
    if (!merged) {
        log_warn("Apple's log list %s not used: %s", cfg->apple_logs_url, err);
        return;
    }
    free(*json);
    *json = merged;
    *len = mlen;
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
    add_apple(cfg, json_out, len);
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
    free(l->refused);
    memset(l, 0, sizeof *l);
}

/* Two URLs name the same log: equal once both end in '/'. */
static bool same_url(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    while (la && a[la - 1] == '/') la--;
    while (lb && b[lb - 1] == '/') lb--;
    return la == lb && strncmp(a, b, la) == 0;
}

static void take(uint32_t *dst, uint32_t v) { if (v) *dst = v; }

static void apply_one(struct config_log_override *eff, const struct config_log_override *o)
{
    take(&eff->batch_size, o->batch_size);
    take(&eff->poll_interval_ms, o->poll_interval_ms);
    take(&eff->fetch_concurrency, o->fetch_concurrency);
    if (o->expected_log_id) eff->expected_log_id = o->expected_log_id;
    if (o->enabled) eff->enabled = o->enabled;
}

/* The settings that apply to a log (docs/ingest.md "Per-log control"), from
 * weakest to strongest: a custom_logs/static_logs item with its URL, then a
 * log_overrides entry keyed by its name, then one keyed by its URL. The
 * strings point into cfg. */
static void resolve_override(const struct config *cfg, const char *url, const char *name,
                             struct config_log_override *eff)
{
    memset(eff, 0, sizeof *eff);
    for (size_t i = 0; i < cfg->n_custom_logs; i++)
        if (cfg->custom_logs[i].url && same_url(cfg->custom_logs[i].url, url)) apply_one(eff, &cfg->custom_logs[i].o);
    for (size_t i = 0; i < cfg->n_static_logs; i++)
        if (cfg->static_logs[i].url && same_url(cfg->static_logs[i].url, url)) apply_one(eff, &cfg->static_logs[i].o);
    for (size_t i = 0; i < cfg->n_log_overrides; i++)
        if (cfg->log_overrides[i].match && strcmp(cfg->log_overrides[i].match, name) == 0)
            apply_one(eff, &cfg->log_overrides[i]);
    for (size_t i = 0; i < cfg->n_log_overrides; i++)
        if (cfg->log_overrides[i].match && strstr(cfg->log_overrides[i].match, "://") &&
            same_url(cfg->log_overrides[i].match, url))
            apply_one(eff, &cfg->log_overrides[i]);
}

static int b64_32(const char *s, uint8_t out[32])
{
    size_t olen = 0;
    uint8_t buf[48];
    if (!s || mbedtls_base64_decode(buf, sizeof buf, &olen, (const unsigned char *)s, strlen(s)) != 0 || olen != 32)
        return -1;
    memcpy(out, buf, 32);
    return 0;
}

/* Adds one log; 0 = added or skipped (duplicate / table full / disabled),
 * -1 = OOM. */
static int add_log(struct builder *b, enum loglist_kind kind, const char *name, const char *url,
                   const char *submission_url, const char *operator_name, const char *key_b64,
                   const char *log_id_b64)
{
    struct loglist *ll = b->ll;
    struct loglist_log l = {0};
    struct config_log_override eff;

    if ((kind == LOGLIST_RFC6962 && !b->cfg->ct_log.rfc6962_enabled) ||
        (kind == LOGLIST_TILED && !b->cfg->ct_log.static_enabled))
        return 0;   /* ct_log.rfc6962_enabled / static_enabled: false */
    l.url = dup_slash(url);
    if (!l.url) return -1;
    l.have_id = log_id_b64 && b64_32(log_id_b64, l.id) == 0;
    for (size_t i = 0; i < ll->n_logs; i++) {
        if (same_url(ll->logs[i].url, l.url) ||
            (l.have_id && ll->logs[i].have_id && memcmp(ll->logs[i].id, l.id, 32) == 0)) {
            log_debug("log list: %s listed twice, keeping the first", l.url);
            free(l.url);
            return 0;
        }
    }
    resolve_override(b->cfg, l.url, name, &eff);
    if (eff.enabled < 0) {
        log_info("log list: %s (%s) not followed: enabled: false", name, l.url);
        free(l.url);
        return 0;
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
    l.batch_size = eff.batch_size;
    l.poll_interval_ms = eff.poll_interval_ms;
    l.fetch_concurrency = eff.fetch_concurrency;
    if (eff.expected_log_id) {
        uint8_t want[32];
        char why[96];   /* fits the per-log reason shown in /health/deep */
        if (b64_32(eff.expected_log_id, want) != 0)
            snprintf(why, sizeof why, "expected_log_id %s is not 32 bytes of base64", eff.expected_log_id);
        else if (!l.have_id)
            snprintf(why, sizeof why, "expected_log_id cannot be checked: no log list gives this log's id");
        else if (memcmp(want, l.id, 32) != 0)
            snprintf(why, sizeof why, "expected_log_id mismatch: the log list gives %s", log_id_b64);
        else
            why[0] = '\0';
        if (why[0] && !(l.refused = strdup(why))) goto err;
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
                if (add_log(b, LOGLIST_RFC6962, d, u, NULL, opname, str_item(l, "key"), str_item(l, "log_id")) != 0)
                    goto oom;
            }
        }
        if (cJSON_IsArray(tiled)) {
            cJSON_ArrayForEach(l, tiled) {
                b->ll->n_listed++;
                const char *d = str_item(l, "description"), *m = str_item(l, "monitoring_url");
                const char *s = str_item(l, "submission_url");
                if (!d || !m || !state_followed(l)) continue;
                if (add_log(b, LOGLIST_TILED, d, m, s, opname, str_item(l, "key"), str_item(l, "log_id")) != 0)
                    goto oom;
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

/* operator_pacing is per operator; with group_by log or single (or merged
 * groups) an operator's logs may be in several processes, each pacing its
 * own requests: each takes 1/N of the rate. */
static void count_operator_processes(struct loglist *ll)
{
    for (size_t i = 0; i < ll->n_logs; i++) {
        unsigned n = 0;
        for (size_t g = 0; g < ll->n_groups; g++) {
            bool has = false;
            for (size_t k = 0; !has && k < ll->groups[g].n_logs; k++)
                has = strcmp(ll->groups[g].logs[k]->operator_name, ll->logs[i].operator_name) == 0;
            n += has;
        }
        ll->logs[i].operator_processes = n ? n : 1;
    }
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
        if (add_log(&b, LOGLIST_RFC6962, c->name && *c->name ? c->name : c->url, c->url, NULL, NULL, NULL, NULL) != 0)
            goto oom;
    }
    for (size_t i = 0; i < cfg->n_static_logs; i++) {
        const struct config_log *c = &cfg->static_logs[i];
        if (!c->url || !*c->url) continue;
        /* A configured static log is checked against no origin: its
         * submission prefix is not known from the config. */
        if (add_log(&b, LOGLIST_TILED, c->name && *c->name ? c->name : c->url, c->url, NULL, NULL, NULL, NULL) != 0)
            goto oom;
    }
    if (b.dropped)
        log_warn("log list: %d logs dropped: at most %d logs are followed", b.dropped, STATS_MAX_LOGS);
    if (out->n_logs == 0) {
        jsondoc_err(err, errlen, "no CT log to follow (log list has no usable log and no custom/static logs)");
        goto err;
    }
    if (build_groups(out, by) != 0 || merge_groups(out, cfg->ingest.max_processes) != 0) goto oom;
    count_operator_processes(out);
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
