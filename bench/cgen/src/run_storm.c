/* `handshake`: C connectors each doing K handshakes back to back, per suite: full, then resumed.
 *
 * As bench/kefu_bench/scenario_handshake.py: a handshake counts once the server's first application frame
 * (NEW_TICKET) has arrived, which it sends only after checking the client's Finished and proof, so the
 * latency covers all of the server's work; the connection is then reset (no TIME_WAIT on the client port).
 * Per suite: `prep` untimed full handshakes per connector (warm-up), then a timed full storm, then a timed
 * resumed storm in which each resumption offers the ticket the connector's previous handshake returned
 * (tickets are single-use). A resumption the server refuses falls back to a full handshake and is counted
 * as such (`resumed` counts psk_accepted). */
#include <stdlib.h>

#include "gen.h"

enum { S_PREP, S_FULL, S_RESUMED, S_STAGES };
static const char *stage_names[] = {"prep", "full", "resumed"};

typedef struct {
    uint16_t suite;
    int stage;
    uint64_t ok, resumed, failures, codes[1024];
    int64_t start_ns, end_ns;
    double cpu_start, cpu;
    hist latency;
} stage_result;

typedef struct {
    int suite_idx, stage, running;
    uint32_t *left;     /* handshakes each connector still has to do in this stage */
    kc_ticket **saved;  /* each connector's latest ticket, offered by its next resumption */
    uint32_t active;    /* connectors not yet done with this stage */
    stage_result results[2 * S_STAGES];
    int nresults;
} storm_state;

static stage_result *current(storm_state *st) { return &st->results[st->nresults - 1]; }

static void next_handshake(gen *g, storm_state *st, sess *s)
{
    if (!st->left[s->id] || g->done) {
        st->active--;
        return;
    }
    st->left[s->id]--;
    s->suite_idx = (uint8_t)st->suite_idx;
    if (st->stage == S_RESUMED) {
        s->ticket = st->saved[s->id];
        st->saved[s->id] = NULL;
    }
    sess_open(g, s); /* a failure to even open comes back through storm_lost */
}

static void storm_established(gen *g, sess *s)
{
    storm_state *st = g->mode;
    stage_result *r = current(st);
    hist_record_ns(&r->latency, mono_ns() - s->t_start_ns);
    r->ok++;
    r->resumed += s->core.resumed;
    s->flags |= SF_FINISHED; /* done with once the read that brought NEW_TICKET is handled */
}

static void storm_finished(gen *g, sess *s)
{
    storm_state *st = g->mode;
    sess_drop(g, s, 1);
    free(st->saved[s->id]);
    st->saved[s->id] = s->ticket;
    s->ticket = NULL;
    next_handshake(g, st, s);
}

static void storm_lost(gen *g, sess *s, uint16_t code, int clean)
{
    storm_state *st = g->mode;
    if (!st->running)
        return;
    stage_result *r = current(st);
    r->failures++;
    r->codes[code < 1024 ? code : 1023]++;
    free(s->ticket);
    s->ticket = NULL;
    next_handshake(g, st, s);
}

static void start_stage(gen *g, storm_state *st, int64_t now)
{
    stage_result *r = &st->results[st->nresults++];
    r->suite = g->o->suites[st->suite_idx];
    r->stage = st->stage;
    r->start_ns = now;
    r->cpu_start = cpu_seconds();
    uint32_t per = st->stage == S_PREP ? (uint32_t)g->o->prep : (uint32_t)g->o->per_connector;
    st->active = g->n;
    st->running = 1;
    for (uint32_t i = 0; i < g->n; i++)
        st->left[i] = per;
    for (uint32_t i = 0; i < g->n; i++)
        next_handshake(g, st, &g->s[i]);
}

static void storm_tick(gen *g, int64_t now)
{
    storm_state *st = g->mode;
    if (now >= g->next_progress_ns && st->nresults) {
        g->next_progress_ns = now + 1000000000;
        stage_result *r = current(st);
        progress(g, "%s %s: %llu done, %llu failed", r->suite == SUITE_NATIONAL ? "national" : "international",
                 stage_names[r->stage], (unsigned long long)r->ok, (unsigned long long)r->failures);
    }
    if (st->running) {
        if (st->active)
            return;
        stage_result *r = current(st);
        r->end_ns = now;
        r->cpu = cpu_seconds() - r->cpu_start;
        st->running = 0;
        if (++st->stage == S_STAGES) {
            st->stage = S_PREP;
            if (++st->suite_idx == g->o->nsuites) {
                g->done = 1;
                return;
            }
        }
    }
    if (st->stage == S_PREP && !g->o->prep)
        st->stage = S_FULL;
    if (st->stage != S_PREP) {
        char name[64];
        snprintf(name, sizeof name, "%s-%s", g->o->suites[st->suite_idx] == SUITE_NATIONAL ? "national" : "international",
                 stage_names[st->stage]);
        if (!gen_gate(g, name, now))
            return;
        if (now < g->start_t0_ns)
            return; /* released: the stage begins on the common T0, in every process together */
        g->start_t0_ns = 0; /* the next stage waits for its own start */
    }
    start_stage(g, st, now);
}

static void storm_report(gen *g, FILE *f)
{
    storm_state *st = g->mode;
    fputs("\"connectors\": ", f);
    fprintf(f, "%u, \"per_connector\": %d, \"stages\": [", g->n, g->o->per_connector);
    int first = 1;
    for (int i = 0; i < st->nresults; i++) {
        stage_result *r = &st->results[i];
        if (r->stage == S_PREP)
            continue;
        double secs = (r->end_ns ? r->end_ns : mono_ns()) - r->start_ns;
        secs /= 1e9;
        fprintf(f, "%s{\"suite\": \"%s\", \"mode\": \"%s\", \"handshakes\": %llu, \"resumed\": %llu, "
                   "\"failures\": %llu, \"fail_codes\": ",
                first ? "" : ", ", r->suite == SUITE_NATIONAL ? "national" : "international", stage_names[r->stage],
                (unsigned long long)r->ok, (unsigned long long)r->resumed, (unsigned long long)r->failures);
        json_codes(f, r->codes);
        fprintf(f, ", \"start_ns\": %lld, \"end_ns\": %lld, \"elapsed_s\": %.3f, \"per_s\": %.1f, \"cpu_s\": %.3f, "
                   "\"cpu_ms_per_handshake\": %.4f, \"latency\": ",
                (long long)r->start_ns, (long long)(r->end_ns ? r->end_ns : mono_ns()), secs,
                secs > 0 ? r->ok / secs : 0.0, r->cpu, r->ok ? 1000 * r->cpu / (double)r->ok : 0.0);
        hist_json(f, &r->latency);
        fputc('}', f);
        first = 0;
    }
    fputc(']', f);
}

const mode_ops storm_ops = {.established = storm_established, .lost = storm_lost, .finished = storm_finished,
                            .tick = storm_tick, .report = storm_report};

void storm_setup(gen *g)
{
    storm_state *st = g->mode = xcalloc(1, sizeof *st);
    st->left = xcalloc(g->n, sizeof *st->left);
    st->saved = xcalloc(g->n, sizeof *st->saved);
    for (uint32_t i = 0; i < g->n; i++)
        g->s[i].user = g->o->first + i;
}
