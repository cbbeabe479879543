/* state.c - load, save (atomically) and apply the per-log state file. */
#include "ingest/state.h"
#include "shm/positions.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ingest/jsondoc.h"
#include "common/log.h"
#include "ingest/loglist.h"
#include "shm/stats.h"

#define STATE_MAX_BYTES (64u << 20)


const struct state_entry *state_find(const struct state *st, const char *url)
{
    for (size_t i = 0; i < st->n; i++)
        if (strcmp(st->v[i].url, url) == 0) return &st->v[i];
    return NULL;
}

int state_set(struct state *st, const char *url, uint64_t next_index, uint64_t tree_size)
{
    struct state_entry *e = (struct state_entry *)state_find(st, url);
    if (!e) {
        if (st->n == st->cap) {
            size_t cap = st->cap ? st->cap * 2 : 32;
            struct state_entry *nv = realloc(st->v, cap * sizeof *nv);
            if (!nv) return -1;
            st->v = nv;
            st->cap = cap;
        }
        char *u = strdup(url);
        if (!u) return -1;
        e = &st->v[st->n++];
        e->url = u;
    }
    e->next_index = next_index;
    e->tree_size = tree_size;
    return 0;
}

void state_free(struct state *st)
{
    for (size_t i = 0; i < st->n; i++) free(st->v[i].url);
    free(st->v);
    memset(st, 0, sizeof *st);
}


int state_parse(const char *json, size_t len, struct state *st, char *err, size_t errlen)
{
    cJSON *root;
    const cJSON *it;
    memset(st, 0, sizeof *st);
    const cJSON *logs = jsondoc_member(json, len, "logs", cJSON_Object, "", &root, err, errlen);
    if (!logs)
        goto err;
    cJSON_ArrayForEach(it, logs) {
        uint64_t next = 0, size = 0;
        if (!cJSON_IsObject(it) || !it->string || !*it->string) {
            jsondoc_err(err, errlen, "log entry is not an object with a URL key");
            goto err;
        }
        if (jsondoc_u64(it, "next_index", &next) != 0 || jsondoc_u64(it, "tree_size", &size) != 0) {
            jsondoc_err(err, errlen, "log \"%.200s\": next_index/tree_size missing or not unsigned integers",
                   it->string);
            goto err;
        }
        if (state_set(st, it->string, next, size) != 0) {
            jsondoc_err(err, errlen, "out of memory");
            goto err;
        }
    }
    cJSON_Delete(root);
    return 0;
err:
    cJSON_Delete(root);
    state_free(st);
    return -1;
}

int state_load(const char *path, struct state *st, char *err, size_t errlen)
{
    char e2[256];
    char *buf = NULL;
    size_t len = 0;
    struct stat sb;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    memset(st, 0, sizeof *st);
    if (fd < 0) {
        if (errno == ENOENT) return 0;
        jsondoc_err(err, errlen, "state file %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &sb) != 0) {
        jsondoc_err(err, errlen, "state file %s: %s", path, strerror(errno));
        goto err;
    }
    if (sb.st_size > (off_t)STATE_MAX_BYTES) {
        jsondoc_err(err, errlen, "state file %s: larger than %u bytes", path, STATE_MAX_BYTES);
        goto err;
    }
    buf = malloc((size_t)sb.st_size + 1);
    if (!buf) {
        jsondoc_err(err, errlen, "state file %s: out of memory", path);
        goto err;
    }
    while (len < (size_t)sb.st_size) {
        ssize_t n = read(fd, buf + len, (size_t)sb.st_size - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            jsondoc_err(err, errlen, "state file %s: %s", path, strerror(errno));
            goto err;
        }
        if (n == 0) break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    if (state_parse(buf, len, st, e2, sizeof e2) != 0) {
        jsondoc_err(err, errlen, "state file %s is corrupt (%s); fix or remove it", path, e2);
        goto err;
    }
    free(buf);
    (void)close(fd);   /* read-only: nothing to lose on close */
    return 0;
err:
    free(buf);
    (void)close(fd);
    return -1;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The file is written by hand, not with cJSON_Print: cJSON prints large
 * numbers with 15 significant digits, which would round positions. */
static char *state_json(const struct state *st)
{
    size_t cap = 64;
    for (size_t i = 0; i < st->n; i++) cap += strlen(st->v[i].url) * 6 + 96;
    char *s = malloc(cap), *o = s;
    if (!s) return NULL;
    o += sprintf(o, "{\"logs\":{");
    for (size_t i = 0; i < st->n; i++) {
        o += sprintf(o, "%s\n  \"", i ? "," : "");
        for (const unsigned char *u = (const unsigned char *)st->v[i].url; *u; u++) {
            if (*u == '"' || *u == '\\') o += sprintf(o, "\\%c", *u);
            else if (*u < 0x20) o += sprintf(o, "\\u%04x", *u);
            else *o++ = (char)*u;
        }
        o += sprintf(o, "\":{\"next_index\":%llu,\"tree_size\":%llu}",
                     (unsigned long long)st->v[i].next_index, (unsigned long long)st->v[i].tree_size);
    }
    sprintf(o, "%s}}", st->n ? "\n" : "");
    return s;
}

int state_save(const char *path, const struct state *st, char *err, size_t errlen)
{
    char tmp[4096], dir[4096];
    char *json = NULL;
    int fd = -1, dfd = -1;

    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        jsondoc_err(err, errlen, "state file path too long");
        goto err;
    }
    if (!(json = state_json(st))) goto oom;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write_all(fd, json, strlen(json)) != 0 || write_all(fd, "\n", 1) != 0 || fsync(fd) != 0) {
        jsondoc_err(err, errlen, "state file %s: %s", tmp, strerror(errno));
        goto err;
    }
    if (close(fd) != 0) {
        fd = -1;
        jsondoc_err(err, errlen, "state file %s: %s", tmp, strerror(errno));
        goto err;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        jsondoc_err(err, errlen, "state file %s: rename: %s", path, strerror(errno));
        goto err;
    }
    /* Make the rename itself durable. */
    snprintf(dir, sizeof dir, "%s", path);
    dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        /* Some filesystems refuse directory fsync; the file is renamed
         * already, only its durability across a power cut is weaker. */
        log_debug("state file %s: directory fsync: %s", path, strerror(errno));
    }
    if (dfd >= 0) (void)close(dfd);
    free(json);
    return 0;
oom:
    jsondoc_err(err, errlen, "state file: out of memory");
err:
    if (fd >= 0) {
        (void)close(fd);
        if (unlink(tmp) != 0) log_debug("state file %s: unlink: %s", tmp, strerror(errno));
    }
    free(json);
    return -1;
}

void state_apply_log(const struct state *st, const struct loglist_log *l, struct stats *stats)
{
    struct stats_log *sl = stats_log(stats, l->log_id);
    const struct state_entry *e = state_find(st, l->url);
    if (!sl) return;
    memset(sl, 0, sizeof *sl);
    snprintf(sl->name, sizeof sl->name, "%s", l->name);
    snprintf(sl->url, sizeof sl->url, "%s", l->url);
    snprintf(sl->operator_name, sizeof sl->operator_name, "%s", l->operator_name ? l->operator_name : "");
    sl->kind = l->kind == LOGLIST_TILED;
    if (e) {
        sl->next_index = e->next_index;
        sl->tree_size = e->tree_size;
    }
}

void state_apply(const struct state *st, const struct loglist *ll, struct stats *stats)
{
    size_t n = ll->n_logs < STATS_MAX_LOGS ? ll->n_logs : STATS_MAX_LOGS;
    stats_set_log_count(stats, (unsigned)n);
    for (size_t i = 0; i < n; i++)
        state_apply_log(st, &ll->logs[i], stats);
}

void state_positions_apply(struct positions *pos, const struct loglist *ll, struct stats *stats)
{
    size_t n = ll->n_logs < STATS_MAX_LOGS ? ll->n_logs : STATS_MAX_LOGS;
    for (size_t i = 0; i < n; i++) state_positions_apply_log(pos, &ll->logs[i], stats);
}

void state_positions_apply_log(struct positions *pos, const struct loglist_log *l, struct stats *stats)
{
    if (!pos) return;
    struct stats_log *sl = stats_log(stats, l->log_id);
    struct position_row *r = positions_row(pos, l->url, true);
    if (!sl) return;
    if (!r) {
        log_warn("%s: no row in the position store (full, or URL too long); its position "
                 "is kept only in the state file", l->url);
        return;
    }
    if (position_known(r)) {
        /* The store is written as entries are published: newer than the file. */
        if (sl->next_index != position_next(r))
            log_info("%s: position %llu from the position store (state file: %llu)", l->name,
                     (unsigned long long)position_next(r), (unsigned long long)sl->next_index);
        sl->next_index = position_next(r);
        sl->tree_size = position_size(r);
    } else if (sl->next_index != 0 || sl->tree_size != 0) {
        /* First start with this store: import the state file's position. */
        position_store_size(r, sl->tree_size);
        position_store(r, sl->next_index);
    }
}

int state_update(struct state *st, struct stats *stats)
{
    unsigned n = stats_log_count(stats);
    for (unsigned i = 0; i < n; i++) {
        struct stats_log *sl = stats_log(stats, i);
        if (!sl || !sl->url[0]) continue;
        uint64_t next = __atomic_load_n(&sl->next_index, __ATOMIC_RELAXED);
        uint64_t size = __atomic_load_n(&sl->tree_size, __ATOMIC_RELAXED);
        if (next == 0 && size == 0) continue;   /* nothing known yet: keep what the file had */
        if (state_set(st, sl->url, next, size) != 0) return -1;
    }
    return 0;
}
