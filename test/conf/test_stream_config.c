/* test_stream_config.c - the stream-feature keys: message_format,
 * streams.*_path, and their errors (file:line:key), spellings and environment variables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "conf/config_internal.h"

static int passed, failed;

#define CHECK(c) check((c), #c, __LINE__)
static void check(int ok, const char *what, int line)
{
    if (ok) { passed++; return; }
    failed++;
    printf("FAIL line %d: %s\n", line, what);
}

/* Loads yaml; returns 0 and the config, or -1 and the error message. */
static int load(const char *yaml, struct config *c, char *msg, size_t n)
{
    struct config_error err;
    int rc = config_load_buffer(c, yaml, strlen(yaml), "config.yaml", &err);
    snprintf(msg, n, "%s", rc == 0 ? "" : err.message);
    return rc;
}

static void expect_error(const char *yaml, const char *want)
{
    struct config c;
    char msg[600];
    int rc = load(yaml, &c, msg, sizeof msg);
    if (rc == 0) config_free(&c);
    int ok = rc != 0 && strcmp(msg, want) == 0;
    if (!ok) printf("  yaml: %s\n  got:  %s\n  want: %s\n", yaml, rc ? msg : "(accepted)", want);
    CHECK(ok);
}

static void expect_env_error(const char *var, const char *want)
{
    struct config c;
    struct config_error err;
    char *env[] = { (char *)var, NULL };
    int rc = config_load_search(&c, NULL, env, "/nonexistent/certstream.yaml", &err);
    if (rc == 0) config_free(&c);
    int ok = rc != 0 && strcmp(err.message, want) == 0;
    if (!ok) printf("  env: %s\n  got:  %s\n  want: %s\n", var, rc ? err.message : "(accepted)", want);
    CHECK(ok);
}

static void test_absent_name_fields(void)
{
    struct config c;
    char msg[600];
    config_defaults(&c);
    CHECK(strcmp(c.message_format.absent_name_fields, "null") == 0);
    CHECK(config_absent_names_null(&c));
    config_free(&c);

    /* a plain `null` is the word, like "null" quoted */
    CHECK(load("message_format:\n  absent_name_fields: null\n", &c, msg, sizeof msg) == 0);
    CHECK(strcmp(c.message_format.absent_name_fields, "null") == 0 && config_absent_names_null(&c));
    config_free(&c);
    CHECK(load("message_format:\n  absent_name_fields: \"null\"\n", &c, msg, sizeof msg) == 0);
    CHECK(strcmp(c.message_format.absent_name_fields, "null") == 0);
    config_free(&c);
    CHECK(load("message_format:\n  absent_name_fields: omit\n", &c, msg, sizeof msg) == 0);
    CHECK(strcmp(c.message_format.absent_name_fields, "omit") == 0 && !config_absent_names_null(&c));
    config_free(&c);

    expect_error("port: 8080\nmessage_format:\n  absent_name_fields: maybe\n",
                 "config.yaml:3: key 'message_format.absent_name_fields': expected one of null, omit; "
                 "got \"maybe\"");
    expect_error("message_format:\n  absent_name_fields: ~\n",
                 "config.yaml:2: key 'message_format.absent_name_fields': has no value "
                 "(write \"\" for an empty string)");
    expect_error("message_format:\n  absent_name_fields: NULL\n",
                 "config.yaml:2: key 'message_format.absent_name_fields': has no value "
                 "(write \"\" for an empty string)");
    expect_error("message_format:\n  absent_name_field: omit\n",
                 "config.yaml:2: unknown key 'message_format.absent_name_field' (did you mean "
                 "'message_format.absent_name_fields'?)");
    expect_env_error("CERTSTREAM_MESSAGE_FORMAT_ABSENT_NAME_FIELDS=none",
                     "environment variable CERTSTREAM_MESSAGE_FORMAT_ABSENT_NAME_FIELDS: expected one of "
                     "null, omit; got \"none\"");

    /* the printed configuration reads back the same */
    CHECK(load("message_format:\n  absent_name_fields: omit\n", &c, msg, sizeof msg) == 0);
    char *text = NULL;
    size_t tlen = 0;
    FILE *f = open_memstream(&text, &tlen);
    config_print(&c, f);
    fclose(f);
    struct config d;
    CHECK(load(text, &d, msg, sizeof msg) == 0);
    CHECK(config_diff(&c, &d, 0) == NULL);
    config_free(&d);
    config_free(&c);
    free(text);
}

static void test_stream_paths(void)
{
    struct config c;
    char msg[600];
    config_defaults(&c);
    CHECK(!strcmp(c.streams.lite_path, "/") && !strcmp(c.streams.full_path, "/full-stream") &&
          !strcmp(c.streams.domains_path, "/domains-only") && !strcmp(c.streams.sse_path, "/sse"));
    config_free(&c);
    CHECK(load("streams:\n  full_path: /v1/full-stream\n  lite_path: /lite\n  sse_path: /api/events\n",
               &c, msg, sizeof msg) == 0);
    CHECK(!strcmp(c.streams.full_path, "/v1/full-stream") && !strcmp(c.streams.lite_path, "/lite") &&
          !strcmp(c.streams.sse_path, "/api/events") && !strcmp(c.streams.domains_path, "/domains-only"));
    config_free(&c);

    expect_error("streams:\n  full_path: full\n",
                 "config.yaml:2: key 'streams.full_path': expected a path starting with /, got \"full\"");
    expect_error("streams:\n  full_path: /full/\n",
                 "config.yaml:2: key 'streams.full_path': must not end with / (the path with a trailing / "
                 "is served too), got \"/full/\"");
    expect_error("streams:\n  sse_path: /sse?x=1\n",
                 "config.yaml:2: key 'streams.sse_path': character '?' is not allowed in a path (letters, "
                 "digits and -._~!$&'()*+,;=:@ only), got \"/sse?x=1\"");
    expect_error("streams:\n  sse_path: \"/a b\"\n",
                 "config.yaml:2: key 'streams.sse_path': character 0x20 is not allowed in a path (letters, "
                 "digits and -._~!$&'()*+,;=:@ only), got \"/a b\"");
    expect_error("streams:\n  lite_path: /a/../b\n",
                 "config.yaml:2: key 'streams.lite_path': empty, . or .. segments are not allowed, got "
                 "\"/a/../b\"");
    expect_error("streams:\n  lite_path: //a\n",
                 "config.yaml:2: key 'streams.lite_path': empty, . or .. segments are not allowed, got "
                 "\"//a\"");
    expect_error("port: 1\nstreams:\n  lite_path: /x\n  full_path: /x\n",
                 "config.yaml:4: key 'streams.full_path': streams.lite_path and streams.full_path are both "
                 "\"/x\"");
    expect_error("streams:\n  sse_path: /metrics\n",
                 "config.yaml:2: key 'streams.sse_path': streams.sse_path \"/metrics\" is a fixed endpoint");
    expect_error("streams:\n  sse_path: /full-stream/example.json\n",
                 "config.yaml:2: key 'streams.sse_path': streams.sse_path \"/full-stream/example.json\" is "
                 "the example of streams.full_path");
    expect_env_error("CERTSTREAM_STREAMS_LITE_PATH=lite",
                     "environment variable CERTSTREAM_STREAMS_LITE_PATH: expected a path starting with /, "
                     "got \"lite\"");
}

int main(void)
{
    test_absent_name_fields();
    test_stream_paths();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
