/* `hold`: open N sessions (bounded handshakes in flight), then hold them for T seconds.
 *
 * The sessions ask for the longest keepalive (300 s, as the Python harness's idle peers) and the sweep
 * pings as the negotiated interval requires. A session lost during the hold counts as dropped, with its
 * code, and is reconnected (after GOAWAY's delay, or with backoff) unless --no-reconnect. */
#include <stdlib.h>

#include "gen.h"

enum { P_RAMP, P_GATE, P_HOLD };

typedef struct {
    int phase;
    int64_t ramp_ns, hold_start_ns, hold_end_ns;
    double cpu_before_ramp, cpu_ramp, cpu_hold_start, cpu_hold;
    long rss_before_ramp, rss_after_ramp, rss_end;
    uint64_t dropped, dropped_during_ramp, reestablished, still_connected;
    uint64_t drop_codes[1024];
} hold_state;

static void hold_established(gen *g, sess *s)
{
    hold_state *h = g->mode;
    if (h->phase != P_RAMP)
        h->reestablished++;
}

static void hold_lost(gen *g, sess *s, uint16_t code, int clean)
{
    hold_state *h = g->mode;
    if (h->phase == P_HOLD) {
        h->dropped++;
        h->drop_codes[code < 1024 ? code : 1023]++;
    } else {
        h->dropped_during_ramp++;
    }
    s->flags |= SF_WAITING; /* reconnect (if --reconnect) */
}

static void hold_tick(gen *g, int64_t now)
{
    hold_state *h = g->mode;
    if (now >= g->next_progress_ns) {
        g->next_progress_ns = now + 1000000000;
        progress(g, "phase %d connected %llu failed %llu dropped %llu", h->phase,
                 (unsigned long long)g->connected, (unsigned long long)g->failed, (unsigned long long)h->dropped);
    }
    if (h->phase == P_RAMP && ramp_done(g)) {
        h->ramp_ns = now - g->t_begin_ns;
        h->cpu_ramp = cpu_seconds() - h->cpu_before_ramp;
        h->rss_after_ramp = rss_kb();
        h->phase = P_GATE;
    }
    if (h->phase == P_GATE && gen_gate(g, "hold", now)) {
        h->phase = P_HOLD;
        h->hold_start_ns = now > g->start_t0_ns ? now : g->start_t0_ns;
        h->hold_end_ns = h->hold_start_ns + (int64_t)(g->o->hold_s * 1e9);
        h->cpu_hold_start = cpu_seconds();
    }
    if (h->phase == P_HOLD && now >= h->hold_end_ns) {
        for (uint32_t i = 0; i < g->n; i++)
            h->still_connected += g->s[i].fd >= 0 && g->s[i].core.state == ST_CONNECTED;
        h->cpu_hold = cpu_seconds() - h->cpu_hold_start;
        h->rss_end = rss_kb();
        g->done = 1;
    }
}

static void hold_report(gen *g, FILE *f)
{
    hold_state *h = g->mode;
    uint64_t connected = g->connected ? g->connected : 1;
    fprintf(f, "\"sessions\": %u, \"still_connected\": %llu, \"dropped\": %llu, \"drop_codes\": ", g->n,
            (unsigned long long)h->still_connected, (unsigned long long)h->dropped);
    json_codes(f, h->drop_codes);
    fprintf(f, ", \"dropped_during_ramp\": %llu, \"reestablished\": %llu, \"ramp_s\": %.3f, \"cpu_ramp_s\": %.3f, "
               "\"cpu_hold_s\": %.3f, \"hold_s\": %.3f, \"rss_before_ramp_kb\": %ld, \"rss_after_ramp_kb\": %ld, "
               "\"rss_end_kb\": %ld, \"rss_per_session_kb\": %.3f, \"cpu_ms_per_handshake\": %.4f",
            (unsigned long long)h->dropped_during_ramp, (unsigned long long)h->reestablished, h->ramp_ns / 1e9,
            h->cpu_ramp, h->cpu_hold, h->hold_end_ns ? (h->hold_end_ns - h->hold_start_ns) / 1e9 : 0.0,
            h->rss_before_ramp, h->rss_after_ramp, h->rss_end,
            (double)(h->rss_after_ramp - h->rss_before_ramp) / (double)connected,
            1000.0 * h->cpu_ramp / (double)connected);
}

const mode_ops hold_ops = {
    .established = hold_established, .lost = hold_lost, .tick = hold_tick, .report = hold_report};

void hold_setup(gen *g)
{
    hold_state *h = g->mode = xcalloc(1, sizeof *h);
    for (uint32_t i = 0; i < g->n; i++)
        g->s[i].user = g->o->first + i;
    h->cpu_before_ramp = cpu_seconds();
    h->rss_before_ramp = rss_kb();
    ramp_start(g, g->n);
}
