/* ctapi.c - parsers for CT log responses (get-sth, get-entries, checkpoint). See ctapi.h. */
#include "ingest/ctapi.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <mbedtls/base64.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/b64.h"
#include "ingest/jsondoc.h"



static int b64_exact(const char *s, size_t slen, uint8_t *out, size_t want)
{
    uint8_t tmp[64];
    size_t olen = 0;
    if (slen > 88) return -1;
    if (b64_decode(tmp, sizeof tmp, &olen, s, slen) != 0) return -1;
    if (olen != want) return -1;
    memcpy(out, tmp, want);
    return 0;
}

int ctapi_sth_parse(const char *json, size_t len, struct ctapi_sth *sth, char *err, size_t errlen)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    const cJSON *h;
    if (!root || !cJSON_IsObject(root)) {
        jsondoc_err(err, errlen, "get-sth: not a JSON object");
        goto err;
    }
    if (jsondoc_u64(root, "tree_size", &sth->tree_size) != 0) {
        jsondoc_err(err, errlen, "get-sth: tree_size missing or not an unsigned integer");
        goto err;
    }
    if (jsondoc_u64(root, "timestamp", &sth->timestamp) != 0) {
        jsondoc_err(err, errlen, "get-sth: timestamp missing or not an unsigned integer");
        goto err;
    }
    h = cJSON_GetObjectItemCaseSensitive(root, "sha256_root_hash");
    if (!cJSON_IsString(h) || b64_exact(h->valuestring, strlen(h->valuestring), sth->root_hash, 32) != 0) {
        jsondoc_err(err, errlen, "get-sth: sha256_root_hash is not base64 of 32 bytes");
        goto err;
    }
    h = cJSON_GetObjectItemCaseSensitive(root, "tree_head_signature");
    sth->signature_len = 0;
    if (cJSON_IsString(h) &&
        mbedtls_base64_decode(sth->signature, sizeof sth->signature, &sth->signature_len,
                              (const unsigned char *)h->valuestring, strlen(h->valuestring)) != 0)
        sth->signature_len = 0;   /* unusable: verification (if any) fails */
    cJSON_Delete(root);
    return 0;
err:
    cJSON_Delete(root);
    return -1;
}

static int b64_into(const cJSON *s, uint8_t **cursor, uint8_t *end, const uint8_t **out, size_t *outlen)
{
    if (!cJSON_IsString(s)) return -1;
    size_t olen = 0, slen = strlen(s->valuestring);
    if (b64_decode(*cursor, (size_t)(end - *cursor), &olen, s->valuestring, slen) != 0)
        return -1;
    *out = *cursor;
    *outlen = olen;
    *cursor += olen;
    return 0;
}

/* ---- get-entries without cJSON ----
 * A get-entries answer is up to a few MB, nearly all of it two base64
 * strings per entry. cJSON copies every string into its own allocation and
 * builds a node per value (a quarter of the ingest CPU); this scanner finds
 * the two strings in place and base64-decodes them straight from the body.
 * It accepts only a strict subset of JSON: the answer as logs write it (an
 * object, "entries" an array of objects, the two fields plain strings
 * without escapes) plus any other members of well-formed JSON without
 * \u escapes. Anything else (escapes in the fields, a duplicate member, a
 * field of another type, odd whitespace, trailing bytes, deep nesting)
 * returns FALLBACK and the answer goes through cJSON, so the two paths never
 * disagree: checked on the corpus and by fuzz_ctapi on random input. */
#define FALLBACK (-2)
#define SCAN_DEPTH 64

struct scan { const char *p, *end; };
struct span { const char *l, *x; size_t ll, xl; };

static void sc_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

/* A string at s->p ('"'): its body [*b, *b + *n). 1 = plain (no escape),
 * 0 = has escapes (valid ones, no \u), FALLBACK otherwise. */
static int sc_string(struct scan *s, const char **b, size_t *n)
{
    int plain = 1;
    if (s->p >= s->end || *s->p != '"') return FALLBACK;
    const char *q = ++s->p;
    /* The common case, a long run without escapes: found with memchr (SIMD
     * in glibc). cJSON keeps control bytes in strings as they are, so only
     * NUL (where strlen would cut cJSON's copy short) sends it to cJSON. */
    const char *quote = memchr(q, '"', (size_t)(s->end - q));
    if (quote && !memchr(q, '\\', (size_t)(quote - q))) {
        if (memchr(q, '\0', (size_t)(quote - q))) return FALLBACK;
        *b = q;
        *n = (size_t)(quote - q);
        s->p = quote + 1;
        return 1;
    }
    for (;;) {
        /* with escapes (in members we skip): byte by byte, strictly */
        while (q < s->end && (unsigned char)*q >= 0x20 && *q != '"' && *q != '\\') q++;
        if (q >= s->end || (unsigned char)*q < 0x20) return FALLBACK;
        if (*q == '"') break;
        if (q + 1 >= s->end || !strchr("\"\\/bfnrt", q[1]) || q[1] == '\0') return FALLBACK;
        plain = 0;
        q += 2;
    }
    *b = s->p;
    *n = (size_t)(q - s->p);
    s->p = q + 1;
    return plain;
}

static int sc_value(struct scan *s, int depth);

static int sc_number(struct scan *s)
{
    const char *q = s->p;
    if (q < s->end && *q == '-') q++;
    if (q >= s->end || *q < '0' || *q > '9') return FALLBACK;
    if (*q == '0') q++;
    else while (q < s->end && *q >= '0' && *q <= '9') q++;
    if (q < s->end && *q == '.') {
        if (++q >= s->end || *q < '0' || *q > '9') return FALLBACK;
        while (q < s->end && *q >= '0' && *q <= '9') q++;
    }
    if (q < s->end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < s->end && (*q == '+' || *q == '-')) q++;
        if (q >= s->end || *q < '0' || *q > '9') return FALLBACK;
        while (q < s->end && *q >= '0' && *q <= '9') q++;
    }
    s->p = q;
    return 0;
}

static int sc_lit(struct scan *s, const char *w, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0) return FALLBACK;
    s->p += n;
    return 0;
}

/* Skips one value (a member we do not use). */
static int sc_value(struct scan *s, int depth)
{
    const char *b;
    size_t n;
    if (depth > SCAN_DEPTH || s->p >= s->end) return FALLBACK;
    switch (*s->p) {
    case '"': return sc_string(s, &b, &n) == FALLBACK ? FALLBACK : 0;
    case 't': return sc_lit(s, "true", 4);
    case 'f': return sc_lit(s, "false", 5);
    case 'n': return sc_lit(s, "null", 4);
    case '{': case '[': {
        char close = *s->p == '{' ? '}' : ']';
        s->p++;
        sc_ws(s);
        if (s->p < s->end && *s->p == close) { s->p++; return 0; }
        for (;;) {
            if (close == '}') {
                if (sc_string(s, &b, &n) == FALLBACK) return FALLBACK;
                sc_ws(s);
                if (s->p >= s->end || *s->p != ':') return FALLBACK;
                s->p++;
                sc_ws(s);
            }
            if (sc_value(s, depth + 1) != 0) return FALLBACK;
            sc_ws(s);
            if (s->p >= s->end) return FALLBACK;
            if (*s->p == close) { s->p++; return 0; }
            if (*s->p != ',') return FALLBACK;
            s->p++;
            sc_ws(s);
        }
    }
    default: return sc_number(s);
    }
}

/* One element of "entries": its two strings (NULL when absent). */
static int sc_entry(struct scan *s, struct span *e)
{
    const char *k;
    size_t kn;
    memset(e, 0, sizeof *e);
    if (s->p >= s->end || *s->p != '{') return FALLBACK;
    s->p++;
    sc_ws(s);
    if (s->p < s->end && *s->p == '}') { s->p++; return 0; }
    for (;;) {
        if (sc_string(s, &k, &kn) != 1) return FALLBACK;
        sc_ws(s);
        if (s->p >= s->end || *s->p != ':') return FALLBACK;
        s->p++;
        sc_ws(s);
        const char **dst = NULL;
        size_t *dlen = NULL;
        if (kn == 10 && memcmp(k, "leaf_input", 10) == 0) { dst = &e->l; dlen = &e->ll; }
        else if (kn == 10 && memcmp(k, "extra_data", 10) == 0) { dst = &e->x; dlen = &e->xl; }
        if (dst) {
            if (*dst || sc_string(s, dst, dlen) != 1) return FALLBACK;   /* twice, not a string, escapes */
        } else if (sc_value(s, 2) != 0) {
            return FALLBACK;
        }
        sc_ws(s);
        if (s->p >= s->end) return FALLBACK;
        if (*s->p == '}') { s->p++; return 0; }
        if (*s->p != ',') return FALLBACK;
        s->p++;
        sc_ws(s);
    }
}

static int b64_span(const char *str, size_t slen, uint8_t **cursor, uint8_t *end, const uint8_t **out,
                    size_t *outlen)
{
    size_t olen = 0;
    if (!str || b64_decode(*cursor, (size_t)(end - *cursor), &olen, str, slen) != 0) return -1;
    *out = *cursor;
    *outlen = olen;
    *cursor += olen;
    return 0;
}

int ctapi_entries_parse_scan(const char *json, size_t len, size_t max, struct ctapi_entries *out)
{
    memset(out, 0, sizeof *out);
    struct scan s = {json, json + len};
    struct span *sp = NULL;
    size_t n = 0, cap = 0, bytes = 0, total = 0;
    bool seen = false;
    const char *k;
    size_t kn;
    sc_ws(&s);
    if (s.p >= s.end || *s.p != '{') return FALLBACK;
    s.p++;
    sc_ws(&s);
    if (s.p < s.end && *s.p == '}') goto fallback;    /* no "entries": cJSON says so */
    for (;;) {
        if (sc_string(&s, &k, &kn) != 1) goto fallback;
        sc_ws(&s);
        if (s.p >= s.end || *s.p != ':') goto fallback;
        s.p++;
        sc_ws(&s);
        if (kn == 7 && memcmp(k, "entries", 7) == 0) {
            if (seen || s.p >= s.end || *s.p != '[') goto fallback;
            seen = true;
            s.p++;
            sc_ws(&s);
            if (s.p < s.end && *s.p == ']') {
                s.p++;
            } else {
                for (;;) {
                    struct span e;
                    if (sc_entry(&s, &e) != 0) goto fallback;
                    if (total++ < max) {
                        if (n == cap) {
                            size_t nc = cap ? cap * 2 : 256;
                            struct span *ns = realloc(sp, nc * sizeof *ns);
                            if (!ns) goto fallback;
                            sp = ns;
                            cap = nc;
                        }
                        sp[n++] = e;
                        if (e.l) bytes += e.ll / 4 * 3 + 3;
                        if (e.x) bytes += e.xl / 4 * 3 + 3;
                    }
                    sc_ws(&s);
                    if (s.p >= s.end) goto fallback;
                    if (*s.p == ']') { s.p++; break; }
                    if (*s.p != ',') goto fallback;
                    s.p++;
                    sc_ws(&s);
                }
            }
        } else if (sc_value(&s, 1) != 0) {
            goto fallback;
        }
        sc_ws(&s);
        if (s.p >= s.end) goto fallback;
        if (*s.p == '}') { s.p++; break; }
        if (*s.p != ',') goto fallback;
        s.p++;
        sc_ws(&s);
    }
    sc_ws(&s);
    if (!seen || s.p != s.end) goto fallback;
    out->v = calloc(n ? n : 1, sizeof *out->v);
    out->arena = malloc(bytes ? bytes : 1);
    if (!out->v || !out->arena) goto fallback;
    uint8_t *cur = out->arena, *end = out->arena + (bytes ? bytes : 1);
    for (size_t i = 0; i < n; i++) {
        struct ctapi_entry *e = &out->v[i];
        if (b64_span(sp[i].l, sp[i].ll, &cur, end, &e->leaf_input, &e->leaf_len) != 0 ||
            b64_span(sp[i].x, sp[i].xl, &cur, end, &e->extra_data, &e->extra_len) != 0)
            e->bad = 1;
    }
    out->n = n;
    free(sp);
    return 0;
fallback:
    free(sp);
    ctapi_entries_free(out);
    return FALLBACK;
}

int ctapi_entries_parse(const char *json, size_t len, size_t max, struct ctapi_entries *out,
                        char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (ctapi_entries_parse_scan(json, len, max, out) == 0) return 0;
    return ctapi_entries_parse_cjson(json, len, max, out, err, errlen);
}

int ctapi_entries_parse_cjson(const char *json, size_t len, size_t max, struct ctapi_entries *out,
                              char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    cJSON *root;
    const cJSON *arr, *it;
    size_t n = 0, cap = 0, i = 0;
    uint8_t *cur, *end;

    arr = jsondoc_member(json, len, "entries", cJSON_Array, "get-entries", &root, err, errlen);
    if (!arr)
        goto err;
    /* One arena for all decoded bytes: base64 shrinks 4 -> 3. */
    cJSON_ArrayForEach(it, arr) {
        if (n == max) break;
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(it, "leaf_input");
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(it, "extra_data");
        if (cJSON_IsString(l)) cap += strlen(l->valuestring) / 4 * 3 + 3;
        if (cJSON_IsString(x)) cap += strlen(x->valuestring) / 4 * 3 + 3;
        n++;
    }
    out->v = calloc(n ? n : 1, sizeof *out->v);
    out->arena = malloc(cap ? cap : 1);
    if (!out->v || !out->arena) {
        jsondoc_err(err, errlen, "get-entries: out of memory");
        goto err;
    }
    cur = out->arena;
    end = out->arena + (cap ? cap : 1);
    cJSON_ArrayForEach(it, arr) {
        if (i == n) break;
        struct ctapi_entry *e = &out->v[i++];
        if (b64_into(cJSON_GetObjectItemCaseSensitive(it, "leaf_input"), &cur, end, &e->leaf_input, &e->leaf_len) != 0 ||
            b64_into(cJSON_GetObjectItemCaseSensitive(it, "extra_data"), &cur, end, &e->extra_data, &e->extra_len) != 0)
            e->bad = 1;
    }
    out->n = n;
    cJSON_Delete(root);
    return 0;
err:
    cJSON_Delete(root);
    ctapi_entries_free(out);
    return -1;
}

void ctapi_entries_free(struct ctapi_entries *e)
{
    free(e->v);
    free(e->arena);
    memset(e, 0, sizeof *e);
}

/* ---- checkpoint ---- */

/* Returns the length of the line starting at p (without '\n'), or -1 when
 * no newline terminates it. */
static long line_len(const char *p, const char *end)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    return nl ? nl - p : -1;
}

int ctapi_checkpoint_parse(const char *text, size_t len, struct ctapi_checkpoint *cp,
                           char *err, size_t errlen)
{
    static const char dash[] = "\xe2\x80\x94 ";  /* U+2014 EM DASH + space */
    const char *p = text, *end = text + len;
    long l;
    uint64_t size = 0;

    memset(cp, 0, sizeof *cp);
    /* origin */
    if ((l = line_len(p, end)) <= 0 || (size_t)l >= sizeof cp->origin) {
        jsondoc_err(err, errlen, "checkpoint: missing or oversized origin line");
        return -1;
    }
    for (long i = 0; i < l; i++) {
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f) {
            jsondoc_err(err, errlen, "checkpoint: control character in origin");
            return -1;
        }
    }
    memcpy(cp->origin, p, (size_t)l);
    p += l + 1;
    /* tree size: decimal, no leading zeros, fits u64 */
    if ((l = line_len(p, end)) <= 0 || l > 20 || (l > 1 && p[0] == '0')) {
        jsondoc_err(err, errlen, "checkpoint: bad tree size line");
        return -1;
    }
    for (long i = 0; i < l; i++) {
        if (p[i] < '0' || p[i] > '9') {
            jsondoc_err(err, errlen, "checkpoint: tree size is not decimal");
            return -1;
        }
        uint64_t d = (uint64_t)(p[i] - '0');
        if (size > (UINT64_MAX - d) / 10) {
            jsondoc_err(err, errlen, "checkpoint: tree size overflows");
            return -1;
        }
        size = size * 10 + d;
    }
    cp->tree_size = size;
    p += l + 1;
    /* root hash */
    if ((l = line_len(p, end)) <= 0 || b64_exact(p, (size_t)l, cp->root_hash, 32) != 0) {
        jsondoc_err(err, errlen, "checkpoint: root hash is not base64 of 32 bytes");
        return -1;
    }
    p += l + 1;
    /* extension lines until the blank line */
    for (;;) {
        if ((l = line_len(p, end)) < 0) {
            jsondoc_err(err, errlen, "checkpoint: no blank line before signatures");
            return -1;
        }
        p += l + 1;
        if (l == 0) break;
    }
    /* signature lines: "\u2014 name base64" */
    while (p < end) {
        if ((l = line_len(p, end)) < 0) {
            jsondoc_err(err, errlen, "checkpoint: signature line not terminated");
            return -1;
        }
        if ((size_t)l < sizeof dash - 1 + 3 || memcmp(p, dash, sizeof dash - 1) != 0) {
            jsondoc_err(err, errlen, "checkpoint: malformed signature line");
            return -1;
        }
        const char *name = p + sizeof dash - 1, *le = p + l;
        const char *sp = memchr(name, ' ', (size_t)(le - name));
        if (!sp || sp == name || sp + 1 >= le) {
            jsondoc_err(err, errlen, "checkpoint: signature line lacks name or signature");
            return -1;
        }
        uint8_t sig[512];
        size_t olen = 0;
        if ((size_t)(le - sp - 1) > 680 ||
            mbedtls_base64_decode(sig, sizeof sig, &olen, (const unsigned char *)sp + 1, (size_t)(le - sp - 1)) != 0 ||
            olen < 5) {
            jsondoc_err(err, errlen, "checkpoint: signature is not base64 of key id + signature");
            return -1;
        }
        cp->n_signatures++;
        p += l + 1;
    }
    if (cp->n_signatures == 0) {
        jsondoc_err(err, errlen, "checkpoint: no signature lines");
        return -1;
    }
    return 0;
}

/* ---- signatures ---- */

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) { p[i] = (uint8_t)v; v >>= 8; }
}

/* The tree head signature through mbedTLS: for a key libcrypto does not
 * take (mbedtls_pk_parse_public_key also reads a bare PKCS#1 RSA key). */
static int verify_mbedtls(const uint8_t *spki, size_t spki_len, const uint8_t *tbs, size_t tbs_len,
                          const uint8_t *sig, size_t sig_len, char *err, size_t errlen)
{
    uint8_t hash[32];
    mbedtls_pk_context pk;
    int rc = -1;
    mbedtls_sha256_ret(tbs, tbs_len, hash, 0);
    mbedtls_pk_init(&pk);
    if (mbedtls_pk_parse_public_key(&pk, spki, spki_len) != 0) {
        jsondoc_err(err, errlen, "log key is not a DER public key");
        goto out;
    }
    if ((sig[1] == 3) != (mbedtls_pk_get_type(&pk) == MBEDTLS_PK_ECKEY)) {
        jsondoc_err(err, errlen, "tree head signature algorithm does not match the log key");
        goto out;
    }
    if (mbedtls_pk_verify(&pk, MBEDTLS_MD_SHA256, hash, sizeof hash, sig + 4, sig_len - 4) != 0) {
        jsondoc_err(err, errlen, "tree head signature does not verify");
        goto out;
    }
    rc = 0;
out:
    mbedtls_pk_free(&pk);
    return rc;
}

/* Log keys as libcrypto objects, parsed once: d2i_PUBKEY costs about as
 * much as the verify itself (OpenSSL 3's decoders, the point check). A
 * process follows a few dozen logs at most; past KEY_CACHE_MAX keys the
 * cache starts over. Single-threaded, like all of ingest. */
#define KEY_CACHE_MAX 64
#define KEY_MAX 1024
static struct { uint8_t der[KEY_MAX]; size_t len; EVP_PKEY *pk; } key_cache[KEY_CACHE_MAX];
static size_t n_keys;

static EVP_PKEY *key_get(const uint8_t *spki, size_t spki_len)
{
    for (size_t i = 0; i < n_keys; i++)
        if (key_cache[i].len == spki_len && memcmp(key_cache[i].der, spki, spki_len) == 0) return key_cache[i].pk;
    const unsigned char *p = spki;
    EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, (long)spki_len);
    if (!pk || p != spki + spki_len) {
        EVP_PKEY_free(pk);
        return NULL;
    }
    if (spki_len > KEY_MAX) return pk;   /* used once, freed by the caller */
    if (n_keys == KEY_CACHE_MAX) {
        for (size_t i = 0; i < n_keys; i++) EVP_PKEY_free(key_cache[i].pk);
        n_keys = 0;
    }
    memcpy(key_cache[n_keys].der, spki, spki_len);
    key_cache[n_keys].len = spki_len;
    key_cache[n_keys].pk = pk;
    n_keys++;
    return pk;
}

/* Verifies with libcrypto: an ECDSA P-256 verify costs ~60 us there and
 * ~1.8 ms with mbedTLS 2.28 (portable bignum code), and a server following
 * 50 logs verifies up to 50 moving tree heads a second: with mbedTLS that
 * alone was ~9 % of a core, four times everything else of the steady state.
 * 1 = the key is not one libcrypto reads (the caller tries mbedTLS). */
static int verify_libcrypto(const uint8_t *spki, size_t spki_len, const uint8_t *tbs, size_t tbs_len,
                            const uint8_t *sig, size_t sig_len, char *err, size_t errlen)
{
    EVP_PKEY *pk = key_get(spki, spki_len);
    bool own = spki_len > KEY_MAX;   /* not cached */
    EVP_MD_CTX *ctx = NULL;
    int rc = -1;
    if (!pk) return 1;
    int type = EVP_PKEY_get_base_id(pk);
    if (type != EVP_PKEY_EC && type != EVP_PKEY_RSA) {
        if (own) EVP_PKEY_free(pk);
        return 1;
    }
    if ((sig[1] == 3) != (type == EVP_PKEY_EC)) {
        jsondoc_err(err, errlen, "tree head signature algorithm does not match the log key");
        goto out;
    }
    static EVP_MD *sha256;   /* fetched once: an implicit fetch per call costs ~10 us */
    if (!sha256) sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    ctx = EVP_MD_CTX_new();
    if (!ctx || !sha256 || EVP_DigestVerifyInit(ctx, NULL, sha256, NULL, pk) != 1) {
        rc = 1;   /* libcrypto cannot (a restricted provider): mbedTLS can */
        goto out;
    }
    if (EVP_DigestVerify(ctx, sig + 4, sig_len - 4, tbs, tbs_len) != 1) {
        jsondoc_err(err, errlen, "tree head signature does not verify");
        goto out;
    }
    rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    if (own) EVP_PKEY_free(pk);
    return rc;
}

int ctapi_verify_tree_head(const uint8_t *spki, size_t spki_len, uint64_t timestamp, uint64_t tree_size,
                           const uint8_t root_hash[32], const uint8_t *sig, size_t sig_len,
                           char *err, size_t errlen)
{
    uint8_t tbs[2 + 8 + 8 + 32];

    if (sig_len < 4 || sig[0] != 4 || (sig[1] != 1 && sig[1] != 3) ||
        ((size_t)sig[2] << 8 | sig[3]) != sig_len - 4) {
        jsondoc_err(err, errlen, "tree head signature is not a SHA-256 RSA/ECDSA DigitallySigned");
        return -1;
    }
    tbs[0] = 0;   /* v1 */
    tbs[1] = 1;   /* tree_hash */
    put_u64(tbs + 2, timestamp);
    put_u64(tbs + 10, tree_size);
    memcpy(tbs + 18, root_hash, 32);
    int rc = verify_libcrypto(spki, spki_len, tbs, sizeof tbs, sig, sig_len, err, errlen);
    if (rc == 1) rc = verify_mbedtls(spki, spki_len, tbs, sizeof tbs, sig, sig_len, err, errlen);
    return rc;
}

int ctapi_checkpoint_verify(const char *text, size_t len, const struct ctapi_checkpoint *cp,
                            const uint8_t *spki, size_t spki_len, char *err, size_t errlen)
{
    static const char dash[] = "\xe2\x80\x94 ";
    uint8_t log_id[32], kh[32], key_id[4];
    size_t ol = strlen(cp->origin);
    const char *p = text, *end = text + len;
    mbedtls_sha256_context sc;

    /* key id = SHA-256(origin || '\n' || 0x05 || log_id)[0:4] */
    mbedtls_sha256_ret(spki, spki_len, log_id, 0);
    mbedtls_sha256_init(&sc);
    mbedtls_sha256_starts_ret(&sc, 0);
    mbedtls_sha256_update_ret(&sc, (const unsigned char *)cp->origin, ol);
    mbedtls_sha256_update_ret(&sc, (const unsigned char *)"\n\x05", 2);
    mbedtls_sha256_update_ret(&sc, log_id, 32);
    mbedtls_sha256_finish_ret(&sc, kh);
    mbedtls_sha256_free(&sc);
    memcpy(key_id, kh, 4);

    /* signature lines follow the first blank line */
    const char *blank = NULL;
    for (const char *q = text; q + 1 < end; q++)
        if (q[0] == '\n' && q[1] == '\n') { blank = q + 2; break; }
    for (p = blank; p && p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) break;
        size_t l = (size_t)(nl - p);
        if (l > sizeof dash - 1 + ol + 1 && memcmp(p, dash, sizeof dash - 1) == 0 &&
            memcmp(p + sizeof dash - 1, cp->origin, ol) == 0 && p[sizeof dash - 1 + ol] == ' ') {
            const char *b = p + sizeof dash - 1 + ol + 1;
            uint8_t sig[700];
            size_t sl = 0;
            if ((size_t)(nl - b) <= 900 &&
                mbedtls_base64_decode(sig, sizeof sig, &sl, (const unsigned char *)b, (size_t)(nl - b)) == 0 &&
                sl > 12 && memcmp(sig, key_id, 4) == 0) {
                uint64_t ts = 0;
                for (int i = 0; i < 8; i++) ts = ts << 8 | sig[4 + i];
                return ctapi_verify_tree_head(spki, spki_len, ts, cp->tree_size, cp->root_hash, sig + 12, sl - 12,
                                              err, errlen);
            }
        }
        p = nl + 1;
    }
    jsondoc_err(err, errlen, "checkpoint has no signature by the log's key");
    return -1;
}

void ctapi_hex32(const uint8_t *in, char out[65])
{
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hx[in[i] >> 4];
        out[2 * i + 1] = hx[in[i] & 15];
    }
    out[64] = '\0';
}

