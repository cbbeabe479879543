/* fuzz_listsig.c - libFuzzer target for listsig_verify: the first byte picks
 * how much of the input is the signature, the rest is the list; checked
 * against Google's built-in key and against junk as the key. */
#include <stddef.h>
#include <stdint.h>

#include "ingest/listsig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    if (size < 1) return 0;
    size_t siglen = (size_t)data[0] * 4;
    if (siglen > size - 1) siglen = size - 1;
    const uint8_t *sig = data + 1, *list = data + 1 + siglen;
    (void)listsig_verify(list, size - 1 - siglen, sig, siglen, NULL, err, sizeof err);
    (void)listsig_verify(list, size - 1 - siglen, sig, siglen, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                         err, sizeof err);
    return 0;
}
