/* x509.c - the lenient certificate walker (see x509.h for why it exists). */
#include "ingest/x509.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/asn1.h>

struct tlv {
    uint8_t tag;
    const uint8_t *hdr;   /* start of the TLV */
    const uint8_t *p;     /* content */
    size_t len;           /* content length */
};

static int tlv_next(const uint8_t **pp, const uint8_t *end, struct tlv *t);

/* End of the BER indefinite-length content starting at p (at its
 * end-of-contents octets), or NULL. Real certificates occasionally use it
 * and other parsers accept it, so the walker does too. */
static const uint8_t *indefinite_end(const uint8_t *p, const uint8_t *end, int depth)
{
    if (depth > 16) return NULL;
    while (end - p >= 2) {
        if (p[0] == 0 && p[1] == 0) return p;
        struct tlv t;
        const uint8_t *q = p;
        if ((p[0] & 0x20) && p[1] == 0x80) {
            const uint8_t *e = indefinite_end(p + 2, end, depth + 1);
            if (!e) return NULL;
            p = e + 2;
            continue;
        }
        if (tlv_next(&q, end, &t) < 0) return NULL;
        p = q;
    }
    return NULL;
}

/* Reads one TLV at *pp (which must stay below end) and moves past it.
 * Single-byte tags; definite lengths (mbedTLS decodes them, checking them
 * against end), or indefinite ones on constructed types. */
static int tlv_next(const uint8_t **pp, const uint8_t *end, struct tlv *t)
{
    const uint8_t *p = *pp;
    if (p >= end || end - p < 2) return -1;
    t->hdr = p;
    t->tag = *p++;
    if ((t->tag & 0x1f) == 0x1f) return -1;
    if (*p == 0x80) {
        if (!(t->tag & 0x20)) return -1;
        const uint8_t *e = indefinite_end(p + 1, end, 0);
        if (!e) return -1;
        t->p = p + 1;
        t->len = (size_t)(e - t->p);
        *pp = e + 2;
        return 0;
    }
    unsigned char *q = (unsigned char *)p;
    size_t len;
    if (mbedtls_asn1_get_len(&q, end, &len) != 0) return -1;
    t->p = q;
    t->len = len;
    *pp = q + len;
    return 0;
}

int x509_tlv(const uint8_t **pp, const uint8_t *end, uint8_t *tag, const uint8_t **content, size_t *len)
{
    struct tlv t;
    if (tlv_next(pp, end, &t) < 0) return -1;
    *tag = t.tag;
    *content = t.p;
    *len = t.len;
    return 0;
}

#define OID_IS(t, lit) ((t)->len == sizeof(lit) - 1 && memcmp((t)->p, lit, sizeof(lit) - 1) == 0)

/* ---- algorithms ---- */

static const struct { const char *oid; size_t len; const char *name; } sigalgs[] = {
#define A(o, n) {o, sizeof(o) - 1, n}
    A("\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0b", "sha256, rsa"),
    A("\x2a\x86\x48\xce\x3d\x04\x03\x02", "ecdsa, sha256"),
    A("\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0c", "sha384, rsa"),
    A("\x2a\x86\x48\xce\x3d\x04\x03\x03", "ecdsa, sha384"),
    A("\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0d", "sha512, rsa"),
    A("\x2a\x86\x48\x86\xf7\x0d\x01\x01\x05", "sha1, rsa"),
    A("\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0a", "sha256, rsa-pss"),
    A("\x2a\x86\x48\xce\x3d\x04\x03\x04", "ecdsa, sha512"),
    A("\x2a\x86\x48\xce\x3d\x04\x01", "ecdsa, sha1"),
    A("\x2a\x86\x48\x86\xf7\x0d\x01\x01\x04", "md5, rsa"),
    A("\x2a\x86\x48\x86\xf7\x0d\x01\x01\x02", "md2, rsa"),
    A("\x2a\x86\x48\xce\x38\x04\x03", "dsa, sha1"),
    A("\x60\x86\x48\x01\x65\x03\x04\x03\x02", "dsa, sha256"),
    A("\x2b\x65\x70", "ed25519"),
#undef A
};

/* AlgorithmIdentifier TLV -> message text, NULL if unreadable. */
static const char *sigalg_name(const struct tlv *alg)
{
    const uint8_t *p = alg->p;
    struct tlv oid;
    if (alg->tag != 0x30 || tlv_next(&p, alg->p + alg->len, &oid) < 0 || oid.tag != 0x06) return NULL;
    for (size_t i = 0; i < sizeof sigalgs / sizeof sigalgs[0]; i++)
        if (oid.len == sigalgs[i].len && memcmp(oid.p, sigalgs[i].oid, oid.len) == 0)
            return sigalgs[i].name;
    return "unknown";
}

/* ---- times ---- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const uint8_t *p, size_t n, int *v)
{
    int x = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        x = x * 10 + (p[i] - '0');
    }
    *v = x;
    return 0;
}

/* UTCTime or GeneralizedTime -> Unix seconds; 0 when unreadable. Accepts
 * missing seconds, fractions and +hhmm/-hhmm offsets, which real
 * certificates contain even though DER forbids them. */
static int64_t asn1_time(const struct tlv *t)
{
    const uint8_t *p = t->p;
    size_t n = t->len, i;
    int year, mon, day, hh, mm, ss = 0;
    if (t->tag == 0x17) {
        if (n < 10 || digits(p, 2, &year) < 0) return 0;
        year += year < 50 ? 2000 : 1900;
        i = 2;
    } else if (t->tag == 0x18) {
        if (n < 10 || digits(p, 4, &year) < 0) return 0;
        i = 4;
    } else {
        return 0;
    }
    if (n - i < 6 || digits(p + i, 2, &mon) < 0 || digits(p + i + 2, 2, &day) < 0 ||
        digits(p + i + 4, 2, &hh) < 0)
        return 0;
    i += 6;
    mm = 0;
    if (n - i >= 2 && digits(p + i, 2, &mm) == 0) {
        i += 2;
        if (n - i >= 2 && digits(p + i, 2, &ss) == 0) i += 2;
    }
    if (i < n && (p[i] == '.' || p[i] == ',')) {
        i++;
        while (i < n && p[i] >= '0' && p[i] <= '9') i++;
    }
    int64_t off = 0;
    if (i < n && (p[i] == '+' || p[i] == '-') && n - i >= 5) {
        int oh, om;
        if (digits(p + i + 1, 2, &oh) == 0 && digits(p + i + 3, 2, &om) == 0)
            off = (p[i] == '+' ? 1 : -1) * (int64_t)(oh * 3600 + om * 60);
    }
    if (mon < 1 || mon > 12 || day < 1 || day > 31 || hh > 24 || mm > 59 || ss > 60) return 0;
    return days_from_civil(year, (unsigned)mon, (unsigned)day) * 86400 + hh * 3600 + mm * 60 + ss - off;
}

/* ---- names ---- */

static void parse_name(const struct tlv *name, struct x509_name *out)
{
    static const struct { const char *oid; size_t len; int idx; } attrs[] = {
        {"\x55\x04\x03", 3, X509_CN}, {"\x55\x04\x06", 3, X509_C},  {"\x55\x04\x07", 3, X509_L},
        {"\x55\x04\x08", 3, X509_ST}, {"\x55\x04\x0a", 3, X509_O},  {"\x55\x04\x0b", 3, X509_OU},
        {"\x2a\x86\x48\x86\xf7\x0d\x01\x09\x01", 9, X509_EMAIL},
    };
    const uint8_t *p = name->p, *end = name->p + name->len;
    struct tlv rdn;
    while (p < end && tlv_next(&p, end, &rdn) == 0) {
        if (rdn.tag != 0x31) return;
        const uint8_t *q = rdn.p, *qend = rdn.p + rdn.len;
        struct tlv atv;
        while (q < qend && tlv_next(&q, qend, &atv) == 0) {
            if (atv.tag != 0x30) return;
            const uint8_t *r = atv.p, *rend = atv.p + atv.len;
            struct tlv oid, val;
            if (tlv_next(&r, rend, &oid) < 0 || oid.tag != 0x06 || tlv_next(&r, rend, &val) < 0) return;
            for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
                if (oid.len == attrs[i].len && memcmp(oid.p, attrs[i].oid, oid.len) == 0) {
                    struct x509_str *s = &out->a[attrs[i].idx];   /* last one wins */
                    s->p = val.p;
                    s->len = val.len;
                    s->tag = val.tag;
                    s->set = true;
                    break;
                }
            }
        }
    }
}

static size_t utf8_put(uint8_t *o, uint32_t cp)
{
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
    if (cp > 0x10FFFF) cp = 0xFFFD;
    if (cp < 0x80) { o[0] = (uint8_t)cp; return 1; }
    if (cp < 0x800) { o[0] = (uint8_t)(0xC0 | cp >> 6); o[1] = (uint8_t)(0x80 | (cp & 63)); return 2; }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | cp >> 12); o[1] = (uint8_t)(0x80 | (cp >> 6 & 63)); o[2] = (uint8_t)(0x80 | (cp & 63));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | cp >> 18); o[1] = (uint8_t)(0x80 | (cp >> 12 & 63));
    o[2] = (uint8_t)(0x80 | (cp >> 6 & 63)); o[3] = (uint8_t)(0x80 | (cp & 63));
    return 4;
}

void x509_str_json(struct jbuf *b, const struct x509_str *s)
{
    if (s->tag != 0x1E && s->tag != 0x1C) {   /* byte strings: taken as UTF-8 */
        jb_str_body(b, s->p, s->len);
        return;
    }
    uint8_t tmp[512];
    size_t o = 0, i = 0;
    while (i < s->len) {
        uint32_t cp;
        if (s->tag == 0x1E) {                 /* BMPString: UTF-16BE */
            if (s->len - i < 2) { cp = 0xFFFD; i = s->len; }
            else {
                cp = (uint32_t)s->p[i] << 8 | s->p[i + 1];
                i += 2;
                if (cp >= 0xD800 && cp <= 0xDBFF && s->len - i >= 2) {
                    uint32_t lo = (uint32_t)s->p[i] << 8 | s->p[i + 1];
                    if (lo >= 0xDC00 && lo <= 0xDFFF) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        i += 2;
                    }
                }
            }
        } else {                              /* UniversalString: UTF-32BE */
            if (s->len - i < 4) { cp = 0xFFFD; i = s->len; }
            else {
                cp = (uint32_t)s->p[i] << 24 | (uint32_t)s->p[i + 1] << 16 | (uint32_t)s->p[i + 2] << 8 | s->p[i + 3];
                i += 4;
            }
        }
        o += utf8_put(tmp + o, cp);
        if (o > sizeof tmp - 4) { jb_str_body(b, tmp, o); o = 0; }
    }
    jb_str_body(b, tmp, o);
}

void x509_oid_text(struct jbuf *b, const uint8_t *p, size_t len)
{
    uint64_t v = 0;
    bool first = true;
    for (size_t i = 0; i < len; i++) {
        if (v > (UINT64_MAX >> 7)) v = UINT64_MAX >> 7;   /* absurd arcs saturate */
        v = v << 7 | (p[i] & 0x7f);
        if (p[i] & 0x80) continue;
        if (first) {
            uint64_t a = v < 40 ? 0 : v < 80 ? 1 : 2;
            jb_u64(b, a);
            jb_putc(b, '.');
            jb_u64(b, v - a * 40);
            first = false;
        } else {
            jb_putc(b, '.');
            jb_u64(b, v);
        }
        v = 0;
    }
}

/* ---- extensions ---- */

static void ext_san(struct x509_cert *c, const uint8_t *p, size_t len)
{
    const uint8_t *q = p, *end = p + len;
    struct tlv seq, gn;
    c->has_san = false;
    c->nsan = 0;
    if (tlv_next(&q, end, &seq) < 0 || seq.tag != 0x30) return;
    q = seq.p;
    end = seq.p + seq.len;
    while (q < end) {
        if (tlv_next(&q, end, &gn) < 0) { c->nsan = 0; return; }
        uint8_t kind = gn.tag == 0x81 ? X509_GN_EMAIL : gn.tag == 0x82 ? X509_GN_DNS : gn.tag == 0x87 ? X509_GN_IP : 0;
        if (!kind || (kind == X509_GN_IP && gn.len != 4 && gn.len != 16)) continue;
        if (c->nsan < X509_MAX_SAN) c->san[c->nsan++] = (struct x509_gn){gn.p, (uint32_t)gn.len, kind};
    }
    c->has_san = c->nsan > 0;
}

/* A SEQUENCE OF SEQUENCE whose members start with an OID; counts members
 * (for AIA: members whose location is a URI). -1 if malformed. */
static int seq_of_seq(const uint8_t *p, size_t len, struct ct_span *content, bool count_uris)
{
    const uint8_t *q = p, *end = p + len;
    struct tlv seq, m, oid, loc;
    if (tlv_next(&q, end, &seq) < 0 || seq.tag != 0x30) return -1;
    *content = (struct ct_span){seq.p, seq.len};
    int n = 0;
    q = seq.p;
    end = seq.p + seq.len;
    while (q < end) {
        if (tlv_next(&q, end, &m) < 0 || m.tag != 0x30) return -1;
        const uint8_t *r = m.p, *rend = m.p + m.len;
        if (tlv_next(&r, rend, &oid) < 0 || oid.tag != 0x06) return -1;
        if (count_uris) {
            if (tlv_next(&r, rend, &loc) < 0) return -1;
            if (loc.tag == 0x86) n++;
        } else {
            n++;
        }
    }
    return n;
}

static void parse_ext(struct x509_cert *c, const struct tlv *oid, const uint8_t *v, size_t vlen)
{
    const uint8_t *q = v, *end = v + vlen;
    struct tlv t, u;
    if (oid->len == 3 && oid->p[0] == 0x55 && oid->p[1] == 0x1d) {
        switch (oid->p[2]) {
        case 0x0e:  /* subjectKeyIdentifier */
            if (tlv_next(&q, end, &t) == 0 && t.tag == 0x04) {
                c->ski = (struct ct_span){t.p, t.len};
                c->has_ski = true;
            }
            return;
        case 0x0f:  /* keyUsage */
            if (tlv_next(&q, end, &t) == 0 && t.tag == 0x03 && t.len >= 1) {
                uint16_t bits = 0;
                for (size_t i = 1; i < t.len && i < 3; i++)
                    for (int k = 0; k < 8; k++)
                        if (t.p[i] & (0x80 >> k)) bits |= (uint16_t)(1u << ((i - 1) * 8 + (size_t)k));
                c->ku_bits = bits & 0x1ff;
                c->has_ku = true;
            }
            return;
        case 0x11:  /* subjectAltName */
            ext_san(c, v, vlen);
            return;
        case 0x13:  /* basicConstraints */
            if (tlv_next(&q, end, &t) == 0 && t.tag == 0x30) {
                const uint8_t *r = t.p;
                c->is_ca = tlv_next(&r, t.p + t.len, &u) == 0 && u.tag == 0x01 && u.len >= 1 && u.p[0] != 0;
                c->has_bc = true;
            }
            return;
        case 0x20: { /* certificatePolicies */
            int n = seq_of_seq(v, vlen, &c->cp, false);
            c->has_cp = n > 0;
            return;
        }
        case 0x23:  /* authorityKeyIdentifier */
            c->has_aki = false;
            if (tlv_next(&q, end, &t) == 0 && t.tag == 0x30) {
                const uint8_t *r = t.p, *rend = t.p + t.len;
                while (r < rend && tlv_next(&r, rend, &u) == 0) {
                    if (u.tag == 0x80) {
                        c->aki_keyid = (struct ct_span){u.p, u.len};
                        c->has_aki = true;
                        break;
                    }
                }
            }
            return;
        case 0x25:  /* extendedKeyUsage */
            if (tlv_next(&q, end, &t) == 0 && t.tag == 0x30) {
                static const struct { const char *oid; uint8_t flag; } ekus[] = {
                    {"\x2b\x06\x01\x05\x05\x07\x03\x01", X509_EKU_SERVER},
                    {"\x2b\x06\x01\x05\x05\x07\x03\x02", X509_EKU_CLIENT},
                    {"\x2b\x06\x01\x05\x05\x07\x03\x03", X509_EKU_CODE},
                    {"\x2b\x06\x01\x05\x05\x07\x03\x04", X509_EKU_EMAIL},
                    {"\x2b\x06\x01\x05\x05\x07\x03\x08", X509_EKU_TIME},
                    {"\x2b\x06\x01\x05\x05\x07\x03\x09", X509_EKU_OCSP},
                };
                uint8_t flags = 0;
                const uint8_t *r = t.p, *rend = t.p + t.len;
                while (r < rend) {
                    if (tlv_next(&r, rend, &u) < 0 || u.tag != 0x06) return;
                    if (OID_IS(&u, "\x55\x1d\x25\x00")) flags |= X509_EKU_ANY;
                    else if (u.len == 8)
                        for (size_t i = 0; i < 6; i++)
                            if (memcmp(u.p, ekus[i].oid, 8) == 0) flags |= ekus[i].flag;
                }
                c->eku = flags;
                c->has_eku = true;
            }
            return;
        }
        return;
    }
    if (OID_IS(oid, "\x2b\x06\x01\x05\x05\x07\x01\x01")) {   /* authorityInfoAccess */
        int n = seq_of_seq(v, vlen, &c->aia, true);
        c->has_aia = n > 0;
    } else if (OID_IS(oid, "\x2b\x06\x01\x04\x01\xd6\x79\x02\x04\x03")) {  /* CT poison */
        c->has_poison = true;
    }
}

static void parse_extensions(struct x509_cert *c, const struct tlv *a3)
{
    const uint8_t *p = a3->p, *end = a3->p + a3->len;
    struct tlv seq, ext, oid, t;
    if (tlv_next(&p, end, &seq) < 0 || seq.tag != 0x30) return;
    c->extensions = (struct ct_span){seq.p, seq.len};
    p = seq.p;
    end = seq.p + seq.len;
    while (p < end) {
        if (tlv_next(&p, end, &ext) < 0 || ext.tag != 0x30) return;
        const uint8_t *q = ext.p, *qend = ext.p + ext.len;
        if (tlv_next(&q, qend, &oid) < 0 || oid.tag != 0x06) continue;
        if (tlv_next(&q, qend, &t) < 0) continue;
        if (t.tag == 0x01 && tlv_next(&q, qend, &t) < 0) continue;   /* critical */
        if (t.tag != 0x04) continue;
        parse_ext(c, &oid, t.p, t.len);
    }
}

/* ---- certificate ---- */

int x509_parse(const uint8_t *der, size_t len, struct x509_cert *c, char *err, size_t errlen)
{
    memset(c, 0, offsetof(struct x509_cert, san));
    c->der = (struct ct_span){der, len};
    if (!der) return ct_fail(err, errlen, "no certificate");
    const uint8_t *p = der, *end = der + len;
    struct tlv cert, tbs, alg, t;
    if (tlv_next(&p, end, &cert) < 0 || cert.tag != 0x30)
        return ct_fail(err, errlen, "not a DER SEQUENCE");
    p = cert.p;
    end = cert.p + cert.len;
    if (tlv_next(&p, end, &tbs) < 0 || tbs.tag != 0x30)
        return ct_fail(err, errlen, "no TBSCertificate");
    c->tbs = (struct ct_span){tbs.hdr, (size_t)(tbs.p + tbs.len - tbs.hdr)};
    if (p < end && tlv_next(&p, end, &alg) == 0) c->sigalg = sigalg_name(&alg);

    p = tbs.p;
    end = tbs.p + tbs.len;
    if (tlv_next(&p, end, &t) < 0) return ct_fail(err, errlen, "empty TBSCertificate");
    if (t.tag == 0xA0 && tlv_next(&p, end, &t) < 0) return ct_fail(err, errlen, "no serial number");
    if (t.tag != 0x02) return ct_fail(err, errlen, "serial number is not an INTEGER");
    c->serial = (struct ct_span){t.p, t.len};
    if (tlv_next(&p, end, &t) < 0 || t.tag != 0x30) return ct_fail(err, errlen, "no signature algorithm in TBS");
    if (!c->sigalg) c->sigalg = sigalg_name(&t);
    if (!c->sigalg) c->sigalg = "unknown";
    if (tlv_next(&p, end, &t) < 0 || t.tag != 0x30) return ct_fail(err, errlen, "no issuer name");
    parse_name(&t, &c->issuer);
    if (tlv_next(&p, end, &t) < 0 || t.tag != 0x30) return ct_fail(err, errlen, "no validity");
    {
        const uint8_t *q = t.p, *qend = t.p + t.len;
        struct tlv nb, na;
        if (tlv_next(&q, qend, &nb) < 0 || tlv_next(&q, qend, &na) < 0)
            return ct_fail(err, errlen, "malformed validity");
        c->not_before = asn1_time(&nb);
        c->not_after = asn1_time(&na);
    }
    if (tlv_next(&p, end, &t) < 0 || t.tag != 0x30) return ct_fail(err, errlen, "no subject name");
    parse_name(&t, &c->subject);
    if (tlv_next(&p, end, &t) < 0 || t.tag != 0x30) return ct_fail(err, errlen, "no subject public key info");
    c->spki = (struct ct_span){t.hdr, (size_t)(t.p + t.len - t.hdr)};
    while (p < end) {           /* issuerUniqueID [1], subjectUniqueID [2], extensions [3] */
        if (tlv_next(&p, end, &t) < 0) break;
        if (t.tag == 0xA3) parse_extensions(c, &t);
    }
    return 0;
}

/* ---- precertificate TBS reconstruction ---- */

static size_t der_len(uint8_t *o, size_t len)
{
    if (len < 0x80) { o[0] = (uint8_t)len; return 1; }
    size_t n = 0;
    for (size_t v = len; v; v >>= 8) n++;
    o[0] = (uint8_t)(0x80 | n);
    for (size_t i = 0; i < n; i++) o[1 + i] = (uint8_t)(len >> (8 * (n - 1 - i)));
    return 1 + n;
}

int x509_tbs_matches_precert(const uint8_t *tbs, size_t tbs_len, const uint8_t *precert, size_t precert_len)
{
    if (!tbs || !precert) return -1;
    const uint8_t *p = precert, *end = precert + precert_len;
    struct tlv cert, t, a3, seq, ext;
    if (tlv_next(&p, end, &cert) < 0 || cert.tag != 0x30) return -1;
    p = cert.p;
    if (tlv_next(&p, cert.p + cert.len, &t) < 0 || t.tag != 0x30) return -1;
    /* Find [3] and, inside, the poison extension. */
    const uint8_t *q = t.p, *tend = t.p + t.len;
    const uint8_t *poison = NULL, *poison_end = NULL;
    bool found_a3 = false;
    while (q < tend) {
        if (tlv_next(&q, tend, &a3) < 0) return -1;
        if (a3.tag != 0xA3) continue;
        found_a3 = true;
        const uint8_t *r = a3.p;
        if (tlv_next(&r, a3.p + a3.len, &seq) < 0 || seq.tag != 0x30) return -1;
        r = seq.p;
        while (r < seq.p + seq.len) {
            if (tlv_next(&r, seq.p + seq.len, &ext) < 0) return -1;
            const uint8_t *s = ext.p;
            struct tlv oid;
            if (tlv_next(&s, ext.p + ext.len, &oid) == 0 && OID_IS(&oid, "\x2b\x06\x01\x04\x01\xd6\x79\x02\x04\x03")) {
                poison = ext.hdr;
                poison_end = ext.p + ext.len;
            }
        }
        break;
    }
    if (!found_a3 || !poison) return 0;
    size_t ext_content = seq.len - (size_t)(poison_end - poison);
    size_t before = (size_t)(a3.hdr - t.p);                 /* TBS fields before [3] */
    size_t after = (size_t)(tend - (a3.p + a3.len));        /* fields after [3] */
    uint8_t h1[10], h2[10], h3[10];
    size_t seq_hdr = 1 + der_len(h2, ext_content);
    size_t a3_len = ext_content ? seq_hdr + ext_content : 0;
    size_t a3_hdr = ext_content ? 1 + der_len(h3, a3_len) : 0;
    size_t body = before + a3_hdr + a3_len + after;
    size_t tbs_hdr = 1 + der_len(h1, body);
    if (tbs_hdr + body != tbs_len) return 0;
    uint8_t *buf = malloc(tbs_len ? tbs_len : 1);
    if (!buf) return -1;
    size_t o = 0;
    buf[o++] = 0x30; o += der_len(buf + o, body);
    memcpy(buf + o, t.p, before); o += before;
    if (ext_content) {
        buf[o++] = 0xA3; o += der_len(buf + o, a3_len);
        buf[o++] = 0x30; o += der_len(buf + o, ext_content);
        size_t pre = (size_t)(poison - seq.p), post = (size_t)(seq.p + seq.len - poison_end);
        memcpy(buf + o, seq.p, pre); o += pre;
        memcpy(buf + o, poison_end, post); o += post;
    }
    memcpy(buf + o, a3.p + a3.len, after); o += after;
    int same = o == tbs_len && memcmp(buf, tbs, tbs_len) == 0;
    free(buf);
    return same;
}
