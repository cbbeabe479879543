/* test_config_edge.c - the network edge's configuration keys: CIDR lists,
 * the checks across keys and the TLS files, each refused with file:line:key
 * (or the environment variable) and a message naming the problem. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/config_internal.h"
#include "test/unit_check.h"


/* The document is refused with exactly `want` as the message. */
static void refused(const char *doc, const char *want)
{
    struct config c;
    struct config_error err;
    int rc = config_load_buffer(&c, doc, strlen(doc), "config.yaml", &err);
    if (rc == 0) {
        config_free(&c);
        fprintf(stderr, "accepted:\n%s\n", doc);
        unit_failed++;
        return;
    }
    if (strcmp(err.message, want) != 0) {
        fprintf(stderr, "for:\n%s\n got: %s\nwant: %s\n", doc, err.message, want);
        unit_failed++;
    }
}

static void refused_env(char **env, const char *want)
{
    struct config c;
    struct config_error err;
    int rc = config_load_search(&c, NULL, env, NULL, &err);
    if (rc == 0) {
        config_free(&c);
        fprintf(stderr, "accepted env %s\n", env[0]);
        unit_failed++;
        return;
    }
    if (strcmp(err.message, want) != 0) {
        fprintf(stderr, " got: %s\nwant: %s\n", err.message, want);
        unit_failed++;
    }
}

int main(void)
{
    struct config c;
    struct config_error err;
    /* a directory without config.yaml for the environment tests */
    char dir[] = "/tmp/cs_conf_edge.XXXXXX";
    if (!mkdtemp(dir) || chdir(dir) != 0) return 1;

    /* accepted forms */
    const char *ok = "port: 8443\ntrusted_proxies: \"10.0.0.0/8 192.168.1.7,2001:db8::/32 , ::1\"\n"
                     "access:\n  streams_allow: 0.0.0.0/0\n  metrics_allow: \"\"\n"
                     "connection_limit:\n  ipv6_prefix: 48\n";
    CHECK(config_load_buffer(&c, ok, strlen(ok), "config.yaml", &err) == 0);
    CHECK(strcmp(c.trusted_proxies, "10.0.0.0/8 192.168.1.7,2001:db8::/32 , ::1") == 0);
    CHECK(c.connection_limit.ipv6_prefix == 48);
    CHECK(c.rate_limit.connections_per_minute == 0 && c.rate_limit.burst == 10);
    CHECK(c.connection_limit.address_table_size == 65536);
    config_free(&c);

    /* TLS session tickets and the access log (its directory must exist) */
    CHECK(mkdir("logs.d", 0700) == 0);
    const char *tk = "tls:\n  session_tickets: false\n  ticket_rotate_secs: 600\n"
                     "access_log:\n  enabled: true\n  path: logs.d/access.log\n";
    CHECK(config_load_buffer(&c, tk, strlen(tk), "config.yaml", &err) == 0);
    CHECK(!c.tls.session_tickets && c.tls.ticket_rotate_secs == 600);
    CHECK(c.access_log.enabled && strcmp(c.access_log.path, "logs.d/access.log") == 0);
    config_free(&c);
    config_defaults(&c);
    CHECK(c.tls.session_tickets && c.tls.ticket_rotate_secs == 3600);
    CHECK(!c.access_log.enabled && strcmp(c.access_log.path, "") == 0);
    config_free(&c);
    refused("port: 8080\ntls:\n  ticket_rotate_secs: 59\n",
            "config.yaml:3: key 'tls.ticket_rotate_secs': value 59 out of range 60..604800");
    refused("access_log:\n  enabled: maybe\n",
            "config.yaml:2: key 'access_log.enabled': expected true or false (or yes/no, on/off, 1/0), got \"maybe\"");
    {
        char *env[] = {"CERTSTREAM_TLS_TICKET_ROTATE_SECS=0", NULL};
        refused_env(env, "environment variable CERTSTREAM_TLS_TICKET_ROTATE_SECS: value 0 out of range 60..604800");
    }
    refused("access_log:\n  enabled: true\n  path: /nonexistent-cs-dir/access.log\n",
            "config.yaml:3: key 'access_log.path': cannot create /nonexistent-cs-dir/access.log: "
            "directory /nonexistent-cs-dir: No such file or directory");
    refused("access_log:\n  enabled: true\n  path: /tmp\n",
            "config.yaml:3: key 'access_log.path': /tmp is a directory; name a file");
    {
        char *env[] = {"CERTSTREAM_ACCESS_LOG_ENABLED=true", "CERTSTREAM_ACCESS_LOG_PATH=/tmp/x.log", NULL};
        CHECK(config_load_search(&c, NULL, env, NULL, &err) == 0);
        CHECK(c.access_log.enabled && strcmp(c.access_log.path, "/tmp/x.log") == 0);
        config_free(&c);
    }
    refused("port: 8080\ntrusted_proxies: 10.0.0.300/8\n",
            "config.yaml:2: key 'trusted_proxies': '10.0.0.300/8' is not an IP address or CIDR prefix");
    refused("access:\n  streams_allow: 10.0.0.1/8\n",
            "config.yaml:2: key 'access.streams_allow': '10.0.0.1/8' has bits set after the /8 prefix");
    refused("access:\n  metrics_allow: \"127.0.0.1/33\"\n",
            "config.yaml:2: key 'access.metrics_allow': '127.0.0.1/33': prefix length must be 0..32");
    refused("trusted_proxies: \"::1/129\"\n",
            "config.yaml:1: key 'trusted_proxies': '::1/129': prefix length must be 0..128");
    refused("connection_limit:\n  ipv6_prefix: 0\n",
            "config.yaml:2: key 'connection_limit.ipv6_prefix': value 0 out of range 1..128");
    refused("rate_limit:\n  burst: 0\n", "config.yaml:2: key 'rate_limit.burst': value 0 out of range 1..1000000");
    refused("port: 80\nproxy_protocol: true\n",
            "config.yaml:2: key 'proxy_protocol': proxy_protocol is true but trusted_proxies is empty; "
            "list the addresses of the proxies that send the PROXY header");
    refused("tls:\n  cert_file: /etc/ssl/x.pem\n",
            "config.yaml:2: key 'tls.cert_file': tls.cert_file and tls.key_file must be set together");
    refused("tls:\n  plain_port: 8080\n",
            "config.yaml:2: key 'tls.plain_port': tls.plain_port is set but TLS is off (no tls.cert_file)");
    refused("tls:\n  cert_file: /nonexistent/cert.pem\n  key_file: /nonexistent/key.pem\n",
            "config.yaml:2: key 'tls.cert_file': /nonexistent/cert.pem: No such file or directory");
    refused("tls:\n  cert_file: /tmp\n  key_file: /tmp\n",
            "config.yaml:2: key 'tls.cert_file': /tmp: not a regular file");

    char *env1[] = { "CERTSTREAM_ACCESS_METRICS_ALLOW=localhost", NULL };
    refused_env(env1, "environment variable CERTSTREAM_ACCESS_METRICS_ALLOW: 'localhost' is not an IP address or CIDR prefix");
    char *env2[] = { "CERTSTREAM_PROXY_PROTOCOL=true", NULL };
    refused_env(env2, "environment variable CERTSTREAM_PROXY_PROTOCOL: proxy_protocol is true but trusted_proxies "
                      "is empty; list the addresses of the proxies that send the PROXY header");
    char *env3[] = { "CERTSTREAM_TRUSTED_PROXIES=127.0.0.0/8", "CERTSTREAM_PROXY_PROTOCOL=1",
                     "CERTSTREAM_RATE_LIMIT_CONNECTIONS_PER_MINUTE=60", NULL };
    CHECK(config_load_search(&c, NULL, env3, NULL, &err) == 0);
    CHECK(c.proxy_protocol && c.rate_limit.connections_per_minute == 60);
    config_free(&c);

    if (rmdir("logs.d") != 0) perror("logs.d");
    if (rmdir(dir) != 0) perror(dir);
    printf("%d passed, %d failed\n", unit_failed ? 0 : 1, unit_failed ? 1 : 0);
    return unit_failed ? 1 : 0;
}
