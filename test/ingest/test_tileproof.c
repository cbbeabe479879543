/* test_tileproof.c - tileproof_check (ingest/tileproof.h) against the real
 * Navigli data tiles and their tree heads.
 *
 * Expected values are the fixture's: the root hashes of
 * static-ct/navigli2025h2.computed/tree_heads.json (RFC 6962 tree heads at
 * sizes 1 .. 1024, computed from the log's own level-0 hashes). The hash
 * tiles served to tileproof_check are built here from the entries' leaf
 * hashes with the RFC 6962 definition of the tree hash (a plain recursive
 * split at the largest power of two), not with the code under test.
 *
 * For every tree head and every data tile inside it, the proof must hold;
 * then one bit changed in the root, in a leaf, or in a served hash tile must
 * each be refused with its reason.
 * Usage: test_tileproof <testdata dir> */
#include <cjson/cJSON.h>
#include <mbedtls/sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/file.h"
#include "ingest/ctentry.h"
#include "ingest/tileproof.h"
#include "test/unit_check.h"

#define NLEAVES 1024   /* the fixture's four full data tiles */

static const char *testdata;
static uint8_t leaves[NLEAVES][32];   /* leaf hashes, from the data tiles */
static uint8_t level1[NLEAVES / 256][32]; /* roots of the full level-0 tiles */

/* RFC 6962 section 2.1: MTH of n >= 1 leaf hashes. */
static void mth(const uint8_t (*h)[32], size_t n, uint8_t out[32])
{
    if (n == 1) {
        memcpy(out, h[0], 32);
        return;
    }
    size_t k = 1;
    while (k * 2 < n) k *= 2;
    uint8_t buf[65];
    buf[0] = 0x01;
    mth(h, k, buf + 1);
    mth(h + k, n - k, buf + 33);
    mbedtls_sha256_ret(buf, sizeof buf, out, 0);
}

static int load_leaves(void)
{
    size_t i = 0;
    for (unsigned t = 0; t < NLEAVES / 256; t++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/static-ct/navigli2025h2/tile/data/%03u", testdata, t);
        FILE *f = fopen(path, "rb");
        char *body = NULL;
        size_t len = 0;
        if (!f || file_read_all(f, &body, &len) != 0) {
            fprintf(stderr, "cannot read %s\n", path);
            if (f) fclose(f);
            return -1;
        }
        fclose(f);
        size_t off = 0;
        for (unsigned k = 0; k < 256; k++) {
            struct ct_entry e;
            size_t used;
            char err[128];
            if (ct_decode_tile_entry((const uint8_t *)body + off, len - off, &used, &e, err, sizeof err) != 0) {
                fprintf(stderr, "%s entry %u: %s\n", path, k, err);
                free(body);
                return -1;
            }
            tileproof_leaf_hash(&e, leaves[i++]);
            off += used;
        }
        CHECK(off == len);   /* exactly 256 entries in a full tile */
        free(body);
        mth((const uint8_t (*)[32])leaves[t * 256], 256, level1[t]);
    }
    return 0;
}

/* The hash tiles of the tree; corrupt_level/corrupt_n: that tile is served
 * with one bit of its first hash flipped. */
struct served {
    int corrupt_level;
    uint64_t corrupt_n;
    unsigned calls;
    uint8_t buf[2][256][32];   /* per level: a returned tile stays valid while another level is served */
};

static const uint8_t *get(void *ctx, unsigned level, uint64_t n, unsigned width)
{
    struct served *s = ctx;
    s->calls++;
    if (width == 0 || width > 256) return NULL;
    if (level == 0) {
        if (n * 256 + width > NLEAVES) return NULL;
        memcpy(s->buf[0], leaves[n * 256], 32u * width);
    } else if (level == 1) {
        if (n != 0 || width > NLEAVES / 256) return NULL;
        memcpy(s->buf[1], level1, 32u * width);
    } else {
        return NULL;
    }
    if ((int)level == s->corrupt_level && n == s->corrupt_n) s->buf[level][0][0] ^= 1;
    return &s->buf[level][0][0];
}

static int hex_root(const cJSON *head, uint8_t out[32])
{
    const cJSON *hex = cJSON_GetObjectItemCaseSensitive(head, "hex");
    if (!cJSON_IsString(hex) || strlen(hex->valuestring) != 64) return -1;
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (sscanf(hex->valuestring + 2 * i, "%2x", &v) != 1) return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <testdata dir>\n", argv[0]);
        return 2;
    }
    testdata = argv[1];
    if (load_leaves() != 0) return 1;

    char path[1024];
    snprintf(path, sizeof path, "%s/static-ct/navigli2025h2.computed/tree_heads.json", testdata);
    FILE *f = fopen(path, "rb");
    char *json = NULL;
    size_t jlen = 0;
    if (!f || file_read_all(f, &json, &jlen) != 0) {
        fprintf(stderr, "cannot read %s\n", path);
        return 1;
    }
    fclose(f);
    cJSON *doc = cJSON_ParseWithLength(json, jlen);
    const cJSON *heads = cJSON_GetObjectItemCaseSensitive(doc, "tree_heads"), *head;
    unsigned nheads = 0, proofs = 0;
    char err[256];
    cJSON_ArrayForEach(head, heads) {
        uint64_t size = strtoull(head->string, NULL, 10);
        uint8_t root[32];
        CHECK(hex_root(head, root) == 0);
        if (size == 0 || size > NLEAVES) continue;
        nheads++;
        /* our tree hash gives the fixture's root (the served tiles are right) */
        uint8_t mine[32];
        mth((const uint8_t (*)[32])leaves, (size_t)size, mine);
        CHECK(memcmp(mine, root, 32) == 0);
        for (uint64_t t = 0; t * 256 < size; t++) {
            unsigned w = size - t * 256 >= 256 ? 256 : (unsigned)(size - t * 256);
            struct served s = { .corrupt_level = -1 };
            struct tileproof_need need;
            int rc = tileproof_check(size, root, t, w, leaves[t * 256], get, &s, &need, err, sizeof err);
            if (rc != 0) fprintf(stderr, "  size %llu tile %llu: rc %d: %s\n", (unsigned long long)size,
                                 (unsigned long long)t, rc, rc < 0 ? err : "a tile was not served");
            CHECK(rc == 0);
            proofs++;

            /* the checkpoint's root with one bit changed: refused at the root */
            uint8_t bad[32];
            memcpy(bad, root, 32);
            bad[31] ^= 0x80;
            rc = tileproof_check(size, bad, t, w, leaves[t * 256], get, &s, &need, err, sizeof err);
            CHECK(rc == -1);
            if (rc == -1) CHECK(strstr(err, "do not give the checkpoint's root") != NULL);

            /* one entry changed: its leaf hash no longer matches */
            uint8_t changed[256][32];
            memcpy(changed, leaves[t * 256], 32u * w);
            changed[w - 1][5] ^= 0x10;
            rc = tileproof_check(size, root, t, w, &changed[0][0], get, &s, &need, err, sizeof err);
            CHECK(rc == -1);
            if (rc == -1) CHECK(strstr(err, "do not match the log's level-0 hash tile") != NULL);
        }
        /* a served level-0 tile with a bit flipped: refused (at the root for
         * the right edge, else at the chain to the level-1 tile) */
        if (size > 256) {
            struct served s = { .corrupt_level = 0, .corrupt_n = 0 };
            struct tileproof_need need;
            unsigned w = size >= 256 ? 256 : (unsigned)size;
            int rc = tileproof_check(size, root, 0, w, leaves[0], get, &s, &need, err, sizeof err);
            CHECK(rc == -1);
        }
    }
    /* sizes 1 2 255 256 257 512 778 1024 */
    CHECK(nheads == 8);
    CHECK(proofs == 1 + 1 + 1 + 1 + 2 + 2 + 4 + 4);
    /* a tile outside the tree */
    {
        struct served s = { .corrupt_level = -1 };
        struct tileproof_need need;
        uint8_t zero[32] = { 0 };
        CHECK(tileproof_check(256, zero, 1, 1, leaves[256], get, &s, &need, err, sizeof err) == -1);
        CHECK(strstr(err, "is not inside a tree of 256") != NULL);
    }
    cJSON_Delete(doc);
    free(json);
    printf("test_tileproof: %u tree heads, %u proofs, %d failed checks\n", nheads, proofs, unit_failed);
    return unit_failed ? 1 : 0;
}
