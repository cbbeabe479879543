/* cidr.c - see cidr.h. */
#include "common/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static const uint8_t v4_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

bool cidr_addr_is_v4(const uint8_t addr[16])
{
    return memcmp(addr, v4_prefix, 12) == 0;
}

int cidr_addr_parse(const char *s, size_t len, uint8_t out[16])
{
    char buf[CIDR_ADDR_TEXT];
    bool bracket = len >= 2 && s[0] == '[' && s[len - 1] == ']';
    if (bracket) {
        s++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof buf || memchr(s, '\0', len)) return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    struct in_addr a4;
    if (!bracket && inet_pton(AF_INET, buf, &a4) == 1) {
        memcpy(out, v4_prefix, 12);
        memcpy(out + 12, &a4, 4);
        return 0;
    }
    struct in6_addr a6;
    if (inet_pton(AF_INET6, buf, &a6) == 1) {
        memcpy(out, a6.s6_addr, 16);
        return 0;
    }
    return -1;
}

void cidr_mask(uint8_t addr[16], unsigned bits)
{
    if (bits >= 128) return;
    size_t i = bits / 8;
    if (bits % 8) addr[i++] &= (uint8_t)(0xff00u >> (bits % 8));
    memset(addr + i, 0, 16 - i);
}

int cidr_parse(const char *s, size_t len, struct cidr *out, char *why, size_t whyn)
{
    const char *slash = memchr(s, '/', len);
    size_t alen = slash ? (size_t)(slash - s) : len;
    if (cidr_addr_parse(s, alen, out->addr) < 0)
        return snprintf(why, whyn, "'%.*s' is not an IP address or CIDR prefix", (int)(len > 60 ? 60 : len), s), -1;
    bool v4 = cidr_addr_is_v4(out->addr) && !(alen > 0 && s[0] == '[');
    unsigned max = v4 ? 32 : 128, bits = max;
    if (slash) {
        const char *p = slash + 1;
        size_t n = len - alen - 1;
        if (n == 0 || n > 3) goto badbits;
        bits = 0;
        for (size_t i = 0; i < n; i++) {
            if (p[i] < '0' || p[i] > '9') goto badbits;
            bits = bits * 10 + (unsigned)(p[i] - '0');
        }
        if (bits > max || (n > 1 && p[0] == '0')) goto badbits;
    }
    unsigned full = v4 ? bits + 96 : bits;
    uint8_t masked[16];
    memcpy(masked, out->addr, 16);
    cidr_mask(masked, full);
    if (memcmp(masked, out->addr, 16) != 0)
        return snprintf(why, whyn, "'%.*s' has bits set after the /%u prefix", (int)(len > 60 ? 60 : len), s, bits), -1;
    out->bits = (uint8_t)full;
    return 0;
badbits:
    return snprintf(why, whyn, "'%.*s': prefix length must be 0..%u", (int)(len > 60 ? 60 : len), s, max), -1;
}

int cidr_list_parse(const char *s, size_t len, struct cidr_list *out, char *why, size_t whyn)
{
    out->n = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && (s[i] == ',' || s[i] == ' ' || s[i] == '\t')) i++;
        if (i == len) break;
        size_t b = i;
        while (i < len && s[i] != ',' && s[i] != ' ' && s[i] != '\t') i++;
        if (out->n == CIDR_MAX_ENTRIES)
            return snprintf(why, whyn, "more than %d entries", CIDR_MAX_ENTRIES), -1;
        if (cidr_parse(s + b, i - b, &out->v[out->n], why, whyn) < 0) return -1;
        out->n++;
    }
    return 0;
}

bool cidr_match(const struct cidr *c, const uint8_t addr[16])
{
    unsigned bits = c->bits, full = bits / 8;
    if (memcmp(c->addr, addr, full) != 0) return false;
    if (bits % 8 == 0) return true;
    uint8_t m = (uint8_t)(0xff00u >> (bits % 8));
    return (addr[full] & m) == c->addr[full];
}

bool cidr_list_match(const struct cidr_list *l, const uint8_t addr[16])
{
    for (size_t i = 0; i < l->n; i++)
        if (cidr_match(&l->v[i], addr)) return true;
    return false;
}

int cidr_addr_from_sockaddr(const struct sockaddr *sa, uint8_t out[16])
{
    memset(out, 0, 16);
    if (sa && sa->sa_family == AF_INET) {
        memcpy(out, v4_prefix, 12);
        memcpy(out + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        return 0;
    }
    if (sa && sa->sa_family == AF_INET6) {
        memcpy(out, ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr, 16);
        return 0;
    }
    return -1;
}

void cidr_addr_format(const uint8_t addr[16], char out[CIDR_ADDR_TEXT])
{
    if (cidr_addr_is_v4(addr)) {
        if (!inet_ntop(AF_INET, addr + 12, out, CIDR_ADDR_TEXT)) snprintf(out, CIDR_ADDR_TEXT, "?");
    } else if (!inet_ntop(AF_INET6, addr, out, CIDR_ADDR_TEXT)) {
        snprintf(out, CIDR_ADDR_TEXT, "?");
    }
}
