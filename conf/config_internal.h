/* config_internal.h - conf/ entry points for tests, the fuzz target and docs
 * checks. Not part of the server's contract (conf/config.h is). */
#ifndef CS_CONFIG_INTERNAL_H
#define CS_CONFIG_INTERNAL_H

#include "conf/config.h"

/* Largest configuration file accepted; a bigger one is refused before parsing. */
#define CONFIG_MAX_FILE_BYTES (1024 * 1024)

/* Like config_load, but the last search-order entry (normally
 * /etc/certstream/config.yaml) is `system_path` (NULL = skip it). */
int config_load_search(struct config *cfg, const struct config_flags *flags,
                       char *const *env, const char *system_path,
                       struct config_error *err);

/* Defaults, then the YAML document in data[0..len) (named `name` in
 * messages), then the cross-field checks. No environment, no flags.
 * Returns 0, -1 (refused), or -2 when libcyaml refused or misread a document
 * that the check pass accepted: a bug in conf/, which the fuzz target hunts. */
int config_load_buffer(struct config *cfg, const char *data, size_t len,
                       const char *name, struct config_error *err);

/* NULL when a and b hold the same settings (source_path is not compared;
 * auth.tokens only by count when ignore_tokens), else the first differing
 * key's name. */
const char *config_diff(const struct config *a, const struct config *b, int ignore_tokens);

/* The documented keys, in file order: name ("ct_log.batch_size") and
 * environment variable. i >= config_key_count() returns NULL. */
size_t config_key_count(void);
const char *config_key_name(size_t i);
const char *config_key_env(size_t i);

#endif
