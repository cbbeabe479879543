/* jsondoc.h - the shared first steps of reading a JSON document that CT logs,
 * the log list or the state file give us: parse, require an object, fetch
 * one member of a given type, and an error string in one style. */
#ifndef CS_JSONDOC_H
#define CS_JSONDOC_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

/* snprintf into err (if any); the error style of the ingest parsers. */
void jsondoc_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Parses json into *root and returns its member `key` when that is of cJSON
 * type `type` (cJSON_Object or cJSON_Array). Otherwise NULL with err set to
 * "<what>: not a JSON object" or "<what>: no \"<key>\" array|object" (no
 * prefix when what is ""). The caller cJSON_Delete()s *root either way. */
const cJSON *jsondoc_member(const char *json, size_t len, const char *key, int type,
                            const char *what, cJSON **root, char *err, size_t errlen);

/* obj[key] when it is a JSON number holding an exact non-negative integer:
 * 0, else -1. cJSON keeps numbers as doubles, exact up to 2^53, far above any
 * CT tree size or ms timestamp (never valueint: indexes exceed 2^31). */
int jsondoc_u64(const cJSON *obj, const char *key, uint64_t *out);

#endif
