/* http_parser.h - the HTTP/1.1 request parser of the fanout workers.
 *
 * Hand-written on purpose: the server only ever needs the GET/HEAD subset of
 * HTTP/1.1 (no bodies, no chunking, no trailers), the result points into the
 * caller's buffer (zero copy), and every limit (request size, header count) is
 * enforced while parsing. It is a pure function over bytes, so it is fuzzed
 * directly (test/fanout/fuzz_http_parser.c). */
#ifndef CS_HTTP_PARSER_H
#define CS_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>

/* Upper bound on limits.max_headers: the header table lives on the stack. */
#define HTTP_HEADERS_CAP 256

enum http_status {
    HTTP_OK = 0,            /* a complete request head was parsed */
    HTTP_INCOMPLETE = 1,    /* need more bytes */
    HTTP_BAD = -1,          /* malformed: 400 */
    HTTP_TOO_LARGE = -2,    /* head over max_request_bytes or too many headers: 431 */
    HTTP_BAD_VERSION = -3,  /* not HTTP/1.x: 505 */
};

struct http_str { const char *p; size_t len; };

struct http_header { struct http_str name, value; };

struct http_request {
    struct http_str method;
    struct http_str target;   /* as sent (origin form after any absolute-form prefix) */
    struct http_str path;     /* target up to '?' */
    struct http_str query;    /* after '?', without it; len 0 if none */
    int minor;                /* HTTP/1.<minor> */
    size_t head_len;          /* bytes of request line + headers + blank line */
    size_t n_headers;
    struct http_header headers[HTTP_HEADERS_CAP];
};

struct http_limits {
    size_t max_request_bytes; /* request line + headers + blank line */
    size_t max_headers;       /* clamped to HTTP_HEADERS_CAP */
};

/* Parses the request head at the start of buf[0..len). Bytes after head_len
 * (pipelined data, early WebSocket frames) are not looked at. Values have
 * surrounding whitespace removed. A request head that is not complete within
 * max_request_bytes is HTTP_TOO_LARGE. */
enum http_status http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
                                    struct http_request *req);

/* Where the head ends: the index just past the blank line, or 0 if buf does
 * not contain one yet. Scans only from `from` (minus 3 for a split
 * terminator), so repeated calls on a growing buffer stay linear. */
size_t http_head_end(const char *buf, size_t len, size_t from);

/* First header named `name` (case-insensitive), or NULL. */
const struct http_str *http_header_get(const struct http_request *req, const char *name);
/* Number of headers with that name. */
size_t http_header_count(const struct http_request *req, const char *name);

/* Case-insensitive comparisons over http_str. */
bool http_str_eq(struct http_str s, const char *lit);
bool http_str_ieq(struct http_str s, const char *lit);
/* Does the comma-separated list value contain the token (case-insensitive)? */
bool http_list_has_token(struct http_str value, const char *token);
/* Value of query parameter `key` in a query string (no decoding); false if absent. */
bool http_query_param(struct http_str query, const char *key, struct http_str *val);

#endif
