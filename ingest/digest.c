/* digest.c - certificate fingerprints through OpenSSL's libcrypto.
 *
 * Hashing the leaf certificate (SHA-1 and SHA-256 of ~1.5 KB) was a fifth of
 * the ingest CPU with mbedTLS 2.28, whose SHA code is portable C. libcrypto
 * (already loaded by libcurl) uses the CPU's SHA extensions where it has
 * them (SHA-NI on current x86, the ARMv8 crypto extensions) and tuned
 * assembly elsewhere. The digests are fetched once and one context reused,
 * so a hash costs no allocation; if libcrypto cannot provide them (a
 * restricted provider configuration) mbedTLS computes the same bytes. */
#include "ingest/digest.h"

#include <mbedtls/sha1.h>
#include <mbedtls/sha256.h>
#include <openssl/evp.h>
#include <stdbool.h>

static EVP_MD *md_sha1, *md_sha256;
static EVP_MD_CTX *ctx;
static bool tried;

static void init(void)
{
    tried = true;
    md_sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
    md_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    ctx = EVP_MD_CTX_new();
}

static bool evp(const EVP_MD *md, const uint8_t *p, size_t n, uint8_t *out)
{
    unsigned len = 0;
    return md && ctx && EVP_DigestInit_ex2(ctx, md, NULL) == 1 && EVP_DigestUpdate(ctx, p, n) == 1 &&
           EVP_DigestFinal_ex(ctx, out, &len) == 1;
}

void digest_cert(const uint8_t *p, size_t n, uint8_t sha1[20], uint8_t sha256[32])
{
    if (!tried) init();
    if (sha1 && !evp(md_sha1, p, n, sha1)) mbedtls_sha1_ret(p, n, sha1);
    if (sha256 && !evp(md_sha256, p, n, sha256)) mbedtls_sha256_ret(p, n, sha256, 0);
}
