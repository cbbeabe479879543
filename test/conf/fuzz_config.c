/* fuzz_config.c - libFuzzer target for the configuration parser: any bytes
 * are loaded as a YAML configuration file. A refused input must leave a
 * message and must not be libcyaml disagreeing with the check pass; an
 * accepted one must survive config_print -> load unchanged (tokens aside,
 * which are printed redacted). */
#include "conf/config.h"
#include "conf/config_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config cfg, back;
    struct config_error err;
    int rc = config_load_buffer(&cfg, (const char *)data, size, "fuzz.yaml", &err);
    if (rc == -2) {   /* the check pass accepted what libcyaml refused or misread */
        fprintf(stderr, "%s\n", err.message);
        abort();
    }
    if (rc < 0) {
        if (err.message[0] == '\0') abort();
        return 0;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) abort();
    config_print(&cfg, f);
    if (fclose(f) != 0) abort();
    if (config_load_buffer(&back, text, len, "printed.yaml", &err) < 0) {
        fprintf(stderr, "printed configuration refused: %s\n%s", err.message, text);
        abort();
    }
    const char *diff = config_diff(&cfg, &back, 1);
    if (diff) {
        fprintf(stderr, "round trip changed %s\n%s", diff, text);
        abort();
    }
    free(text);
    config_free(&back);
    config_free(&cfg);
    return 0;
}
