/* tls.h - the TLS listener's sessions, with mbedTLS 2.28 (the project's TLS
 * library).
 *
 * Versions: TLS 1.2 only. mbedTLS 2.28 has TLS 1.3 only behind
 * MBEDTLS_SSL_PROTO_TLS1_3_EXPERIMENTAL, a client-side prototype that
 * Debian's build leaves off; TLS 1.0/1.1 are refused (minimum 1.2). ALPN
 * offers http/1.1.
 *
 * The write path keeps the fanout's one pass per wakeup: the batch of
 * records the pump gathered (iovecs into the ring) is copied into 16 KiB
 * plaintext chunks, each encrypted as one TLS record straight into the
 * client's bounded ciphertext buffer (TLS_OUT_CAP), which is then written
 * with one write(). What does not fit stays in the ring, as for a plain
 * client whose socket is full; a client that falls behind is judged and
 * dropped by the same rules.
 *
 * Session resumption: RFC 5077 session tickets (TLS 1.2), keyed from a
 * secret the supervisor makes before it forks the workers
 * (tls_ticket_secret_init()), so a ticket issued by one worker resumes on
 * any worker. The key rotates every tls.ticket_rotate_secs (wall clock,
 * the same instants in every worker); a key is accepted for one more
 * period, and a session is resumable for one period after its full
 * handshake. The keys come from a one-way chain whose old values every
 * process erases (forward secrecy past one period; tls.c). No session-id
 * cache: tickets cover the clients that resume.
 *
 * Certificates: tls_server_reload() builds a new mbedTLS configuration;
 * new handshakes use it, sessions already up keep a reference to the old
 * one until they end. */
#ifndef CS_FANOUT_TLS_H
#define CS_FANOUT_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define TLS_OUT_CAP (2 * (16384 + 64))  /* ciphertext buffered per client: two full records */

struct tls_server;
struct tls_conn;

/* Once, in the supervisor before it forks the workers: the start of the
 * ticket key chain (random, never written anywhere). 0, or -1 (errno). */
int tls_ticket_secret_init(uint32_t rotate_secs);
/* Erases the chain values older than the previous rotation period (the
 * supervisor calls it at its tick; the workers as they derive keys). */
void tls_ticket_secret_advance(uint32_t rotate_secs);

/* ticket_rotate_secs 0: no session tickets */
struct tls_server *tls_server_new(const char *cert_file, const char *key_file, uint32_t ticket_rotate_secs,
                                  char *why, size_t whyn);
/* 0: new handshakes use the new files; -1 (why): the old ones stay */
int tls_server_reload(struct tls_server *s, const char *cert_file, const char *key_file, char *why, size_t whyn);
void tls_server_free(struct tls_server *s);

struct tls_conn *tls_conn_new(struct tls_server *s, int fd);
void tls_conn_free(struct tls_conn *t);

/* Drives the handshake, then decrypts: like recv(). A client that speaks
 * plain HTTP to the TLS port gets a plain 400 answer saying so and -1/EPROTO. */
ssize_t tls_recv(struct tls_conn *t, void *buf, size_t n);
/* Writes buffered ciphertext, encrypts as much of iov as fits, writes again.
 * Returns the plaintext bytes taken (0..), or -1 (EAGAIN: nothing taken). */
ssize_t tls_writev(struct tls_conn *t, const struct iovec *iov, int niov);
/* close_notify, best effort, before the write side is shut */
void tls_close_notify(struct tls_conn *t);
bool tls_conn_established(const struct tls_conn *t);
/* the handshake resumed a session from a ticket */
bool tls_conn_resumed(const struct tls_conn *t);
bool tls_out_pending(const struct tls_conn *t);
bool tls_in_pending(const struct tls_conn *t);

#endif
