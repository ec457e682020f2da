/* Latency histograms in microseconds with HdrHistogram's bucket layout for 3 significant digits (2048 sub-
 * buckets, unit 1 us): a value lands in the same bucket here as in hdrh's HdrHistogram(1, 600e6, 3), so the
 * Python side rebuilds the exact histogram with record_value(lowest_equivalent_value, count). */
#ifndef CGEN_HIST_H
#define CGEN_HIST_H

#include <stdint.h>
#include <stdio.h>

#define HIST_HIGHEST_US 600000000LL /* 10 minutes, as bench/kefu_bench/stats.py */
#define HIST_BUCKETS 21504          /* 2048 + 19 * 1024: through 2^29.2 us at 3 significant digits */

typedef struct hist {
    uint64_t *counts; /* allocated at the first sample */
    uint64_t total;
} hist;

void hist_record_ns(hist *h, int64_t ns);
void hist_reset(hist *h);
/* {"count": N, "p50_ms": .., "p90_ms": .., "p99_ms": .., "p99.9_ms": .., "max_ms": .., "buckets": [[us, n], ..]} */
void hist_json(FILE *f, const hist *h);

#endif
