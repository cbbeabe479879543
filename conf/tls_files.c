/* tls_files.c - see tls_files.h. mbedTLS (the project's TLS library) parses
 * the PEM files and checks that the key belongs to the certificate. */
#include "conf/tls_files.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

static int regular_file(const char *path, char *why, size_t whyn)
{
    struct stat st;
    if (stat(path, &st) != 0) return snprintf(why, whyn, "%s: %s", path, strerror(errno)), -1;
    if (!S_ISREG(st.st_mode)) return snprintf(why, whyn, "%s: not a regular file", path), -1;
    if (st.st_size > TLS_FILE_MAX_BYTES)
        return snprintf(why, whyn, "%s: larger than %d bytes", path, TLS_FILE_MAX_BYTES), -1;
    return 0;
}

int tls_files_check(const char *cert_file, const char *key_file, const char **bad_key,
                    char *why, size_t whyn)
{
    char err[160];
    int rc = -1, e;
    mbedtls_x509_crt crt;
    mbedtls_pk_context pk;
    mbedtls_x509_crt_init(&crt);
    mbedtls_pk_init(&pk);
    *bad_key = "tls.cert_file";
    if (regular_file(cert_file, why, whyn) < 0) goto out;
    if ((e = mbedtls_x509_crt_parse_file(&crt, cert_file)) != 0) {
        mbedtls_strerror(e, err, sizeof err);
        snprintf(why, whyn, "%s: not a PEM certificate chain (%s%s)", cert_file,
                 e > 0 ? "some certificates failed to parse" : "", e > 0 ? "" : err);
        goto out;
    }
    *bad_key = "tls.key_file";
    if (regular_file(key_file, why, whyn) < 0) goto out;
    if ((e = mbedtls_pk_parse_keyfile(&pk, key_file, NULL)) != 0) {
        mbedtls_strerror(e, err, sizeof err);
        snprintf(why, whyn, "%s: not a PEM private key without passphrase (%s)", key_file, err);
        goto out;
    }
    if ((e = mbedtls_pk_check_pair(&crt.pk, &pk)) != 0) {
        mbedtls_strerror(e, err, sizeof err);
        snprintf(why, whyn, "%s does not match the first certificate of %s (%s)", key_file,
                 cert_file, err);
        goto out;
    }
    rc = 0;
out:
    mbedtls_x509_crt_free(&crt);
    mbedtls_pk_free(&pk);
    return rc;
}
