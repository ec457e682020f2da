/* cgen: the kefu load generator. `cgen MODE [options]`; see README.md. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "gen.h"
#include "json.h"

int selftest_main(const char *dir);

static void usage(void)
{
    fputs("usage: cgen selftest [VECTORS_DIR]\n"
          "       cgen hold|chat|throughput|handshake|flood --port P --pins-file F [options]  (see bench/cgen/README.md)\n",
          stderr);
    exit(2);
}

static char **split(const char *list, int *n)
{
    char *copy = strdup(list), *save = NULL, **out = NULL;
    *n = 0;
    for (char *t = strtok_r(copy, ", \t\n", &save); t; t = strtok_r(NULL, ", \t\n", &save)) {
        out = xrealloc(out, sizeof *out * (size_t)(*n + 1));
        out[(*n)++] = strdup(t);
    }
    free(copy);
    return out;
}

static int parse_suites(const char *list, uint16_t *suites)
{
    int n = 0, count;
    char **names = split(list, &count);
    for (int i = 0; i < count && n < 2; i++) {
        if (!strcmp(names[i], "national"))
            suites[n++] = SUITE_NATIONAL;
        else if (!strcmp(names[i], "international"))
            suites[n++] = SUITE_INTERNATIONAL;
        else
            die("unknown suite %s (national, international)", names[i]);
    }
    return n;
}

static void parse(opts *o, int argc, char **argv)
{
    static const struct option longs[] = {
        {"host", 1, 0, 'h'}, {"port", 1, 0, 'p'}, {"src", 1, 0, 'a'}, {"pins-file", 1, 0, 'P'},
        {"pin", 1, 0, 'n'}, {"prefix", 1, 0, 'x'}, {"seed", 1, 0, 's'}, {"first", 1, 0, 'f'},
        {"count", 1, 0, 'c'}, {"suite", 1, 0, 'S'}, {"concurrency", 1, 0, 'C'}, {"hold", 1, 0, 'H'},
        {"duration", 1, 0, 'd'}, {"rate", 1, 0, 'r'}, {"warmup", 1, 0, 'w'}, {"drain", 1, 0, 'D'},
        {"deadline", 1, 0, 'T'}, {"window", 1, 0, 'W'}, {"per-connector", 1, 0, 'K'}, {"body-bytes", 1, 0, 'b'},
        {"wid", 1, 0, 'i'}, {"wait-start", 0, 0, 'g'}, {"progress", 0, 0, 'v'}, {"no-reconnect", 0, 0, 'R'},
        {"keepalive-ms", 1, 0, 'k'}, {"conv-base", 1, 0, 'B'}, {"psk-mode", 1, 0, 'm'},
        {"setup-timeout", 1, 0, 'u'}, {"prep", 1, 0, 'e'}, {0, 0, 0, 0}};
    int c, n;
    char **more;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'h': o->host = optarg; break;
        case 'p': o->port = atoi(optarg); break;
        case 'a': o->src = split(optarg, &o->nsrc); break;
        case 'P': {
            char *text = read_file(optarg, NULL);
            if (!text)
                die("cannot read the pins file %s", optarg);
            more = split(text, &n);
            o->pins = xrealloc(o->pins, sizeof *o->pins * (size_t)(o->npins + n));
            memcpy(o->pins + o->npins, more, sizeof *more * (size_t)n);
            o->npins += n;
            break;
        }
        case 'n':
            o->pins = xrealloc(o->pins, sizeof *o->pins * (size_t)(o->npins + 1));
            o->pins[o->npins++] = optarg;
            break;
        case 'x': o->prefix = optarg; break;
        case 's': o->seed = optarg; break;
        case 'f': o->first = strtoull(optarg, NULL, 10); break;
        case 'c': o->count = strtoull(optarg, NULL, 10); break;
        case 'S': o->nsuites = parse_suites(optarg, o->suites); break;
        case 'C': o->concurrency = atoi(optarg); break;
        case 'H': o->hold_s = atof(optarg); break;
        case 'd': o->duration_s = atof(optarg); break;
        case 'r': o->rate = atof(optarg); break;
        case 'w': o->warmup_s = atof(optarg); break;
        case 'D': o->drain_s = atof(optarg); break;
        case 'T': o->deadline_s = atof(optarg); break;
        case 'W': o->window = atoi(optarg); break;
        case 'K': o->per_connector = atoi(optarg); break;
        case 'b': o->body_bytes = atoi(optarg); break;
        case 'i': o->wid = atoi(optarg); break;
        case 'g': o->wait_start = 1; break;
        case 'v': o->progress = 1; break;
        case 'R': o->reconnect = 0; break;
        case 'k': o->keepalive_ms = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'B': o->conv_base = strtoull(optarg, NULL, 10); break;
        case 'm': o->psk_mode = !strcmp(optarg, "ecdhe") ? PSK_WITH_ECDHE : PSK_ONLY; break;
        case 'u': o->setup_timeout_s = atof(optarg); break;
        case 'e': o->prep = atoi(optarg); break;
        default: usage();
        }
    }
    if (optind != argc)
        usage();
    if (!o->port || !o->npins)
        die("--port and --pins-file (or --pin) are required");
    if (!o->nsrc)
        o->src = split("127.0.0.1", &o->nsrc);
    if (o->concurrency < 1)
        die("--concurrency must be at least 1");
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    if (!strcmp(argv[1], "selftest"))
        return selftest_main(argc >= 3 ? argv[2] : "spec/vectors");
    opts o = {.mode = argv[1], .host = "127.0.0.1", .prefix = "bench", .seed = "kefu-bench", .count = 1,
              .suites = {SUITE_NATIONAL}, .nsuites = 1, .concurrency = 128, .window = 8, .per_connector = 10,
              .body_bytes = 200, .reconnect = 1, .psk_mode = PSK_ONLY, .keepalive_ms = MAX_KEEPALIVE_MS,
              .hold_s = 10, .duration_s = 10, .rate = 100, .drain_s = 15, .deadline_s = 300,
              .setup_timeout_s = 120, .prep = 1};
    parse(&o, argc - 1, argv + 1);
    crypto_init();
    if (!strcmp(o.mode, "flood"))
        return flood_main(&o);
    gen g;
    if (!strcmp(o.mode, "hold")) {
        gen_init(&g, &o, &hold_ops, (uint32_t)o.count);
        hold_setup(&g);
    } else if (!strcmp(o.mode, "chat") || !strcmp(o.mode, "throughput")) {
        gen_init(&g, &o, &chat_ops, (uint32_t)(2 * o.count));
        chat_setup(&g, !strcmp(o.mode, "throughput"));
    } else if (!strcmp(o.mode, "handshake")) {
        gen_init(&g, &o, &storm_ops, (uint32_t)o.count);
        storm_setup(&g);
    } else {
        usage();
    }
    gen_run(&g);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"mode\": \"%s\", \"wid\": %d, \"elapsed_s\": %.3f, \"cpu_s\": %.3f, \"cpu_user_s\": %.3f, "
           "\"cpu_sys_s\": %.3f, \"maxrss_kb\": %ld, \"rss_kb\": %ld, \"deadline_hit\": %s, \"connected\": %llu, "
           "\"failed\": %llu, \"fail_codes\": ",
           o.mode, o.wid, (mono_ns() - g.t_begin_ns) / 1e9, cpu_seconds(),
           ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6, ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
           ru.ru_maxrss, rss_kb(), g.deadline_hit ? "true" : "false", (unsigned long long)g.connected,
           (unsigned long long)g.failed);
    json_codes(stdout, g.fail_codes);
    printf(", \"reconnects\": %llu, \"goaways\": %llu, \"closes\": %llu, \"refusals\": %llu, "
           "\"refusal_wait_ms_sum\": %llu, \"refusal_wait_ms_max\": %llu, \"handshake\": ",
           (unsigned long long)g.reconnects, (unsigned long long)g.goaways, (unsigned long long)g.closes,
           (unsigned long long)g.refusals, (unsigned long long)g.refusal_wait_ms_sum,
           (unsigned long long)g.refusal_wait_ms_max);
    hist_json(stdout, &g.handshake);
    fputs(", ", stdout);
    g.ops->report(&g, stdout);
    fputs("}\n", stdout);
    return 0;
}
