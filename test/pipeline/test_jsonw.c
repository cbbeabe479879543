/* test_jsonw.c - the JSON writer's contract: escaping, UTF-8 repair, the
 * float forms, fixed-width seen, base64 and hex, and that an empty write
 * into a fresh buffer is defined behaviour (UBSan found the NULL + 0 case). */
#include "common/b64.h"
#include "common/jsonw.h"
#include "test/pipeline/testutil.h"

static struct jbuf b;

static void is(const char *what, const char *want)
{
    int ok = b.len == strlen(want) && memcmp(b.p, want, b.len) == 0;
    t_check(ok, "%s: got \"%.*s\" want \"%s\"", what, (int)b.len, b.p ? b.p : "", want);
    jb_reset(&b);
}

int main(void)
{
    jb_init(&b);
    jb_put(&b, "", 0);
    jb_hex(&b, (const uint8_t *)"", 0, ':', true);
    b64_append(&b, (const uint8_t *)"", 0);
    t_check(b.len == 0, "empty writes into a fresh buffer");

    jb_str(&b, "a\"b\\c\b\f\n\r\t\x01\x1f/\x7f \xc3\xa9", 17);
    is("escapes", "\"a\\\"b\\\\c\\b\\f\\n\\r\\t\\u0001\\u001f/\x7f \xc3\xa9\"");
    jb_str_body(&b, "\xc3", 1);
    is("truncated 2-byte", "\xef\xbf\xbd");
    jb_str_body(&b, "\xe0\x80\x80", 3);
    is("overlong", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    jb_str_body(&b, "\xed\xa0\x80x", 4);
    is("surrogate", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdx");
    jb_str_body(&b, "\xf0\x9f\x98", 3);
    is("truncated 4-byte", "\xef\xbf\xbd");
    jb_str_body(&b, "\xf0\x9f\x98\x80\xff", 5);
    is("emoji then 0xff", "\xf0\x9f\x98\x80\xef\xbf\xbd");
    jb_str_body(&b, "\xf4\x90\x80\x80", 4);
    is("above U+10FFFF", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");

    jb_ms_seconds(&b, 1700000000000LL); is("whole seconds", "1700000000.0");
    jb_ms_seconds(&b, 1779302893443LL); is("ms", "1779302893.443");
    jb_ms_seconds(&b, 1779302894470LL); is("trailing zero dropped", "1779302894.47");
    jb_ms_seconds(&b, 1700000001000LL); is("synthetic", "1700000001.0");
    jb_ms_seconds(&b, 1); is("1 ms", "0.001");
    jb_ms_seconds(&b, 0); is("zero", "0.0");
    jb_printf(&b, "%s %d %zu", "metric", -3, (size_t)4096); is("printf", "metric -3 4096");
    for (int i = 0; i < 200; i++) jb_printf(&b, "%03d,", i % 1000); /* grows past the first buffer */
    t_check(b.len == 800 && memcmp(b.p + 796, "199,", 4) == 0, "printf across growth");
    jb_reset(&b);
    jb_ms_seconds(&b, INT64_MAX); is("huge", "9223372036854776.0");

    jb_double(&b, 0.1); is("0.1", "0.1");
    jb_double(&b, 123.456); is("123.456", "123.456");
    jb_double(&b, 1e16); is("1e16", "1e16");
    jb_double(&b, 1.5e300); is("1.5e300", "1.5e300");
    jb_double(&b, 1e-7); is("1e-7", "1e-7");
    jb_double(&b, 0.00001); is("0.00001", "0.00001");
    jb_double(&b, -2.5); is("-2.5", "-2.5");
    jb_double(&b, 5e-324); is("denormal", "5e-324");
    jb_double(&b, 1700000000.0); is("whole double", "1700000000.0");

    jb_fixed6(&b, 1732460000.123456); is("fixed6", "1732460000.123456");
    jb_fixed6(&b, 1700000000.0); is("fixed6 whole", "1700000000.000000");

    jb_u64(&b, UINT64_MAX); is("u64 max", "18446744073709551615");
    jb_i64(&b, INT64_MIN); is("i64 min", "-9223372036854775808");
    jb_hex(&b, (const uint8_t *)"\x00\xab\xff", 3, ':', true); is("hex upper", "00:AB:FF");
    jb_hex(&b, (const uint8_t *)"\x00\xab\xff", 3, 0, false); is("hex lower", "00abff");

    static const char *b64[][2] = {{"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="},
                                   {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < 6; i++) {
        b64_append(&b, (const uint8_t *)b64[i][0], strlen(b64[i][0]));
        is(b64[i][0], b64[i][1]);
    }
    uint8_t *d;
    size_t n;
    t_check(b64_decode_alloc("Zm9vYmFy", 8, &d, &n) == 0 && n == 6 && !memcmp(d, "foobar", 6), "b64 decode");
    free(d);
    t_check(b64_decode_alloc("Zm9v!", 5, &d, &n) < 0, "b64 decode rejects junk");
    t_check(b64_decode_alloc("", 0, &d, &n) == 0 && n == 0, "b64 decode of empty");
    free(d);
    jb_free(&b);
    return t_summary();
}
