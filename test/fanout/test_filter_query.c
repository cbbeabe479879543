/* test_filter_query.c - the filter query parser: canonical keys (exact
 * bytes), equivalent queries sharing a key, IDNA, and the reasons of
 * refusals. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fanout/filter_query.h"

static int passed, failed;

static void expect(const char *q, int want_rc, const char *want)
{
    struct filter_limits lim = { 6, 40 };
    char *key = NULL, why[300] = "";
    size_t keylen = 0;
    int rc = filter_query_parse(q, strlen(q), &lim, &key, &keylen, why, sizeof why);
    const char *got = rc == 1 ? key : rc < 0 ? why : "";
    if (rc == want_rc && strcmp(got, want) == 0) {
        passed++;
    } else {
        failed++;
        printf("FAIL %s\n  got  %d \"%s\"\n  want %d \"%s\"\n", q, rc, got, want_rc, want);
    }
    free(key);
}

int main(void)
{
    expect("", 0, "");
    expect("stream=full&t=123&token=x", 0, "");
    expect("domain=*.Example.COM", 1, "d*.example.com\n");
    /* the same filter however written */
    expect("domain=b.com,a.com.&domain=A.com", 1, "da.com\ndb.com\n");
    expect("domain=a.com&domain=b.com", 1, "da.com\ndb.com\n");
    expect("domain=%2A%2Aexample%2A", 1, "d*example*\n");
    /* kinds in fixed order whatever the query order */
    expect("ca=false&precert=1&log=HTTPS://CT.Example/Log/&issuer=Let%27s+Encrypt&regex=%5EPay&domain=x.org", 1,
           "dx.org\nr^Pay\nilet's encrypt\nlct.example/log\np1\nc0\n");
    /* IDNA: U-labels become the A-labels certificates carry */
    expect("domain=b%C3%BCcher.de", 1, "dxn--bcher-kva.de\n");
    expect("domain=*.B%C3%9CCHER.de", 1, "d*.xn--bcher-kva.de\n");
    expect("domain=*b%C3%BCcher.de", -1, "a label with * must be ASCII in domain pattern \"*b\xc3\xbc" "cher.de\"");
    /* refusals */
    expect("domain=", -1, "empty domain pattern");
    expect("domain=a,,b", -1, "empty domain pattern");
    expect("regex=", -1, "empty regex value");
    expect("domain=a..b", -1, "empty label in domain pattern \"a..b\"");
    expect("domain=a/b", -1, "domain pattern \"a/b\" has a character that is not in domain names (letters, "
                             "digits, -, _, . and * only)");
    expect("domain=%4", -1, "bad percent-escape in the domain value");
    expect("issuer=a%0Ab", -1, "control character in the issuer value");
    expect("precert=yes", -1, "precert must be true or false");
    expect("ca=1&ca=false", -1, "ca is given as both true and false");
    expect("domain=a,b,c,d,e,f,g", -1, "more than 6 filter values (filters.max_patterns)");
    expect("log=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", -1,
           "a filter value is longer than 40 bytes (filters.max_pattern_bytes)");
    expect("regex=a,b", 1, "ra,b\n");   /* a regex is never split at commas */
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
