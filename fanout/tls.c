/* tls.c - see tls.h. */
#include "fanout/tls.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sys/random.h>
#include <time.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/gcm.h>
#include <mbedtls/md.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "common/log.h"
#include "conf/tls_files.h"

#define TLS_RECORD_ROOM (16384 + 64)   /* one record's ciphertext: payload + header, IV, tag */

/* one certificate generation; sessions hold a reference */
struct tls_cfg {
    unsigned refs;
    mbedtls_ssl_config conf;
    mbedtls_x509_crt crt;
    mbedtls_pk_context pk;
};

/* Session ticket keys (see tls.h): the key of rotation period `epoch` and
 * of the one before, derived from the process-wide secret. */
struct ticket_keys {
    uint32_t rotate_secs;           /* 0: tickets off */
    uint32_t epoch;                 /* period of key[0]; key[1] is epoch - 1 */
    bool ready, have_prev;          /* have_prev: key[1] is set */
    mbedtls_gcm_context key[2];
};

struct tls_server {
    struct tls_cfg *cur;
    mbedtls_entropy_context ent;
    mbedtls_ctr_drbg_context drbg;
    struct ticket_keys tk;
};

struct tls_conn {
    mbedtls_ssl_context ssl;
    struct tls_cfg *cfg;
    int fd;
    bool up, checked_first, broken, resumed;
    uint32_t out_len, out_off;
    uint8_t out[TLS_OUT_CAP];
};

static const char *alpn_list[] = { "http/1.1", NULL };
/* Key exchange groups, fastest first. mbedTLS's default list starts with
 * secp521r1 and the brainpool curves, and the server takes the client's
 * first choice among them: a client that prefers P-521 (mbedTLS clients
 * do) made each handshake cost several times a P-256 or X25519 one,
 * which the single-threaded worker pays while its streams wait. */
static const mbedtls_ecp_group_id curve_list[] = {
    MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_SECP384R1, MBEDTLS_ECP_DP_NONE,
};

/* the worker is single-threaded: one plaintext staging chunk for all */
static uint8_t stage[16384];

/* ---- session tickets ----------------------------------------------------------
 *
 * mbedTLS 2.28's own ticket context (mbedtls_ssl_ticket_*) draws each key
 * from a random generator inside the process and rotates it on that
 * process's clock: every worker would hold different keys, and a client
 * resumed only on the worker that issued its ticket. It has no way to set a
 * key (mbedtls_ssl_ticket_rotate() came in 3.x). So the two callbacks are
 * written here, with mbedTLS's AES-256-GCM and HMAC-SHA-256 doing the
 * cryptography. Every worker derives the same keys at the same wall-clock
 * instants, and a restart makes a new secret (old tickets then fall back to
 * a full handshake). Ticket: period (4) | IV (12) | session state, encrypted
 * | tag (16); the period and IV are authenticated as additional data.
 *
 * Keys, forward-secure: a chain of 32-byte values, one step a minute of
 * wall clock (chain[m + 1] = HMAC(chain[m], "next")), starts from a random
 * value the supervisor draws before it forks the workers. The key of
 * rotation period p is HMAC(chain[first minute of p], "key"). A process
 * keeps only the chain value of the previous period's first minute and
 * erases older ones as the periods pass (the supervisor too, at its tick),
 * so its memory cannot give the keys of tickets older than one period. */

#define TICKET_HEAD 16u
#define TICKET_TAG 16u

static uint8_t chain_key[32];     /* the chain at minute chain_min */
static uint64_t chain_min;
static bool ticket_secret_set;
/* set by ticket_parse inside mbedtls_ssl_handshake(), read right after it
 * (the worker is single-threaded) */
static bool ticket_accepted;

static int hmac_label(const uint8_t key[32], const char *label, uint8_t out[32])
{
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    return md ? mbedtls_md_hmac(md, key, 32, (const unsigned char *)label, strlen(label), out) : -1;
}

/* first minute of rotation period p */
static uint64_t period_minute(uint64_t p, uint32_t rotate_secs)
{
    return p * rotate_secs / 60u;
}

/* Moves the chain forward to minute m, erasing the values passed. */
static int chain_advance(uint64_t m)
{
    uint8_t next[32];
    while (chain_min < m) {
        if (hmac_label(chain_key, "certstream-server ticket chain next", next) != 0) return -1;
        memcpy(chain_key, next, sizeof next);
        chain_min++;
    }
    memset(next, 0, sizeof next);
    return 0;
}

int tls_ticket_secret_init(uint32_t rotate_secs)
{
    size_t got = 0;
    while (got < sizeof chain_key) {
        ssize_t n = getrandom(chain_key + got, sizeof chain_key - got, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        got += (size_t)n;
    }
    /* the chain starts at the previous period's first minute: the current
     * and the previous period keys can be derived from it */
    uint64_t cur = (uint64_t)time(NULL) / (rotate_secs ? rotate_secs : 3600);
    chain_min = cur ? period_minute(cur - 1, rotate_secs ? rotate_secs : 3600) : 0;
    ticket_secret_set = true;
    return 0;
}

void tls_ticket_secret_advance(uint32_t rotate_secs)
{
    if (!ticket_secret_set || rotate_secs == 0) return;
    uint64_t cur = (uint64_t)time(NULL) / rotate_secs;
    if (cur == 0) return;
    uint64_t m = period_minute(cur - 1, rotate_secs);
    if (m > chain_min && chain_advance(m) != 0) log_warn("TLS ticket key chain: cannot advance");
}

/* The AES-256-GCM key of rotation period p; -1 if the chain is already past
 * its first minute (erased) or on an error. */
static int ticket_derive(mbedtls_gcm_context *g, uint64_t p, uint32_t rotate_secs)
{
    uint64_t m = period_minute(p, rotate_secs);
    if (m < chain_min) return -1;
    uint8_t k[32], key[32];
    memcpy(k, chain_key, sizeof k);
    int rc = 0;
    for (uint64_t i = chain_min; i < m && rc == 0; i++) {
        rc = hmac_label(k, "certstream-server ticket chain next", key);
        memcpy(k, key, sizeof k);
    }
    if (rc == 0) rc = hmac_label(k, "certstream-server session ticket key", key);
    if (rc == 0) {
        mbedtls_gcm_free(g);
        mbedtls_gcm_init(g);
        rc = mbedtls_gcm_setkey(g, MBEDTLS_CIPHER_ID_AES, key, 256);
    }
    memset(k, 0, sizeof k);
    memset(key, 0, sizeof key);
    return rc;
}

/* Brings the keys to the current period, erasing older chain values. 0, or
 * -1 (no key for the current period: no tickets now). The previous period's
 * key may be missing (have[1]) after a start or a longer rotation period. */
static int ticket_keys_update(struct ticket_keys *tk, uint32_t now_epoch)
{
    if (tk->ready && tk->epoch == now_epoch) return 0;
    tk->ready = false;
    tls_ticket_secret_advance(tk->rotate_secs);
    if (ticket_derive(&tk->key[0], now_epoch, tk->rotate_secs) != 0) return -1;
    tk->have_prev = now_epoch > 0 && ticket_derive(&tk->key[1], now_epoch - 1u, tk->rotate_secs) == 0;
    tk->epoch = now_epoch;
    tk->ready = true;
    return 0;
}

static uint32_t now_epoch(const struct ticket_keys *tk)
{
    return (uint32_t)((uint64_t)time(NULL) / tk->rotate_secs);
}

static int ticket_write(void *p, const mbedtls_ssl_session *session, unsigned char *start,
                        const unsigned char *end, size_t *tlen, uint32_t *lifetime)
{
    struct tls_server *s = p;
    struct ticket_keys *tk = &s->tk;
    uint32_t e = now_epoch(tk);
    if (ticket_keys_update(tk, e) != 0) return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    size_t room = (size_t)(end - start);
    if (room < TICKET_HEAD + TICKET_TAG) return MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL;
    size_t clen;
    int rc = mbedtls_ssl_session_save(session, start + TICKET_HEAD, room - TICKET_HEAD - TICKET_TAG, &clen);
    if (rc != 0) return rc;
    for (int i = 0; i < 4; i++) start[i] = (uint8_t)(e >> (24 - 8 * i));
    if ((rc = mbedtls_ctr_drbg_random(&s->drbg, start + 4, 12)) != 0) return rc;
    rc = mbedtls_gcm_crypt_and_tag(&tk->key[0], MBEDTLS_GCM_ENCRYPT, clen, start + 4, 12, start, TICKET_HEAD,
                                   start + TICKET_HEAD, start + TICKET_HEAD, TICKET_TAG,
                                   start + TICKET_HEAD + clen);
    if (rc != 0) return rc;
    *tlen = TICKET_HEAD + clen + TICKET_TAG;
    *lifetime = tk->rotate_secs;
    return 0;
}

static int ticket_parse(void *p, mbedtls_ssl_session *session, unsigned char *buf, size_t len)
{
    struct tls_server *s = p;
    struct ticket_keys *tk = &s->tk;
    if (len < TICKET_HEAD + TICKET_TAG) return MBEDTLS_ERR_SSL_BAD_INPUT_DATA;
    uint32_t cur = now_epoch(tk), e = 0;
    for (int i = 0; i < 4; i++) e = e << 8 | buf[i];
    if (ticket_keys_update(tk, cur) != 0) return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    /* a key is used one period and accepted one more */
    if (e != cur && (e != cur - 1 || !tk->have_prev)) return MBEDTLS_ERR_SSL_SESSION_TICKET_EXPIRED;
    size_t clen = len - TICKET_HEAD - TICKET_TAG;
    int rc = mbedtls_gcm_auth_decrypt(&tk->key[e == cur ? 0 : 1], clen, buf + 4, 12, buf, TICKET_HEAD,
                                      buf + TICKET_HEAD + clen, TICKET_TAG, buf + TICKET_HEAD, buf + TICKET_HEAD);
    if (rc != 0) return MBEDTLS_ERR_SSL_INVALID_MAC;
    if ((rc = mbedtls_ssl_session_load(session, buf + TICKET_HEAD, clen)) != 0) return rc;
    /* the session itself lives at most one period past its full handshake */
    time_t now = time(NULL);
    if (session->start > now || (uint64_t)(now - session->start) > tk->rotate_secs)
        return MBEDTLS_ERR_SSL_SESSION_TICKET_EXPIRED;
    ticket_accepted = true;
    return 0;
}

static void cfg_unref(struct tls_cfg *c)
{
    if (!c || --c->refs > 0) return;
    mbedtls_ssl_config_free(&c->conf);
    mbedtls_x509_crt_free(&c->crt);
    mbedtls_pk_free(&c->pk);
    free(c);
}

static struct tls_cfg *cfg_new(struct tls_server *s, const char *cert_file, const char *key_file,
                               char *why, size_t whyn)
{
    const char *bad;
    if (tls_files_check(cert_file, key_file, &bad, why, whyn) < 0) return NULL;
    struct tls_cfg *c = calloc(1, sizeof *c);
    if (!c) return snprintf(why, whyn, "out of memory"), NULL;
    c->refs = 1;
    mbedtls_ssl_config_init(&c->conf);
    mbedtls_x509_crt_init(&c->crt);
    mbedtls_pk_init(&c->pk);
    char err[120];
    int e;
    if ((e = mbedtls_x509_crt_parse_file(&c->crt, cert_file)) != 0 ||
        (e = mbedtls_pk_parse_keyfile(&c->pk, key_file, NULL)) != 0 ||
        (e = mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                         MBEDTLS_SSL_PRESET_DEFAULT)) != 0 ||
        (e = mbedtls_ssl_conf_own_cert(&c->conf, &c->crt, &c->pk)) != 0 ||
        (e = mbedtls_ssl_conf_alpn_protocols(&c->conf, alpn_list)) != 0) {
        mbedtls_strerror(e, err, sizeof err);
        snprintf(why, whyn, "%s / %s: %s", cert_file, key_file, err);
        cfg_unref(c);
        return NULL;
    }
    /* TLS 1.2 only (see tls.h) */
    mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &s->drbg);
    mbedtls_ssl_conf_renegotiation(&c->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
    mbedtls_ssl_conf_curves(&c->conf, curve_list);
    if (s->tk.rotate_secs) mbedtls_ssl_conf_session_tickets_cb(&c->conf, ticket_write, ticket_parse, s);
    return c;
}

struct tls_server *tls_server_new(const char *cert_file, const char *key_file, uint32_t ticket_rotate_secs,
                                  char *why, size_t whyn)
{
    struct tls_server *s = calloc(1, sizeof *s);
    if (!s) return snprintf(why, whyn, "out of memory"), NULL;
    mbedtls_gcm_init(&s->tk.key[0]);
    mbedtls_gcm_init(&s->tk.key[1]);
    /* no secret from the supervisor (a worker run on its own): no tickets */
    s->tk.rotate_secs = ticket_secret_set ? ticket_rotate_secs : 0;
    mbedtls_entropy_init(&s->ent);
    mbedtls_ctr_drbg_init(&s->drbg);
    static const char pers[] = "certstream-server tls";
    if (mbedtls_ctr_drbg_seed(&s->drbg, mbedtls_entropy_func, &s->ent, (const unsigned char *)pers,
                              sizeof pers - 1) != 0) {
        snprintf(why, whyn, "cannot seed the random generator");
        tls_server_free(s);
        return NULL;
    }
    s->cur = cfg_new(s, cert_file, key_file, why, whyn);
    if (!s->cur) {
        tls_server_free(s);
        return NULL;
    }
    return s;
}

int tls_server_reload(struct tls_server *s, const char *cert_file, const char *key_file, char *why, size_t whyn)
{
    struct tls_cfg *c = cfg_new(s, cert_file, key_file, why, whyn);
    if (!c) return -1;
    cfg_unref(s->cur);
    s->cur = c;
    return 0;
}

void tls_server_free(struct tls_server *s)
{
    if (!s) return;
    cfg_unref(s->cur);
    mbedtls_gcm_free(&s->tk.key[0]);
    mbedtls_gcm_free(&s->tk.key[1]);
    mbedtls_ctr_drbg_free(&s->drbg);
    mbedtls_entropy_free(&s->ent);
    free(s);
}

/* ---- BIO: ciphertext goes to the bounded buffer, comes from the socket ---- */

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    struct tls_conn *t = ctx;
    if (TLS_OUT_CAP - t->out_len < len) return MBEDTLS_ERR_SSL_WANT_WRITE;
    memcpy(t->out + t->out_len, buf, len);
    t->out_len += (uint32_t)len;
    return (int)len;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    struct tls_conn *t = ctx;
    ssize_t n = recv(t->fd, buf, len, 0);
    if (n >= 0) return (int)n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return MBEDTLS_ERR_SSL_WANT_READ;
    return MBEDTLS_ERR_NET_RECV_FAILED;
}

/* Writes buffered ciphertext. 0, or -1 on a socket error (EAGAIN is not one). */
static int flush_out(struct tls_conn *t)
{
    while (t->out_off < t->out_len) {
        ssize_t n = send(t->fd, t->out + t->out_off, t->out_len - t->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
            t->broken = true;
            return -1;
        }
        t->out_off += (uint32_t)n;
    }
    t->out_off = t->out_len = 0;
    return 0;
}

struct tls_conn *tls_conn_new(struct tls_server *s, int fd)
{
    struct tls_conn *t = malloc(sizeof *t);
    if (!t) return NULL;
    memset(t, 0, offsetof(struct tls_conn, out));
    mbedtls_ssl_init(&t->ssl);
    if (mbedtls_ssl_setup(&t->ssl, &s->cur->conf) != 0) {
        mbedtls_ssl_free(&t->ssl);
        free(t);
        return NULL;
    }
    t->cfg = s->cur;
    t->cfg->refs++;
    t->fd = fd;
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
    return t;
}

void tls_conn_free(struct tls_conn *t)
{
    if (!t) return;
    mbedtls_ssl_free(&t->ssl);
    cfg_unref(t->cfg);
    free(t);
}

bool tls_conn_established(const struct tls_conn *t) { return t->up; }
bool tls_conn_resumed(const struct tls_conn *t) { return t->resumed; }
bool tls_out_pending(const struct tls_conn *t) { return t->out_off < t->out_len; }
bool tls_in_pending(const struct tls_conn *t) { return mbedtls_ssl_get_bytes_avail(&t->ssl) > 0; }

/* Not a TLS ClientHello (a TLS record starts with 0x16): most likely plain
 * HTTP. Answer in plain HTTP so the person sees why, after reading what the
 * client sent (closing with unread input would reset the connection and
 * could destroy the answer). */
static void refuse_plain(struct tls_conn *t)
{
    static const char body[] = "This port speaks TLS: use https:// or wss://.\n";
    char resp[256], sink[8192];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", sizeof body - 1, body);
    while (recv(t->fd, sink, sizeof sink, 0) > 0) {
    }
    if (send(t->fd, resp, (size_t)n, MSG_NOSIGNAL) < 0) log_debug("plain answer on the TLS port: %s", strerror(errno));
    if (shutdown(t->fd, SHUT_WR) != 0) log_debug("shutdown: %s", strerror(errno));
}

static ssize_t fail_ssl(struct tls_conn *t, int r)
{
    if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    if (r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || r == MBEDTLS_ERR_SSL_CONN_EOF) return 0;
    if (log_get_level() <= LOG_DEBUG) {
        char err[120];
        mbedtls_strerror(r, err, sizeof err);
        log_debug("TLS fd %d: %s", t->fd, err);
    }
    errno = t->up ? ECONNRESET : EPROTO;
    return -1;
}

ssize_t tls_recv(struct tls_conn *t, void *buf, size_t n)
{
    if (t->broken) {
        errno = EPIPE;
        return -1;
    }
    if (!t->checked_first) {
        uint8_t b;
        ssize_t r = recv(t->fd, &b, 1, MSG_PEEK);
        if (r <= 0) return r;
        if (b != 0x16) {
            refuse_plain(t);
            errno = EPROTO;
            return -1;
        }
        t->checked_first = true;
    }
    if (!t->up) {
        ticket_accepted = false;
        int r = mbedtls_ssl_handshake(&t->ssl);
        if (ticket_accepted) t->resumed = true;
        if (flush_out(t) < 0) return -1;
        if (r != 0) return fail_ssl(t, r);
        t->up = true;
    }
    int r = mbedtls_ssl_read(&t->ssl, buf, n);
    if (flush_out(t) < 0) return -1;
    if (r > 0) return r;
    return fail_ssl(t, r);
}

ssize_t tls_writev(struct tls_conn *t, const struct iovec *iov, int niov)
{
    if (flush_out(t) < 0) return -1;
    if (niov == 0) return 0;
    if (!t->up || tls_out_pending(t)) {
        errno = EAGAIN;
        return -1;
    }
    size_t taken = 0, off = 0;
    int i = 0;
    while (i < niov && TLS_OUT_CAP - t->out_len >= TLS_RECORD_ROOM) {
        size_t k = 0;
        while (i < niov && k < sizeof stage) {
            size_t m = iov[i].iov_len - off;
            if (m > sizeof stage - k) m = sizeof stage - k;
            memcpy(stage + k, (const uint8_t *)iov[i].iov_base + off, m);
            k += m;
            off += m;
            if (off == iov[i].iov_len) {
                i++;
                off = 0;
            }
        }
        if (k == 0) break;
        int r = mbedtls_ssl_write(&t->ssl, stage, k);
        if (r < 0) {
            /* room was checked: anything else is a broken session */
            fail_ssl(t, r == MBEDTLS_ERR_SSL_WANT_WRITE ? MBEDTLS_ERR_SSL_INTERNAL_ERROR : r);
            t->broken = true;
            errno = EPIPE;
            return -1;
        }
        taken += (size_t)r;
        if ((size_t)r < k) break;    /* the rest goes in the next pass */
    }
    if (flush_out(t) < 0) return -1;
    return (ssize_t)taken;
}

void tls_close_notify(struct tls_conn *t)
{
    if (!t->up || t->broken) return;
    if (mbedtls_ssl_close_notify(&t->ssl) == 0) flush_out(t);
}
