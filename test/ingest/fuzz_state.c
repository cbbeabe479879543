/* fuzz_state.c - libFuzzer target for state_parse (the state file). */
#include <stddef.h>
#include <stdint.h>

#include "ingest/state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct state st;
    char err[256];
    if (state_parse((const char *)data, size, &st, err, sizeof err) == 0) state_free(&st);
    return 0;
}
