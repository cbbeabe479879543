/* wsdeflate.c - see wsdeflate.h. zlib rather than libdeflate: libdeflate
 * only writes complete streams (a final block with BFINAL set), which
 * RFC 7692 7.2.3.3 permits but some clients mishandle, while zlib's sync
 * flush gives the form every implementation decodes (docs/benchmarks.md
 * has the speed of both). */
#include "common/wsdeflate.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

struct wsdeflate {
    z_stream z;
    uint8_t *buf;
    size_t cap;
};

struct wsdeflate *wsdeflate_new(int level)
{
    struct wsdeflate *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    if (level < 1 || level > 9) level = Z_DEFAULT_COMPRESSION;
    /* raw deflate (negative window bits), 32 KiB window, 8 memLevel */
    if (deflateInit2(&d->z, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(d);
        return NULL;
    }
    return d;
}

void wsdeflate_free(struct wsdeflate *d)
{
    if (!d) return;
    deflateEnd(&d->z);
    free(d->buf);
    free(d);
}

static size_t message_payload(struct wsdeflate *d, const void *in, size_t n, const uint8_t **out, bool always);

size_t wsdeflate_message(struct wsdeflate *d, const void *in, size_t n, const uint8_t **out)
{
    return message_payload(d, in, n, out, false);
}

size_t wsdeflate_message_always(struct wsdeflate *d, const void *in, size_t n, const uint8_t **out)
{
    return message_payload(d, in, n, out, true);
}

static size_t message_payload(struct wsdeflate *d, const void *in, size_t n, const uint8_t **out, bool always)
{
    if (n == 0 || n > UINT32_MAX) return 0;
    /* deflateBound plus the sync flush's empty stored block */
    size_t need = deflateBound(&d->z, (uLong)n) + 16;
    if (need > d->cap) {
        uint8_t *nb = realloc(d->buf, need);
        if (!nb) return 0;
        d->buf = nb;
        d->cap = need;
    }
    if (deflateReset(&d->z) != Z_OK) return 0;   /* no context takeover */
    d->z.next_in = (Bytef *)(uintptr_t)in;
    d->z.avail_in = (uInt)n;
    d->z.next_out = d->buf;
    d->z.avail_out = (uInt)d->cap;
    int rc = deflate(&d->z, Z_SYNC_FLUSH);
    if (rc != Z_OK || d->z.avail_in != 0) return 0;
    size_t len = d->cap - d->z.avail_out;
    /* a sync flush ends with an empty stored block: 00 00 ff ff */
    if (len < 4 || memcmp(d->buf + len - 4, "\x00\x00\xff\xff", 4) != 0) return 0;
    len -= 4;
    if (len >= n && !always) return 0;
    *out = d->buf;
    return len;
}
