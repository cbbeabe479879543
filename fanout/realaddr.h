/* realaddr.h - the real client address behind proxies: the PROXY protocol
 * header (v1 text and v2 binary, haproxy's proxy-protocol.txt), and the
 * X-Forwarded-For / X-Real-IP request headers.
 *
 * Pure functions over bytes (no connection state), so they are fuzzed
 * directly (test/fanout/fuzz_realaddr.c). Written by hand: no Debian library
 * parses the PROXY header, and both formats are small and fully specified. */
#ifndef CS_REALADDR_H
#define CS_REALADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cidr.h"

#define PROXY_V1_MAX 107          /* the longest v1 line, CRLF included */
#define PROXY_V2_MAX 1040         /* 16-byte head + addresses + TLVs we accept */

struct proxy_result {
    bool local;                   /* LOCAL (v2) or UNKNOWN (v1): keep the peer's address */
    uint8_t src[16];              /* the client (cidr.h form) unless local */
    uint16_t src_port;
    int version;                  /* 1 or 2 */
};

/* Parses a PROXY header at the start of buf. Returns the bytes it takes
 * (> 0), 0 when more bytes are needed, -1 when buf does not start with a
 * valid header. */
int proxy_parse(const uint8_t *buf, size_t len, struct proxy_result *r);

/* The client of an X-Forwarded-For chain: the right-most hop that is not in
 * `trusted` (hops are added on the right by each proxy, so everything right
 * of the first untrusted hop was written by proxies we trust). values[0..n)
 * are the header's field values in the order received (several headers are
 * one list). A hop may carry a port ("192.0.2.1:443", "[2001:db8::1]:443").
 * If every hop is trusted, the left-most one. Returns 0, or -1 when the
 * chain is empty or the hop it stops at is not an address (the header is
 * then ignored). */
int xff_client(const char *const *values, const size_t *lens, size_t n,
               const struct cidr_list *trusted, uint8_t out[16]);

/* One address, optionally with a port, as X-Real-IP carries it. */
int real_ip_parse(const char *v, size_t len, uint8_t out[16]);

#endif
