/* listsig.c - verifying the log list's signature (see listsig.h). */
#include "ingest/listsig.h"

#include <stdio.h>
#include <string.h>

#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>

/* Google's CT log list signing key, RSA 4096, as published at
 * https://www.gstatic.com/ct/log_list/v3/log_list_pubkey.pem (the same key
 * signed the v1 and v2 lists; v2's copy at
 * https://www.gstatic.com/ct/log_list/v2/log_list_pubkey.pem). Transcribed
 * from the published PEM; this repository's test data holds no signed list
 * (test/data/loglist has no .sig), so the tests check this key only for
 * being a well-formed RSA-4096 key, and check the verification itself with
 * a key they generate. Replace it here if Google rotates its key. */
const char listsig_google_key_pem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEAsu0BHGnQ++W2CTdyZyxv\n"
    "HHRALOZPlnu/VMVgo2m+JZ8MNbAOH2cgXb8mvOj8flsX/qPMuKIaauO+PwROMjiq\n"
    "fUpcFm80Kl7i97ZQyBDYKm3MkEYYpGN+skAR2OebX9G2DfDqFY8+jUpOOWtBNr3L\n"
    "rmVcwx+FcFdMjGDlrZ5JRmoJ/SeGKiORkbbu9eY1Wd0uVhz/xI5bQb0OgII7hEj+\n"
    "i/IPbJqOHgB8xQ5zWAJJ0DmG+FM6o7gk403v6W3S8qRYiR84c50KppGwe4YqSMkF\n"
    "bLDleGQWLoaDSpEWtESisb4JiLaY4H+Kk0EyAhPSb+49JfUozYl+lf7iFN3qRq/S\n"
    "IXXTh6z0S7Qa8EYDhKGCrpI03/+qprwy+my6fpWHi6aUIk4holUCmWvFxZDfixox\n"
    "K0RlqbFDl2JXMBquwlQpm8u5wrsic1ksIv9z8x9zh4PJqNpCah0ciemI3YGRQqSe\n"
    "/mRRXBiSn9YQBUPcaeqCYan+snGADFwHuXCd9xIAdFBolw9R9HTedHGUfVXPJDiF\n"
    "4VusfX6BRR/qaadB+bqEArF/TzuDUr6FvOR4o8lUUxgLuZ/7HO+bHnaPFKYHHSm+\n"
    "+z1lVDhhYuSZ8ax3T0C3FZpb7HMjZtpEorSV5ElKJEJwrhrBCMOD8L01EoSPrGlS\n"
    "1w22i9uGHMn/uGQKo28u7AsCAwEAAQ==\n"
    "-----END PUBLIC KEY-----\n";

int listsig_verify(const uint8_t *list, size_t len, const uint8_t *sig, size_t siglen, const char *pem,
                   char *err, size_t errlen)
{
    mbedtls_pk_context pk;
    unsigned char hash[32];
    int rc = -1;
    if (!pem) pem = listsig_google_key_pem;
    mbedtls_pk_init(&pk);
    if (mbedtls_pk_parse_public_key(&pk, (const unsigned char *)pem, strlen(pem) + 1) != 0) {
        snprintf(err, errlen, "the log list public key is not a PEM public key");
        goto out;
    }
    if (mbedtls_pk_get_type(&pk) != MBEDTLS_PK_RSA) {
        snprintf(err, errlen, "the log list public key is not an RSA key");
        goto out;
    }
    if (mbedtls_sha256_ret(list, len, hash, 0) != 0 ||
        mbedtls_pk_verify(&pk, MBEDTLS_MD_SHA256, hash, sizeof hash, sig, siglen) != 0) {
        snprintf(err, errlen, "signature does not verify (%zu bytes of list, %zu of signature)", len, siglen);
        goto out;
    }
    rc = 0;
out:
    mbedtls_pk_free(&pk);
    return rc;
}

int listsig_url(const char *list_url, char *out, size_t outlen)
{
    size_t n = strlen(list_url);
    int w;
    if (n >= 5 && strcmp(list_url + n - 5, ".json") == 0)
        w = snprintf(out, outlen, "%.*s.sig", (int)(n - 5), list_url);
    else
        w = snprintf(out, outlen, "%s.sig", list_url);
    return w < 0 || (size_t)w >= outlen ? -1 : 0;
}
