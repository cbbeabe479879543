/* file.c - see file.h. */
#include "common/file.h"

#include <errno.h>
#include <stdlib.h>

int file_read_all(FILE *f, char **out, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf)
        return -1;
    for (;;) {
        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb)
                goto err;
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        if (r == 0)
            break;
        n += r;
    }
    if (ferror(f)) {
        errno = EIO;
        goto err;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
err:
    free(buf);
    return -1;
}
