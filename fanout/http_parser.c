/* http_parser.c - strict, zero-copy parser for HTTP/1.1 GET request heads.
 * See http_parser.h for why it is hand-written. Line ends may be CRLF or a
 * bare LF (RFC 9112 2.2 allows recipients to accept LF); a bare CR, obsolete
 * line folding, whitespace before a header colon or a control byte anywhere
 * is a 400. */
#include "fanout/http_parser.h"

#include <string.h>
#include <strings.h>

/* RFC 9110 tchar */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-value bytes: HTAB, visible ASCII, SP, obs-text */
static bool is_vchar_ws(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

size_t http_head_end(const char *buf, size_t len, size_t from)
{
    size_t i = from > 3 ? from - 3 : 0;
    for (; i < len; i++) {
        if (buf[i] != '\n') continue;
        if (i + 1 < len && buf[i + 1] == '\n') return i + 2;
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n') return i + 3;
    }
    return 0;
}

/* Line [start, eol) where eol points at '\n' (a preceding '\r' is stripped).
 * Returns the index after '\n', or 0 when there is no '\n' before end. */
static size_t next_line(const char *buf, size_t start, size_t end, size_t *line_end)
{
    const char *nl = memchr(buf + start, '\n', end - start);
    if (!nl) return 0;
    size_t eol = (size_t)(nl - buf);
    *line_end = (eol > start && buf[eol - 1] == '\r') ? eol - 1 : eol;
    return eol + 1;
}

/* Early rejection while the head is incomplete: the method must be a token,
 * so a binary or TLS client gets its 400 at once instead of at the timeout. */
static enum http_status precheck(const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == ' ') return i == 0 ? HTTP_BAD : HTTP_INCOMPLETE;
        if (!is_tchar(c)) return HTTP_BAD;
    }
    return HTTP_INCOMPLETE;
}

static enum http_status parse_request_line(const char *buf, size_t end, struct http_request *req)
{
    size_t i = 0;
    while (i < end && is_tchar((unsigned char)buf[i])) i++;
    if (i == 0 || i >= end || buf[i] != ' ') return HTTP_BAD;
    req->method = (struct http_str){ buf, i };
    size_t t = ++i;
    while (i < end && buf[i] > 0x20 && buf[i] < 0x7f) i++;
    if (i == t || i >= end || buf[i] != ' ') return HTTP_BAD;
    struct http_str target = { buf + t, i - t };
    i++;
    if (end - i != 8 || memcmp(buf + i, "HTTP/", 5) != 0) return HTTP_BAD;
    char major = buf[i + 5], minor = buf[i + 7];
    if (major < '0' || major > '9' || buf[i + 6] != '.' || minor < '0' || minor > '9')
        return HTTP_BAD;
    if (major != '1') return HTTP_BAD_VERSION;
    req->minor = minor - '0';

    /* absolute-form (RFC 9112 3.2.2): keep only the path and query */
    if (target.p[0] != '/') {
        size_t skip;
        if (target.len > 7 && strncasecmp(target.p, "http://", 7) == 0) skip = 7;
        else if (target.len > 8 && strncasecmp(target.p, "https://", 8) == 0) skip = 8;
        else return HTTP_BAD;
        const char *slash = memchr(target.p + skip, '/', target.len - skip);
        if (!slash) {
            target = (struct http_str){ "/", 1 };
        } else {
            target.len -= (size_t)(slash - target.p);
            target.p = slash;
        }
    }
    req->target = target;
    const char *q = memchr(target.p, '?', target.len);
    if (q) {
        req->path = (struct http_str){ target.p, (size_t)(q - target.p) };
        req->query = (struct http_str){ q + 1, target.len - req->path.len - 1 };
    } else {
        req->path = target;
        req->query = (struct http_str){ target.p + target.len, 0 };
    }
    /* a fragment is never sent by a conforming client */
    if (memchr(target.p, '#', target.len)) return HTTP_BAD;
    return HTTP_OK;
}

static enum http_status parse_header(const char *buf, size_t start, size_t end,
                                     struct http_header *h)
{
    size_t i = start;
    while (i < end && is_tchar((unsigned char)buf[i])) i++;
    if (i == start || i >= end || buf[i] != ':') return HTTP_BAD;
    h->name = (struct http_str){ buf + start, i - start };
    i++;
    for (size_t k = i; k < end; k++)
        if (!is_vchar_ws((unsigned char)buf[k])) return HTTP_BAD;
    while (i < end && (buf[i] == ' ' || buf[i] == '\t')) i++;
    size_t e = end;
    while (e > i && (buf[e - 1] == ' ' || buf[e - 1] == '\t')) e--;
    h->value = (struct http_str){ buf + i, e - i };
    return HTTP_OK;
}

enum http_status http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
                                    struct http_request *req)
{
    size_t max_headers = lim->max_headers < HTTP_HEADERS_CAP ? lim->max_headers : HTTP_HEADERS_CAP;
    size_t limit = len < lim->max_request_bytes ? len : lim->max_request_bytes;
    size_t end = http_head_end(buf, limit, 0);

    req->n_headers = 0;
    req->head_len = 0;
    if (end == 0) {
        enum http_status st = precheck(buf, limit);
        if (st == HTTP_INCOMPLETE && len >= lim->max_request_bytes) return HTTP_TOO_LARGE;
        return st;
    }

    size_t line_end = 0, pos = next_line(buf, 0, end, &line_end);
    if (memchr(buf, '\r', line_end)) return HTTP_BAD;
    enum http_status st = parse_request_line(buf, line_end, req);
    if (st != HTTP_OK) return st;

    for (;;) {
        size_t start = pos;
        pos = next_line(buf, start, end, &line_end);
        if (pos == 0) return HTTP_BAD;           /* cannot happen: end follows a blank line */
        if (line_end == start) break;            /* the blank line */
        if (memchr(buf + start, '\r', line_end - start)) return HTTP_BAD;  /* bare CR */
        if (buf[start] == ' ' || buf[start] == '\t') return HTTP_BAD;    /* obs-fold */
        if (req->n_headers >= max_headers) return HTTP_TOO_LARGE;
        st = parse_header(buf, start, line_end, &req->headers[req->n_headers]);
        if (st != HTTP_OK) return st;
        req->n_headers++;
    }
    req->head_len = pos;
    return HTTP_OK;
}

bool http_str_eq(struct http_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.p, lit, n) == 0;
}

bool http_str_ieq(struct http_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && strncasecmp(s.p, lit, n) == 0;
}

const struct http_str *http_header_get(const struct http_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (http_str_ieq(req->headers[i].name, name)) return &req->headers[i].value;
    return NULL;
}

size_t http_header_count(const struct http_request *req, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < req->n_headers; i++)
        if (http_str_ieq(req->headers[i].name, name)) n++;
    return n;
}

bool http_list_has_token(struct http_str v, const char *token)
{
    size_t i = 0;
    while (i < v.len) {
        while (i < v.len && (v.p[i] == ' ' || v.p[i] == '\t' || v.p[i] == ',')) i++;
        size_t s = i;
        while (i < v.len && v.p[i] != ',') i++;
        size_t e = i;
        while (e > s && (v.p[e - 1] == ' ' || v.p[e - 1] == '\t')) e--;
        if (e > s && http_str_ieq((struct http_str){ v.p + s, e - s }, token)) return true;
    }
    return false;
}

bool http_query_param(struct http_str q, const char *key, struct http_str *val)
{
    size_t klen = strlen(key), i = 0;
    while (i < q.len) {
        size_t s = i;
        while (i < q.len && q.p[i] != '&') i++;
        size_t e = i++;
        if (e - s >= klen && memcmp(q.p + s, key, klen) == 0) {
            if (e - s == klen) { *val = (struct http_str){ q.p + e, 0 }; return true; }
            if (q.p[s + klen] == '=') {
                *val = (struct http_str){ q.p + s + klen + 1, e - s - klen - 1 };
                return true;
            }
        }
    }
    return false;
}
