/* cidr.h - IP addresses and CIDR lists, shared by the configuration checks
 * and the network edge of the fanout workers (trusted proxies, allow-lists,
 * per-address accounting).
 *
 * Every address is held as 16 bytes: IPv6 as is, IPv4 as the IPv4-mapped
 * IPv6 address (::ffff:a.b.c.d), so one comparison covers both families and
 * an IPv4 client reached over an IPv6 socket is the same address as over an
 * IPv4 one. inet_pton does the text parsing; this file adds the prefix, the
 * list syntax and the matching, which no Debian library offers as a small C
 * API. */
#ifndef CS_CIDR_H
#define CS_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CIDR_MAX_ENTRIES 256
#define CIDR_ADDR_TEXT 48        /* room for any address as text, with a NUL */

struct cidr {
    uint8_t addr[16];            /* already masked to bits */
    uint8_t bits;                /* 0..128 over the 16-byte form (IPv4 /n is 96+n) */
};

struct cidr_list {
    struct cidr v[CIDR_MAX_ENTRIES];
    size_t n;
};

/* "192.0.2.1", "2001:db8::1", optionally "[2001:db8::1]" (brackets only
 * around IPv6). Returns 0 and the 16-byte form, or -1. */
int cidr_addr_parse(const char *s, size_t len, uint8_t out[16]);

/* One entry: an address with an optional "/bits" (IPv4 0..32, IPv6 0..128);
 * host bits set below the prefix are refused (a likely typo). -1 with why. */
int cidr_parse(const char *s, size_t len, struct cidr *out, char *why, size_t whyn);

/* A list separated by commas and/or spaces; empty text is the empty list.
 * Returns 0, or -1 with why naming the bad entry. */
int cidr_list_parse(const char *s, size_t len, struct cidr_list *out, char *why, size_t whyn);

bool cidr_match(const struct cidr *c, const uint8_t addr[16]);
bool cidr_list_match(const struct cidr_list *l, const uint8_t addr[16]);

/* The 16-byte form of a socket address: 0, or -1 for families other than
 * AF_INET/AF_INET6 (then out is all zero). */
int cidr_addr_from_sockaddr(const struct sockaddr *sa, uint8_t out[16]);
bool cidr_addr_is_v4(const uint8_t addr[16]);
/* Text form: dotted quad for IPv4(-mapped), RFC 5952 for IPv6. */
void cidr_addr_format(const uint8_t addr[16], char out[CIDR_ADDR_TEXT]);
/* Keeps the first `bits` bits (over the 16-byte form), zeroes the rest. */
void cidr_mask(uint8_t addr[16], unsigned bits);

#endif
