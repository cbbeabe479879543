/* fuzz_wire.c - libFuzzer target for the NATS message decoder (nats/wire.c)
 * and the message-id scan: whatever a stream holds, an edge must refuse it
 * cleanly or take it whole; a decoded entry re-encodes to the same bytes. */
#include "nats/wire.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wire_entry e;
    const char *why = NULL;
    if (wire_decode(data, size, &e, &why) == 0) {
        size_t n = wire_size(&e);
        if (n != size)
            abort();
        uint8_t *out = malloc(n);
        if (!out)
            return 0;
        if (wire_encode(&e, out) != n || memcmp(out, data, n) != 0)
            abort();
        free(out);
        char id[WIRE_MSG_ID_LEN + 1];
        if (wire_msg_id(e.json[RING_FULL], e.len[RING_FULL], id) == 0 && strlen(id) != WIRE_MSG_ID_LEN)
            abort();
    } else if (why == NULL) {
        abort();
    }
    char id[WIRE_MSG_ID_LEN + 1];
    if (wire_msg_id((const char *)data, size, id) == 0 && strlen(id) != WIRE_MSG_ID_LEN)
        abort();
    return 0;
}
