/* test_edge_unit.c - exact results of the network edge's parsers: CIDR
 * lists and matching, PROXY v1/v2 headers (from haproxy's
 * proxy-protocol.txt examples), X-Forwarded-For chains, X-Real-IP. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "common/cidr.h"
#include "fanout/realaddr.h"

static int failed;
#define CHECK(x) do { if (!(x)) { fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x); failed++; } } while (0)

static const char *fmt(const uint8_t a[16])
{
    static char t[CIDR_ADDR_TEXT];
    cidr_addr_format(a, t);
    return t;
}

static void cidr(void)
{
    static struct cidr_list l;
    char why[128];
    const char *s = "10.0.0.0/8, 192.168.1.7 2001:db8::/32,::1";
    CHECK(cidr_list_parse(s, strlen(s), &l, why, sizeof why) == 0 && l.n == 4);
    uint8_t a[16];
    CHECK(cidr_addr_parse("10.200.3.4", 10, a) == 0 && cidr_list_match(&l, a));
    CHECK(cidr_addr_parse("11.0.0.1", 8, a) == 0 && !cidr_list_match(&l, a));
    CHECK(cidr_addr_parse("192.168.1.7", 11, a) == 0 && cidr_list_match(&l, a));
    CHECK(cidr_addr_parse("192.168.1.8", 11, a) == 0 && !cidr_list_match(&l, a));
    CHECK(cidr_addr_parse("2001:db8:ffff::1", 16, a) == 0 && cidr_list_match(&l, a));
    CHECK(cidr_addr_parse("2001:db9::1", 11, a) == 0 && !cidr_list_match(&l, a));
    CHECK(cidr_addr_parse("::ffff:10.1.1.1", 15, a) == 0 && cidr_list_match(&l, a));   /* mapped = IPv4 */
    CHECK(strcmp(fmt(a), "10.1.1.1") == 0);
    CHECK(cidr_list_parse("0.0.0.0/0", 9, &l, why, sizeof why) == 0);
    CHECK(cidr_addr_parse("1.2.3.4", 7, a) == 0 && cidr_list_match(&l, a));
    CHECK(cidr_addr_parse("::2", 3, a) == 0 && !cidr_list_match(&l, a));   /* IPv4 /0 is not all of IPv6 */
    CHECK(cidr_list_parse("::/0", 4, &l, why, sizeof why) == 0 && cidr_list_match(&l, a));
    CHECK(cidr_list_parse("11.0.0.0/7", 10, &l, why, sizeof why) == -1);
    CHECK(strcmp(why, "'11.0.0.0/7' has bits set after the /7 prefix") == 0);
    CHECK(cidr_list_parse("10.0.0.0/08", 11, &l, why, sizeof why) == -1);
    CHECK(cidr_list_parse("", 0, &l, why, sizeof why) == 0 && l.n == 0);
    uint8_t m[16];
    CHECK(cidr_addr_parse("2001:db8:1:2:3:4:5:6", 20, m) == 0);
    cidr_mask(m, 64);
    CHECK(strcmp(fmt(m), "2001:db8:1:2::") == 0);
    cidr_mask(m, 28);
    CHECK(strcmp(fmt(m), "2001:db0::") == 0);
}

static void proxy(void)
{
    struct proxy_result r;
    const char *v1 = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /";
    CHECK(proxy_parse((const uint8_t *)v1, strlen(v1), &r) == 47);
    CHECK(!r.local && r.version == 1 && r.src_port == 56324 && strcmp(fmt(r.src), "192.168.0.1") == 0);
    const char *v6 = "PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n";
    CHECK(proxy_parse((const uint8_t *)v6, strlen(v6), &r) == (int)strlen(v6));
    CHECK(strcmp(fmt(r.src), "2001:db8::1") == 0);
    CHECK(proxy_parse((const uint8_t *)"PROXY UNKNOWN\r\n", 15, &r) == 15 && r.local);
    CHECK(proxy_parse((const uint8_t *)"PROXY TCP4 192.168.0.1", 22, &r) == 0);   /* more to come */
    CHECK(proxy_parse((const uint8_t *)"PRO", 3, &r) == 0);
    /* the v1 line is at most 107 bytes, CRLF included */
    char longest[128] = "PROXY UNKNOWN ";
    memset(longest + 14, 'x', 105 - 14);
    memcpy(longest + 105, "\r\n", 2);
    CHECK(proxy_parse((const uint8_t *)longest, 107, &r) == 107 && r.local);
    char too_long[128] = "PROXY UNKNOWN ";
    memset(too_long + 14, 'x', 106 - 14);
    memcpy(too_long + 106, "\r\n", 2);
    CHECK(proxy_parse((const uint8_t *)too_long, 108, &r) == -1);
    CHECK(proxy_parse((const uint8_t *)too_long, 107, &r) == -1);   /* no room left for the CRLF */
    CHECK(proxy_parse((const uint8_t *)too_long, 105, &r) == 0);
    CHECK(proxy_parse((const uint8_t *)"GET / HTTP/1.1\r\n", 16, &r) == -1);
    const char *bad[] = {
        "PROXY TCP4 2001:db8::1 192.168.0.1 1 2\r\n",   /* family mismatch */
        "PROXY TCP6 1.2.3.4 1.2.3.5 1 2\r\n",
        "PROXY TCP4 1.2.3.4 1.2.3.5 65536 2\r\n",
        "PROXY TCP4 1.2.3.4 1.2.3.5 01 2\r\n",
        "PROXY TCP4  1.2.3.4 1.2.3.5 1 2\r\n",
        "PROXY UDP4 1.2.3.4 1.2.3.5 1 2\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(proxy_parse((const uint8_t *)bad[i], strlen(bad[i]), &r) == -1);
    uint8_t v2[64] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
                       0x21, 0x11, 0x00, 0x0c, 198, 51, 100, 7, 10, 0, 0, 1, 0x1f, 0x90, 0x01, 0xbb };
    CHECK(proxy_parse(v2, 28, &r) == 28 && r.version == 2 && !r.local && r.src_port == 8080);
    CHECK(strcmp(fmt(r.src), "198.51.100.7") == 0);
    CHECK(proxy_parse(v2, 27, &r) == 0);
    v2[12] = 0x20;   /* LOCAL */
    CHECK(proxy_parse(v2, 28, &r) == 28 && r.local);
    v2[12] = 0x31;   /* version 3 */
    CHECK(proxy_parse(v2, 28, &r) == -1);
    v2[12] = 0x21;
    v2[15] = 0x0b;   /* too short for IPv4 addresses */
    CHECK(proxy_parse(v2, 27, &r) == -1);
}

static void xff(void)
{
    static struct cidr_list t;
    char why[64];
    CHECK(cidr_list_parse("10.0.0.0/8 127.0.0.1", 20, &t, why, sizeof why) == 0);
    uint8_t a[16];
    const char *v[2];
    size_t n[2];
#define ONE(s) (v[0] = (s), n[0] = strlen(s), xff_client(v, n, 1, &t, a))
    CHECK(ONE("203.0.113.5, 198.51.100.20, 10.1.2.3") == 0 && strcmp(fmt(a), "198.51.100.20") == 0);
    CHECK(ONE("10.1.1.1, 10.2.2.2") == 0 && strcmp(fmt(a), "10.1.1.1") == 0);   /* all trusted: left-most */
    CHECK(ONE("198.51.100.1:4711") == 0 && strcmp(fmt(a), "198.51.100.1") == 0);
    CHECK(ONE("[2001:db8::5]:443 , ") == 0 && strcmp(fmt(a), "2001:db8::5") == 0);
    CHECK(ONE("2001:db8::6") == 0 && strcmp(fmt(a), "2001:db8::6") == 0);
    CHECK(ONE("unknown, 10.0.0.1") == -1);
    CHECK(ONE("198.51.100.1, unknown") == -1);
    CHECK(ONE(" , ") == -1);
    v[0] = "198.51.100.9";
    n[0] = 12;
    v[1] = "10.0.0.7";
    n[1] = 8;
    CHECK(xff_client(v, n, 2, &t, a) == 0 && strcmp(fmt(a), "198.51.100.9") == 0);   /* two lines = one list */
    CHECK(real_ip_parse(" 192.0.2.8 ", 11, a) == 0 && strcmp(fmt(a), "192.0.2.8") == 0);
    CHECK(real_ip_parse("192.0.2.8:99999", 15, a) == -1);
    CHECK(real_ip_parse("[::1", 4, a) == -1);
}

int main(void)
{
    cidr();
    proxy();
    xff();
    printf("%s\n", failed ? "FAIL" : "ok");
    return failed != 0;
}
