/* ring_test.h - test-only hooks into the ring's producer path.
 *
 * Lets a test stop a producer at each step of the commit protocol (for
 * example to SIGKILL it between claim and commit and check ring_repair).
 * The hook is process-local and NULL in the server; the cost on the publish
 * path is one predictable branch per step. */
#ifndef CS_RING_TEST_H
#define CS_RING_TEST_H

#include <stdint.h>

struct ring;

enum ring_test_phase {
    RING_TEST_INTENT,    /* claim slot says INTENT, before the CAS on the claim position */
    RING_TEST_CLAIMED,   /* CAS done, claim slot still says INTENT */
    RING_TEST_OPENED,    /* slot CLAIMED, header stamped seq + committed=0 */
    RING_TEST_WRITTEN,   /* sections written, before stamp/checksum/commit */
    RING_TEST_COMMITTED, /* committed and the slot idle, before ring_publish returns */
};

typedef void ring_test_hook_fn(enum ring_test_phase phase, uint64_t pos, void *arg);

/* fn == NULL removes the hook. */
void ring_test_set_hook(ring_test_hook_fn *fn, void *arg);

/* The first mapping of the data area (size bytes; the second mapping
 * follows it). For tests that scribble on the ring to check that readers
 * reject whatever they find there. */
uint8_t *ring_test_data(struct ring *r);

/* The checksum the ring stamps in checksum mode (ring_set_checksums): FNV-1a
 * of the record's bytes after the header, continued over the chain-table
 * bytes its split formats reference, in order. */
struct ring_record;
uint32_t ring_test_checksum(const struct ring *r, const struct ring_record *rec);

#endif
