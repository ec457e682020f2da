#include "hist.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

static int index_of(int64_t v)
{
    if (v < 2048)
        return (int)v;
    int b = 63 - __builtin_clzll((unsigned long long)v) - 10; /* v >> b lies in [1024, 2048) */
    return 2048 + (b - 1) * 1024 + (int)((v >> b) - 1024);
}

static int64_t lowest_of(int i)
{
    if (i < 2048)
        return i;
    int b = (i - 2048) / 1024 + 1;
    return (int64_t)((i - 2048) % 1024 + 1024) << b;
}

static int64_t highest_of(int i)
{
    int b = i < 2048 ? 0 : (i - 2048) / 1024 + 1;
    return lowest_of(i) + ((int64_t)1 << b) - 1;
}

void hist_record_ns(hist *h, int64_t ns)
{
    int64_t us = ns / 1000;
    if (us < 1)
        us = 1;
    if (us > HIST_HIGHEST_US)
        us = HIST_HIGHEST_US;
    if (!h->counts)
        h->counts = xcalloc(HIST_BUCKETS, sizeof *h->counts);
    h->counts[index_of(us)]++;
    h->total++;
}

void hist_reset(hist *h)
{
    free(h->counts);
    h->counts = NULL;
    h->total = 0;
}

static double percentile_ms(const hist *h, double p)
{
    uint64_t rank = (uint64_t)(p / 100.0 * (double)h->total + 0.5), seen = 0;
    if (rank < 1)
        rank = 1;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank)
            return (double)highest_of(i) / 1000.0;
    }
    return 0;
}

void hist_json(FILE *f, const hist *h)
{
    fprintf(f, "{\"count\": %llu", (unsigned long long)h->total);
    if (h->total) {
        fprintf(f, ", \"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"p99.9_ms\": %.3f, \"max_ms\": %.3f",
                percentile_ms(h, 50), percentile_ms(h, 90), percentile_ms(h, 99), percentile_ms(h, 99.9),
                percentile_ms(h, 100));
    }
    fprintf(f, ", \"unit\": \"us\", \"buckets\": [");
    int first = 1;
    for (int i = 0; h->counts && i < HIST_BUCKETS; i++) {
        if (!h->counts[i])
            continue;
        fprintf(f, "%s[%lld, %llu]", first ? "" : ", ", (long long)lowest_of(i), (unsigned long long)h->counts[i]);
        first = 0;
    }
    fprintf(f, "]}");
}
