/* lg_tls.c - see lg_tls.h. */
#include "lg_tls.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>

struct lg_tls {
    mbedtls_ssl_context ssl;
    int fd;
};

static mbedtls_ssl_config g_conf;
static mbedtls_entropy_context g_ent;
static mbedtls_ctr_drbg_context g_drbg;

int lg_tls_global_init(void)
{
    static int done;
    if (done) return 0;
    mbedtls_ssl_config_init(&g_conf);
    mbedtls_entropy_init(&g_ent);
    mbedtls_ctr_drbg_init(&g_drbg);
    if (mbedtls_ctr_drbg_seed(&g_drbg, mbedtls_entropy_func, &g_ent, (const unsigned char *)"lg", 2) != 0 ||
        mbedtls_ssl_config_defaults(&g_conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT) != 0)
        return -1;
    mbedtls_ssl_conf_authmode(&g_conf, MBEDTLS_SSL_VERIFY_NONE);
    /* what browsers and OpenSSL clients offer first (mbedTLS's default
     * starts with P-521, far slower on both sides) */
    static const mbedtls_ecp_group_id curves[] = { MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1,
                                                   MBEDTLS_ECP_DP_NONE };
    mbedtls_ssl_conf_curves(&g_conf, curves);
    mbedtls_ssl_conf_rng(&g_conf, mbedtls_ctr_drbg_random, &g_drbg);
    done = 1;
    return 0;
}

static int bio_send(void *ctx, const unsigned char *b, size_t n)
{
    struct lg_tls *t = ctx;
    ssize_t r = send(t->fd, b, n, MSG_NOSIGNAL);
    if (r >= 0) return (int)r;
    return errno == EAGAIN || errno == EINTR ? MBEDTLS_ERR_SSL_WANT_WRITE : MBEDTLS_ERR_NET_SEND_FAILED;
}

static int bio_recv(void *ctx, unsigned char *b, size_t n)
{
    struct lg_tls *t = ctx;
    ssize_t r = recv(t->fd, b, n, 0);
    if (r >= 0) return (int)r;
    return errno == EAGAIN || errno == EINTR ? MBEDTLS_ERR_SSL_WANT_READ : MBEDTLS_ERR_NET_RECV_FAILED;
}

struct lg_tls *lg_tls_new(int fd)
{
    struct lg_tls *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    mbedtls_ssl_init(&t->ssl);
    if (mbedtls_ssl_setup(&t->ssl, &g_conf) != 0) {
        lg_tls_free(t);
        return NULL;
    }
    t->fd = fd;
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
    return t;
}

void lg_tls_free(struct lg_tls *t)
{
    if (!t) return;
    mbedtls_ssl_free(&t->ssl);
    free(t);
}

int lg_tls_handshake(struct lg_tls *t)
{
    int r = mbedtls_ssl_handshake(&t->ssl);
    if (r == 0) return 0;
    if (r == MBEDTLS_ERR_SSL_WANT_READ) return 1;
    if (r == MBEDTLS_ERR_SSL_WANT_WRITE) return 2;
    return -1;
}

static ssize_t result(int r)
{
    if (r >= 0) return r;
    if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    if (r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || r == MBEDTLS_ERR_SSL_CONN_EOF) return 0;
    errno = ECONNRESET;
    return -1;
}

ssize_t lg_tls_read(struct lg_tls *t, void *buf, size_t n)
{
    return result(mbedtls_ssl_read(&t->ssl, buf, n));
}

ssize_t lg_tls_write(struct lg_tls *t, const void *buf, size_t n)
{
    return result(mbedtls_ssl_write(&t->ssl, buf, n));
}

bool lg_tls_pending(struct lg_tls *t)
{
    return mbedtls_ssl_get_bytes_avail(&t->ssl) > 0 || mbedtls_ssl_check_pending(&t->ssl);
}
