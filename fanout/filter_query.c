/* filter_query.c - parsing a filtered stream's query string into its
 * canonical key (see filter_query.h). Runs once per connection, never per
 * message. Domain patterns are converted to the ASCII (A-label) form that
 * certificates carry with libidn2, so `*.bücher.de` matches
 * `www.xn--bcher-kva.de`. */
#include "fanout/filter_query.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <idn2.h>

#define MAX_ITEMS 1024   /* hard cap whatever the limits say */

struct item {
    char kind;
    char *v;             /* NUL-terminated, malloc'd */
};

struct parse {
    const struct filter_limits *lim;
    struct item *items;
    size_t n, cap;
    char *why;
    size_t whyn;
};

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

long filter_query_unescape(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= n) return -1;
            hi = hexval(s[i + 1]);
            lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (o >= cap) return -1;
        out[o++] = c;
    }
    return (long)o;
}

static int fail(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct parse *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->why, p->whyn, fmt, ap);
    va_end(ap);
    return -1;
}

static int add(struct parse *p, char kind, const char *v, size_t len)
{
    if (len == 0)
        return fail(p, "empty %s value", kind == FQ_DOMAIN ? "domain" : kind == FQ_REGEX ? "regex"
                                         : kind == FQ_ISSUER ? "issuer" : "log");
    if (len > p->lim->max_pattern_bytes)
        return fail(p, "a filter value is longer than %u bytes (filters.max_pattern_bytes)",
                    p->lim->max_pattern_bytes);
    if (p->n >= p->lim->max_patterns || p->n >= MAX_ITEMS)
        return fail(p, "more than %u filter values (filters.max_patterns)", p->lim->max_patterns);
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 8;
        struct item *ni = realloc(p->items, nc * sizeof *ni);
        if (!ni) return fail(p, "out of memory");
        p->items = ni;
        p->cap = nc;
    }
    char *s = malloc(len + 1);
    if (!s) return fail(p, "out of memory");
    memcpy(s, v, len);
    s[len] = 0;
    p->items[p->n++] = (struct item){ kind, s };
    return 0;
}

static void lower_ascii(char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 'A' && s[i] <= 'Z') s[i] = (char)(s[i] - 'A' + 'a');
}

/* One domain pattern: labels without '*' that are not ASCII become
 * A-labels; the result is lowercase [a-z0-9-_.*], no trailing dot, no "**". */
static int add_domain(struct parse *p, const char *v, size_t len)
{
    char out[1024];
    size_t o = 0;
    while (len && (*v == ' ')) { v++; len--; }
    while (len && v[len - 1] == ' ') len--;
    if (len && v[len - 1] == '.') len--;
    if (len == 0) return fail(p, "empty domain pattern");
    if (len > p->lim->max_pattern_bytes) return add(p, FQ_DOMAIN, v, len);   /* the length message */
    for (size_t s = 0; s < len;) {
        size_t e = s;
        while (e < len && v[e] != '.') e++;
        char label[256];
        size_t ll = e - s;
        if (ll == 0) return fail(p, "empty label in domain pattern \"%.*s\"", (int)len, v);
        if (ll >= sizeof label) return fail(p, "label too long in domain pattern \"%.*s\"", (int)len, v);
        memcpy(label, v + s, ll);
        label[ll] = 0;
        bool ascii = true, star = false;
        for (size_t i = 0; i < ll; i++) {
            ascii = ascii && !((unsigned char)label[i] & 0x80);
            star = star || label[i] == '*';
        }
        const char *put = label;
        char *alabel = NULL;
        if (!ascii) {
            if (star)
                return fail(p, "a label with * must be ASCII in domain pattern \"%.*s\"", (int)len, v);
            int rc = idn2_to_ascii_8z(label, &alabel, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
            if (rc != IDN2_OK)
                return fail(p, "domain pattern \"%.*s\": %s", (int)len, v, idn2_strerror(rc));
            put = alabel;
        }
        size_t pl = strlen(put);
        if (o + pl + 1 >= sizeof out) {
            idn2_free(alabel);
            return fail(p, "domain pattern too long");
        }
        if (o) out[o++] = '.';
        memcpy(out + o, put, pl);
        idn2_free(alabel);
        for (size_t i = o; i < o + pl; i++) {
            char c = out[i];
            if (c >= 'A' && c <= 'Z') c = out[i] = (char)(c - 'A' + 'a');
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '*'))
                return fail(p, "domain pattern \"%.*s\" has a character that is not in domain names "
                               "(letters, digits, -, _, . and * only)", (int)len, v);
        }
        o += pl;
        s = e + 1;
        if (e == len) break;
        if (s == len) return fail(p, "empty label in domain pattern \"%.*s\"", (int)len, v);
    }
    /* "**" means "*" */
    size_t w = 0;
    for (size_t r = 0; r < o; r++)
        if (!(out[r] == '*' && w && out[w - 1] == '*')) out[w++] = out[r];
    return add(p, FQ_DOMAIN, out, w);
}

static int add_bool(struct parse *p, char kind, const char *v, size_t len)
{
    const char *name = kind == FQ_PRECERT ? "precert" : "ca";
    char b;
    if ((len == 4 && memcmp(v, "true", 4) == 0) || (len == 1 && v[0] == '1')) b = '1';
    else if ((len == 5 && memcmp(v, "false", 5) == 0) || (len == 1 && v[0] == '0')) b = '0';
    else return fail(p, "%s must be true or false", name);
    for (size_t i = 0; i < p->n; i++)
        if (p->items[i].kind == kind && p->items[i].v[0] != b)
            return fail(p, "%s is given as both true and false", name);
    return add(p, kind, &b, 1);
}

static int kind_rank(char k)
{
    switch (k) {
    case FQ_DOMAIN: return 0;
    case FQ_REGEX: return 1;
    case FQ_ISSUER: return 2;
    case FQ_LOG: return 3;
    case FQ_PRECERT: return 4;
    default: return 5;
    }
}

static int item_cmp(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    int d = kind_rank(x->kind) - kind_rank(y->kind);
    return d ? d : strcmp(x->v, y->v);
}

static int param(struct parse *p, const char *name, size_t nlen, char *val, size_t vlen)
{
    static const struct { const char *name; char kind; } kinds[] = {
        { "domain", FQ_DOMAIN }, { "regex", FQ_REGEX }, { "issuer", FQ_ISSUER },
        { "log", FQ_LOG }, { "precert", FQ_PRECERT }, { "ca", FQ_CA },
    };
    char kind = 0;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strlen(kinds[i].name) == nlen && memcmp(kinds[i].name, name, nlen) == 0) kind = kinds[i].kind;
    if (!kind) return 0;   /* not a filter parameter */
    for (size_t i = 0; i < vlen; i++)
        if ((unsigned char)val[i] < 0x20 || val[i] == 0x7f)
            return fail(p, "control character in the %.*s value", (int)nlen, name);
    switch (kind) {
    case FQ_DOMAIN:
        for (size_t s = 0;;) {
            size_t e = s;
            while (e < vlen && val[e] != ',') e++;
            if (add_domain(p, val + s, e - s) < 0) return -1;
            if (e >= vlen) return 0;
            s = e + 1;
        }
    case FQ_ISSUER:
        lower_ascii(val, vlen);
        return add(p, kind, val, vlen);
    case FQ_LOG: {
        lower_ascii(val, vlen);
        if (vlen > 8 && memcmp(val, "https://", 8) == 0) { val += 8; vlen -= 8; }
        else if (vlen > 7 && memcmp(val, "http://", 7) == 0) { val += 7; vlen -= 7; }
        while (vlen > 1 && val[vlen - 1] == '/') vlen--;
        return add(p, kind, val, vlen);
    }
    case FQ_PRECERT:
    case FQ_CA:
        return add_bool(p, kind, val, vlen);
    default:
        return add(p, kind, val, vlen);
    }
}

int filter_query_parse(const char *q, size_t qlen, const struct filter_limits *lim, char **key,
                       size_t *keylen, char *why, size_t whyn)
{
    struct parse p = { .lim = lim, .why = why, .whyn = whyn };
    char *buf = malloc(qlen + 1);
    int rc = -1;
    *key = NULL;
    *keylen = 0;
    if (!buf) {
        snprintf(why, whyn, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < qlen;) {
        size_t s = i;
        while (i < qlen && q[i] != '&') i++;
        size_t e = i++, eq = s;
        while (eq < e && q[eq] != '=') eq++;
        const char *name = q + s;
        size_t nlen = eq - s;
        long vlen = eq < e ? filter_query_unescape(q + eq + 1, e - eq - 1, buf, qlen) : 0;
        if (vlen < 0) {
            snprintf(why, whyn, "bad percent-escape in the %.*s value", (int)(nlen < 40 ? nlen : 40), name);
            goto out;
        }
        if (param(&p, name, nlen, buf, (size_t)vlen) < 0) goto out;
    }
    if (p.n == 0) {
        rc = 0;
        goto out;
    }
    qsort(p.items, p.n, sizeof *p.items, item_cmp);
    size_t total = 0;
    for (size_t i = 0; i < p.n; i++) total += strlen(p.items[i].v) + 2;
    char *k = malloc(total + 1);
    if (!k) {
        snprintf(why, whyn, "out of memory");
        goto out;
    }
    size_t o = 0;
    for (size_t i = 0; i < p.n; i++) {
        if (i && p.items[i].kind == p.items[i - 1].kind && !strcmp(p.items[i].v, p.items[i - 1].v)) continue;
        size_t l = strlen(p.items[i].v);
        k[o++] = p.items[i].kind;
        memcpy(k + o, p.items[i].v, l);
        o += l;
        k[o++] = '\n';
    }
    k[o] = 0;
    *key = k;
    *keylen = o;
    rc = 1;
out:
    for (size_t i = 0; i < p.n; i++) free(p.items[i].v);
    free(p.items);
    free(buf);
    return rc;
}
