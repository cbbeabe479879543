/* http_routes.c - bodies of the small HTTP endpoints: /example.json,
 * /latest.json (/metrics and /health/deep are in metrics.c). Each builds one
 * response in a jbuf; they read the ring, never write it. */
#include "fanout/fanout_internal.h"
#include "fanout/http_ops.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- /example.json and /latest.json ---------------------------------------------- */

/* Copies json[f] of the record at pos; false if it is not a sane record. The
 * caller validates the copy with ring_lapped_since afterwards. */
static bool copy_json(struct worker *w, uint64_t pos, enum ring_format f, struct jbuf *b)
{
    const struct ring_record *rec;
    if (ring_peek(w->ring, pos, &rec) != RING_OK || rec->kind != RING_KIND_MESSAGE) return false;
    /* the pieces of the JSON (shm/ring.h), appended one after the other */
    struct iovec iov[RING_RECORD_MAX_IOV];
    int n = 0;
    if (ring_record_iov(w->ring, rec, f, RING_WIRE_JSON, 0, iov, &n) == 0) return false;
    for (int i = 0; i < n; i++) jb_put(b, iov[i].iov_base, iov[i].iov_len);
    return !b->oom;
}

void route_example(struct worker *w, enum ring_format f, struct jbuf *b)
{
    static const char *const sample[RING_NFORMATS] = { example_sample_full, example_sample_lite,
                                                       example_sample_domains };
    uint64_t pos;
    worker_scan(w);
    if (worker_recent_at(w, 0, &pos) && copy_json(w, pos, f, b) && !ring_lapped_since(w->ring, pos))
        return;
    b->len = 0;
    jb_put(b, sample[f], example_sample_len[f]);
}

#define LATEST_COUNT 25

void route_latest(struct worker *w, struct jbuf *b)
{
    uint64_t pos[LATEST_COUNT];
    size_t mark[LATEST_COUNT];
    unsigned k = 0;
    worker_scan(w);
    jb_lit(b, "{\"messages\":[");
    for (uint64_t back = 0; k < LATEST_COUNT && worker_recent_at(w, back, &pos[k]); back++) {
        mark[k] = b->len;
        if (k) jb_put(b, ",", 1);
        if (!copy_json(w, pos[k], RING_LITE, b)) {
            b->len = mark[k];
            break;
        }
        k++;
    }
    /* newest first: once one copy is found lapped, every older one is too */
    for (unsigned i = 0; i < k; i++) {
        if (ring_lapped_since(w->ring, pos[i])) {
            b->len = mark[i];
            break;
        }
    }
    jb_lit(b, "]}");
}
