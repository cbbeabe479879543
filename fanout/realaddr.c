/* realaddr.c - see realaddr.h. */
#include "fanout/realaddr.h"

#include <string.h>

static const uint8_t v2_sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };

/* ---- v1: "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n" ---------------- */

static int v1_port(const char *s, size_t n, uint16_t *out)
{
    uint32_t v = 0;
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0')) return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (v > 65535) return -1;
    *out = (uint16_t)v;
    return 0;
}

static int parse_v1(const uint8_t *buf, size_t len, struct proxy_result *r)
{
    size_t end = 0;   /* where the CRLF starts; the line is at most PROXY_V1_MAX bytes */
    while (end + 1 < len && !(buf[end] == '\r' && buf[end + 1] == '\n')) {
        if (end + 3 > PROXY_V1_MAX) return -1;   /* no room left for the CRLF */
        end++;
    }
    if (end + 1 >= len) return 0;
    const char *s = (const char *)buf;
    /* fields separated by single spaces */
    const char *f[6];
    size_t fl[6], nf = 0, b = 0;
    for (size_t i = 0; i <= end; i++) {
        if (i == end || s[i] == ' ') {
            if (nf == 6) return -1;
            f[nf] = s + b;
            fl[nf++] = i - b;
            b = i + 1;
        }
    }
    memset(r, 0, sizeof *r);
    r->version = 1;
    if (nf >= 2 && fl[1] == 7 && memcmp(f[1], "UNKNOWN", 7) == 0) {
        r->local = true;
        return (int)end + 2;
    }
    if (nf != 6 || fl[1] != 4 || (memcmp(f[1], "TCP4", 4) != 0 && memcmp(f[1], "TCP6", 4) != 0))
        return -1;
    bool six = f[1][3] == '6';
    uint8_t dst[16];
    uint16_t dport;
    /* no brackets in v1; the family must match the addresses */
    if (fl[2] == 0 || f[2][0] == '[' || fl[3] == 0 || f[3][0] == '[' ||
        cidr_addr_parse(f[2], fl[2], r->src) < 0 || cidr_addr_parse(f[3], fl[3], dst) < 0 ||
        cidr_addr_is_v4(r->src) == six || cidr_addr_is_v4(dst) == six ||
        (six && (memchr(f[2], '.', fl[2]) || memchr(f[3], '.', fl[3]))) ||
        v1_port(f[4], fl[4], &r->src_port) < 0 || v1_port(f[5], fl[5], &dport) < 0)
        return -1;
    return (int)end + 2;
}

/* ---- v2: 12-byte signature, ver/cmd, family, length, addresses, TLVs ------- */

static int parse_v2(const uint8_t *buf, size_t len, struct proxy_result *r)
{
    if (len < 16) return 0;
    uint8_t ver = buf[12] >> 4, cmd = buf[12] & 0x0f, fam = buf[13];
    size_t body = (size_t)buf[14] << 8 | buf[15];
    if (ver != 2 || cmd > 1 || 16 + body > PROXY_V2_MAX) return -1;
    if (len < 16 + body) return 0;
    memset(r, 0, sizeof *r);
    r->version = 2;
    const uint8_t *p = buf + 16;
    if (cmd == 0) {                    /* LOCAL: the proxy's own connection (health checks) */
        r->local = true;
        return (int)(16 + body);
    }
    switch (fam) {
    case 0x11:                         /* TCP over IPv4 */
    case 0x12:                         /* UDP over IPv4 */
        if (body < 12) return -1;
        memset(r->src, 0, 10);
        r->src[10] = r->src[11] = 0xff;
        memcpy(r->src + 12, p, 4);
        r->src_port = (uint16_t)(p[8] << 8 | p[9]);
        break;
    case 0x21:
    case 0x22:
        if (body < 36) return -1;
        memcpy(r->src, p, 16);
        r->src_port = (uint16_t)(p[32] << 8 | p[33]);
        break;
    case 0x00:                         /* UNSPEC */
    case 0x31:                         /* UNIX stream/dgram: no IP to use */
    case 0x32:
        r->local = true;
        break;
    default:
        return -1;
    }
    return (int)(16 + body);
}

int proxy_parse(const uint8_t *buf, size_t len, struct proxy_result *r)
{
    static const char v1[] = "PROXY ";
    if (len == 0) return 0;
    if (buf[0] == 'P') {
        size_t n = len < 6 ? len : 6;
        if (memcmp(buf, v1, n) != 0) return -1;
        return len < 6 ? 0 : parse_v1(buf, len, r);
    }
    if (buf[0] == 0x0d) {
        size_t n = len < 12 ? len : 12;
        if (memcmp(buf, v2_sig, n) != 0) return -1;
        return parse_v2(buf, len, r);
    }
    return -1;
}

/* ---- X-Forwarded-For / X-Real-IP ----------------------------------------- */

static void trim(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t')) (*s)++, (*n)--;
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t')) (*n)--;
}

int real_ip_parse(const char *v, size_t len, uint8_t out[16])
{
    trim(&v, &len);
    if (len == 0) return -1;
    if (v[0] == '[') {                 /* "[v6]" or "[v6]:port" */
        const char *close = memchr(v, ']', len);
        if (!close) return -1;
        size_t alen = (size_t)(close - v) + 1, rest = len - alen;
        if (rest) {
            uint16_t port;
            if (close[1] != ':' || v1_port(close + 2, rest - 1, &port) < 0) return -1;
        }
        return cidr_addr_parse(v, alen, out);
    }
    const char *colon = memchr(v, ':', len);
    if (colon && !memchr(colon + 1, ':', len - (size_t)(colon - v) - 1) && memchr(v, '.', len)) {
        uint16_t port;                 /* "192.0.2.1:443" */
        size_t alen = (size_t)(colon - v);
        if (v1_port(colon + 1, len - alen - 1, &port) < 0) return -1;
        if (cidr_addr_parse(v, alen, out) < 0 || !cidr_addr_is_v4(out)) return -1;
        return 0;
    }
    return cidr_addr_parse(v, len, out);
}

int xff_client(const char *const *values, const size_t *lens, size_t n,
               const struct cidr_list *trusted, uint8_t out[16])
{
    bool any = false;
    for (size_t h = n; h-- > 0;) {
        const char *v = values[h];
        size_t end = lens[h];
        while (end > 0) {
            size_t b = end;
            while (b > 0 && v[b - 1] != ',') b--;
            const char *hop = v + b;
            size_t hl = end - b;
            end = b ? b - 1 : 0;
            trim(&hop, &hl);
            if (hl == 0) {
                if (b == 0) break;
                continue;              /* "a,,b": empty items are skipped */
            }
            if (real_ip_parse(hop, hl, out) < 0) return -1;
            any = true;
            if (!cidr_list_match(trusted, out)) return 0;
            if (b == 0) break;
        }
    }
    return any ? 0 : -1;               /* all trusted: out holds the left-most */
}
