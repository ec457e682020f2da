/* `chat` (open loop) and `throughput` (closed loop): visitor/agent pairs, each pair with its own conversation.
 *
 * Theory of operation (bench/kefu_bench/traffic.py, which this mirrors): pair k is visitor PREFIX(2p) and
 * agent PREFIX(2p+1), p = first + k, in conversation conv_base + p, created by the visitor's first SEND whose
 * metadata "kefu.to" names the agent. Then:
 * - chat: message i of the phase is scheduled at t0 + i/rate and sent by pair i mod pairs, visitor and agent
 *   taking turns. A timerfd wakes the sender at each message's time; every message whose time has come is
 *   sent, and latencies are measured from the scheduled time, so a sender that falls behind shows up as
 *   latency (no coordinated omission);
 * - throughput: every connection keeps `window` SENDs unacknowledged, sending the next as each SEND_ACK
 *   comes back, until warmup + duration has passed; acknowledgements in the window after the warmup count.
 * The body starts with HEAD = "!QQI" (scheduled or sent CLOCK_MONOTONIC ns, index, phase): the receiver
 * computes send-to-deliver latency itself. client_msg_id = "!IHHQ" (run nonce, worker, phase, index) tells
 * a SEND_ACK's message without a lookup. Each message has a state byte: sent, acknowledged, delivered; at the
 * end, acknowledged-but-never-delivered messages are counted as undelivered. A session lost mid-phase keeps
 * its unacknowledged indices and sends them again, same client_msg_id, once it has reconnected (section 4.8). */
#include <math.h>
#include <stdlib.h>

#include "gen.h"

#define SETUP_PHASE 0xFFFFFFFFu
#define RUN_PHASE 1u
#define HEAD_LEN 20
#define MEMBERS_KEY "kefu.to"

enum { P_RAMP, P_SETUP, P_GATE, P_RUN, P_DRAIN, P_DONE };
enum { M_SENT = 1, M_ACKED = 2, M_DELIVERED = 4, M_REFUSED = 8 };

typedef struct {
    int closed_loop, phase;
    uint32_t npairs, nonce, cur;
    uint64_t total, cap, next, sent, acked, refused, delivered, duplicates, redeliveries, echoes, dup_acks;
    uint64_t outstanding, undelivered, lost_sends, lost_in_ramp, queued_while_down, acked_in_window, stale;
    uint8_t *st;
    int64_t *stamp; /* closed loop: when each message was sent */
    int64_t t0, run_end, drain_end, setup_end, window_start, window_end, max_lag_ns;
    double period, lag_sum_ns, cpu_mark, cpu_setup, cpu_run;
    uint64_t setup_acked, setup_delivered, setup_refused;
    uint64_t errors[1024];
    uint32_t *sent_ps, *delivered_ps, nsec;
    hist deliver, ack;
    uint8_t *body;
    size_t body_len, prefix_len;
} chat_state;

/* --- messages ---------------------------------------------------------------------------------------- */

static int64_t stamp_of(const chat_state *c, uint64_t i)
{
    return c->closed_loop ? c->stamp[i] : c->t0 + (int64_t)((double)i * c->period);
}

static void per_second(chat_state *c, uint32_t *series, int64_t now, uint64_t n)
{
    int64_t sec = (now - c->t0) / 1000000000;
    if (sec >= 0 && (uint64_t)sec < c->nsec)
        series[sec] += (uint32_t)n;
}

static void reset_messages(chat_state *c, uint32_t phase, uint64_t total)
{
    free(c->st);
    free(c->stamp);
    c->cur = phase;
    c->total = total;
    c->cap = total ? total : 1024;
    c->st = xcalloc(c->cap, 1);
    c->stamp = c->closed_loop || phase == SETUP_PHASE ? xcalloc(c->cap, sizeof *c->stamp) : NULL;
    c->next = c->sent = c->acked = c->refused = c->delivered = c->duplicates = c->redeliveries = 0;
    c->dup_acks = c->outstanding = c->undelivered = 0;
}

static void grow(chat_state *c, uint64_t index)
{
    if (index < c->cap)
        return;
    uint64_t cap = c->cap * 2 > index + 1 ? c->cap * 2 : index + 1;
    c->st = xrealloc(c->st, cap);
    memset(c->st + c->cap, 0, cap - c->cap);
    c->stamp = xrealloc(c->stamp, cap * sizeof *c->stamp);
    c->cap = cap;
}

static void unacked_add(sess *s, uint32_t index)
{
    if (s->n_unacked == s->cap_unacked) {
        s->cap_unacked = s->cap_unacked ? 2 * s->cap_unacked : 8;
        s->unacked = xrealloc(s->unacked, s->cap_unacked * sizeof *s->unacked);
    }
    s->unacked[s->n_unacked++] = index;
}

static int unacked_remove(sess *s, uint32_t index)
{
    for (uint32_t i = 0; i < s->n_unacked; i++)
        if (s->unacked[i] == index) {
            s->unacked[i] = s->unacked[--s->n_unacked];
            return 1;
        }
    return 0;
}

/* Indices in use: the schedule's total (open loop, setup) or as many as the closed loop has sent. */
static uint64_t limit(const chat_state *c) { return c->closed_loop && c->cur == RUN_PHASE ? c->next : c->total; }

/* Put message `index` on the wire (again, after a reconnect, with the same client_msg_id). */
static void put_message(gen *g, chat_state *c, sess *s, uint64_t index)
{
    uint8_t cmid[16];
    wr32(cmid, c->nonce);
    wr16(cmid + 4, (uint16_t)g->o->wid);
    wr16(cmid + 6, (uint16_t)c->cur);
    wr64(cmid + 8, index);
    wr64(c->body, (uint64_t)(c->cur == SETUP_PHASE ? c->stamp[index] : stamp_of(c, index)));
    wr64(c->body + 8, index);
    wr32(c->body + 16, c->cur);
    char agent[256];
    const char *key = NULL;
    if (c->cur == SETUP_PHASE) { /* the conversation is created by its first SEND naming the agent */
        sess_app_id(g, s->user + 1, agent);
        key = MEMBERS_KEY;
    }
    put_send(&s->core, (uint32_t)(index & 0x7FFFFFFF) + 1, cmid, s->conv, 1, c->body, c->body_len, key,
             (const uint8_t *)agent, key ? strlen(agent) : 0);
    sess_dirty(g, s);
}

static void send_message(gen *g, chat_state *c, sess *s, uint64_t index, int64_t now)
{
    c->st[index] |= M_SENT;
    c->sent++;
    c->outstanding++;
    per_second(c, c->sent_ps, now, 1);
    if (sess_usable(s)) {
        unacked_add(s, (uint32_t)index);
        put_message(g, c, s, index);
    } else if (s->flags & SF_WAITING || (s->fd >= 0 && s->core.state <= ST_CONNECTED)) {
        unacked_add(s, (uint32_t)index); /* goes out when the session is back (or on its new connection) */
        c->queued_while_down++;
    } else {
        c->lost_sends++;
        c->errors[1023]++; /* "send on a lost connection" */
    }
}

static void closed_loop_send(gen *g, chat_state *c, sess *s, int64_t now)
{
    uint64_t index = c->next++;
    grow(c, index);
    c->stamp[index] = now;
    send_message(g, c, s, index, now);
}

/* --- the core's frames ------------------------------------------------------------------------------------ */

static int is_own(const gen *g, const chat_state *c, const sess *s, span sender)
{
    if (sender.len <= c->prefix_len || memcmp(sender.ptr, g->o->prefix, c->prefix_len))
        return 0;
    uint64_t user = 0;
    for (size_t i = c->prefix_len; i < sender.len; i++) {
        if (sender.ptr[i] < '0' || sender.ptr[i] > '9')
            return 0;
        user = user * 10 + (sender.ptr[i] - '0');
    }
    return user == s->user;
}

static void on_deliver(gen *g, chat_state *c, sess *s, const kc_frame *f, int64_t now)
{
    if (f->u.deliver.conversation_id == s->conv) {
        if (f->u.deliver.seq > s->ack_seq)
            s->ack_seq = f->u.deliver.seq;
        s->flags |= SF_ACK; /* one cumulative DELIVER_ACK after this read */
    } else {
        put_deliver_ack(&s->core, f->u.deliver.conversation_id, f->u.deliver.seq);
    }
    if (f->flags & FLAG_REDELIVERY)
        c->redeliveries++;
    if (is_own(g, c, s, f->u.deliver.sender)) {
        c->echoes++;
        return;
    }
    if (f->u.deliver.body.len < HEAD_LEN)
        return;
    const uint8_t *b = f->u.deliver.body.ptr;
    int64_t stamp = (int64_t)rd64(b);
    uint64_t index = rd64(b + 8);
    uint32_t phase = rd32(b + 16);
    if (phase != c->cur || index >= limit(c)) {
        c->stale++;
        return;
    }
    if (c->st[index] & M_DELIVERED) {
        c->duplicates++;
        return;
    }
    c->st[index] |= M_DELIVERED;
    if (c->st[index] & M_ACKED)
        c->undelivered--;
    if (phase == SETUP_PHASE) {
        c->setup_delivered++;
        return;
    }
    c->delivered++;
    hist_record_ns(&c->deliver, now - stamp);
    per_second(c, c->delivered_ps, now, 1);
}

static void on_send_ack(gen *g, chat_state *c, sess *s, const kc_frame *f, int64_t now)
{
    const uint8_t *cmid = f->u.ack.cmid;
    uint64_t index = rd64(cmid + 8);
    if (rd32(cmid) != c->nonce || rd16(cmid + 6) != (uint16_t)c->cur ||
        index >= limit(c)) {
        c->stale++;
        return;
    }
    unacked_remove(s, (uint32_t)index);
    uint8_t *st = &c->st[index];
    if (*st & (M_ACKED | M_REFUSED)) {
        c->dup_acks++;
        return;
    }
    c->outstanding--;
    if (f->u.ack.status) {
        *st |= M_REFUSED;
        c->refused++;
        c->errors[f->u.ack.status < 1023 ? f->u.ack.status : 1022]++;
        if (c->cur == SETUP_PHASE)
            c->setup_refused++;
    } else {
        *st |= M_ACKED;
        if (!(*st & M_DELIVERED))
            c->undelivered++;
        if (c->cur == SETUP_PHASE) {
            c->setup_acked++;
        } else {
            c->acked++;
            hist_record_ns(&c->ack, now - stamp_of(c, index));
            if (now >= c->window_start && now < c->window_end)
                c->acked_in_window++;
        }
    }
    if (c->closed_loop && c->phase == P_RUN && now < c->run_end && sess_usable(s))
        closed_loop_send(g, c, s, now);
}

static void chat_frame(gen *g, sess *s, const kc_frame *f)
{
    chat_state *c = g->mode;
    int64_t now = mono_ns();
    if (f->type == FT_DELIVER)
        on_deliver(g, c, s, f, now);
    else if (f->type == FT_SEND_ACK)
        on_send_ack(g, c, s, f, now);
    else if (f->type == FT_ERROR)
        c->errors[f->u.error.code < 1023 ? f->u.error.code : 1022]++;
}

static void chat_established(gen *g, sess *s)
{
    chat_state *c = g->mode;
    if (c->phase == P_RAMP)
        return;
    /* back after a loss: resume the conversation's stream and send what has no SEND_ACK again */
    put_sync(&s->core, 0, 0, 0, 0, 0);
    for (uint32_t i = 0; i < s->n_unacked; i++)
        put_message(g, c, s, s->unacked[i]);
    sess_dirty(g, s);
}

/* An established session lost: counted with its code and brought back (section 4.8), in every phase but the end.
 * One lost while the others still ramp is counted too (lost_in_ramp), not left down for the run to find (its
 * sends were then only "sends on a lost connection", with nothing to say why). */
static void chat_lost(gen *g, sess *s, uint16_t code, int clean)
{
    chat_state *c = g->mode;
    if (c->phase == P_DONE)
        return;
    c->errors[code < 1023 ? code : 1022]++; /* "connection lost" with its code */
    if (c->phase == P_RAMP)
        c->lost_in_ramp++;
    s->flags |= SF_WAITING;
}

/* --- phases ------------------------------------------------------------------------------------------------- */

static void start_setup(gen *g, chat_state *c, int64_t now)
{
    c->cpu_mark = cpu_seconds();
    reset_messages(c, SETUP_PHASE, c->npairs);
    c->t0 = now;
    for (uint32_t k = 0; k < c->npairs; k++) {
        c->stamp[k] = now;
        send_message(g, c, &g->s[2 * k], k, now);
    }
    c->setup_end = now + (int64_t)(g->o->setup_timeout_s * 1e9);
    c->phase = P_SETUP;
}

static void start_run(gen *g, chat_state *c, int64_t now)
{
    opts *o = g->o;
    for (uint32_t i = 0; i < g->n; i++)
        g->s[i].n_unacked = 0; /* setup messages still unacknowledged are the setup's loss, counted there */
    c->cpu_setup = cpu_seconds() - c->cpu_mark;
    c->cpu_mark = cpu_seconds();
    reset_messages(c, RUN_PHASE, c->closed_loop ? 0 : (uint64_t)(o->rate * o->duration_s));
    c->t0 = g->start_t0_ns;
    c->nsec = (uint32_t)(o->warmup_s + o->duration_s + o->drain_s + 5);
    c->sent_ps = xcalloc(c->nsec, sizeof *c->sent_ps);
    c->delivered_ps = xcalloc(c->nsec, sizeof *c->delivered_ps);
    c->period = 1e9 / o->rate;
    c->window_start = c->t0 + (int64_t)(o->warmup_s * 1e9);
    c->window_end = c->window_start + (int64_t)(o->duration_s * 1e9);
    c->run_end = c->closed_loop ? c->window_end : c->t0 + (int64_t)(o->duration_s * 1e9);
    c->phase = P_RUN;
    if (!c->closed_loop)
        timer_arm(g, c->t0);
}

static void closed_loop_start(gen *g, chat_state *c, int64_t now)
{
    for (uint32_t i = 0; i < g->n; i++)
        for (int w = 0; w < g->o->window && sess_usable(&g->s[i]); w++)
            closed_loop_send(g, c, &g->s[i], now);
}

/* The open-loop sender: every message whose scheduled time has come, then sleep until the next one. */
static void chat_timer(gen *g, int64_t now)
{
    chat_state *c = g->mode;
    if (c->phase != P_RUN || c->closed_loop || now < c->t0)
        return;
    uint64_t due = (uint64_t)((double)(now - c->t0) / c->period) + 1;
    if (due > c->total)
        due = c->total;
    for (uint64_t i = c->next; i < due; i++) {
        uint32_t pair = (uint32_t)(i % c->npairs);
        sess *s = &g->s[2 * pair + ((i / c->npairs) & 1)];
        int64_t lag = now - stamp_of(c, i);
        if (lag > c->max_lag_ns)
            c->max_lag_ns = lag;
        c->lag_sum_ns += (double)lag;
        send_message(g, c, s, i, now);
    }
    c->next = due > c->next ? due : c->next;
    if (c->next < c->total)
        timer_arm(g, stamp_of(c, c->next));
}

static void chat_tick(gen *g, int64_t now)
{
    chat_state *c = g->mode;
    if (now >= g->next_progress_ns) {
        g->next_progress_ns = now + 1000000000;
        progress(g, "phase %d connected %llu sent %llu acked %llu delivered %llu errors %llu", c->phase,
                 (unsigned long long)g->connected, (unsigned long long)c->sent, (unsigned long long)c->acked,
                 (unsigned long long)c->delivered, (unsigned long long)c->refused);
    }
    switch (c->phase) {
    case P_RAMP:
        if (ramp_done(g))
            start_setup(g, c, now);
        break;
    case P_SETUP:
        if ((c->setup_acked + c->setup_refused >= c->npairs && c->setup_delivered >= c->npairs) ||
            now >= c->setup_end)
            c->phase = P_GATE;
        break;
    case P_GATE:
        if (gen_gate(g, g->o->mode, now))
            start_run(g, c, now);
        break;
    case P_RUN:
        if (c->closed_loop && now >= c->t0 && !c->next)
            closed_loop_start(g, c, now);
        if (!c->closed_loop)
            chat_timer(g, now); /* in case the timerfd fired before this turn's sends were possible */
        if ((c->closed_loop && now >= c->run_end) || (!c->closed_loop && c->next >= c->total)) {
            c->phase = P_DRAIN;
            c->drain_end = now + (int64_t)(g->o->drain_s * 1e9);
        }
        break;
    case P_DRAIN:
        if ((!c->outstanding && !c->undelivered) || now >= c->drain_end) {
            c->cpu_run = cpu_seconds() - c->cpu_mark;
            c->phase = P_DONE;
            g->done = 1;
        }
        break;
    }
}

static void series_json(FILE *f, const uint32_t *v, uint32_t n)
{
    while (n && !v[n - 1])
        n--;
    fputc('[', f);
    for (uint32_t i = 0; i < n; i++)
        fprintf(f, "%s%u", i ? ", " : "", v[i]);
    fputc(']', f);
}

static void chat_report(gen *g, FILE *f)
{
    chat_state *c = g->mode;
    int ran = c->cur == RUN_PHASE;
    fprintf(f, "\"pairs\": %u, \"phase_reached\": %d, \"sent\": %llu, \"acked\": %llu, \"refused\": %llu, "
               "\"delivered\": %llu, \"duplicates\": %llu, \"redeliveries\": %llu, \"own_echoes\": %llu, "
               "\"duplicate_acks\": %llu, \"unacked\": %llu, \"undelivered\": %llu, \"lost_sends\": %llu, "
               "\"lost_in_ramp\": %llu, "
               "\"queued_while_down\": %llu, \"stale_frames\": %llu, \"errors\": ",
            c->npairs, c->phase, (unsigned long long)c->sent, (unsigned long long)c->acked,
            (unsigned long long)c->refused, (unsigned long long)c->delivered, (unsigned long long)c->duplicates,
            (unsigned long long)c->redeliveries, (unsigned long long)c->echoes, (unsigned long long)c->dup_acks,
            (unsigned long long)(ran ? c->outstanding : 0), (unsigned long long)(ran ? c->undelivered : 0),
            (unsigned long long)c->lost_sends, (unsigned long long)c->lost_in_ramp,
            (unsigned long long)c->queued_while_down,
            (unsigned long long)c->stale);
    json_codes(f, c->errors);
    fprintf(f, ", \"setup\": {\"acked\": %llu, \"delivered\": %llu, \"refused\": %llu, \"cpu_s\": %.3f}, "
               "\"cpu_run_s\": %.3f, \"max_sender_lag_ms\": %.3f, \"sender_lag_sum_ms\": %.3f, \"t0_ns\": %lld, "
               "\"acked_in_window\": %llu, \"window_s\": %.3f, \"deliver\": ",
            (unsigned long long)c->setup_acked, (unsigned long long)c->setup_delivered,
            (unsigned long long)c->setup_refused, c->cpu_setup, c->cpu_run, c->max_lag_ns / 1e6,
            c->lag_sum_ns / 1e6, (long long)c->t0, (unsigned long long)c->acked_in_window,
            c->closed_loop ? g->o->duration_s : 0.0);
    hist_json(f, &c->deliver);
    fputs(", \"ack\": ", f);
    hist_json(f, &c->ack);
    fputs(", \"sent_per_s\": ", f);
    series_json(f, c->sent_ps, c->sent_ps ? c->nsec : 0);
    fputs(", \"delivered_per_s\": ", f);
    series_json(f, c->delivered_ps, c->delivered_ps ? c->nsec : 0);
}

const mode_ops chat_ops = {.established = chat_established, .frame = chat_frame, .lost = chat_lost,
                           .tick = chat_tick, .timer = chat_timer, .report = chat_report};

void chat_setup(gen *g, int closed_loop)
{
    opts *o = g->o;
    chat_state *c = g->mode = xcalloc(1, sizeof *c);
    c->closed_loop = closed_loop;
    c->npairs = (uint32_t)o->count;
    c->nonce = (uint32_t)random_u64();
    c->prefix_len = strlen(o->prefix);
    c->body_len = o->body_bytes > HEAD_LEN ? (size_t)o->body_bytes : HEAD_LEN;
    c->body = xmalloc(c->body_len);
    memset(c->body, 'k', c->body_len);
    if (!closed_loop && o->rate <= 0)
        die("--rate must be positive");
    for (uint32_t k = 0; k < c->npairs; k++) {
        uint64_t pair = o->first + k;
        for (int side = 0; side < 2; side++) {
            sess *s = &g->s[2 * k + side];
            s->user = 2 * pair + (uint64_t)side;
            s->conv = o->conv_base + pair;
        }
    }
    ramp_start(g, g->n);
}
