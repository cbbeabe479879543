/* jsondoc.c - see jsondoc.h. */
#include "ingest/jsondoc.h"

#include <stdarg.h>
#include <stdio.h>

void jsondoc_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

const cJSON *jsondoc_member(const char *json, size_t len, const char *key, int type,
                            const char *what, cJSON **root, char *err, size_t errlen)
{
    const char *sep = *what ? ": " : "";
    *root = cJSON_ParseWithLength(json, len);
    if (!*root || !cJSON_IsObject(*root)) {
        jsondoc_err(err, errlen, "%s%snot a JSON object", what, sep);
        return NULL;
    }
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(*root, key);
    if (!m || (m->type & 0xFF) != type) {
        jsondoc_err(err, errlen, "%s%sno \"%s\" %s", what, sep, key,
                    type == cJSON_Array ? "array" : "object");
        return NULL;
    }
    return m;
}

int jsondoc_u64(const cJSON *obj, const char *key, uint64_t *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(it))
        return -1;
    double d = it->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0))
        return -1;
    uint64_t v = (uint64_t)d;
    if ((double)v != d)
        return -1;
    *out = v;
    return 0;
}
