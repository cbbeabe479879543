/* jsonw.h - a small append-only JSON writer for byte-exact output.
 *
 * The certstream message format is a contract down to the byte (key order,
 * float form, escaping), so output is written by hand into a growable buffer
 * instead of through a generic JSON library. The buffer is reused between
 * messages: after warm-up, writing a message allocates nothing.
 *
 * Escaping follows the common compact convention: '"' and '\\' are escaped,
 * \b \f \n \r \t use their short forms, other bytes below 0x20 become \u00xx
 * (lowercase hex); '/' and non-ASCII are written as is. Invalid UTF-8 in a
 * string is replaced by U+FFFD (one per maximal ill-formed subsequence), so
 * every string written is valid UTF-8. */
#ifndef CS_JSONW_H
#define CS_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct jbuf {
    char *p;
    size_t len, cap;
    bool oom;           /* an allocation failed: content is truncated */
};

void jb_init(struct jbuf *b);
void jb_free(struct jbuf *b);
static inline void jb_reset(struct jbuf *b) { b->len = 0; b->oom = false; }
/* Slow path of jb_reserve: grows the buffer. false on allocation failure. */
bool jb_grow(struct jbuf *b, size_t need);

static inline bool jb_reserve(struct jbuf *b, size_t n)
{
    if (b->p && b->cap - b->len >= n) return true;   /* never write through NULL */
    return jb_grow(b, n);
}

static inline void jb_put(struct jbuf *b, const void *s, size_t n)
{
    if (!jb_reserve(b, n)) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static inline void jb_putc(struct jbuf *b, char c)
{
    if (!jb_reserve(b, 1)) return;
    b->p[b->len++] = c;
}

/* printf-style append (headers, metrics lines; not for JSON strings). */
void jb_printf(struct jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends a string literal without strlen. */
#define jb_lit(b, s) jb_put((b), (s), sizeof(s) - 1)

/* A JSON string: quotes, escaping, UTF-8 repair. */
void jb_str(struct jbuf *b, const void *s, size_t n);
static inline void jb_cstr(struct jbuf *b, const char *s) { jb_str(b, s, strlen(s)); }
/* The inside of a JSON string (no quotes), for strings built from parts. */
void jb_str_body(struct jbuf *b, const void *s, size_t n);

void jb_u64(struct jbuf *b, uint64_t v);
void jb_i64(struct jbuf *b, int64_t v);
/* ms / 1000 as the shortest decimal that reads back as the same double,
 * with ".0" when whole (1700000000.0, 1779302893.443). */
void jb_ms_seconds(struct jbuf *b, int64_t ms);
/* Any finite double, shortest round-trip form: digits with a '.' (".0" when
 * whole) for magnitudes in [1e-5, 1e16), else d.ddde[-]x. */
void jb_double(struct jbuf *b, double v);
/* Fixed-width "SSSSSSSSSS.uuuuuu" (seconds, 6 decimals) for a value in
 * [0, 1e10); the width never changes, so the number can be overwritten. */
void jb_fixed6(struct jbuf *b, double v);

/* Bytes as hex pairs joined by sep (0 = no separator), upper or lower case. */
void jb_hex(struct jbuf *b, const uint8_t *d, size_t n, char sep, bool upper);

/* Number of bytes of a valid UTF-8 sequence starting at s[0] (1..4), or 0 if
 * s[0] starts an ill-formed sequence; *skip is then the length of the maximal
 * ill-formed subpart to replace with one U+FFFD. */
size_t utf8_seq(const uint8_t *s, size_t n, size_t *skip);

#endif
