/* tls.c - see tls.h. */
#include "fanout/tls.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
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

struct tls_server {
    struct tls_cfg *cur;
    mbedtls_entropy_context ent;
    mbedtls_ctr_drbg_context drbg;
};

struct tls_conn {
    mbedtls_ssl_context ssl;
    struct tls_cfg *cfg;
    int fd;
    bool up, checked_first, broken;
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
    return c;
}

struct tls_server *tls_server_new(const char *cert_file, const char *key_file, char *why, size_t whyn)
{
    struct tls_server *s = calloc(1, sizeof *s);
    if (!s) return snprintf(why, whyn, "out of memory"), NULL;
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
        int r = mbedtls_ssl_handshake(&t->ssl);
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
