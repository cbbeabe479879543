/* history.c - see history.h. */
#include "nats/history.h"

#include "common/log.h"
#include "common/history.h"
#include "nats/wire.h"

#include <nats/nats.h>

_Static_assert(HISTORY_NFORMATS == RING_NFORMATS, "history entries carry the ring's formats");

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* The client library buffers at most this much per resuming client before
 * it is a slow consumer (the reader then breaks and deep.c opens a new one
 * where it stopped): the memory bound of one deep resume, with deep.c's
 * chunk. JetStream's flow control keeps an ordered consumer well below it. */
#define HIST_PENDING_MSGS 2048
#define HIST_PENDING_BYTES (16 * 1024 * 1024)

struct reader {
    pthread_mutex_t mu;
    int state;              /* 0 opening, 1 open, -1 failed; under mu */
    bool closed;            /* closed while opening: the opener frees it */
    const struct config *cfg;
    uint64_t from;
    natsSubscription *sub;
    natsMsg *cur;           /* the entry last returned (its JSON points into it) */
};

/* one connection per worker process, made by the first opener */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static natsConnection *g_nc;
static jsCtx *g_js;
static bool g_lib;

static int connect_once(const struct config *cfg)
{
    int rc = 0;
    pthread_mutex_lock(&g_mu);
    if (g_js)
        goto out;
    if (!g_lib) {
        if (nats_Open(-1) != NATS_OK) {
            rc = -1;
            goto out;
        }
        g_lib = true;
    }
    natsOptions *o = NULL;
    natsStatus s = natsOptions_Create(&o);
    char urls[4096];
    const char *list[64];
    int nurl = 0;
    snprintf(urls, sizeof urls, "%s", cfg->nats.url);
    for (char *save = NULL, *u = strtok_r(urls, ",", &save); u && nurl < 64; u = strtok_r(NULL, ",", &save))
        list[nurl++] = u;
    if (s == NATS_OK) s = natsOptions_SetServers(o, list, nurl);
    if (s == NATS_OK) s = natsOptions_SetName(o, "certstream-server resume");
    if (s == NATS_OK) s = natsOptions_SetMaxReconnect(o, -1);
    if (s == NATS_OK) s = natsOptions_SetReconnectWait(o, 250);
    if (s == NATS_OK) s = natsOptions_SetTimeout(o, 2000);
    if (s == NATS_OK && cfg->nats.creds_file[0])
        s = natsOptions_SetUserCredentialsFromFiles(o, cfg->nats.creds_file, NULL);
    if (s == NATS_OK) s = natsConnection_Connect(&g_nc, o);
    natsOptions_Destroy(o);
    if (s == NATS_OK) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = 5000;
        s = natsConnection_JetStream(&g_js, g_nc, &jo);
    }
    if (s != NATS_OK) {
        log_warn("resume from the stream: NATS %s: %s", cfg->nats.url, natsStatus_GetText(s));
        if (g_nc) {
            natsConnection_Destroy(g_nc);
            g_nc = NULL;
        }
        rc = -1;
    }
out:
    pthread_mutex_unlock(&g_mu);
    return rc;
}

static void reader_free(struct reader *r)
{
    natsMsg_Destroy(r->cur);
    if (r->sub) {
        natsSubscription_Unsubscribe(r->sub);
        natsSubscription_Destroy(r->sub);
    }
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static void *opener(void *arg)
{
    struct reader *r = arg;
    natsSubscription *sub = NULL;
    int st = -1;
    if (connect_once(r->cfg) == 0) {
        char subject[300];
        snprintf(subject, sizeof subject, "%s.entries", r->cfg->nats.subject_prefix);
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Stream = r->cfg->nats.stream;
        so.Ordered = true;
        so.Config.DeliverPolicy = js_DeliverByStartSequence;
        so.Config.OptStartSeq = r->from;
        jsErrCode jerr = 0;
        natsStatus s = js_SubscribeSync(&sub, g_js, subject, NULL, &so, &jerr);
        if (s == NATS_OK) {
            if (natsSubscription_SetPendingLimits(sub, HIST_PENDING_MSGS, HIST_PENDING_BYTES) != NATS_OK)
                log_warn("resume from the stream: cannot set the subscription's pending limits");
            st = 1;
        } else {
            log_warn("resume from the stream at %" PRIu64 ": %s (%d)", r->from, natsStatus_GetText(s), (int)jerr);
            sub = NULL;
        }
    }
    pthread_mutex_lock(&r->mu);
    r->sub = sub;
    r->state = st;
    bool closed = r->closed;
    pthread_mutex_unlock(&r->mu);
    if (closed)
        reader_free(r);
    return NULL;
}

static void *hist_open(const struct config *cfg, uint64_t from)
{
    struct reader *r = calloc(1, sizeof *r);
    if (!r || pthread_mutex_init(&r->mu, NULL) != 0) {
        free(r);
        return NULL;
    }
    r->cfg = cfg;
    r->from = from;
    pthread_attr_t at;
    pthread_t th;
    int e = pthread_attr_init(&at);
    if (e == 0) e = pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (e == 0) e = pthread_create(&th, &at, opener, r);
    pthread_attr_destroy(&at);
    if (e != 0) {
        log_warn("resume from the stream: pthread_create: %s", strerror(e));
        pthread_mutex_destroy(&r->mu);
        free(r);
        return NULL;
    }
    return r;
}

static int hist_next(void *rd, struct history_entry *e)
{
    struct reader *r = rd;
    pthread_mutex_lock(&r->mu);
    int st = r->state;
    pthread_mutex_unlock(&r->mu);
    if (st <= 0)
        return st;
    for (;;) {
        natsMsg_Destroy(r->cur);
        r->cur = NULL;
        natsMsg *m = NULL;
        natsStatus s = natsSubscription_NextMsg(&m, r->sub, 0);
        if (s == NATS_TIMEOUT)
            return 0;
        if (s != NATS_OK) {
            log_warn("resume from the stream: %s; reading again", natsStatus_GetText(s));
            return -1;
        }
        r->cur = m;
        jsMsgMetaData *meta = NULL;
        if (natsMsg_GetMetaData(&meta, m) != NATS_OK)
            continue;
        uint64_t seq = meta->Sequence.Stream;
        jsMsgMetaData_Destroy(meta);
        struct wire_entry we;
        const char *why = "";
        if (wire_decode((const uint8_t *)natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &we, &why) != 0)
            continue;   /* not a certstream entry: the edge's consumer skips it too */
        e->seq = seq;
        for (int f = 0; f < RING_NFORMATS; f++) {
            e->json[f] = we.json[f];
            e->len[f] = we.len[f];
        }
        return 1;
    }
}

static void *closer(void *arg)
{
    reader_free(arg);
    return NULL;
}

/* Unsubscribing an ordered consumer deletes it on the server (a JetStream
 * API request, a round trip or a timeout): that, too, runs on a thread. */
static void hist_close(void *rd)
{
    struct reader *r = rd;
    pthread_mutex_lock(&r->mu);
    bool opening = r->state == 0;
    r->closed = true;
    pthread_mutex_unlock(&r->mu);
    if (opening)
        return;   /* the opener frees it */
    pthread_attr_t at;
    pthread_t th;
    int e = pthread_attr_init(&at);
    if (e == 0) e = pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (e == 0) e = pthread_create(&th, &at, closer, r);
    pthread_attr_destroy(&at);
    if (e != 0)
        reader_free(r);
}

static struct history_ops g_ops = {.open = hist_open, .next = hist_next, .close = hist_close};

const struct history_ops *nats_history_ops(const struct config *cfg)
{
    if (strcmp(cfg->ingest.source, "nats") != 0)
        return NULL;
    if (!g_ops.counters) {
        void *p = mmap(NULL, sizeof(struct history_counters), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                       -1, 0);
        if (p == MAP_FAILED) {
            log_warn("resume from the stream: mmap: %s; resumes reach back as far as the ring only",
                     strerror(errno));
            return NULL;
        }
        g_ops.counters = p;
    }
    return &g_ops;
}
