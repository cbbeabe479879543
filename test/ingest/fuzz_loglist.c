/* fuzz_loglist.c - libFuzzer target for loglist_build (log list JSON). The
 * first byte picks group_by and max_processes so grouping is fuzzed too. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ingest/loglist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *by[] = {"operator", "log", "single"};
    struct config cfg;
    struct loglist ll;
    char err[256];
    if (size < 1) return 0;
    memset(&cfg, 0, sizeof cfg);
    cfg.ct_log.list_enabled = cfg.ct_log.rfc6962_enabled = cfg.ct_log.static_enabled = true;
    cfg.ingest.group_by = (char *)by[data[0] % 3];
    cfg.ingest.max_processes = (data[0] >> 2) % 5;
    if (loglist_build(&cfg, (const char *)data + 1, size - 1, &ll, err, sizeof err) == 0) loglist_free(&ll);
    return 0;
}
