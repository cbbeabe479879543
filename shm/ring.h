/* ring.h - the shared-memory broadcast ring: the only channel from ingest to fanout.
 *
 * One region, created by the supervisor before fork (memfd) and inherited by
 * every child. Data area of `size` bytes (power of two) mapped twice back to
 * back, so a record that wraps is still contiguous in memory and can be handed
 * to writev() as one iovec.
 *
 * Positions are logical byte offsets that only grow (uint64, never wrap in
 * practice). A record's sequence number IS its position: unique, monotonic, and
 * a reader checks lapping by comparing the position stamped in the header with
 * the one it expected. SSE `id:` lines carry this number.
 *
 * Producers (ingest processes, the replay source) claim space with an atomic
 * CAS on the claim position, write, then commit with a release store. Readers
 * (fanout workers) never write the ring and never block producers. A producer
 * that dies between claim and commit leaves an uncommitted record; the
 * supervisor calls ring_repair() after reaping it, which turns that record into
 * padding so readers move on.
 *
 * The layout (header, alignment) is defined here and only here. */
#ifndef CS_RING_H
#define CS_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define RING_ALIGN 64u
#define RING_MAX_PRODUCERS 64
#define RING_BENCH_STAMP_LEN 17   /* "0000000000.000000" */

enum ring_format { RING_FULL = 0, RING_LITE = 1, RING_DOMAINS = 2, RING_NFORMATS = 3 };

enum ring_status {
    RING_OK = 0,       /* a committed record is at the position */
    RING_EMPTY = 1,    /* nothing committed there yet: wait for a wakeup */
    RING_LAPPED = 2,   /* the position was overwritten: the reader is too slow */
    RING_ERROR = -1,
};

enum ring_kind { RING_KIND_MESSAGE = 1, RING_KIND_PAD = 2 };

struct ring_span { uint32_t off, len; };  /* offset from the record start */

/* Record header. A record is the header followed by its sections, padded to
 * RING_ALIGN. Sections of a message record, for each format f:
 *   ws[f]      WebSocket Text frame: frame header + JSON (one contiguous span)
 *   json[f]    the JSON alone (inside ws[f]); json[f] is followed by "\n\n"
 *   sse_tail[f] JSON + "\n\n" (starts at json[f].off)
 *   sse_head   "id: <seq>\ndata: " shared by the three formats
 * So a WebSocket client sends 1 iovec per record, an SSE client 2. */
struct ring_record {
    uint64_t seq;             /* == position; written before commit */
    uint32_t total_len;       /* bytes from record start to next record, aligned */
    uint32_t kind;            /* enum ring_kind */
    uint64_t commit_ns;       /* CLOCK_REALTIME ns just before commit */
    uint64_t cert_index;      /* the entry's index in its log */
    uint32_t log_id;          /* index into the per-log state table */
    uint32_t checksum;        /* FNV-1a of the bytes after the header (tests); 0 when off */
    struct ring_span ws[RING_NFORMATS];
    struct ring_span json[RING_NFORMATS];
    struct ring_span sse_tail[RING_NFORMATS];
    struct ring_span sse_head;
    uint32_t committed;       /* 0 while being written; 1 = committed (release) */
    uint32_t reserved;
    uint8_t spare0[24];       /* unused: the header keeps its layout */
    /* Split formats (store each byte once): segs[f].len != 0 means the JSON
     * of format f is the concatenation of segs[f].len struct ring_seg found
     * at segs[f].off in the record; ws[f] is then the frame header alone,
     * json[f].off is RING_SPLIT_OFF (outside any record, so code that reads
     * json[f] as one span refuses it) and json[f].len the JSON's length, and
     * sse_tail[f] is the "\n\n" alone. Use ring_record_iov /
     * ring_record_json, which read both forms. */
    struct ring_span segs[RING_NFORMATS];
    uint8_t spare[16];        /* keeps the header a multiple of RING_ALIGN */
};

/* One piece of a split format's JSON: len bytes at off from the record's
 * start, or, with RING_SEG_SHARED set in len, at off in the chain table
 * (shm/chaintab.h) of the ring. */
struct ring_seg { uint32_t off, len; };
#define RING_SEG_SHARED 0x80000000u
#define RING_SPLIT_OFF UINT32_MAX
#define RING_MAX_SHARED 16    /* shared pieces of one message (more stay in the record) */
#define RING_MAX_LITE_PIECES 8
/* iovecs one form of one record may need (ring_record_iov) */
#define RING_MAX_SEGS (2 * (RING_MAX_SHARED + RING_MAX_LITE_PIECES) + 1)
#define RING_RECORD_MAX_IOV (RING_MAX_SEGS + 3)

/* The forms of a record a reader sends or reads. */
enum ring_wire {
    RING_WIRE_WS = 0,    /* WebSocket Text frame (uncompressed: the fanout workers
                            make permessage-deflate frames from the JSON) */
    RING_WIRE_SSE = 1,   /* "id: <n>\ndata: <json>\n\n" */
    RING_WIRE_JSON = 2,  /* the JSON alone */
};

struct ring;                   /* opaque: the mapping in this process */

/* What a producer publishes: three rendered JSON messages. */
struct ring_message {
    const char *json[RING_NFORMATS];
    size_t json_len[RING_NFORMATS];
    uint64_t cert_index;
    uint32_t log_id;
    /* Benchmark mode: if >= 0, the RING_BENCH_STAMP_LEN-byte ASCII field at
     * this offset in json[f] (a placeholder written by the producer) is
     * overwritten in the ring with the commit time in microseconds as
     * "%010llu.%06llu" (seconds.micros), just before commit. Ignored when it
     * does not fit in json[f]. See docs/benchmarks.md. -1 = not used. */
    long bench_stamp_off[RING_NFORMATS];
    /* The SSE id of the record: 0 = its position (the default); an edge node
     * fed by NATS gives the stream sequence, so that a client can resume on
     * any edge (docs/scale-out.md). Must grow with the position. */
    uint64_t sse_id;
    /* Optional, to store each byte once (docs/architecture.md, "Ring
     * record"); both NULL/0 = the three messages are stored whole.
     * shared[]: ranges of json[RING_FULL] (ascending, not overlapping, at
     *   most RING_MAX_SHARED) that many messages repeat (chain elements):
     *   kept once in the chain table and referenced; a range the table
     *   cannot take stays in the record.
     * lite[]: json[RING_LITE] is exactly these ranges of json[RING_FULL],
     *   ascending, none overlapping a shared range (at most
     *   RING_MAX_LITE_PIECES). Checked against json[RING_LITE] byte for
     *   byte. Lite is always stored whole; full then refers to lite's
     *   bytes for these ranges instead of holding them again. */
    const struct ring_span *shared;
    size_t n_shared;
    const struct ring_span *lite;
    size_t n_lite;
};

/* Supervisor, before fork. size: power of two >= 1 MiB. Returns NULL + errno. */
struct ring *ring_create(size_t size);
/* Unmap (each process at exit; the memfd goes with the last one). */
void ring_destroy(struct ring *r);

size_t ring_size(const struct ring *r);
/* Before anything is published: positions start at `after` or later (a
 * multiple of the size) instead of at size. A ring that replaces another
 * (ring_size reload) starts after the old one's tail, so an SSE id of the old
 * ring is never mistaken for a record of the new one. 0, or -1 (EINVAL). */
int ring_set_start(struct ring *r, uint64_t after);
/* Checksums are off after ring_create (ring_record.checksum is 0): the ring's
 * tests turn them on to verify every record; nothing in the server reads
 * them, and on, a publish of 7 KB of JSON costs ~8 us instead of ~0.4 us
 * (FNV-1a is serial; test/shm/bench_ring measures it). */
void ring_set_checksums(struct ring *r, bool on);
/* Position after the last committed-or-claimed record (claim tail). */
uint64_t ring_tail(const struct ring *r);
/* Position a new reader starts at: the tail (only new records). */
uint64_t ring_start_position(const struct ring *r);
/* Oldest position still guaranteed intact (tail - size + margin), for replay. */
uint64_t ring_oldest_position(const struct ring *r);

/* Producer: claims, writes frames and SSE framing, commits. producer_id in
 * [0, RING_MAX_PRODUCERS) identifies the process's claim slot (for repair).
 * Returns the record's sequence number, or 0 on error (message too large:
 * larger than size/4). */
uint64_t ring_publish(struct ring *r, unsigned producer_id, const struct ring_message *m);
/* The position of the last record committed through producer_id's slot (0:
 * none since the ring was made). A producer restarted in the slot reads it
 * to tell whether its predecessor's last entry reached the ring before it
 * died (ingest: killed between the commit and the position store). */
uint64_t ring_producer_last(const struct ring *r, unsigned producer_id);

/* Reader: the committed record at position pos. It may be a RING_KIND_PAD
 * record (left by ring_repair): send nothing, move on with ring_next(). */
enum ring_status ring_peek(const struct ring *r, uint64_t pos, const struct ring_record **rec);
/* Position of the record after rec. */
static inline uint64_t ring_next(const struct ring_record *rec) { return rec->seq + rec->total_len; }
/* The SSE id written in a record's sse_head ("id: <n>\ndata: "): its
 * position, or ring_message.sse_id when the producer gave one. 0 when the
 * record has no sane head. */
uint64_t ring_record_sse_id(const struct ring_record *rec);
/* Base address of a record's bytes (for spans). */
static inline const uint8_t *ring_record_bytes(const struct ring_record *rec) { return (const uint8_t *)rec; }
/* After copying/sending bytes of the records in [pos, end): were any of them
 * possibly overwritten meanwhile? (validate-after-copy, as Aeron does) */
bool ring_lapped_since(const struct ring *r, uint64_t pos);

/* Appends the iovecs of one form of a record at iov[*niov] (room for
 * RING_RECORD_MAX_IOV is needed), minus its first skip bytes; adjacent
 * pieces share one iovec. Returns the bytes added: 0 when the record has no
 * such form, skip is not below its length, or the record is not sane (it is
 * being overwritten: treat it as lapped). Validate after sending
 * (ring_lapped_since), also for bytes of the chain table. */
uint32_t ring_record_iov(const struct ring *r, const struct ring_record *rec, enum ring_format f,
                         enum ring_wire w, uint32_t skip, struct iovec *iov, int *niov);
/* The JSON of format f: a pointer into the ring when the record holds it
 * contiguously, else a copy into buf (cap bytes). NULL when the record is
 * not sane or the JSON does not fit buf. Validate after use. */
const char *ring_record_json(const struct ring *r, const struct ring_record *rec, enum ring_format f,
                             char *buf, size_t cap, size_t *len);
/* The ring's chain table (tests and metrics). */
struct chaintab *ring_chaintab(const struct ring *r);
/* Finds a record by sequence number for resume (SSE Last-Event-ID): OK when
 * seq is a committed, intact record boundary; LAPPED when too old; ERROR when
 * it is not a record boundary (or not yet claimed); EMPTY when the record
 * there is claimed but not committed yet. */
enum ring_status ring_find(const struct ring *r, uint64_t seq, const struct ring_record **rec);

/* What a reader may still need (ring_release): records committed within
 * ns of the newest one (0: no time bound) and the last `bytes` of the ring
 * (0 or >= size: all of it); a record is given back once it is outside
 * either bound. hold: nothing at or after this position is given back (a
 * reader that must not lose a record: the NATS publisher); 0: none. */
struct ring_keep {
    uint64_t ns;
    uint64_t bytes;
    uint64_t hold;
};

/* One process (the supervisor), periodically: gives back the memory of the
 * pages that hold only records no reader may still need (MADV_REMOVE on the
 * shared data area), so the ring's resident size follows the history kept
 * rather than its size. Readers see those records as lapped (ring_peek,
 * ring_lapped_since, ring_find). The pages come back as producers write
 * the next lap. Returns the bytes given back by this call. */
size_t ring_release(struct ring *r, const struct ring_keep *keep);
/* Positions below this were given back (== the first position when none). */
uint64_t ring_released(const struct ring *r);

/* Supervisor, after reaping producer `producer_id`: pads its uncommitted claim. */
void ring_repair(struct ring *r, unsigned producer_id);

/* Supervisor, watching for a stuck producer: true and the position when
 * producer_id holds a claim it has not committed yet (a claim is held for
 * microseconds normally; one held for long means the producer is stopped or
 * spinning, and it is killed and repaired). */
bool ring_claim_open(const struct ring *r, unsigned producer_id, uint64_t *pos);

/* Wakeups: one eventfd per fanout worker, created by the supervisor. */
int ring_add_waiter(struct ring *r, int eventfd);   /* supervisor, before fork; 0 or -1 */
/* Producer: signal every waiter (call once per published batch). */
void ring_notify(struct ring *r);
int ring_waiter_fd(const struct ring *r, unsigned worker_index);
/* Supervisor: waiter i has a worker (true) or not (false). The supervisor
 * creates a pool of waiters before the producers fork, so workers started
 * later by a reload are woken too; ring_notify writes only to active ones.
 * Every waiter is active after ring_add_waiter. */
void ring_waiter_set_active(struct ring *r, unsigned i, bool active);

#endif
