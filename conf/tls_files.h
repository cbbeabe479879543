/* tls_files.h - checks the TLS certificate and key files named by the
 * configuration: readable PEM, a chain whose first certificate matches the
 * private key. Used by the configuration checks (start and reload) and by
 * the fanout workers when they load the files. */
#ifndef CS_TLS_FILES_H
#define CS_TLS_FILES_H

#include <stddef.h>

#define TLS_FILE_MAX_BYTES (1024 * 1024)

/* 0, or -1 with *bad_key ("tls.cert_file" or "tls.key_file") and why. */
int tls_files_check(const char *cert_file, const char *key_file, const char **bad_key,
                    char *why, size_t whyn);

#endif
