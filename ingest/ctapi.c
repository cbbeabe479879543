/* ctapi.c - parsers for CT log responses (get-sth, get-entries, checkpoint). See ctapi.h. */
#include "ingest/ctapi.h"

#include <cjson/cJSON.h>
#include <mbedtls/base64.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
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

int ctapi_entries_parse(const char *json, size_t len, size_t max, struct ctapi_entries *out,
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

int ctapi_verify_tree_head(const uint8_t *spki, size_t spki_len, uint64_t timestamp, uint64_t tree_size,
                           const uint8_t root_hash[32], const uint8_t *sig, size_t sig_len,
                           char *err, size_t errlen)
{
    uint8_t tbs[2 + 8 + 8 + 32], hash[32];
    mbedtls_pk_context pk;
    int rc = -1;

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
    mbedtls_sha256_ret(tbs, sizeof tbs, hash, 0);
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

