/* filter.c - interned server-side filters and their evaluation (filter.h).
 *
 * The fields a filter looks at are read from the record's lite JSON, once
 * per message per worker: the bytes are this server's own rendering, with
 * the fixed key order of docs/wire-format.md, so a short scan for known keys
 * replaces a general JSON parse (which would allocate per message); a key
 * that is not found makes the message match nothing. Domain globs use
 * fnmatch(3), regexes PCRE2 (JIT when available) with match, depth and heap
 * limits. */
#include "fanout/filter.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "fanout/filter_query.h"

#define META_DOMAINS 2048        /* domains kept per message */
#define META_BYTES 65536         /* their text */

/* What filters read of one message. */
struct meta {
    uint64_t pos;                /* UINT64_MAX: none */
    bool ok, precert, ca;
    uint32_t ndom;
    uint32_t dom_off[META_DOMAINS];
    char text[META_BYTES];       /* NUL-terminated domains, then issuer, name, url */
    size_t used;
    const char *issuer, *name, *url;   /* into text; lowercase; url without scheme and trailing / */
    char *json;                  /* the message's JSON when the ring holds it in pieces */
    size_t json_cap;
};

/* One recent record's results: bit f->id of done says evaluated, of res
 * the result. Direct-mapped by hashed position; a record evicted by another
 * is only evaluated again. Slot i's done and res words are its 2 x
 * filter_set.words words of filter_set.bits (rec_bits). Zero (as calloc
 * leaves it) is an empty slot, so nothing is written at start: the arrays
 * take memory only once filtered clients use them. */
struct rec_results {
    uint64_t pos1;               /* the record's position + 1; 0: empty */
};

struct filter_set {
    const struct config *cfg;
    struct rec_results *recs;
    uint32_t nrecs;              /* power of two */
    uint32_t words;              /* 64-bit words per bitset: max_per_worker / 64, rounded up */
    uint64_t *bits;              /* every record's done and res words */
    uint32_t *free_ids, nfree, next_id;
    struct filter **buckets;
    uint32_t nbuckets, count, clients;
    struct filter *list;
    pcre2_match_context *mctx;
    pcre2_compile_context *cctx;
    pcre2_match_data *md;
    uint64_t pend_evals, pend_matches, pend_limit;
    int64_t pend_distinct, pend_clients;   /* gauge deltas */
    struct meta meta;
};

/* Slot i's done words; its res words follow them. */
static uint64_t *rec_bits(const struct filter_set *fs, uint32_t i)
{
    return fs->bits + (size_t)i * 2 * fs->words;
}

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

struct filter_set *filter_set_new(const struct config *cfg)
{
    struct filter_set *fs = calloc(1, sizeof *fs);
    if (!fs) return NULL;
    fs->cfg = cfg;
    uint32_t want = cfg->filters.max_per_worker * 2, n = 64;
    while (n < want && n < (1u << 20)) n <<= 1;
    fs->nbuckets = n;
    fs->buckets = calloc(n, sizeof *fs->buckets);
    fs->mctx = pcre2_match_context_create(NULL);
    fs->cctx = pcre2_compile_context_create(NULL);
    fs->md = pcre2_match_data_create(1, NULL);
    if (!fs->buckets || !fs->mctx || !fs->cctx || !fs->md) {
        filter_set_free(fs);
        return NULL;
    }
    /* results for about two history windows of records, within 16 MiB
     * (2 MiB with the defaults; touched only once filtered clients exist) */
    fs->words = (cfg->filters.max_per_worker + 63) / 64;
    uint32_t nr = 64;
    while (nr < 2u * config_history_messages(cfg) + 2u && nr < (1u << 16) &&
           (uint64_t)nr * 2 * 2 * fs->words * sizeof(uint64_t) <= (16u << 20))
        nr <<= 1;
    fs->nrecs = nr;
    fs->recs = calloc(nr, sizeof *fs->recs);
    fs->bits = calloc((size_t)nr * 2 * fs->words, sizeof *fs->bits);
    fs->free_ids = calloc(cfg->filters.max_per_worker, sizeof *fs->free_ids);
    if (!fs->recs || !fs->bits || !fs->free_ids) {
        filter_set_free(fs);
        return NULL;
    }
    pcre2_set_match_limit(fs->mctx, cfg->filters.regex_match_limit);
    pcre2_set_depth_limit(fs->mctx, cfg->filters.regex_match_limit);
    pcre2_set_heap_limit(fs->mctx, 1024);   /* KiB */
    pcre2_set_max_pattern_length(fs->cctx, cfg->filters.max_pattern_bytes);
    pcre2_set_parens_nest_limit(fs->cctx, 32);
    fs->meta.pos = UINT64_MAX;
    return fs;
}

static void filter_free(struct filter *f)
{
    free(f->vals);
    for (uint32_t i = 0; i < f->nre; i++) pcre2_code_free(f->re[i]);
    free(f->re);
    free(f->dom);
    free(f->iss);
    free(f->log);
    free(f->key);
    free(f);
}

void filter_set_free(struct filter_set *fs)
{
    if (!fs) return;
    while (fs->list) {
        struct filter *f = fs->list;
        fs->list = f->next;
        filter_free(f);
    }
    free(fs->meta.json);
    free(fs->buckets);
    free(fs->recs);
    free(fs->bits);
    free(fs->free_ids);
    pcre2_match_context_free(fs->mctx);
    pcre2_compile_context_free(fs->cctx);
    pcre2_match_data_free(fs->md);
    free(fs);
}

struct filter *filter_first(const struct filter_set *fs) { return fs->list; }
uint32_t filter_count(const struct filter_set *fs) { return fs->count; }

/* A catastrophic pattern shows itself on a short adversarial subject: a
 * regex that hits the match limit there is refused before the upgrade
 * rather than silently matching nothing later. */
static const char *const probes[] = {
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!",
    "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.!",
    "xn--aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-aaaaaaaaaaaaaaaaaaaa.xn--aaaaaaaaaaaaaaaaaaaaaaaaa.example.com",
};

static int compile_regex(struct filter_set *fs, const char *pat, pcre2_code **out, char *why, size_t whyn)
{
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, strlen(pat), PCRE2_CASELESS | PCRE2_NEVER_BACKSLASH_C,
                                   &err, &off, fs->cctx);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        snprintf(why, whyn, "regex \"%.100s\": %s at offset %zu", pat, (const char *)msg, (size_t)off);
        return -1;
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);   /* without JIT the interpreter runs */
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        int rc = pcre2_match(re, (PCRE2_SPTR)probes[i], strlen(probes[i]), 0, 0, fs->md, fs->mctx);
        if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            snprintf(why, whyn, "regex \"%.100s\" is too costly: %s on a test domain", pat, (const char *)msg);
            pcre2_code_free(re);
            return -1;
        }
    }
    *out = re;
    return 0;
}

/* Builds the matchers of a new filter from its key (kind letter, value,
 * '\n' per line); takes ownership of key. */
static struct filter *filter_build(struct filter_set *fs, char *key, size_t keylen, char *why, size_t whyn)
{
    struct filter *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(why, whyn, "out of memory");
        free(key);
        return NULL;
    }
    f->key = key;
    f->keylen = keylen;
    f->precert = f->ca = -1;
    uint32_t n = 0;
    for (size_t i = 0; i < keylen; i++) n += key[i] == '\n';
    f->dom = calloc(n, sizeof *f->dom);
    f->re = calloc(n, sizeof *f->re);
    f->iss = calloc(n, sizeof *f->iss);
    f->log = calloc(n, sizeof *f->log);
    f->vals = malloc(keylen + 1);
    if (!f->dom || !f->re || !f->iss || !f->log || !f->vals) {
        snprintf(why, whyn, "out of memory");
        filter_free(f);
        return NULL;
    }
    memcpy(f->vals, key, keylen + 1);
    for (char *s = f->vals; *s;) {
        char *e = strchr(s, '\n');
        *e = 0;
        char kind = *s++;
        switch (kind) {
        case FQ_DOMAIN: f->dom[f->ndom++] = s; break;
        case FQ_ISSUER: f->iss[f->niss++] = s; break;
        case FQ_LOG: f->log[f->nlog++] = s; break;
        case FQ_PRECERT: f->precert = (int8_t)(*s == '1'); break;
        case FQ_CA: f->ca = (int8_t)(*s == '1'); break;
        case FQ_REGEX: {
            pcre2_code *re;
            if (compile_regex(fs, s, &re, why, whyn) < 0) {
                filter_free(f);
                return NULL;
            }
            f->re[f->nre++] = re;
            break;
        }
        }
        s = e + 1;
    }
    return f;
}

int filter_acquire(struct filter_set *fs, struct http_str query, struct filter **out, int *status,
                   char *why, size_t whyn)
{
    struct filter_limits lim = { fs->cfg->filters.max_patterns, fs->cfg->filters.max_pattern_bytes };
    char *key;
    size_t keylen;
    *out = NULL;
    int rc = filter_query_parse(query.p, query.len, &lim, &key, &keylen, why, whyn);
    if (rc < 0) *status = 400;
    if (rc <= 0) return rc;
    if (!fs->cfg->filters.enabled) {
        free(key);
        *status = 400;
        snprintf(why, whyn, "filters are disabled on this server (filters.enabled)");
        return -1;
    }
    uint64_t h = fnv1a(key, keylen);
    struct filter **b = &fs->buckets[h & (fs->nbuckets - 1)];
    for (struct filter *f = *b; f; f = f->hnext) {
        if (f->hash == h && f->keylen == keylen && memcmp(f->key, key, keylen) == 0) {
            free(key);
            f->refs++;
            fs->clients++;
            fs->pend_clients++;
            *out = f;
            return 1;
        }
    }
    if (fs->count >= fs->cfg->filters.max_per_worker) {
        free(key);
        *status = 429;
        snprintf(why, whyn, "too many distinct filters on this worker (filters.max_per_worker = %u); "
                 "try again later or use a filter other clients use", fs->cfg->filters.max_per_worker);
        return -1;
    }
    struct filter *f = filter_build(fs, key, keylen, why, whyn);
    if (!f) {
        *status = 400;
        return -1;
    }
    /* a dense id for the result bits; a reused id's old results go */
    f->id = fs->nfree ? fs->free_ids[--fs->nfree] : fs->next_id++;
    uint64_t bit = 1ull << (f->id & 63);
    for (uint32_t i = 0; i < fs->nrecs; i++)
        if (fs->recs[i].pos1) rec_bits(fs, i)[f->id >> 6] &= ~bit;   /* done */
    f->hash = h;
    f->refs = 1;
    f->hnext = *b;
    *b = f;
    f->next = fs->list;
    if (fs->list) fs->list->prev = f;
    fs->list = f;
    fs->count++;
    fs->clients++;
    fs->pend_distinct++;
    fs->pend_clients++;
    *out = f;
    return 1;
}

void filter_hold(struct filter *f) { f->refs++; }

void filter_release(struct filter_set *fs, struct filter *f)
{
    fs->clients--;
    fs->pend_clients--;
    filter_unhold(fs, f);
}

void filter_unhold(struct filter_set *fs, struct filter *f)
{
    if (--f->refs) return;
    struct filter **b = &fs->buckets[f->hash & (fs->nbuckets - 1)];
    while (*b != f) b = &(*b)->hnext;
    *b = f->hnext;
    if (f->prev) f->prev->next = f->next;
    else fs->list = f->next;
    if (f->next) f->next->prev = f->prev;
    fs->count--;
    fs->pend_distinct--;
    fs->free_ids[fs->nfree++] = f->id;
    filter_free(f);
}

void filter_publish_counters(struct filter_set *fs, struct stats *st, unsigned slot)
{
    if (fs->pend_distinct) stats_add(st, slot, ST_FILTERS_DISTINCT, fs->pend_distinct);
    if (fs->pend_clients) stats_add(st, slot, ST_CLIENTS_FILTERED, fs->pend_clients);
    if (fs->pend_evals) stats_add(st, slot, ST_FILTER_EVALUATIONS, (int64_t)fs->pend_evals);
    if (fs->pend_matches) stats_add(st, slot, ST_FILTER_MATCHES, (int64_t)fs->pend_matches);
    if (fs->pend_limit) stats_add(st, slot, ST_FILTER_REGEX_LIMIT, (int64_t)fs->pend_limit);
    fs->pend_distinct = fs->pend_clients = 0;
    fs->pend_evals = fs->pend_matches = fs->pend_limit = 0;
}

/* ---- one message's fields ------------------------------------------------ */

/* Copies the JSON string starting after its opening quote at p (end: limit)
 * into m->text, decoding escapes; lowercase when lower. Returns the
 * position after the closing quote, or NULL. */
static const char *take_string(struct meta *m, const char *p, const char *end, bool lower)
{
    while (p < end && *p != '"') {
        char c = *p++;
        if (c == '\\') {
            if (p >= end) return NULL;
            char e = *p++;
            switch (e) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u': {
                /* the writer escapes only control characters this way */
                if (end - p < 4) return NULL;
                unsigned v = 0;
                for (int i = 0; i < 4; i++) {
                    char h = p[i];
                    v = v * 16 + (unsigned)(h >= '0' && h <= '9' ? h - '0' : (h | 32) - 'a' + 10);
                }
                p += 4;
                c = v < 0x80 ? (char)v : '?';
                break;
            }
            default: c = e; break;   /* \" \\ \/ */
            }
        }
        if (lower && c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (m->used + 1 >= sizeof m->text) return NULL;
        m->text[m->used++] = c;
    }
    if (p >= end || m->used >= sizeof m->text) return NULL;
    m->text[m->used++] = 0;
    return p + 1;
}

static const char *find(const char *p, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    if (p >= end) return NULL;
    const char *r = memmem(p, (size_t)(end - p), lit, n);
    return r ? r + n : NULL;
}

static bool meta_extract_json(struct meta *m, const char *j, size_t len);

static bool meta_extract(struct meta *m, const struct ring_record *rec)
{
    /* lite (full when there is none): lite is stored whole; a format the
     * ring holds in pieces is copied into m->json, which grows to the
     * largest message seen */
    enum ring_format fmt = rec->json[RING_LITE].len ? RING_LITE : RING_FULL;
    size_t jlen = rec->json[fmt].len;
    if (rec->segs[fmt].len && jlen > m->json_cap) {
        if (jlen > rec->total_len) return false;   /* torn: being overwritten */
        char *nj = realloc(m->json, jlen);
        if (!nj) return false;
        m->json = nj;
        m->json_cap = jlen;
    }
    const char *j = ring_record_json(NULL, rec, fmt, m->json, m->json_cap, &jlen);
    if (!j) return false;
    return meta_extract_json(m, j, jlen);
}

/* The fields filters look at, from a message's lite (or full) JSON. */
static bool meta_extract_json(struct meta *m, const char *j, size_t len)
{
    const char *end = j + len, *p, *q;
    m->used = 0;
    m->ndom = 0;
    if (!(p = find(j, end, "\"update_type\":\""))) return false;
    m->precert = end - p > 7 && memcmp(p, "Precert", 7) == 0;
    if (!(p = find(p, end, "\"leaf_cert\":{")) || !(p = find(p, end, "\"issuer\":{")) ||
        !(p = find(p, end, "\"aggregated\":\"")))
        return false;
    size_t at = m->used;
    if (!(p = take_string(m, p, end, true))) return false;
    m->issuer = m->text + at;
    if (!(q = find(p, end, "\"is_ca\":"))) return false;
    m->ca = end - q >= 4 && memcmp(q, "true", 4) == 0;
    if (!(p = find(q, end, "\"all_domains\":["))) return false;
    while (p < end && *p == '"') {
        at = m->used;
        if (!(p = take_string(m, p + 1, end, false))) return false;
        if (m->ndom < META_DOMAINS) m->dom_off[m->ndom++] = (uint32_t)at;
        if (p < end && *p == ',') p++;
    }
    if (!(p = find(p, end, "\"source\":{\"name\":\""))) return false;
    at = m->used;
    if (!(p = take_string(m, p, end, true))) return false;
    m->name = m->text + at;
    if (!(p = find(p, end, "\"url\":\""))) return false;
    at = m->used;
    if (!(p = take_string(m, p, end, true))) return false;
    char *u = m->text + at;
    if (!strncmp(u, "https://", 8)) u += 8;
    else if (!strncmp(u, "http://", 7)) u += 7;
    size_t ul = strlen(u);
    while (ul > 1 && u[ul - 1] == '/') u[--ul] = 0;
    m->url = u;
    return true;
}

/* ---- evaluation ------------------------------------------------------------- */

static bool eval(struct filter_set *fs, const struct filter *f, const struct meta *m)
{
    if (!m->ok) return false;
    if (f->precert >= 0 && m->precert != (f->precert == 1)) return false;
    if (f->ca >= 0 && m->ca != (f->ca == 1)) return false;
    if (f->niss) {
        bool any = false;
        for (uint32_t i = 0; i < f->niss && !any; i++) any = strstr(m->issuer, f->iss[i]) != NULL;
        if (!any) return false;
    }
    if (f->nlog) {
        bool any = false;
        for (uint32_t i = 0; i < f->nlog && !any; i++)
            any = !strcmp(m->name, f->log[i]) || !strcmp(m->url, f->log[i]);
        if (!any) return false;
    }
    if (f->ndom) {
        bool any = false;
        for (uint32_t d = 0; d < m->ndom && !any; d++)
            for (uint32_t i = 0; i < f->ndom && !any; i++)
                any = fnmatch(f->dom[i], m->text + m->dom_off[d], FNM_CASEFOLD) == 0;
        if (!any) return false;
    }
    if (f->nre) {
        bool any = false;
        for (uint32_t d = 0; d < m->ndom && !any; d++) {
            const char *s = m->text + m->dom_off[d];
            for (uint32_t i = 0; i < f->nre && !any; i++) {
                int rc = pcre2_match(f->re[i], (PCRE2_SPTR)s, strlen(s), 0, 0, fs->md, fs->mctx);
                if (rc >= 0) any = true;
                else if (rc != PCRE2_ERROR_NOMATCH) fs->pend_limit++;
            }
        }
        if (!any) return false;
    }
    return true;
}

bool filter_match_json(struct filter_set *fs, struct filter *f, const char *json, size_t len)
{
    struct meta *m = &fs->meta;
    m->pos = UINT64_MAX;   /* not a ring record: the next filter_match extracts afresh */
    m->ok = meta_extract_json(m, json, len);
    bool r = eval(fs, f, m);
    fs->pend_evals++;
    fs->pend_matches += r;
    return r;
}

bool filter_match(struct filter_set *fs, struct filter *f, const struct ring_record *rec, uint64_t pos)
{
    uint32_t slot = (uint32_t)((pos * 0x9e3779b97f4a7c15ull) >> 40 & (fs->nrecs - 1));
    struct rec_results *rr = &fs->recs[slot];
    uint64_t *done = rec_bits(fs, slot), *res = done + fs->words;
    uint32_t word = f->id >> 6;
    uint64_t bit = 1ull << (f->id & 63);
    if (rr->pos1 != pos + 1) {   /* a new record (or a collision): start its results afresh */
        rr->pos1 = pos + 1;
        memset(done, 0, fs->words * sizeof *done);
    } else if (done[word] & bit) {
        return (res[word] & bit) != 0;
    }
    struct meta *m = &fs->meta;
    if (m->pos != pos) {
        m->pos = pos;
        m->ok = meta_extract(m, rec);
    }
    bool r = eval(fs, f, m);
    done[word] |= bit;
    if (r) res[word] |= bit;
    else res[word] &= ~bit;
    fs->pend_evals++;
    fs->pend_matches += r;
    return r;
}
