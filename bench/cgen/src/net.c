/* The epoll adapter: sockets in, bytes to the core, the core's bytes out.
 *
 * Theory of operation: one level-triggered epoll set holds every session's socket (EPOLLIN always,
 * EPOLLOUT while connecting or while bytes wait), a timerfd for the open-loop schedule and, with
 * --wait-start, stdin for the driver's commands. A loop turn reads every ready socket into one shared
 * buffer and feeds the core; frames the modes queue meanwhile only mark their session dirty, and each
 * dirty session is sealed and written once at the end of the turn: one record and one write() per
 * session per turn, whatever the number of frames. A sweep ten times a second checks handshake
 * deadlines, keepalives (a PING when nothing was sent for 3/4 of the interval, KEEPALIVE_TIMEOUT after
 * 1.5 intervals without a byte received) and reconnections that are due.
 *
 * Refusals (section 5.9): a server short of handshake budget answers CLIENT_HELLO with a plaintext GOAWAY
 * (or sends it as soon as it accepts an address it told to wait). That is neither a failed attempt nor a lost
 * session: the session closes, gives back its ramp slot, and tries the same handshake again (the same ticket)
 * after the GOAWAY's delay with its jitter; a due ramp retry queues for a slot ahead of untried sessions. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "gen.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define TAG_TIMER ((void *)1)
#define TAG_STDIN ((void *)2)
#define SOCKET_CODE_BASE 600 /* fail_codes[600 + errno]: connect and socket errors */

/* --- the core's sink: every callback lands on the session --------------------------------------------- */

static gen *the_gen; /* one generator per process */

static void on_established(kc_conn *c)
{
    sess *s = (sess *)c;
    s->flags |= SF_ESTABLISHED;
    s->backoff_n = 0;
    free(s->offered); /* taken or not, the ticket offered is spent now */
    s->offered = NULL;
    if (s->flags & SF_RAMP) {
        s->flags &= (uint16_t)~SF_RAMP;
        the_gen->inflight--;
        the_gen->connected++;
        hist_record_ns(&the_gen->handshake, mono_ns() - s->t_start_ns);
        ramp_pump(the_gen);
    }
    if (the_gen->ops->established)
        the_gen->ops->established(the_gen, s);
}

static void on_frame(kc_conn *c, const kc_frame *f)
{
    sess *s = (sess *)c;
    if (f->type == FT_GOAWAY) { /* section 4.8: no new SEND; reconnect once the server closes */
        s->flags |= SF_GOAWAY;
        s->gw_delay_ms = f->u.goaway.delay_ms;
        s->gw_binit_ms = f->u.goaway.backoff_initial_ms;
        s->gw_bmax_ms = f->u.goaway.backoff_max_ms;
        s->gw_jitter = f->u.goaway.jitter;
        the_gen->goaways++;
    }
    if (the_gen->ops->frame)
        the_gen->ops->frame(the_gen, s, f);
}

static void on_ticket(kc_conn *c, kc_ticket *t)
{
    sess *s = (sess *)c;
    t->received_ms = wall_ms();
    free(s->ticket);
    s->ticket = t;
}

static void on_closed(kc_conn *c, uint16_t code, int by_peer, int clean)
{
    sess *s = (sess *)c;
    s->lost_code = clean ? 0 : code ? code : E_INTERNAL_ERROR;
    if (clean)
        the_gen->closes++;
}

static void on_refused(kc_conn *c, const kc_frame *f)
{
    sess *s = (sess *)c; /* sess_lost does the rest once the core has closed */
    s->flags |= SF_REFUSED;
    s->gw_delay_ms = f->u.goaway.delay_ms;
    s->gw_binit_ms = f->u.goaway.backoff_initial_ms; /* section 4.8: the last GOAWAY's backoff from now on */
    s->gw_bmax_ms = f->u.goaway.backoff_max_ms;
    s->gw_jitter = f->u.goaway.jitter;
}

static const kc_sink sink = {on_established, on_frame, on_ticket, on_closed, on_refused};

/* --- sessions ------------------------------------------------------------------------------------------ */

void sess_app_id(const gen *g, uint64_t user, char *out)
{
    snprintf(out, 256, "%s%llu", g->o->prefix, (unsigned long long)user);
}

static void app_secret(const gen *g, const char *app_id, uint8_t out[32])
{
    /* server/bulk.py: the secret of bulk app `app_id` is HMAC-SHA256(seed, app_id) */
    hmac(H_SHA256, (const uint8_t *)g->o->seed, strlen(g->o->seed), (const uint8_t *)app_id, strlen(app_id), out);
}

int sess_usable(const sess *s)
{
    return s->fd >= 0 && s->core.state == ST_CONNECTED && !(s->flags & SF_GOAWAY);
}

void sess_dirty(gen *g, sess *s)
{
    if (s->flags & SF_DIRTY || s->fd < 0)
        return;
    s->flags |= SF_DIRTY;
    g->dirty[g->ndirty++] = s;
}

static void set_pollout(gen *g, sess *s, int on)
{
    if (!!(s->flags & SF_POLLOUT) == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = s};
    epoll_ctl(g->ep, EPOLL_CTL_MOD, s->fd, &ev);
    s->flags ^= SF_POLLOUT;
}

static void count_failure(gen *g, uint16_t code) { gen_count_failure(g, code); }

void gen_count_failure(gen *g, uint16_t code)
{
    g->fail_codes[code < 1024 ? code : 1023]++;
}

static void sess_lost(gen *g, sess *s, uint16_t code, int clean);

void sess_open(gen *g, sess *s)
{
    char app_id[256];
    uint8_t secret[32];
    s->flags &= (uint16_t) ~(SF_ESTABLISHED | SF_GOAWAY | SF_WAITING | SF_ACK | SF_FINISHED | SF_POLLOUT | SF_REFUSED);
    s->lost_code = 0;
    s->t_start_ns = s->last_send_ns = s->last_recv_ns = mono_ns();
    kc_init(&s->core, &g->cfg[s->suite_idx], &sink, NULL);
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) {
        sess_lost(g, s, (uint16_t)(SOCKET_CODE_BASE + errno), 0);
        return;
    }
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(s->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET, .sin_port = htons(g->o->port)};
    inet_pton(AF_INET, g->o->src[s->user % (uint64_t)g->o->nsrc], &src.sin_addr);
    inet_pton(AF_INET, g->o->host, &dst.sin_addr);
    if (bind(s->fd, (struct sockaddr *)&src, sizeof src) ||
        (connect(s->fd, (struct sockaddr *)&dst, sizeof dst) && errno != EINPROGRESS)) {
        int err = errno;
        close(s->fd);
        s->fd = -1;
        sess_lost(g, s, (uint16_t)(SOCKET_CODE_BASE + err), 0);
        return;
    }
    s->flags |= SF_CONNECTING | SF_POLLOUT;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = s};
    epoll_ctl(g->ep, EPOLL_CTL_ADD, s->fd, &ev);
    sess_app_id(g, s->user, app_id);
    app_secret(g, app_id, secret);
    if (kc_connect(&s->core, app_id, secret, s->ticket, wall_ms()))
        die("cannot build CLIENT_HELLO for %s", app_id);
    free(s->offered);
    s->offered = s->ticket; /* tickets are single-use: spent unless the server refuses this handshake (5.9) */
    s->ticket = NULL;
}

void sess_drop(gen *g, sess *s, int reset)
{
    if (s->fd >= 0) {
        if (reset) {
            struct linger l = {1, 0};
            setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        }
        epoll_ctl(g->ep, EPOLL_CTL_DEL, s->fd, NULL);
        close(s->fd);
        s->fd = -1;
    }
    kc_free(&s->core);
    s->flags &= (uint16_t) ~(SF_CONNECTING | SF_POLLOUT);
}

static uint32_t jittered_ms(uint32_t t, uint16_t jitter_permille)
{
    double j = (jitter_permille > 1000 ? 1000 : jitter_permille) / 1000.0;
    double u = (double)(random_u64() >> 11) / 9007199254740992.0;
    double v = t * (1 - j + 2 * j * u);
    return v < RECONNECT_FLOOR_MS ? RECONNECT_FLOOR_MS : (uint32_t)v;
}

/* Section 5.9: the handshake was refused for load. Wait the GOAWAY's delay with its jitter (and the floor),
 * then try again with the same ticket; the mode is not told (nothing was lost), the ramp slot is given back. */
static void sess_refused(gen *g, sess *s)
{
    if (!s->ticket)
        s->ticket = s->offered; /* a refused CLIENT_HELLO does not use the ticket up */
    else
        free(s->offered);
    s->offered = NULL;
    uint32_t wait = jittered_ms(s->gw_delay_ms, s->gw_jitter);
    s->gw_delay_ms = 0;
    s->next_ns = mono_ns() + (int64_t)wait * 1000000;
    g->refusals++;
    g->refusal_wait_ms_sum += wait;
    if (wait > g->refusal_wait_ms_max)
        g->refusal_wait_ms_max = wait;
    if (s->flags & SF_RAMP) {
        g->inflight--;
        g->ramp_refused++;
        ramp_pump(g);
    } else {
        s->flags |= SF_WAITING; /* down, coming back at next_ns: what the modes see of a reconnecting session */
    }
}

/* The connection is gone (socket closed). A refusal waits and retries; otherwise ramp retries, the mode's
 * accounting, then the reconnect loop of section 4.8 if the mode still wants this session. */
static void sess_lost(gen *g, sess *s, uint16_t code, int clean)
{
    int was_established = s->flags & SF_ESTABLISHED;
    if (s->fd >= 0 || s->core.cfg)
        sess_drop(g, s, !clean);
    s->flags &= (uint16_t) ~(SF_ESTABLISHED | SF_ACK);
    if (s->flags & SF_REFUSED) { /* once the run is done nothing retries it, and it is no failure either */
        sess_refused(g, s);
        return;
    }
    free(s->offered);
    s->offered = NULL;
    if (s->flags & SF_RAMP) { /* a ramp handshake failed: try again, or give up on this one */
        if (s->attempts < RAMP_ATTEMPTS && !g->done) {
            s->attempts++;
            sess_open(g, s);
            return;
        }
        s->flags &= (uint16_t)~SF_RAMP;
        g->inflight--;
        g->failed++;
        count_failure(g, code);
        ramp_pump(g);
        return;
    }
    if (g->ops->lost)
        g->ops->lost(g, s, code, clean);
    if (!g->o->reconnect || !(s->flags & SF_WAITING))
        return;
    /* the mode asked for a reconnect by setting SF_WAITING: wait as GOAWAY or the backoff says */
    uint32_t wait;
    if (s->gw_delay_ms && was_established) {
        wait = jittered_ms(s->gw_delay_ms, s->gw_jitter);
    } else {
        uint32_t binit = s->gw_binit_ms ? s->gw_binit_ms : DEFAULT_BACKOFF_INITIAL_MS;
        uint32_t bmax = s->gw_bmax_ms ? s->gw_bmax_ms : DEFAULT_BACKOFF_MAX_MS;
        double step = binit * pow(2.0, s->backoff_n < 20 ? s->backoff_n : 20);
        wait = was_established ? RECONNECT_FLOOR_MS
                               : jittered_ms(step < bmax ? (uint32_t)step : bmax,
                                             s->gw_binit_ms ? s->gw_jitter : DEFAULT_JITTER_PERMILLE);
        if (!was_established)
            s->backoff_n++;
    }
    s->gw_delay_ms = 0;
    s->next_ns = mono_ns() + (int64_t)wait * 1000000;
}

static void sess_write(gen *g, sess *s)
{
    kc_flush(&s->core);
    buf_t *out = &s->core.out;
    size_t off = 0;
    while (off < out->len) {
        ssize_t n = send(s->fd, out->p + off, out->len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        break;
    }
    if (off) {
        s->last_send_ns = mono_ns();
        buf_consume(out, off);
    }
    set_pollout(g, s, out->len > 0);
    if (!out->len && out->cap > 65536)
        buf_free(out);
}

/* After the core has seen bytes (or the end): acknowledge, finish, or bury the session. */
static void after_input(gen *g, sess *s)
{
    if (s->core.state == ST_CLOSED) {
        sess_write(g, s); /* the ERROR or CLOSE the core queued, best effort */
        uint16_t code = s->lost_code;
        sess_lost(g, s, code, code == 0);
        return;
    }
    if (s->flags & SF_ACK) {
        s->flags &= (uint16_t)~SF_ACK;
        if (s->core.state == ST_CONNECTED)
            put_deliver_ack(&s->core, s->conv, s->ack_seq);
    }
    if (s->core.pend.len || s->core.out.len)
        sess_dirty(g, s);
    if (s->flags & SF_FINISHED && g->ops->finished)
        g->ops->finished(g, s);
}

static void on_connect_done(gen *g, sess *s)
{
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        sess_lost(g, s, (uint16_t)(SOCKET_CODE_BASE + err), 0);
        return;
    }
    s->flags &= (uint16_t)~SF_CONNECTING;
    sess_write(g, s); /* CLIENT_HELLO */
}

static void on_readable(gen *g, sess *s)
{
    for (int rounds = 0; rounds < 4 && s->fd >= 0; rounds++) {
        ssize_t n = recv(s->fd, g->scratch, RECV_CHUNK, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (n <= 0) { /* the end of the stream, or a reset: the core decides whether that was clean */
            kc_receive(&s->core, NULL, 0);
        } else {
            s->last_recv_ns = mono_ns();
            kc_receive(&s->core, g->scratch, (size_t)n);
        }
        after_input(g, s);
        if (n < RECV_CHUNK)
            break;
    }
}

/* --- the ramp ---------------------------------------------------------------------------------------------- */

void ramp_start(gen *g, uint32_t end)
{
    g->ramp_end = end;
    ramp_pump(g);
}

void ramp_pump(gen *g)
{
    while (g->inflight < (uint32_t)g->o->concurrency && !g->done) {
        sess *s;
        if (g->retry_len) { /* a refused session whose wait is over */
            s = g->retry[g->retry_head];
            g->retry_head = (g->retry_head + 1) % g->n;
            g->retry_len--;
            g->ramp_refused--;
        } else if (g->ramp_next < g->ramp_end) {
            s = &g->s[g->ramp_next++];
            s->attempts = 1;
            s->flags |= SF_RAMP;
        } else {
            break;
        }
        g->inflight++;
        sess_open(g, s);
    }
}

/* The refusal's wait is over: a ramp session queues for a slot, any other tries again at once. */
static void retry_refused(gen *g, sess *s)
{
    if (!(s->flags & SF_RAMP)) {
        sess_open(g, s);
        return;
    }
    s->flags &= (uint16_t)~SF_REFUSED; /* in the queue now: the sweep leaves it alone */
    g->retry[(g->retry_head + g->retry_len++) % g->n] = s;
    ramp_pump(g);
}

int ramp_done(const gen *g)
{
    return g->ramp_next >= g->ramp_end && g->inflight == 0 && g->ramp_refused == 0;
}

/* --- gates and stdin ------------------------------------------------------------------------------------- */

int gen_gate(gen *g, const char *name, int64_t now)
{
    if (g->start_t0_ns)
        return 1;
    if (!g->o->wait_start) {
        g->start_t0_ns = now + 200000000; /* alone: start 0.2 s from now */
        return 1;
    }
    if (!g->gate_waiting) {
        g->gate_waiting = 1;
        printf("{\"ready\": \"%s\", \"wid\": %d, \"connected\": %llu, \"cpu_s\": %.3f, \"rss_kb\": %ld}\n", name,
               g->o->wid, (unsigned long long)g->connected, cpu_seconds(), rss_kb());
        fflush(stdout);
    }
    return 0;
}

static void on_stdin(gen *g)
{
    char chunk[256];
    ssize_t n = read(0, chunk, sizeof chunk);
    if (n <= 0) { /* the driver is gone: stop */
        epoll_ctl(g->ep, EPOLL_CTL_DEL, 0, NULL);
        g->stdin_open = 0;
        g->done = 1;
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (chunk[i] != '\n') {
            if (g->line_len < sizeof g->line - 1)
                g->line[g->line_len++] = chunk[i];
            continue;
        }
        g->line[g->line_len] = 0;
        g->line_len = 0;
        long long t0;
        if (sscanf(g->line, "start %lld", &t0) == 1) {
            g->start_t0_ns = t0;
            g->gate_waiting = 0;
        } else if (!strcmp(g->line, "stop")) {
            g->done = 1;
        }
    }
}

/* --- timers and the loop ----------------------------------------------------------------------------------- */

void timer_arm(gen *g, int64_t at_ns)
{
    struct itimerspec its = {.it_value = {at_ns / 1000000000, at_ns % 1000000000}};
    if (at_ns <= 0)
        its.it_value.tv_nsec = 1;
    timerfd_settime(g->timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

void progress(gen *g, const char *fmt, ...)
{
    if (!g->o->progress)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cgen[%d] %s: ", g->o->wid, g->o->mode);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void sweep(gen *g, int64_t now)
{
    for (uint32_t i = 0; i < g->n; i++) {
        sess *s = &g->s[i];
        if (s->fd < 0) {
            if (s->flags & SF_REFUSED && now >= s->next_ns && !g->done) {
                retry_refused(g, s);
            } else if (s->flags & SF_WAITING && now >= s->next_ns && !g->done) {
                g->reconnects++;
                sess_open(g, s);
            }
            continue;
        }
        kc_conn *c = &s->core;
        if (c->state < ST_CONNECTED || !(s->flags & SF_ESTABLISHED)) {
            if (now - s->t_start_ns > HANDSHAKE_TIMEOUT_NS) {
                kc_fail(c, E_HANDSHAKE_TIMEOUT);
                after_input(g, s);
            }
            continue;
        }
        int64_t k = (int64_t)c->keepalive_ms * 1000000;
        if (now - s->last_recv_ns > k + k / 2) {
            kc_fail(c, E_KEEPALIVE_TIMEOUT);
            after_input(g, s);
        } else if (c->state == ST_CONNECTED && now - s->last_send_ns >= k - k / 4) {
            kc_ping(c, random_u64());
            sess_dirty(g, s);
        }
    }
}

static void flush_dirty(gen *g)
{
    for (uint32_t i = 0; i < g->ndirty; i++) {
        sess *s = g->dirty[i];
        s->flags &= (uint16_t)~SF_DIRTY;
        if (s->fd >= 0 && !(s->flags & SF_CONNECTING))
            sess_write(g, s);
    }
    g->ndirty = 0;
}

void gen_init(gen *g, opts *o, const mode_ops *ops, uint32_t nsess)
{
    memset(g, 0, sizeof *g);
    the_gen = g;
    g->o = o;
    g->ops = ops;
    g->n = nsess;
    g->s = xcalloc(nsess ? nsess : 1, sizeof *g->s);
    g->dirty = xcalloc(nsess ? nsess : 1, sizeof *g->dirty);
    g->retry = xcalloc(nsess ? nsess : 1, sizeof *g->retry);
    g->scratch = xmalloc(RECV_CHUNK);
    for (uint32_t i = 0; i < nsess; i++) {
        g->s[i].fd = -1;
        g->s[i].id = i;
    }
    for (int i = 0; i < o->nsuites; i++) {
        kc_config *cfg = &g->cfg[i];
        cfg->suites[0] = o->suites[i];
        cfg->nsuites = 1;
        cfg->pins = o->pins;
        cfg->npins = o->npins;
        cfg->keepalive_ms = o->keepalive_ms;
        cfg->psk_mode = o->psk_mode;
    }
    g->ep = epoll_create1(EPOLL_CLOEXEC);
    g->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = TAG_TIMER};
    epoll_ctl(g->ep, EPOLL_CTL_ADD, g->timer_fd, &ev);
    if (o->wait_start) {
        ev.data.ptr = TAG_STDIN;
        g->stdin_open = epoll_ctl(g->ep, EPOLL_CTL_ADD, 0, &ev) == 0;
    }
    g->t_begin_ns = mono_ns();
    g->deadline_ns = g->t_begin_ns + (int64_t)(o->deadline_s * 1e9);
}

int gen_run(gen *g)
{
    struct epoll_event evs[512];
    while (!g->done) {
        int64_t now = mono_ns();
        int timeout = (int)((g->next_sweep_ns - now) / 1000000);
        int n = epoll_wait(g->ep, evs, 512, timeout < 0 ? 0 : timeout > 100 ? 100 : timeout);
        for (int i = 0; i < n; i++) {
            void *tag = evs[i].data.ptr;
            if (tag == TAG_TIMER) {
                uint64_t ticks;
                if (read(g->timer_fd, &ticks, sizeof ticks) > 0 && g->ops->timer)
                    g->ops->timer(g, mono_ns());
                continue;
            }
            if (tag == TAG_STDIN) {
                on_stdin(g);
                continue;
            }
            sess *s = tag;
            if (s->fd < 0)
                continue;
            if (s->flags & SF_CONNECTING) {
                if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                    on_connect_done(g, s);
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_readable(g, s);
            if (s->fd >= 0 && evs[i].events & EPOLLOUT)
                sess_write(g, s);
        }
        now = mono_ns();
        if (now >= g->next_sweep_ns) {
            sweep(g, now);
            g->next_sweep_ns = now + SWEEP_NS;
        }
        if (g->ops->tick)
            g->ops->tick(g, now);
        flush_dirty(g);
        if (now >= g->deadline_ns) {
            g->deadline_hit = 1;
            break;
        }
    }
    for (uint32_t i = 0; i < g->n; i++) /* reset: no TIME_WAIT left on the client ports */
        if (g->s[i].fd >= 0)
            sess_drop(g, &g->s[i], 1);
    return 0;
}

void json_codes(FILE *f, const uint64_t *codes)
{
    int first = 1;
    fputc('{', f);
    for (int i = 0; i < 1024; i++) {
        if (!codes[i])
            continue;
        const char *name = i == 1023 ? "send on a lost connection" : i == 1022 ? "other code" : NULL;
        if (!name && i >= SOCKET_CODE_BASE)
            name = strerrorname_np(i - SOCKET_CODE_BASE);
        if (name)
            fprintf(f, "%s\"%s\": %llu", first ? "" : ", ", name, (unsigned long long)codes[i]);
        else
            fprintf(f, "%s\"%d\": %llu", first ? "" : ", ", i, (unsigned long long)codes[i]);
        first = 0;
    }
    fputc('}', f);
}
