/* ring.c - the shared-memory broadcast ring (see ring.h for the contract).
 *
 * Layout
 *   One memfd holds a control area (page-rounded, mapped once) followed by the
 *   data area of `size` bytes. The data area is mapped twice back to back at
 *   the start of a PROT_NONE reservation of 2*size + RING_GUARD bytes, so:
 *     - a record that runs past the end of the data area continues into the
 *       second mapping and is contiguous (one iovec per record);
 *     - a reader that trusts a torn header (the record was lapped while it was
 *       being read) can only reach PROT_NONE memory with ptr + span.off +
 *       span.len (both uint32), so writev() fails with EFAULT instead of
 *       sending unrelated memory of the process.
 *   Control area: magic, size, start position, the claim position (own cache
 *   line), and one claim slot per producer (own cache line each).
 *   Positions are logical byte offsets that only grow, multiples of RING_ALIGN;
 *   byte p lives at data[p & (size-1)]. The first position is `size`, so zeroed
 *   memory never looks like a record (seq 0 never matches) and tail - size
 *   never underflows. seq == position.
 *
 * Record
 *   struct ring_record (192 bytes) | segment tables | sse_head "id: <seq>\ndata: " |
 *   sections | zero padding to RING_ALIGN. `reserved` holds a check word
 *   derived from seq so that body bytes which happen to equal seq are not
 *   taken for a header.
 *   A message the producer describes (ring_message.lite / .shared, from the
 *   renderer) is stored split, each byte once:
 *     lite whole (frame header + JSON + "\n\n", one iovec) | domains whole |
 *     full's frame header + the bytes of full that lite does not have (the
 *     leaf's as_der, the chain's brackets and commas) [+ "\n\n"].
 *   No compressed frames: the fanout workers make the permessage-deflate
 *   frames from the JSON (fanout/zalone.h, fanout/zchain.h).
 *   full's segment table strings together, in order, pieces of lite's
 *   bytes, its own bytes and its shared ranges (the chain elements, in the
 *   chain table: shm/chaintab.h). Lite, the stream most clients take, stays
 *   one iovec; a full client gets the frame header, then about two pieces
 *   per chain element more than the lite pieces. Adjacent pieces share an
 *   iovec (ring_record_iov). A message without hints (the NATS edge, tests)
 *   is stored whole: for f in full, lite, domains: WebSocket frame header +
 *   JSON + "\n\n".
 *   Chain-table entries referenced by a record stamp its position before it
 *   commits and are only reused once that position is older than claim -
 *   size, so the validate-after-copy of the record covers them too. A
 *   producer looks its shared ranges up before claiming (chaintab_probe, to
 *   size the record) and takes them for the claimed position
 *   (chaintab_ref); if one cannot be had then (the table changed in
 *   between), the claim becomes a pad and the publish is retried, the last
 *   time without the table.

 * Commit protocol (producer)
 *   1. slot := (c | INTENT), len (release), for the position c read from claim.
 *   2. CAS claim c -> c+len (seq_cst). On failure go to 1 with the new c.
 *   3. slot := (c | CLAIMED). From here ring_repair knows the range is ours.
 *   4. header: committed = 0, then seq = c (release) - a reader that sees the
 *      new seq also sees committed == 0 until step 6, never the stale 1 of
 *      the previous lap.
 *   5. sections, padding, benchmark stamp, checksum (FNV-1a of the bytes
 *      after the header, then of the chain-table bytes the record
 *      references, only after ring_set_checksums(r, true), else 0: it is
 *      most of the cost of a publish, ~8 us for 7 KB), commit_ns.
 *   6. committed = 1 (release): the record is visible.
 *   7. slot := IDLE.
 *   Claims are ordered, commits are not: a reader stops at the first record
 *   that is not committed (RING_EMPTY) and is woken by ring_notify.
 *
 * Lap detection (reader)
 *   A claim of [c, c+len) overwrites the bytes of the previous lap
 *   [c-size, c+len-size), and the claim position moves BEFORE any of those
 *   bytes change (release fence after the CAS). So a reader that read bytes at
 *   positions >= pos and then sees claim <= pos + size (acquire fence before
 *   the load) read them intact: ring_lapped_since(). ring_peek applies the
 *   same test after reading the header, and reports RING_LAPPED when
 *   pos < claim - size. The copy itself (memcpy, writev) races with a lapping
 *   writer by design; the claim check after it decides whether it counts.
 *   Fanout must therefore use nothing it read (bytes, header fields, spans)
 *   before ring_lapped_since() says the record was intact.
 *   A position below `released` counts as lapped too (below).
 *
 * Release (ring_release: the supervisor, every loop turn)
 *   Walks the committed records from the oldest kept one while they are
 *   outside what a reader may still need (struct ring_keep: commit time
 *   against the newest record, bytes behind the claim position, never at or
 *   after `hold`), stores the new oldest position in `released`, then gives
 *   back the data-area pages wholly below it with MADV_REMOVE, which frees
 *   the memfd's pages in every mapping. Only pages of the current lap (at or
 *   above claim - size) are given back. Before the madvise it publishes the
 *   range start in `punching` and reads the claim position again (both
 *   seq_cst); a producer reads `punching` after its claim CAS and waits if
 *   its claim reaches the next lap of that range (wait_punch). The pages
 *   come back zeroed when producers write them; a reader never reads a
 *   given-back header (ring_peek tests `released` first).
 *
 * Resume
 *   ring_oldest_position is tail - size + size/8: a record older than that is
 *   refused (RING_LAPPED) by ring_find, so a resumed reader is not lapped at
 *   once. ring_find accepts only a header stamped with exactly seq, committed,
 *   with the right check word and sane spans, so any aligned number is safe
 *   to try.
 *
 * Wakeups
 *   The eventfds are kept in the process-local struct ring, not in shared
 *   memory: an fd number means something only in processes forked after it
 *   was created, so a producer forked earlier never writes to a stranger fd.
 *
 * Repair (supervisor, after reaping producer p)
 *   slot CLAIMED (c, len): the range is p's. If the header at c is not
 *     committed, write a committed RING_KIND_PAD record of length len there.
 *   slot INTENT (c, len): p died around its CAS. If claim < c + len the CAS
 *     did not happen. Otherwise whoever claimed c still holds c in its slot
 *     until it commits: if another slot is CLAIMED at c, or the header at c is
 *     committed, it is not p's; if no other slot names c, it is p's. If another
 *     slot is INTENT at c, that producer is between its own CAS and step 3;
 *     wait (bounded) for it to move on.
 *   A pad is not written when the range is within size/4 of being lapped: a
 *   newer record may be going there, and readers waiting at c will be lapped.
 *   ring_publish runs the repair itself if it finds its own slot busy (the
 *   previous process with that producer_id died unrepaired). */
#include "shm/ring.h"
#include "shm/ring_test.h"
#include "shm/chaintab.h"

#include "common/clock.h"
#include "common/log.h"
#include "common/wshdr.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define RING_MAGIC 0x31676e6972736373ULL   /* "cssring1" */
#define RING_MIN_SIZE ((size_t)1 << 20)
#define RING_MAX_SIZE ((size_t)1 << 40)
#define RING_GUARD ((size_t)1 << 33)       /* > max(span.off) + max(span.len) */
#define RING_MAX_WAITERS 1024
#define RING_HDR ((uint32_t)sizeof(struct ring_record))
#define RING_SSE_HEAD_MAX 32               /* "id: " + 20 digits + "\ndata: " */
#define RING_REPAIR_WAIT_MS 1000
/* The chain table: 1,024 entries of 4 KiB (4 MiB of address space; an
 * entry's page is resident once written, so a few dozen chain certificates
 * cost a few hundred KiB). A chain element is 0.8-1.3 KB of JSON. */
#define RING_CHAINTAB_ENTRIES 1024u
#define RING_CHAINTAB_ENTRY_BYTES 4096u
#define RING_PUBLISH_TRIES 3

enum { SLOT_IDLE = 0, SLOT_INTENT = 1, SLOT_CLAIMED = 2 };
#define SLOT_STATE_MASK ((uint64_t)RING_ALIGN - 1)

_Static_assert(sizeof(struct ring_record) % RING_ALIGN == 0, "header must keep sections aligned");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free to work across processes");

struct ring_slot {
    _Alignas(64) _Atomic uint64_t word;   /* position | SLOT_* */
    _Atomic uint32_t len;
    _Atomic uint64_t last;                /* the last record committed from this slot (0: none) */
};

struct ring_ctl {
    uint64_t magic;
    uint64_t size;
    uint64_t start;
    _Atomic uint32_t checksums;   /* 1: producers fill ring_record.checksum */
    _Alignas(64) _Atomic uint64_t claim;
    /* Same cache line as claim (readers load both for the lap test):
     * released: positions below it are given back (ring_release), readers
     *   treat them as lapped;
     * punching: non-zero while ring_release gives back the pages of
     *   positions from this one on (a producer whose claim reaches into
     *   their next lap waits for it);
     * last_ns: commit time of the newest record (any producer). */
    _Atomic uint64_t released;
    _Atomic uint64_t punching;
    _Atomic uint64_t last_ns;
    _Alignas(64) struct ring_slot slots[RING_MAX_PRODUCERS];
    /* bit i set: waiter i has no worker now (ring_notify skips it) */
    _Alignas(64) _Atomic uint64_t waiter_idle[RING_MAX_WAITERS / 64];
};

/* Process-local. The waiters live here, not in shared memory: an eventfd
 * number is only meaningful in processes forked after it was created. */
struct ring {
    struct ring_ctl *ctl;
    size_t ctl_len;
    uint8_t *data;
    size_t map_len;
    size_t size;
    uint64_t mask;
    size_t page;
    uint64_t rel_walk;         /* ring_release: the next record it looks at */
    uint64_t rel_punched;      /* ring_release: pages below this position are given back */
    struct chaintab *ct;       /* the chain table (shared pieces of records) */
    unsigned n_waiters;
    bool notify_error_logged;
    int waiters[RING_MAX_WAITERS];
};

static ring_test_hook_fn *g_test_hook;
static void *g_test_hook_arg;

void ring_test_set_hook(ring_test_hook_fn *fn, void *arg)
{
    g_test_hook = fn;
    g_test_hook_arg = arg;
}

uint8_t *ring_test_data(struct ring *r) { return r->data; }

static inline void test_hook(enum ring_test_phase phase, uint64_t pos)
{
    if (__builtin_expect(g_test_hook != NULL, 0))
        g_test_hook(phase, pos, g_test_hook_arg);
}

static inline uint32_t check_word(uint64_t seq)
{
    return (uint32_t)(seq >> 6) ^ (uint32_t)(seq >> 38) ^ 0x5a17c0deu;
}


static inline struct ring_record *record_at(const struct ring *r, uint64_t pos)
{
    return (struct ring_record *)(r->data + (pos & r->mask));
}

static inline uint64_t load_claim(const struct ring *r)
{
    return atomic_load_explicit(&r->ctl->claim, memory_order_acquire);
}

static inline uint32_t align_up(uint64_t n)
{
    return (uint32_t)((n + RING_ALIGN - 1) & ~(uint64_t)(RING_ALIGN - 1));
}

struct ring *ring_create(size_t size)
{
    struct ring *r = NULL;
    int fd = -1;
    long page = sysconf(_SC_PAGESIZE);

    if (size < RING_MIN_SIZE || size > RING_MAX_SIZE || (size & (size - 1)) != 0 ||
        page <= 0 || size % (size_t)page != 0) {
        errno = EINVAL;
        return NULL;
    }
    r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->ctl = MAP_FAILED;
    r->data = MAP_FAILED;
    r->size = size;
    r->mask = size - 1;
    r->page = (size_t)page;
    r->rel_walk = r->rel_punched = size;
    r->ctl_len = (sizeof(struct ring_ctl) + (size_t)page - 1) & ~((size_t)page - 1);
    r->map_len = 2 * size + RING_GUARD;

    fd = memfd_create("certstream-ring", MFD_CLOEXEC);
    if (fd < 0)
        goto err;
    if (ftruncate(fd, (off_t)(r->ctl_len + size)) != 0)
        goto err;
    r->ctl = mmap(NULL, r->ctl_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (r->ctl == MAP_FAILED)
        goto err;
    r->data = mmap(NULL, r->map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r->data == MAP_FAILED)
        goto err;
    for (int half = 0; half < 2; half++) {
        void *want = r->data + (size_t)half * size;
        void *got = mmap(want, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, (off_t)r->ctl_len);
        if (got != want)
            goto err;
    }
    if (close(fd) != 0) {
        fd = -1;
        goto err;
    }
    fd = -1;

    r->ct = chaintab_create(RING_CHAINTAB_ENTRIES, RING_CHAINTAB_ENTRY_BYTES);
    if (r->ct == NULL)
        goto err;

    r->ctl->magic = RING_MAGIC;
    r->ctl->size = size;
    r->ctl->start = size;
    atomic_store_explicit(&r->ctl->checksums, 0, memory_order_relaxed);
    atomic_store_explicit(&r->ctl->released, (uint64_t)size, memory_order_relaxed);
    atomic_store_explicit(&r->ctl->claim, (uint64_t)size, memory_order_release);
    return r;

err:;
    int saved = errno;
    if (fd >= 0)
        close(fd);
    if (r->data != MAP_FAILED)
        munmap(r->data, r->map_len);
    if (r->ctl != MAP_FAILED)
        munmap(r->ctl, r->ctl_len);
    free(r);
    errno = saved;
    return NULL;
}

void ring_destroy(struct ring *r)
{
    if (r == NULL)
        return;
    if (munmap(r->data, r->map_len) != 0 || munmap(r->ctl, r->ctl_len) != 0)
        log_warn("ring: munmap: %s", strerror(errno));
    chaintab_destroy(r->ct);
    free(r);
}

size_t ring_size(const struct ring *r) { return r->size; }

void ring_set_checksums(struct ring *r, bool on)
{
    atomic_store_explicit(&r->ctl->checksums, on ? 1u : 0u, memory_order_relaxed);
}

int ring_set_start(struct ring *r, uint64_t after)
{
    if (r == NULL || load_claim(r) != r->ctl->start) {
        errno = EINVAL;
        return -1;
    }
    uint64_t start = after > r->size ? after : r->size;
    start = (start + r->size - 1) & ~(uint64_t)(r->size - 1); /* a multiple of size, as size is */
    r->ctl->start = start;
    r->rel_walk = r->rel_punched = start;
    atomic_store_explicit(&r->ctl->released, start, memory_order_relaxed);
    atomic_store_explicit(&r->ctl->claim, start, memory_order_release);
    return 0;
}

uint64_t ring_tail(const struct ring *r) { return load_claim(r); }

uint64_t ring_start_position(const struct ring *r) { return load_claim(r); }

static inline uint64_t load_released(const struct ring *r)
{
    return atomic_load_explicit(&r->ctl->released, memory_order_acquire);
}

/* Records older than this are refused for resume: they are intact now, but a
 * margin of size/8 keeps a resumed reader from being lapped at once. Records
 * given back (ring_release) are gone: ring_release keeps its own margin. */
uint64_t ring_oldest_position(const struct ring *r)
{
    uint64_t claim = load_claim(r);
    uint64_t margin = r->size / 8;
    uint64_t oldest = claim - r->size + margin;   /* claim >= start == size */
    uint64_t released = load_released(r);
    if (oldest < released)
        oldest = released;
    return oldest > r->ctl->start ? oldest : r->ctl->start;
}

bool ring_lapped_since(const struct ring *r, uint64_t pos)
{
    /* Orders the caller's earlier reads of ring bytes before the loads of
     * claim and released. A page given back reads as zeros once its
     * position is below released: ring_release stores released before
     * the madvise, and the page fault that maps the new zero page into a
     * reader synchronises with the removal in the kernel. */
    atomic_thread_fence(memory_order_acquire);
    uint64_t claim = atomic_load_explicit(&r->ctl->claim, memory_order_relaxed);
    uint64_t released = atomic_load_explicit(&r->ctl->released, memory_order_relaxed);
    return (claim > pos && claim - pos > r->size) || pos < released;
}

/* --- producer --- */

static size_t ws_header_len(size_t n)
{
    return n < 126 ? 2 : n <= 0xffff ? 4 : 10;
}

static size_t ws_header_put(uint8_t *p, size_t n) { return wshdr_put(p, WSHDR_TEXT, n); }

static size_t sse_head_put(char *dst, uint64_t seq)
{
    char digits[24];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + seq % 10);
        seq /= 10;
    } while (seq != 0);
    memcpy(dst, "id: ", 4);
    for (size_t i = 0; i < n; i++)
        dst[4 + i] = digits[n - 1 - i];
    memcpy(dst + 4 + n, "\ndata: ", 7);
    return 4 + n + 7;
}

static size_t sse_head_len(uint64_t seq)
{
    size_t n = 1;
    while (seq >= 10) {
        seq /= 10;
        n++;
    }
    return 4 + n + 7;
}

/* "%010llu.%06llu" of the commit time in microseconds, without snprintf's NUL. */
static void bench_stamp(uint8_t *dst, uint64_t now_ns)
{
    uint64_t us = now_ns / 1000u;
    uint64_t secs = us / 1000000u, frac = us % 1000000u;
    for (int i = 9; i >= 0; i--, secs /= 10)
        dst[i] = (uint8_t)('0' + secs % 10);
    dst[10] = '.';
    for (int i = 16; i >= 11; i--, frac /= 10)
        dst[i] = (uint8_t)('0' + frac % 10);
}

/* Where the bytes of one message go (see "Record" at the top). */
enum piece_kind { PIECE_LOCAL, PIECE_LITE, PIECE_SHARED };

struct piece {
    enum piece_kind kind;
    uint32_t off, len;                 /* in full */
    uint32_t lite_off;                 /* PIECE_LITE: where in lite */
    uint32_t shared;                   /* PIECE_SHARED: index in m->shared */
};

struct layout {
    bool split;                        /* full is stored as segments */
    size_t n_shared;                   /* m->shared ranges considered */
    bool share[RING_MAX_SHARED];       /* range i goes to the chain table */
    struct piece p[RING_MAX_SEGS];     /* full, in order */
    uint32_t np;
    uint32_t local_full;               /* bytes of full kept in the record besides lite */
    bool own_nl;                       /* full needs its own "\n\n" (it does not end with lite's end) */
    uint64_t body;                     /* bytes before alignment, without the SSE head */
};

static bool ranges_ok(const struct ring_span *sp, size_t n, size_t len)
{
    uint64_t end = 0;
    for (size_t i = 0; i < n; i++) {
        if (sp[i].len == 0 || sp[i].off > len || sp[i].len > len - sp[i].off || sp[i].off < end) return false;
        end = (uint64_t)sp[i].off + sp[i].len;
    }
    return true;
}

/* json[RING_LITE] is exactly m->lite[] of json[RING_FULL] (ascending), and
 * no piece overlaps a shared range. */
static bool lite_pieces_ok(const struct ring_message *m, size_t n_shared)
{
    size_t flen = m->json_len[RING_FULL], llen = m->json_len[RING_LITE], at = 0;
    if (!m->lite || m->n_lite == 0 || m->n_lite > RING_MAX_LITE_PIECES || !m->json[RING_LITE] ||
        !ranges_ok(m->lite, m->n_lite, flen))
        return false;
    for (size_t i = 0; i < m->n_lite; i++) {
        struct ring_span p = m->lite[i];
        if (p.len > llen - at || memcmp(m->json[RING_FULL] + p.off, m->json[RING_LITE] + at, p.len) != 0)
            return false;
        for (size_t k = 0; k < n_shared; k++) {
            struct ring_span s = m->shared[k];
            if (p.off < s.off + s.len && s.off < p.off + p.len) return false;
        }
        at += p.len;
    }
    return at == llen;
}

static uint64_t form_len(size_t json_len) { return ws_header_len(json_len) + json_len + 2; }

/* Full as pieces: chain elements (shared), the bytes lite also has (lite),
 * and the rest (local), in full's order. */
static void plan_pieces(const struct ring_message *m, struct layout *L, bool lite_ok)
{
    uint32_t flen = (uint32_t)m->json_len[RING_FULL], cur = 0, lite_at = 0;
    size_t si = 0, li = 0;
    L->np = 0;
    L->local_full = 0;
    for (;;) {
        while (si < L->n_shared && !L->share[si])
            si++;
        bool has_s = si < L->n_shared, has_l = lite_ok && li < m->n_lite;
        if (!has_s && !has_l)
            break;
        bool take_s = has_s && (!has_l || m->shared[si].off < m->lite[li].off);
        struct ring_span iv = take_s ? m->shared[si] : m->lite[li];
        if (iv.off > cur) {
            L->p[L->np++] = (struct piece){PIECE_LOCAL, cur, iv.off - cur, 0, 0};
            L->local_full += iv.off - cur;
        }
        if (take_s) {
            L->p[L->np++] = (struct piece){PIECE_SHARED, iv.off, iv.len, 0, (uint32_t)si};
            si++;
        } else {
            L->p[L->np++] = (struct piece){PIECE_LITE, iv.off, iv.len, lite_at, 0};
            lite_at += iv.len;
            li++;
        }
        cur = iv.off + iv.len;
    }
    if (cur < flen) {
        L->p[L->np++] = (struct piece){PIECE_LOCAL, cur, flen - cur, 0, 0};
        L->local_full += flen - cur;
    }
    const struct piece *last = L->np ? &L->p[L->np - 1] : NULL;
    L->own_nl = !(last && last->kind == PIECE_LITE && last->lite_off + last->len == m->json_len[RING_LITE]);
}

/* Decides the layout; share[] as phase 1 found room in the chain table. */
static int plan_layout(const struct ring_message *m, struct layout *L)
{
    uint64_t n = RING_HDR;
    for (int f = 0; f < RING_NFORMATS; f++) {
        if ((m->json[f] == NULL && m->json_len[f] != 0) || m->json_len[f] > UINT32_MAX / 2)
            return -1;
    }
    size_t flen = m->json_len[RING_FULL];
    L->split = false;
    bool any_share = false;
    for (size_t i = 0; i < L->n_shared; i++)
        any_share |= L->share[i];
    bool lite_ok = flen > 0 && lite_pieces_ok(m, L->n_shared);
    n += form_len(m->json_len[RING_LITE]) + form_len(m->json_len[RING_DOMAINS]);
    if (flen > 0 && (any_share || lite_ok)) {
        L->split = true;
        plan_pieces(m, L, lite_ok);
        n += ws_header_len(flen) + L->local_full + (L->own_nl ? 2 : 0) + sizeof(struct ring_seg) * (uint64_t)L->np;
    } else {
        n += form_len(flen);
    }
    L->body = n;
    return 0;
}

/* A WebSocket frame + JSON + "\n\n" written contiguously (a format stored whole). */
static uint32_t put_whole(uint8_t *base, uint32_t off, struct ring_record *h, int f, const struct ring_message *m)
{
    uint32_t n = (uint32_t)m->json_len[f];
    uint32_t wh = (uint32_t)ws_header_put(base + off, n);
    h->ws[f] = (struct ring_span){off, wh + n};
    h->json[f] = (struct ring_span){off + wh, n};
    h->sse_tail[f] = (struct ring_span){off + wh, n + 2};
    h->segs[f] = (struct ring_span){0, 0};
    if (n != 0)
        memcpy(base + off + wh, m->json[f], n);
    memcpy(base + off + wh + n, "\n\n", 2);
    return off + wh + n + 2;
}

/* Writes the sections of a message record after its SSE head (at off).
 * shared_off[i] is where the chain table holds range i (when share[i]). */
static uint32_t put_sections(struct ring_record *h, uint32_t off, const struct ring_message *m,
                             const struct layout *L, const int64_t *shared_off)
{
    uint8_t *base = (uint8_t *)h;
    off = put_whole(base, off, h, RING_LITE, m);   /* lite: always whole, one iovec */
    off = put_whole(base, off, h, RING_DOMAINS, m);
    if (!L->split) {
        off = put_whole(base, off, h, RING_FULL, m);
    } else {
        /* full: its frame header, then the bytes lite does not have (the
         * leaf's as_der, the chain's brackets and commas); the segment
         * table strings them with lite's bytes and the chain elements */
        struct ring_seg *sg = (struct ring_seg *)(base + RING_HDR);
        uint32_t flen = (uint32_t)m->json_len[RING_FULL], lite0 = h->json[RING_LITE].off;
        uint32_t wh = (uint32_t)ws_header_put(base + off, flen);
        h->ws[RING_FULL] = (struct ring_span){off, wh};
        h->json[RING_FULL] = (struct ring_span){RING_SPLIT_OFF, flen};
        off += wh;
        for (uint32_t i = 0; i < L->np; i++) {
            const struct piece *p = &L->p[i];
            if (p->kind == PIECE_SHARED) {
                sg[i] = (struct ring_seg){(uint32_t)shared_off[p->shared], p->len | RING_SEG_SHARED};
            } else if (p->kind == PIECE_LITE) {
                sg[i] = (struct ring_seg){lite0 + p->lite_off, p->len};
            } else {
                memcpy(base + off, m->json[RING_FULL] + p->off, p->len);
                sg[i] = (struct ring_seg){off, p->len};
                off += p->len;
            }
        }
        if (L->own_nl) {
            memcpy(base + off, "\n\n", 2);
            h->sse_tail[RING_FULL] = (struct ring_span){off, 2};
            off += 2;
        } else {
            h->sse_tail[RING_FULL] = (struct ring_span){lite0 + h->json[RING_LITE].len, 2};   /* lite's */
        }
        h->segs[RING_FULL] = (struct ring_span){RING_HDR, L->np};
    }
    return off;
}

/* Benchmark stamp at offset so of json[f]: in the record when the format is
 * whole, else in the local segment that holds all of it (lite's pieces are
 * full's bytes, so stamping full's seen stamps lite's too). */
static void stamp_format(const struct ring *r, struct ring_record *h, int f, long so, uint64_t now)
{
    uint8_t *base = (uint8_t *)h;
    if (so < 0 || (uint64_t)so + RING_BENCH_STAMP_LEN > h->json[f].len)
        return;
    if (h->segs[f].len == 0) {
        bench_stamp(base + h->json[f].off + so, now);
        return;
    }
    const struct ring_seg *sg = (const struct ring_seg *)(base + h->segs[f].off);
    uint64_t at = 0;
    for (uint32_t i = 0; i < h->segs[f].len; i++) {
        uint32_t len = sg[i].len & ~RING_SEG_SHARED;
        if ((uint64_t)so >= at && (uint64_t)so + RING_BENCH_STAMP_LEN <= at + len) {
            if (!(sg[i].len & RING_SEG_SHARED))
                bench_stamp(base + sg[i].off + ((uint64_t)so - at), now);
            return;
        }
        at += len;
    }
    (void)r;
}

static void sleep_ms(unsigned ms);

/* A claim that ends at `end` reuses the pages of positions end - size and
 * below: it waits while ring_release may be giving back such pages (a
 * madvise takes microseconds; it is reached only when the claim position
 * runs a whole ring minus the kept history ahead of the given-back
 * records during that call). After RING_REPAIR_WAIT_MS it goes on (the
 * releaser is stopped: its mark is cleared, and it checks the claim again
 * before its next madvise). */
static void wait_punch(struct ring *r, uint64_t end)
{
    for (unsigned waited = 0;; waited++) {
        uint64_t p = atomic_load_explicit(&r->ctl->punching, memory_order_seq_cst);
        if (p == 0 || end <= p + r->size)
            return;
        if (waited >= RING_REPAIR_WAIT_MS) {
            log_warn("ring: the release of pages at %llu is stuck; going on", (unsigned long long)p);
            atomic_compare_exchange_strong_explicit(&r->ctl->punching, &p, 0, memory_order_seq_cst,
                                                    memory_order_relaxed);
            return;
        }
        sleep_ms(1);
    }
}

/* Steps 1-3 of the commit protocol: returns the claimed position. */
static uint64_t claim_space(struct ring *r, struct ring_slot *slot, uint64_t body, uint64_t sse_id,
                            uint32_t *len_out)
{
    uint64_t c = atomic_load_explicit(&r->ctl->claim, memory_order_relaxed);
    uint32_t len;
    for (;;) {
        len = align_up(body + sse_head_len(sse_id ? sse_id : c));
        atomic_store_explicit(&slot->len, len, memory_order_relaxed);
        atomic_store_explicit(&slot->word, c | SLOT_INTENT, memory_order_release);
        test_hook(RING_TEST_INTENT, c);
        if (atomic_compare_exchange_weak_explicit(&r->ctl->claim, &c, c + len,
                                                  memory_order_seq_cst, memory_order_relaxed))
            break;
    }
    /* The claim is visible before any byte of the previous lap changes. */
    atomic_thread_fence(memory_order_release);
    /* seq_cst after the seq_cst CAS: either ring_release sees this claim
     * and leaves its pages alone, or this sees its punching mark */
    if (__builtin_expect(atomic_load_explicit(&r->ctl->punching, memory_order_seq_cst) != 0, 0))
        wait_punch(r, c + len);
    test_hook(RING_TEST_CLAIMED, c);
    atomic_store_explicit(&slot->word, c | SLOT_CLAIMED, memory_order_release);
    *len_out = len;
    return c;
}

/* Step 4: make the header at pos say "pos, not committed" before the body changes. */
static void header_open(struct ring_record *h, uint64_t pos)
{
    __atomic_store_n(&h->committed, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&h->seq, pos, __ATOMIC_RELEASE);
}

static uint32_t record_checksum(const struct ring *r, const struct ring_record *h);

static void header_commit(const struct ring *r, struct ring_record *h, uint64_t pos, uint64_t now_ns)
{
    h->reserved = check_word(pos);
    h->checksum = atomic_load_explicit(&r->ctl->checksums, memory_order_relaxed) ? record_checksum(r, h) : 0;
    h->commit_ns = now_ns;
    __atomic_store_n(&h->committed, 1, __ATOMIC_RELEASE);
    atomic_store_explicit(&r->ctl->last_ns, now_ns, memory_order_relaxed);
}

static uint32_t fnv1a_more(uint32_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

/* The bytes after the header, then the chain-table bytes full references,
 * in order (so the checksum covers every byte a reader may send). */
static uint32_t record_checksum(const struct ring *r, const struct ring_record *h)
{
    const uint8_t *base = (const uint8_t *)h;
    uint32_t c = fnv1a_more(2166136261u, base + RING_HDR, h->total_len - RING_HDR);
    for (int f = 0; f < RING_NFORMATS; f++) {
        const struct ring_seg *sg = (const struct ring_seg *)(base + h->segs[f].off);
        for (uint32_t i = 0; i < h->segs[f].len; i++) {
            if (!(sg[i].len & RING_SEG_SHARED))
                continue;
            const uint8_t *p = chaintab_bytes(r->ct, sg[i].off, sg[i].len & ~RING_SEG_SHARED);
            if (p)
                c = fnv1a_more(c, p, sg[i].len & ~RING_SEG_SHARED);
        }
    }
    return c;
}

uint32_t ring_test_checksum(const struct ring *r, const struct ring_record *rec) { return record_checksum(r, rec); }

/* Turns the open record at pos into a committed pad (a publish that gave up). */
static void pad_open_record(const struct ring *r, struct ring_record *h, uint64_t pos);

/* One attempt of ring_publish. share: may use the chain table. Sets *again
 * when the chain table changed under it (the claim became a pad: retry). */
static uint64_t publish_once(struct ring *r, struct ring_slot *slot, const struct ring_message *m, bool share,
                             bool *again)
{
    struct layout L;
    int64_t shared_off[RING_MAX_SHARED];
    *again = false;
    L.n_shared = 0;
    if (share && m->shared && m->n_shared && m->n_shared <= RING_MAX_SHARED &&
        ranges_ok(m->shared, m->n_shared, m->json_len[RING_FULL]) && m->json[RING_FULL]) {
        /* phase 1: which ranges the chain table has or has room for (a
         * look only: entries are taken under the claim, where a producer
         * that stops is found by the supervisor's stuck-claim watch) */
        uint64_t now = load_claim(r);
        L.n_shared = m->n_shared;
        for (size_t i = 0; i < m->n_shared; i++)
            L.share[i] = chaintab_probe(r->ct, m->json[RING_FULL] + m->shared[i].off, m->shared[i].len,
                                        now - r->size);
    }
    if (plan_layout(m, &L) != 0 || align_up(L.body + RING_SSE_HEAD_MAX) > r->size / 4)
        return 0;

    uint32_t len;
    uint64_t pos = claim_space(r, slot, L.body, m->sse_id, &len);
    struct ring_record *h = record_at(r, pos);
    uint8_t *base = (uint8_t *)h;
    header_open(h, pos);
    test_hook(RING_TEST_OPENED, pos);

    /* phase 2: reference them for this position (the record is not
     * committed yet, and an entry stamped with pos outlives it) */
    for (size_t i = 0; i < L.n_shared; i++) {
        if (!L.share[i])
            continue;
        uint64_t c = load_claim(r);
        shared_off[i] = chaintab_ref(r->ct, m->json[RING_FULL] + m->shared[i].off, m->shared[i].len, pos,
                                     c - r->size);
        if (shared_off[i] < 0) {
            h->total_len = len;
            pad_open_record(r, h, pos);
            *again = true;
            return 0;
        }
    }

    h->total_len = len;
    h->kind = RING_KIND_MESSAGE;
    h->cert_index = m->cert_index;
    h->log_id = m->log_id;
    uint32_t off = RING_HDR + (uint32_t)(sizeof(struct ring_seg) * (L.split ? L.np : 0));
    size_t head = sse_head_put((char *)base + off, m->sse_id ? m->sse_id : pos);
    h->sse_head = (struct ring_span){off, (uint32_t)head};
    off += (uint32_t)head;
    h->segs[RING_FULL] = h->segs[RING_LITE] = h->segs[RING_DOMAINS] = (struct ring_span){0, 0};
    off = put_sections(h, off, m, &L, shared_off);
    memset(base + off, 0, len - off);
    test_hook(RING_TEST_WRITTEN, pos);

    uint64_t now = wall_ns();
    for (int f = 0; f < RING_NFORMATS; f++)
        stamp_format(r, h, f, m->bench_stamp_off[f], now);
    header_commit(r, h, pos, now);
    return pos;
}

uint64_t ring_publish(struct ring *r, unsigned producer_id, const struct ring_message *m)
{
    if (r == NULL || m == NULL || producer_id >= RING_MAX_PRODUCERS)
        return 0;
    struct ring_slot *slot = &r->ctl->slots[producer_id];
    if (atomic_load_explicit(&slot->word, memory_order_acquire) != SLOT_IDLE) {
        log_warn("ring: producer %u: claim slot left busy by a dead process; repairing", producer_id);
        ring_repair(r, producer_id);
    }
    uint64_t pos = 0;
    for (int t = 0; t < RING_PUBLISH_TRIES; t++) {
        bool again;
        pos = publish_once(r, slot, m, t + 1 < RING_PUBLISH_TRIES, &again);
        atomic_store_explicit(&slot->word, SLOT_IDLE, memory_order_release);
        if (!again)
            break;
    }
    if (pos) {
        atomic_store_explicit(&slot->last, pos, memory_order_release);
        test_hook(RING_TEST_COMMITTED, pos);
    }
    return pos;
}

uint64_t ring_producer_last(const struct ring *r, unsigned producer_id)
{
    if (r == NULL || producer_id >= RING_MAX_PRODUCERS)
        return 0;
    return atomic_load_explicit(&r->ctl->slots[producer_id].last, memory_order_acquire);
}

/* --- reader --- */

static bool span_in(const struct ring_record *h, struct ring_span sp)
{
    return sp.off >= RING_HDR && (uint64_t)sp.off + sp.len <= h->total_len;
}

/* Is the header at pos a sane record that fits before claim? */
static bool record_sane(const struct ring *r, const struct ring_record *h, uint64_t pos, uint64_t claim)
{
    uint32_t len = h->total_len;
    if (len < RING_HDR || len % RING_ALIGN != 0 || len > r->size / 4 || len > claim - pos)
        return false;
    if (h->reserved != check_word(pos))
        return false;
    if (h->kind == RING_KIND_PAD)
        return true;
    if (h->kind != RING_KIND_MESSAGE)
        return false;
    if (!span_in(h, h->sse_head))
        return false;
    for (int f = 0; f < RING_NFORMATS; f++) {
        if (!span_in(h, h->ws[f]) || !span_in(h, h->sse_tail[f]))
            return false;
        if (h->segs[f].len == 0 ? !span_in(h, h->json[f])
                                : h->segs[f].len > RING_MAX_SEGS || h->segs[f].off < RING_HDR ||
                                      (uint64_t)h->segs[f].off + sizeof(struct ring_seg) * h->segs[f].len > len)
            return false;
    }
    return true;
}

/* The committed record at pos, which must be below claim. OK / EMPTY /
 * LAPPED, or ERROR when a header is stamped with pos but is not sane. */
static enum ring_status record_get(const struct ring *r, uint64_t pos, uint64_t claim,
                                   const struct ring_record **rec)
{
    const struct ring_record *h = record_at(r, pos);
    if (__atomic_load_n(&h->seq, __ATOMIC_ACQUIRE) != pos)
        return ring_lapped_since(r, pos) ? RING_LAPPED : RING_EMPTY;
    if (__atomic_load_n(&h->committed, __ATOMIC_ACQUIRE) != 1)
        return ring_lapped_since(r, pos) ? RING_LAPPED : RING_EMPTY;
    bool sane = record_sane(r, h, pos, claim);
    if (ring_lapped_since(r, pos))
        return RING_LAPPED;
    if (!sane)
        return RING_ERROR;
    *rec = h;
    return RING_OK;
}

enum ring_status ring_peek(const struct ring *r, uint64_t pos, const struct ring_record **rec)
{
    if (pos % RING_ALIGN != 0 || pos < r->ctl->start)
        return RING_ERROR;
    uint64_t claim = load_claim(r);
    if (pos >= claim)
        return pos == claim ? RING_EMPTY : RING_ERROR;
    /* given back: not even the header is read (it would map a zero page) */
    if (claim - pos > r->size || pos < load_released(r))
        return RING_LAPPED;
    return record_get(r, pos, claim, rec);
}

enum ring_status ring_find(const struct ring *r, uint64_t seq, const struct ring_record **rec)
{
    if (seq % RING_ALIGN != 0 || seq < r->ctl->start)
        return RING_ERROR;
    uint64_t claim = load_claim(r);
    if (seq >= claim)
        return RING_ERROR;
    if (seq < ring_oldest_position(r))
        return RING_LAPPED;
    const struct ring_record *h = record_at(r, seq);
    if (__atomic_load_n(&h->seq, __ATOMIC_ACQUIRE) != seq)
        return ring_lapped_since(r, seq) ? RING_LAPPED : RING_ERROR;
    return record_get(r, seq, claim, rec);
}

/* --- giving back the pages of old records --- */

/* The first committed record at an aligned position in [from, claim),
 * probing at most size/4 of it; 0 when none. */
static uint64_t find_boundary(const struct ring *r, uint64_t from, uint64_t claim)
{
    from = (from + RING_ALIGN - 1) & ~(uint64_t)(RING_ALIGN - 1);
    for (uint64_t pos = from, n = r->size / 4 / RING_ALIGN; pos < claim && n; pos += RING_ALIGN, n--) {
        const struct ring_record *h;
        if (record_get(r, pos, claim, &h) == RING_OK)
            return pos;
    }
    return 0;
}

/* MADV_REMOVE of the data-area pages that hold positions [lo, hi) (page
 * aligned, hi - lo <= size): through the first mapping, in one or two
 * pieces; the second mapping shares the pages. */
static int remove_pages(struct ring *r, uint64_t lo, uint64_t hi)
{
    uint64_t off = lo & r->mask, len = hi - lo;
    uint64_t first = off + len > r->size ? r->size - off : len;
    if (madvise(r->data + off, first, MADV_REMOVE) != 0)
        return -1;
    if (first < len && madvise(r->data, len - first, MADV_REMOVE) != 0)
        return -1;
    return 0;
}

size_t ring_release(struct ring *r, const struct ring_keep *keep)
{
    if (r == NULL || keep == NULL || (keep->ns == 0 && (keep->bytes == 0 || keep->bytes >= r->size)))
        return 0;
    uint64_t claim = load_claim(r), released = load_released(r);
    uint64_t newest = atomic_load_explicit(&r->ctl->last_ns, memory_order_relaxed);
    uint64_t pos = r->rel_walk > released ? r->rel_walk : released;
    const struct ring_record *at;
    if (claim - pos > r->size - r->size / 8 && record_get(r, pos, claim, &at) != RING_OK) {
        /* the walk is (nearly) lapped where a record stays uncommitted (a
         * producer that died and was not repaired): go on from a record
         * boundary further on */
        uint64_t b = find_boundary(r, claim - r->size + r->size / 8, claim);
        if (b == 0)
            return 0;
        pos = b;
        if (r->rel_punched < pos - pos % r->page)
            r->rel_punched = pos - pos % r->page;   /* pages already rewritten or kept */
    }
    /* A client at a record is closed as too slow once it is more than
     * keep->bytes behind the claim position, or its record is keep->ns
     * older than the newest: such a record is not needed any more. */
    while (pos < claim) {
        const struct ring_record *h;
        if (record_get(r, pos, claim, &h) != RING_OK)
            break;   /* not committed yet (or being overwritten) */
        uint64_t next = ring_next(h), cns = h->commit_ns;
        if (ring_lapped_since(r, pos) || next <= pos || next > claim)
            break;
        bool old = (keep->bytes && keep->bytes < r->size && claim - pos > keep->bytes) ||
                   (keep->ns && newest > cns && newest - cns > keep->ns);
        if (!old || (keep->hold && next > keep->hold))
            break;
        pos = next;
    }
    r->rel_walk = pos;
    if (pos <= released)
        return 0;
    atomic_store_explicit(&r->ctl->released, pos, memory_order_seq_cst);

    /* The pages wholly below pos, of this lap only: a page below
     * claim - size already holds newer records. */
    uint64_t hi = pos - pos % r->page;
    uint64_t lap = claim - r->size;
    uint64_t lo = r->rel_punched;
    if (lo < lap)
        lo = lap + (r->page - lap % r->page) % r->page;
    if (hi <= lo)
        return 0;
    atomic_store_explicit(&r->ctl->punching, lo, memory_order_seq_cst);
    /* claims made before the mark are seen here: leave the pages a claim
     * already reaches (their next lap is being written) */
    claim = atomic_load_explicit(&r->ctl->claim, memory_order_seq_cst);
    lap = claim - r->size;
    if (lo < lap)
        lo = lap + (r->page - lap % r->page) % r->page;
    size_t done = 0;
    if (hi > lo) {
        if (remove_pages(r, lo, hi) != 0)
            log_warn("ring: madvise(MADV_REMOVE): %s", strerror(errno));
        else
            done = (size_t)(hi - lo);
    }
    atomic_store_explicit(&r->ctl->punching, 0, memory_order_seq_cst);
    r->rel_punched = hi;
    return done;
}

uint64_t ring_released(const struct ring *r) { return load_released(r); }

/* --- repair --- */

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static bool header_committed_at(const struct ring *r, uint64_t pos)
{
    const struct ring_record *h = record_at(r, pos);
    return __atomic_load_n(&h->seq, __ATOMIC_ACQUIRE) == pos &&
           __atomic_load_n(&h->committed, __ATOMIC_ACQUIRE) == 1;
}

/* Did producer id's INTENT (c, len) become a claim? See the notes at the top. */
static bool intent_was_claimed(const struct ring *r, unsigned id, uint64_t c, uint32_t len)
{
    if (load_claim(r) < c + len)
        return false;
    for (unsigned waited = 0; waited <= RING_REPAIR_WAIT_MS; waited++) {
        bool other_intent = false;
        for (unsigned q = 0; q < RING_MAX_PRODUCERS; q++) {
            uint64_t w = atomic_load_explicit(&r->ctl->slots[q].word, memory_order_acquire);
            if (q == id || (w & ~SLOT_STATE_MASK) != c)
                continue;
            if ((w & SLOT_STATE_MASK) == SLOT_CLAIMED)
                return false;
            if ((w & SLOT_STATE_MASK) == SLOT_INTENT)
                other_intent = true;
        }
        /* After the slots: an owner clears its slot only after committing. */
        if (header_committed_at(r, c))
            return false;
        if (!other_intent)
            return true;
        sleep_ms(1);
    }
    /* Two producers stuck around the same CAS: take it as ours if a record
     * or the claim position starts right where our length ends. */
    const struct ring_record *next = record_at(r, c + len);
    bool ours = load_claim(r) == c + len || __atomic_load_n(&next->seq, __ATOMIC_ACQUIRE) == c + len;
    log_warn("ring: repair of producer %u at %llu is ambiguous; %s", id, (unsigned long long)c,
             ours ? "padding it" : "leaving it");
    return ours;
}

static void pad_fields(struct ring_record *h)
{
    h->kind = RING_KIND_PAD;
    h->cert_index = 0;
    h->log_id = 0;
    memset(h->ws, 0, sizeof h->ws);
    memset(h->json, 0, sizeof h->json);
    memset(h->sse_tail, 0, sizeof h->sse_tail);
    memset(&h->sse_head, 0, sizeof h->sse_head);
    memset(h->segs, 0, sizeof h->segs);
}

static void pad_open_record(const struct ring *r, struct ring_record *h, uint64_t pos)
{
    pad_fields(h);
    memset((uint8_t *)h + RING_HDR, 0, h->total_len - RING_HDR);
    header_commit(r, h, pos, wall_ns());
    log_warn("ring: the chain table changed during a publish; padded %u bytes at %llu", h->total_len,
             (unsigned long long)pos);
}

/* Turns the claimed, uncommitted range [c, c+len) into a committed pad. */
static void pad_claim(struct ring *r, unsigned id, uint64_t c, uint32_t len)
{
    if (len < RING_HDR || len % RING_ALIGN != 0 || len > r->size / 4) {
        log_error("ring: producer %u: claim slot holds a bad length %u; not repaired", id, len);
        return;
    }
    if (header_committed_at(r, c))
        return;
    if (load_claim(r) + r->size / 4 > c + r->size) {
        log_warn("ring: producer %u: claim at %llu is about to be overwritten; not padded", id,
                 (unsigned long long)c);
        return;
    }
    struct ring_record *h = record_at(r, c);
    header_open(h, c);
    h->total_len = len;
    pad_fields(h);
    header_commit(r, h, c, wall_ns());
    log_warn("ring: producer %u died mid-record; padded %u bytes at %llu", id, len, (unsigned long long)c);
}

void ring_repair(struct ring *r, unsigned producer_id)
{
    if (r == NULL || producer_id >= RING_MAX_PRODUCERS)
        return;
    struct ring_slot *slot = &r->ctl->slots[producer_id];
    uint64_t w = atomic_load_explicit(&slot->word, memory_order_acquire);
    uint32_t len = atomic_load_explicit(&slot->len, memory_order_relaxed);
    uint64_t c = w & ~SLOT_STATE_MASK;
    switch (w & SLOT_STATE_MASK) {
    case SLOT_IDLE:
        return;
    case SLOT_INTENT:
        if (intent_was_claimed(r, producer_id, c, len))
            pad_claim(r, producer_id, c, len);
        break;
    case SLOT_CLAIMED:
        pad_claim(r, producer_id, c, len);
        break;
    default:
        log_error("ring: producer %u: claim slot in unknown state %llu", producer_id,
                  (unsigned long long)(w & SLOT_STATE_MASK));
        break;
    }
    atomic_store_explicit(&slot->word, SLOT_IDLE, memory_order_release);
}

bool ring_claim_open(const struct ring *r, unsigned producer_id, uint64_t *pos)
{
    if (r == NULL || producer_id >= RING_MAX_PRODUCERS)
        return false;
    uint64_t w = atomic_load_explicit(&r->ctl->slots[producer_id].word, memory_order_acquire);
    if ((w & SLOT_STATE_MASK) == SLOT_IDLE)
        return false;
    *pos = w & ~SLOT_STATE_MASK;
    return true;
}

/* --- wakeups --- */

int ring_add_waiter(struct ring *r, int eventfd)
{
    if (r == NULL || eventfd < 0 || r->n_waiters >= RING_MAX_WAITERS) {
        errno = EINVAL;
        return -1;
    }
    r->waiters[r->n_waiters++] = eventfd;
    return 0;
}

void ring_waiter_set_active(struct ring *r, unsigned i, bool active)
{
    if (r == NULL || i >= RING_MAX_WAITERS)
        return;
    uint64_t bit = (uint64_t)1 << (i % 64);
    if (active)
        atomic_fetch_and_explicit(&r->ctl->waiter_idle[i / 64], ~bit, memory_order_release);
    else
        atomic_fetch_or_explicit(&r->ctl->waiter_idle[i / 64], bit, memory_order_release);
}

void ring_notify(struct ring *r)
{
    const uint64_t one = 1;
    for (unsigned i = 0; i < r->n_waiters; i++) {
        if (atomic_load_explicit(&r->ctl->waiter_idle[i / 64], memory_order_acquire) & ((uint64_t)1 << (i % 64)))
            continue;
        ssize_t n = write(r->waiters[i], &one, sizeof one);
        if (n == (ssize_t)sizeof one || (n < 0 && errno == EAGAIN))
            continue;
        if (!r->notify_error_logged) {
            r->notify_error_logged = true;
            log_error("ring: wakeup of worker %u failed: %s", i, n < 0 ? strerror(errno) : "short write");
        }
    }
}

int ring_waiter_fd(const struct ring *r, unsigned worker_index)
{
    if (r == NULL || worker_index >= r->n_waiters)
        return -1;
    return r->waiters[worker_index];
}

uint64_t ring_record_sse_id(const struct ring_record *rec)
{
    struct ring_span sp = rec->sse_head;
    if (sp.len < 4 + 1 + 7 || sp.len > RING_SSE_HEAD_MAX || sp.off < RING_HDR || sp.off > rec->total_len ||
        sp.len > rec->total_len - sp.off)
        return 0;
    const char *p = (const char *)ring_record_bytes(rec) + sp.off;
    uint64_t v = 0;
    for (uint32_t i = 4; i < sp.len - 7; i++) {
        if (p[i] < '0' || p[i] > '9' || v > (UINT64_MAX - 9) / 10)
            return 0;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    return v;
}

/* --- reading the forms of a record --- */

struct iovlist {
    struct iovec v[RING_RECORD_MAX_IOV];
    int n;
    bool bad;
};

static void iv_add(struct iovlist *l, const uint8_t *p, uint32_t len)
{
    if (len == 0)
        return;
    if (p == NULL) {
        l->bad = true;
        return;
    }
    if (l->n > 0 && (const uint8_t *)l->v[l->n - 1].iov_base + l->v[l->n - 1].iov_len == p) {
        l->v[l->n - 1].iov_len += len;   /* adjacent: one iovec */
        return;
    }
    if (l->n == RING_RECORD_MAX_IOV) {
        l->bad = true;
        return;
    }
    l->v[l->n++] = (struct iovec){(void *)p, len};
}

static const uint8_t *local_bytes(const struct ring_record *h, struct ring_span sp)
{
    return span_in(h, sp) ? ring_record_bytes(h) + sp.off : NULL;
}

/* The JSON of format f, as pieces. */
static void json_pieces(const struct ring *r, const struct ring_record *h, int f, struct iovlist *l)
{
    struct ring_span sg = h->segs[f];
    if (sg.len == 0) {
        iv_add(l, local_bytes(h, h->json[f]), h->json[f].len);
        return;
    }
    if (sg.len > RING_MAX_SEGS || sg.off < RING_HDR ||
        (uint64_t)sg.off + sizeof(struct ring_seg) * sg.len > h->total_len) {
        l->bad = true;
        return;
    }
    const struct ring_seg *s = (const struct ring_seg *)(ring_record_bytes(h) + sg.off);
    uint64_t sum = 0;
    for (uint32_t i = 0; i < sg.len && !l->bad; i++) {
        struct ring_seg x = s[i];
        uint32_t len = x.len & ~RING_SEG_SHARED;
        sum += len;
        if (x.len & RING_SEG_SHARED)
            iv_add(l, r ? chaintab_bytes(r->ct, x.off, len) : NULL, len);
        else
            iv_add(l, local_bytes(h, (struct ring_span){x.off, len}), len);
    }
    if (sum != h->json[f].len)
        l->bad = true;
}

static uint32_t form_pieces(const struct ring *r, const struct ring_record *h, int f, enum ring_wire w,
                            struct iovlist *l)
{
    l->n = 0;
    l->bad = false;
    if (h->kind != RING_KIND_MESSAGE || f < 0 || f >= RING_NFORMATS)
        return 0;
    bool split = h->segs[f].len != 0;
    switch (w) {
    case RING_WIRE_WS:
        iv_add(l, local_bytes(h, h->ws[f]), h->ws[f].len);
        if (split)
            json_pieces(r, h, f, l);
        break;
    case RING_WIRE_SSE:
        iv_add(l, local_bytes(h, h->sse_head), h->sse_head.len);
        if (split)
            json_pieces(r, h, f, l);
        iv_add(l, local_bytes(h, h->sse_tail[f]), h->sse_tail[f].len);
        break;
    case RING_WIRE_JSON:
        json_pieces(r, h, f, l);
        break;
    default:
        return 0;
    }
    if (l->bad)
        return 0;
    uint64_t total = 0;
    for (int i = 0; i < l->n; i++)
        total += l->v[i].iov_len;
    return total > UINT32_MAX ? 0 : (uint32_t)total;
}

uint32_t ring_record_iov(const struct ring *r, const struct ring_record *rec, enum ring_format f,
                         enum ring_wire w, uint32_t skip, struct iovec *iov, int *niov)
{
    /* the common case, a WebSocket frame stored whole (lite, domains): one
     * span, as fast as before the split layout */
    if (rec->kind == RING_KIND_MESSAGE && (unsigned)f < RING_NFORMATS && w == RING_WIRE_WS &&
        rec->segs[f].len == 0) {
        struct ring_span s = rec->ws[f];
        if (s.len == 0 || !span_in(rec, s) || skip >= s.len)
            return 0;
        iov[(*niov)++] = (struct iovec){(void *)(ring_record_bytes(rec) + s.off + skip), s.len - skip};
        return s.len - skip;
    }
    struct iovlist l;
    uint32_t total = form_pieces(r, rec, (int)f, w, &l);
    if (total == 0 || skip >= total)
        return 0;
    uint32_t left = skip;
    for (int i = 0; i < l.n; i++) {
        if (left >= l.v[i].iov_len) {
            left -= (uint32_t)l.v[i].iov_len;
            continue;
        }
        iov[(*niov)++] = (struct iovec){(uint8_t *)l.v[i].iov_base + left, l.v[i].iov_len - left};
        left = 0;
    }
    return total - skip;
}

const char *ring_record_json(const struct ring *r, const struct ring_record *rec, enum ring_format f,
                             char *buf, size_t cap, size_t *len)
{
    struct iovlist l;
    uint32_t total = form_pieces(r, rec, (int)f, RING_WIRE_JSON, &l);
    if (total == 0)
        return NULL;
    *len = total;
    if (l.n == 1)
        return l.v[0].iov_base;
    if (total > cap)
        return NULL;
    size_t at = 0;
    for (int i = 0; i < l.n; i++) {
        memcpy(buf + at, l.v[i].iov_base, l.v[i].iov_len);
        at += l.v[i].iov_len;
    }
    return buf;
}

struct chaintab *ring_chaintab(const struct ring *r) { return r->ct; }
