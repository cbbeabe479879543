/* certjson.c - renders one parsed certificate as certstream JSON. Field
 * derivations are documented in docs/wire-format.md. */
#include "ingest/certjson.h"

#include <stdio.h>

/* absent_null: every key, in the order below, null when the attribute is
 * absent (certstream-server-go and the original server; the official
 * clients read subject['CN'] unguarded). Otherwise absent keys are left out
 * (the Rust server's bytes). aggregated is always a string. */
static void name_json(struct jbuf *b, const struct x509_name *n, bool absent_null)
{
    static const char *keys[X509_NATTR] = {"\"C\":", "\"CN\":", "\"L\":", "\"O\":", "\"OU\":", "\"ST\":",
                                           "\"email_address\":"};
    static const char *agg[X509_NATTR - 1] = {"/C=", "/CN=", "/L=", "/O=", "/OU=", "/ST="};
    jb_putc(b, '{');
    for (int i = X509_C; i <= X509_ST; i++) {
        if (!n->a[i].set) {
            if (absent_null) {
                jb_put(b, keys[i], strlen(keys[i]));
                jb_lit(b, "null,");
            }
            continue;
        }
        jb_put(b, keys[i], strlen(keys[i]));
        jb_putc(b, '"');
        x509_str_json(b, &n->a[i]);
        jb_lit(b, "\",");
    }
    jb_lit(b, "\"aggregated\":\"");
    for (int i = X509_C; i <= X509_ST; i++) {
        if (!n->a[i].set) continue;
        jb_put(b, agg[i], strlen(agg[i]));
        x509_str_json(b, &n->a[i]);
    }
    jb_putc(b, '"');
    if (n->a[X509_EMAIL].set) {
        jb_lit(b, ",\"email_address\":\"");
        x509_str_json(b, &n->a[X509_EMAIL]);
        jb_putc(b, '"');
    } else if (absent_null) {
        jb_lit(b, ",\"email_address\":null");
    }
    jb_putc(b, '}');
}

void certjson_head(struct jbuf *b, const struct x509_cert *c, const uint8_t sha1[20], const uint8_t sha256[32],
                   bool absent_null)
{
    jb_lit(b, "{\"subject\":");
    name_json(b, &c->subject, absent_null);
    jb_lit(b, ",\"issuer\":");
    name_json(b, &c->issuer, absent_null);
    jb_lit(b, ",\"serial_number\":\"");
    /* The minimal unsigned integer: leading zero bytes dropped, "00" for 0. */
    size_t i = 0;
    while (i + 1 < c->serial.len && c->serial.p[i] == 0) i++;
    if (c->serial.len == 0 || (c->serial.len - i == 1 && c->serial.p[i] == 0)) jb_lit(b, "00");
    else jb_hex(b, c->serial.p + i, c->serial.len - i, 0, true);
    jb_lit(b, "\",\"not_before\":");
    jb_i64(b, c->not_before);
    jb_lit(b, ",\"not_after\":");
    jb_i64(b, c->not_after);
    jb_lit(b, ",\"fingerprint\":\"");
    jb_hex(b, sha1, 20, ':', true);
    jb_lit(b, "\",\"sha1\":\"");
    jb_hex(b, sha1, 20, ':', true);
    jb_lit(b, "\",\"sha256\":\"");
    jb_hex(b, sha256, 32, ':', true);
    jb_lit(b, "\",\"signature_algorithm\":\"");
    jb_put(b, c->sigalg, strlen(c->sigalg));
    if (c->is_ca) jb_lit(b, "\",\"is_ca\":true");
    else jb_lit(b, "\",\"is_ca\":false");
}

/* Appends "," + the item if it differs from every item already in the
 * array that starts at b->p[start]. Items are compared as rendered, so
 * strings that render the same are the same domain to a client. */
static void domain_add(struct jbuf *b, size_t start, size_t *offs, size_t *lens, size_t *n, size_t max,
                       const struct x509_str *s)
{
    size_t mark = b->len;
    if (*n) jb_putc(b, ',');
    size_t item = b->len;
    jb_putc(b, '"');
    x509_str_json(b, s);
    jb_putc(b, '"');
    if (b->oom) return;
    size_t ilen = b->len - item;
    for (size_t i = 0; i < *n && i < max; i++) {
        if (lens[i] == ilen && memcmp(b->p + start + offs[i], b->p + item, ilen) == 0) {
            b->len = mark;
            return;
        }
    }
    if (*n < max) { offs[*n] = item - start; lens[*n] = ilen; }
    (*n)++;
}

void certjson_domains(struct jbuf *b, const struct x509_cert *c)
{
    /* Duplicate checks cover the first 256 items; beyond that, certificates
     * with thousands of names are rare and still render (maybe with a
     * repeat) in linear time. */
    enum { MAXD = 256 };
    size_t offs[MAXD], lens[MAXD], n = 0;
    size_t start = b->len;
    jb_putc(b, '[');
    const struct x509_str *cn = &c->subject.a[X509_CN];
    if (cn->set && cn->len > 0 && !c->is_ca) domain_add(b, start, offs, lens, &n, MAXD, cn);
    for (size_t i = 0; i < c->nsan; i++) {
        if (c->san[i].kind != X509_GN_DNS) continue;
        struct x509_str s = {c->san[i].p, c->san[i].len, 0x16, true};
        domain_add(b, start, offs, lens, &n, MAXD, &s);
    }
    jb_putc(b, ']');
}

static void ip_text(struct jbuf *b, const uint8_t *p, size_t len)
{
    char t[64];
    if (len == 4) {
        int n = snprintf(t, sizeof t, "%u.%u.%u.%u", p[0], p[1], p[2], p[3]);
        jb_put(b, t, (size_t)n);
        return;
    }
    uint16_t w[8];
    for (int i = 0; i < 8; i++) w[i] = (uint16_t)(p[2 * i] << 8 | p[2 * i + 1]);
    if (w[0] == 0 && w[1] == 0 && w[2] == 0 && w[3] == 0 && w[4] == 0 && w[5] == 0xffff) {
        int n = snprintf(t, sizeof t, "::ffff:%u.%u.%u.%u", p[12], p[13], p[14], p[15]);
        jb_put(b, t, (size_t)n);
        return;
    }
    /* RFC 5952: the longest run (first if tied) of two or more zero groups is "::". */
    int best = -1, bestlen = 0;
    for (int i = 0; i < 8;) {
        if (w[i]) { i++; continue; }
        int j = i;
        while (j < 8 && !w[j]) j++;
        if (j - i > bestlen) { best = i; bestlen = j - i; }
        i = j;
    }
    if (bestlen < 2) best = -1;
    int o = 0;
    for (int i = 0; i < 8; i++) {
        if (i == best) {
            o += snprintf(t + o, sizeof t - (size_t)o, "::");
            i += bestlen - 1;
            continue;
        }
        if (i && !(best >= 0 && i == best + bestlen)) t[o++] = ':';
        o += snprintf(t + o, sizeof t - (size_t)o, "%x", w[i]);
    }
    jb_put(b, t, (size_t)o);
}

struct tl { const uint8_t *p; size_t len; uint8_t tag; };

static int step(const uint8_t **pp, const uint8_t *end, struct tl *t)
{
    return x509_tlv(pp, end, &t->tag, &t->p, &t->len);
}

/* The names of the bits set in flags, joined by ", ", then the closing quote. */
static void flag_names(struct jbuf *b, const char *const *names, int n, unsigned flags)
{
    bool first = true;
    for (int i = 0; i < n; i++) {
        if (!(flags & (1u << i))) continue;
        if (!first) jb_lit(b, ", ");
        first = false;
        jb_put(b, names[i], strlen(names[i]));
    }
    jb_putc(b, '"');
}

void certjson_extensions(struct jbuf *b, const struct x509_cert *c, bool poison)
{
    bool first = true;
    jb_lit(b, ",\"extensions\":{");
#define KEY(k) do { if (!first) jb_putc(b, ','); first = false; jb_lit(b, "\"" k "\":\""); } while (0)
    if (c->has_aia) {
        KEY("authorityInfoAccess");
        const uint8_t *p = c->aia.p, *end = c->aia.p + c->aia.len;
        struct tl ad, oid, loc;
        bool f = true;
        while (p < end && step(&p, end, &ad) == 0) {
            const uint8_t *q = ad.p;
            if (step(&q, ad.p + ad.len, &oid) < 0 || step(&q, ad.p + ad.len, &loc) < 0) break;
            if (loc.tag != 0x86) continue;
            if (!f) jb_lit(b, ", ");
            f = false;
            jb_lit(b, "URI:");
            jb_str_body(b, loc.p, loc.len);
        }
        jb_putc(b, '"');
    }
    if (c->has_aki) {
        KEY("authorityKeyIdentifier");
        jb_lit(b, "keyid:");
        jb_hex(b, c->aki_keyid.p, c->aki_keyid.len, ':', false);
        jb_putc(b, '"');
    }
    if (c->has_bc) {
        KEY("basicConstraints");
        if (c->is_ca) jb_lit(b, "CA:TRUE\"");
        else jb_lit(b, "CA:FALSE\"");
    }
    if (c->has_cp) {
        KEY("certificatePolicies");
        const uint8_t *p = c->cp.p, *end = c->cp.p + c->cp.len;
        struct tl pi, oid;
        while (p < end && step(&p, end, &pi) == 0) {
            const uint8_t *q = pi.p;
            if (step(&q, pi.p + pi.len, &oid) < 0) break;
            jb_lit(b, "Policy: ");
            x509_oid_text(b, oid.p, oid.len);
            jb_lit(b, "\\n");
        }
        jb_putc(b, '"');
    }
    if (c->has_eku) {
        static const char *names[] = {"serverAuth", "clientAuth", "codeSigning", "emailProtection",
                                      "timeStamping", "OCSPSigning", "anyExtendedKeyUsage"};
        KEY("extendedKeyUsage");
        flag_names(b, names, 7, c->eku);
    }
    if (c->has_ku) {
        static const char *names[] = {"Digital Signature", "Content Commitment", "Key Encipherment",
                                      "Data Encipherment", "Key Agreement", "Certificate Signing",
                                      "CRL Signing", "Encipher Only", "Decipher Only"};
        KEY("keyUsage");
        flag_names(b, names, 9, c->ku_bits);
    }
    if (c->has_san) {
        KEY("subjectAltName");
        for (size_t i = 0; i < c->nsan; i++) {
            if (i) jb_lit(b, ", ");
            const struct x509_gn *g = &c->san[i];
            if (g->kind == X509_GN_DNS) { jb_lit(b, "DNS:"); jb_str_body(b, g->p, g->len); }
            else if (g->kind == X509_GN_EMAIL) { jb_lit(b, "email:"); jb_str_body(b, g->p, g->len); }
            else { jb_lit(b, "IP Address:"); ip_text(b, g->p, g->len); }
        }
        jb_putc(b, '"');
    }
    if (c->has_ski) {
        KEY("subjectKeyIdentifier");
        jb_lit(b, "keyid:");
        jb_hex(b, c->ski.p, c->ski.len, ':', false);
        jb_putc(b, '"');
    }
#undef KEY
    if (poison) {
        if (!first) jb_putc(b, ',');
        jb_lit(b, "\"ctlPoisonByte\":true");
    }
    jb_putc(b, '}');
}

void certjson_chain_element(struct jbuf *b, const struct x509_cert *c, const uint8_t sha1[20], const uint8_t sha256[32],
                            bool absent_null)
{
    certjson_head(b, c, sha1, sha256, absent_null);
    certjson_extensions(b, c, false);
    jb_putc(b, '}');
}
