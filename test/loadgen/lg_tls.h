/* lg_tls.h - TLS for the load generator's epoll clients (wss://, https://),
 * with mbedTLS. The certificate is not verified: the target is always
 * loopback (see loadgen.c) and this measures the server's cost, not trust. */
#ifndef LG_TLS_H
#define LG_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct lg_tls;

int lg_tls_global_init(void);                 /* once per process: 0 or -1 */
struct lg_tls *lg_tls_new(int fd);
void lg_tls_free(struct lg_tls *t);
/* 0: done; 1: wants to read; 2: wants to write; -1: failed */
int lg_tls_handshake(struct lg_tls *t);
/* like read()/write(): -1 with errno EAGAIN when nothing can move */
ssize_t lg_tls_read(struct lg_tls *t, void *buf, size_t n);
ssize_t lg_tls_write(struct lg_tls *t, const void *buf, size_t n);
/* decrypted or buffered bytes not yet returned (epoll will not say so) */
bool lg_tls_pending(struct lg_tls *t);

#endif
