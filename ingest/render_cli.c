/* render_cli.c - `certstream-server render`.
 *
 *   render [--format full|lite|domains] [--log-name NAME] [--log-url URL]
 *          [--start INDEX] [--seen SECONDS] [--absent-name-fields null|omit]
 *          < get-entries.json
 *   render --tile FILE [--tile-index N] [--tile-width W] [--issuers DIR] ...
 *
 * Prints one message per entry per line. The body is parsed by ctapi.c, as
 * the ingest process parses it. A malformed entry prints
 * "entry <index>: <reason>" on stderr and the run continues; the exit status
 * is 1 if any entry failed, 2 on bad usage or unreadable input. */
#include "ingest/render_cli.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/file.h"
#include "ingest/ctapi.h"
#include "ingest/pipeline.h"

/* Issuers from a directory of files named by lowercase hex SHA-256. */
#define MAX_ISSUERS 256
struct issuers {
    const char *dir;
    size_t n;
    struct { uint8_t fp[32]; uint8_t *der; size_t len; } e[MAX_ISSUERS];
};

static int issuer_lookup(void *ctx, const uint8_t fp[32], const uint8_t **der, size_t *len)
{
    struct issuers *is = ctx;
    for (size_t i = 0; i < is->n; i++)
        if (memcmp(is->e[i].fp, fp, 32) == 0) { *der = is->e[i].der; *len = is->e[i].len; return 0; }
    if (!is->dir || is->n == MAX_ISSUERS) return -1;
    char path[4096];
    int o = snprintf(path, sizeof path, "%s/", is->dir);
    for (int i = 0; i < 32 && o + 3 < (int)sizeof path; i++) o += snprintf(path + o, sizeof path - (size_t)o, "%02x", fp[i]);
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char *buf;
    size_t blen;
    int rc = file_read_all(f, &buf, &blen);
    fclose(f);
    if (rc < 0) return -1;
    memcpy(is->e[is->n].fp, fp, 32);
    is->e[is->n].der = (uint8_t *)buf;
    is->e[is->n].len = blen;
    is->n++;
    *der = (const uint8_t *)buf;
    *len = blen;
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: certstream-server render [--format full|lite|domains] [--log-name NAME]\n"
            "         [--log-url URL] [--start INDEX] [--seen SECONDS]\n"
            "         [--absent-name-fields null|omit] < get-entries.json\n"
            "       certstream-server render --tile FILE [--tile-index N] [--tile-width W]\n"
            "         [--issuers DIR] [--format ...] [--log-name NAME] [--log-url URL] [--seen SECONDS]\n"
            "         [--absent-name-fields null|omit]\n"
            "  --absent-name-fields: null (default) writes every subject/issuer key, null when\n"
            "  absent; omit leaves absent keys out (message_format.absent_name_fields)\n");
}

static double now_seconds(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return 0;
    return (double)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000) / 1000.0;
}

static int parse_u64(const char *s, uint64_t *v)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') return -1;
    *v = x;
    return 0;
}

static int emit(const struct pipeline_out *out, int fmt)
{
    if (fwrite(out->json[fmt], 1, out->len[fmt], stdout) != out->len[fmt] || putchar('\n') == EOF) return -1;
    return 0;
}

static int run_tile(struct pipeline *p, const char *file, uint64_t tile_index, unsigned width,
                    struct issuers *is, const char *name, const char *url, bool fixed, double seen, int fmt)
{
    FILE *f = fopen(file, "rb");
    if (!f) { fprintf(stderr, "render: %s: %s\n", file, strerror(errno)); return 2; }
    char *tilebuf;
    size_t tlen;
    int rc = file_read_all(f, &tilebuf, &tlen);
    fclose(f);
    if (rc < 0) { fprintf(stderr, "render: cannot read %s\n", file); return 2; }
    const uint8_t *tile = (const uint8_t *)tilebuf;
    /* Count entries first: a tile of fewer than 256 is a partial tile. */
    if (!width) {
        size_t off = 0, count = 0, used;
        struct ct_entry e;
        while (off < tlen && ct_decode_tile_entry(tile + off, tlen - off, &used, &e, NULL, 0) == 0) { off += used; count++; }
        if (count < 256) width = (unsigned)count;
    }
    char path[128], link[4096];
    ct_data_tile_path(path, sizeof path, tile_index, width);
    size_t ulen = strlen(url);
    if (ulen && url[ulen - 1] == '/') ulen--;
    snprintf(link, sizeof link, "%.*s/%s", (int)ulen, url, path);
    int status = 0;
    size_t off = 0;
    pipeline_set_issuer_lookup(p, issuer_lookup, is);
    for (uint64_t i = 0; off < tlen; i++) {
        uint64_t index = tile_index * 256 + i;
        struct pipeline_out out;
        struct ct_entry e;
        char err[256];
        size_t used = 0;
        if (ct_decode_tile_entry(tile + off, tlen - off, &used, &e, err, sizeof err) < 0) {
            fprintf(stderr, "entry %" PRIu64 ": %s\n", index, err);
            status = 1;
            break;                     /* the rest of the tile cannot be read */
        }
        if (pipeline_render_tile_entry(p, tile + off, used, index, name, url, link,
                                       fixed ? seen : now_seconds(), &out, err, sizeof err) < 0) {
            fprintf(stderr, "entry %" PRIu64 ": %s\n", index, err);
            status = 1;
        } else if (emit(&out, fmt) < 0) {
            status = 2;
            break;
        }
        off += used;
    }
    free(tilebuf);
    return status;
}

static int run_entries(struct pipeline *p, uint64_t start, const char *name, const char *url,
                       bool fixed, double seen, int fmt)
{
    char *body;
    size_t blen;
    if (file_read_all(stdin, &body, &blen) < 0) { fprintf(stderr, "render: cannot read stdin\n"); return 2; }
    struct ctapi_entries ents;
    char err[256];
    int rc = ctapi_entries_parse(body, blen, SIZE_MAX, &ents, err, sizeof err);
    free(body);
    if (rc < 0) {
        fprintf(stderr, "render: stdin is not a get-entries response: %s\n", err);
        return 2;
    }
    int status = 0;
    for (size_t i = 0; i < ents.n; i++) {
        const struct ctapi_entry *e = &ents.v[i];
        uint64_t index = start + i;
        struct pipeline_out out;
        if (e->bad) {
            snprintf(err, sizeof err, "leaf_input/extra_data missing or not base64");
        } else if (pipeline_render_rfc6962(p, e->leaf_input, e->leaf_len, e->extra_data, e->extra_len, index, name,
                                           url, fixed ? seen : now_seconds(), &out, err, sizeof err) == 0) {
            if (emit(&out, fmt) < 0) { status = 2; break; }
            continue;
        }
        fprintf(stderr, "entry %" PRIu64 ": %s\n", index, err);
        status = 1;
    }
    ctapi_entries_free(&ents);
    return status;
}

int render_cli_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"format", required_argument, NULL, 'f'},   {"log-name", required_argument, NULL, 'n'},
        {"log-url", required_argument, NULL, 'u'},  {"start", required_argument, NULL, 's'},
        {"seen", required_argument, NULL, 'S'},     {"tile", required_argument, NULL, 't'},
        {"tile-index", required_argument, NULL, 'i'}, {"tile-width", required_argument, NULL, 'w'},
        {"issuers", required_argument, NULL, 'I'},  {"help", no_argument, NULL, 'h'},
        {"absent-name-fields", required_argument, NULL, 'A'},
        {NULL, 0, NULL, 0},
    };
    int fmt = 1;
    const char *name = "", *url = "", *tile = NULL;
    uint64_t start = 0, tile_index = 0, width = 0;
    bool fixed = false, names_null = true;
    double seen = 0;
    struct issuers *is = calloc(1, sizeof *is);
    if (!is) return 2;
    optind = 1;
    int c, status = 2;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            if (!strcmp(optarg, "full")) fmt = 0;
            else if (!strcmp(optarg, "lite")) fmt = 1;
            else if (!strcmp(optarg, "domains") || !strcmp(optarg, "domains-only")) fmt = 2;
            else { fprintf(stderr, "render: unknown format '%s'\n", optarg); goto err; }
            break;
        case 'n': name = optarg; break;
        case 'u': url = optarg; break;
        case 's':
            if (parse_u64(optarg, &start) < 0) { fprintf(stderr, "render: bad --start '%s'\n", optarg); goto err; }
            break;
        case 'S': {
            char *end;
            seen = strtod(optarg, &end);
            if (end == optarg || *end) { fprintf(stderr, "render: bad --seen '%s'\n", optarg); goto err; }
            fixed = true;
            break;
        }
        case 't': tile = optarg; break;
        case 'i':
            if (parse_u64(optarg, &tile_index) < 0 || tile_index > UINT64_MAX / 256) {
                fprintf(stderr, "render: bad --tile-index '%s'\n", optarg);
                goto err;
            }
            break;
        case 'w':
            if (parse_u64(optarg, &width) < 0 || width > 255) { fprintf(stderr, "render: bad --tile-width '%s'\n", optarg); goto err; }
            break;
        case 'I': is->dir = optarg; break;
        case 'A':
            if (!strcmp(optarg, "null")) names_null = true;
            else if (!strcmp(optarg, "omit")) names_null = false;
            else { fprintf(stderr, "render: --absent-name-fields must be null or omit, not '%s'\n", optarg); goto err; }
            break;
        case 'h': usage(); status = 0; goto err;
        default: usage(); goto err;
        }
    }
    if (optind != argc) { usage(); goto err; }
    struct pipeline *p = pipeline_new();
    if (!p || pipeline_set_absent_names(p, names_null) != 0) {
        pipeline_free(p);
        fprintf(stderr, "render: out of memory\n");
        goto err;
    }
    if (tile) status = run_tile(p, tile, tile_index, (unsigned)width, is, name, url, fixed, seen, fmt);
    else status = run_entries(p, start, name, url, fixed, seen, fmt);
    pipeline_free(p);
    if (fflush(stdout) != 0) status = 2;
err:
    for (size_t i = 0; i < is->n; i++) free(is->e[i].der);
    free(is);
    return status;
}
