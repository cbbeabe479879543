/* filter_query.h - the query parameters of a filtered stream, parsed and
 * normalized into one canonical key (filter_query.c).
 *
 *   domain=PATTERN   repeatable, comma lists allowed: a glob over all_domains
 *                    (`*` any characters), case-insensitive, IDNA-aware
 *   regex=RE         repeatable: PCRE2, against each domain
 *   issuer=TEXT      repeatable: substring of the issuer's aggregated
 *   log=NAME_OR_URL  repeatable: the source log's name or URL
 *   precert=true|false, ca=true|false
 *
 * Kinds combine with AND, values of one kind with OR. Clients whose
 * parameters mean the same filter get the same key (values normalized,
 * sorted, duplicates dropped), which is what lets a worker evaluate each
 * distinct filter once per message. Other parameters are ignored. */
#ifndef CS_FANOUT_FILTER_QUERY_H
#define CS_FANOUT_FILTER_QUERY_H

#include <stddef.h>
#include <stdint.h>

struct filter_limits {
    uint32_t max_patterns;        /* values of all kinds together, per client */
    uint32_t max_pattern_bytes;   /* one value, after percent-decoding */
};

/* The key: one line per value, "<kind><value>\n", kinds in the order
 * d (domain), r (regex), i (issuer), l (log), p (precert), c (ca), values
 * sorted. Values hold no control characters. */
enum { FQ_DOMAIN = 'd', FQ_REGEX = 'r', FQ_ISSUER = 'i', FQ_LOG = 'l', FQ_PRECERT = 'p', FQ_CA = 'c' };

/* Parses the query string q (without '?'). Returns 0 when it names no
 * filter (*key NULL), 1 with *key (malloc'd, NUL-terminated) and *keylen,
 * or -1 with a one-line reason in why (the answer is 400). */
int filter_query_parse(const char *q, size_t qlen, const struct filter_limits *lim, char **key,
                       size_t *keylen, char *why, size_t whyn);

/* Percent-decodes s (and '+' as space) into out (cap bytes); the decoded
 * length, or -1 on a bad escape or overflow. */
long filter_query_unescape(const char *s, size_t n, char *out, size_t cap);

#endif
