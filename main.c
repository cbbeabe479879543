/* main.c - the certstream-server binary: command line, then role dispatch.
 *
 * This file and supervisor.c are the composition root: the only code that
 * uses every folder. `certstream-server render ...` is the offline pipeline
 * tool; everything else starts the supervisor, which forks the ingest (or
 * replay) processes and the fanout workers. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "conf/config.h"
#include "ingest/render_cli.h"
#include "instance.h"
#include "supervisor.h"

extern char **environ;

/* GnuTLS is in the process only as a dependency of libcurl's own (librtmp,
 * libldap): libcurl speaks TLS through OpenSSL here and nothing calls GnuTLS.
 * Its constructor initialises it anyway when it is loaded, in the supervisor
 * before any fork, ~0.7 MB of its pages and heap shared by every process
 * (docs/benchmarks.md, "Idle memory: each mapping and each heap"). It skips
 * that when GNUTLS_NO_IMPLICIT_INIT=1 is in the environment at load, which
 * only a new program image can arrange: so the server sets it and executes
 * itself once (same pid, arguments and open files). A value already set,
 * GNUTLS_NO_IMPLICIT_INIT=0 included, is left as it is. */
static void skip_gnutls_init(char **argv)
{
    if (getenv("GNUTLS_NO_IMPLICIT_INIT") || setenv("GNUTLS_NO_IMPLICIT_INIT", "1", 1) != 0)
        return;
    /* By its path, so the process keeps its name (comm, as ps shows it);
     * /proc/self/exe when the file was replaced since. */
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0 && (size_t)n < sizeof self - 1) {
        self[n] = '\0';
        execv(self, argv);
    }
    execv("/proc/self/exe", argv);
    /* no /proc: go on as we are (GnuTLS initialised, nothing else differs) */
}

static void usage(FILE *out)
{
    fprintf(out,
        "usage: certstream-server [options]\n"
        "       certstream-server render [--format full|lite|domains] ... < get-entries.json\n"
        "\n"
        "Follows the public Certificate Transparency logs and streams every new\n"
        "certificate to WebSocket and Server-Sent-Events clients.\n"
        "\n"
        "options:\n"
        "  --config FILE        configuration file (else $CERTSTREAM_CONFIG, ./config.yaml,\n"
        "                       ./config.yml, /etc/certstream/config.yaml, built-in defaults)\n"
        "  --check-config       validate the configuration, print it, and exit\n"
        "  --host ADDR          listen address (host)\n"
        "  --port N             listen port (port)\n"
        "  --workers N          fanout worker processes, 0 = one per CPU (workers)\n"
        "  --log-level LEVEL    debug, info, warn or error (log_level)\n"
        "  --ring-size BYTES    shared-memory ring size, a power of two (ring_size)\n"
        "  --replay FILE        publish the entries of a recorded get-entries response or\n"
        "                       of a golden corpus file instead of following CT logs\n"
        "  --rate N             replay rate in entries per second (default 10)\n"
        "  --loop               replay the file again and again\n"
        "  --bench-stamp        benchmark mode: `seen` carries the ring commit time in\n"
        "                       microseconds (docs/benchmarks.md); replay only\n"
        "  --version            print the version and exit\n"
        "  --help               this text\n"
        "\n"
        "docs: /usr/share/doc/certstream-server or docs/ in the source tree\n");
}

int main(int argc, char **argv)
{
    skip_gnutls_init(argv);
    if (argc > 1 && strcmp(argv[1], "render") == 0) {
        log_set_role("render", -1);
        return render_cli_main(argc - 1, argv + 1);
    }

    enum { O_CONFIG = 256, O_CHECK, O_HOST, O_PORT, O_WORKERS, O_LOGLEVEL, O_RING,
           O_REPLAY, O_RATE, O_LOOP, O_BENCH, O_VERSION, O_HELP };
    static const struct option opts[] = {
        {"config", required_argument, NULL, O_CONFIG},
        {"check-config", no_argument, NULL, O_CHECK},
        {"host", required_argument, NULL, O_HOST},
        {"port", required_argument, NULL, O_PORT},
        {"workers", required_argument, NULL, O_WORKERS},
        {"log-level", required_argument, NULL, O_LOGLEVEL},
        {"ring-size", required_argument, NULL, O_RING},
        {"replay", required_argument, NULL, O_REPLAY},
        {"rate", required_argument, NULL, O_RATE},
        {"loop", no_argument, NULL, O_LOOP},
        {"bench-stamp", no_argument, NULL, O_BENCH},
        {"version", no_argument, NULL, O_VERSION},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    struct config_flags flags = {0};
    struct supervisor_opts sopts = {.replay_rate = 10.0};
    bool check_only = false;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_CONFIG: flags.config_path = optarg; break;
        case O_CHECK: check_only = true; break;
        case O_HOST: flags.host = optarg; break;
        case O_PORT: flags.port = optarg; break;
        case O_WORKERS: flags.workers = optarg; break;
        case O_LOGLEVEL: flags.log_level = optarg; break;
        case O_RING: flags.ring_size = optarg; break;
        case O_REPLAY: sopts.replay_file = optarg; break;
        case O_RATE: {
            char *end;
            errno = 0;
            double r = strtod(optarg, &end);
            if (errno || *end || !(r > 0 && r <= 10000000)) {
                fprintf(stderr, "certstream-server: --rate: expected entries per second in (0, 10000000], got \"%s\"\n", optarg);
                return 2;
            }
            sopts.replay_rate = r;
            break;
        }
        case O_LOOP: sopts.replay_loop = true; break;
        case O_BENCH: sopts.bench_stamp = true; break;
        case O_VERSION: printf("certstream-server %s\n", CERTSTREAM_VERSION); return 0;
        case O_HELP: usage(stdout); return 0;
        default:
            fprintf(stderr, "certstream-server: unknown or incomplete option '%s' (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "certstream-server: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if ((sopts.replay_loop || sopts.bench_stamp) && !sopts.replay_file) {
        fprintf(stderr, "certstream-server: --loop and --bench-stamp need --replay FILE\n");
        return 2;
    }

    struct config cfg;
    struct config_error err;
    if (config_load(&cfg, &flags, environ, &err) != 0) {
        fprintf(stderr, "certstream-server: invalid configuration: %s\n", err.message);
        return 2;
    }
    if (check_only) {
        /* the workers will resolve host: so does the check */
        char herr[256];
        if (instance_resolve(cfg.host, cfg.port, herr, sizeof herr) != 0) {
            fprintf(stderr, "certstream-server: invalid configuration: %s%s%s\n",
                    cfg.source_path ? cfg.source_path : "", cfg.source_path ? ": key 'host': " : "key 'host': ",
                    herr);
            config_free(&cfg);
            return 2;
        }
        printf("# configuration OK (%s)\n", cfg.source_path ? cfg.source_path : "built-in defaults");
        config_print(&cfg, stdout);
        config_free(&cfg);
        return 0;
    }
    int level = log_level_parse(cfg.log_level);
    log_set_level(level < 0 ? LOG_INFO : (enum log_level)level);
    log_set_role("supervisor", -1);
    log_detect_journal();
    log_set_json(strcmp(cfg.log_format, "json") == 0);
    sopts.flags = &flags;
    int rc = supervisor_run(&cfg, &sopts);
    config_free(&cfg);
    return rc;
}
