/* The generator process: options, sessions (one kc_conn and its socket each), the epoll loop and the
 * interface every run mode implements. One thread; the Python driver runs several such processes. */
#ifndef CGEN_GEN_H
#define CGEN_GEN_H

#include <stdio.h>

#include "hist.h"
#include "proto.h"

#define HANDSHAKE_TIMEOUT_NS 10000000000LL /* connection.HANDSHAKE_TIMEOUT_S */
#define RAMP_ATTEMPTS 3                    /* a failed ramp handshake is retried twice, as the Python Ramp */
#define SWEEP_NS 100000000LL               /* deadlines and keepalives are checked ten times a second */
#define RECONNECT_FLOOR_MS 100             /* section 4.8: a floor under every reconnect wait */
#define DEFAULT_BACKOFF_INITIAL_MS 500     /* until a GOAWAY says otherwise (the server's defaults) */
#define DEFAULT_BACKOFF_MAX_MS 30000
#define DEFAULT_JITTER_PERMILLE 200
#define RECV_CHUNK (256 * 1024)            /* one read; the core keeps only an incomplete frame's bytes */

typedef struct opts {
    const char *mode, *host, *prefix, *seed;
    int port;
    char **src, **pins;
    int nsrc, npins;
    uint64_t first, count;    /* users (hold), pairs (chat, throughput) or connectors (handshake) */
    uint16_t suites[2];
    int nsuites;
    int concurrency, window, per_connector, body_bytes, wid, wait_start, progress, reconnect, prep;
    uint8_t psk_mode;
    uint32_t keepalive_ms;
    uint64_t conv_base;
    double hold_s, duration_s, rate, warmup_s, drain_s, deadline_s, setup_timeout_s;
} opts;

enum sess_flags {
    SF_CONNECTING = 1 << 0,  /* TCP connect in progress */
    SF_ESTABLISHED = 1 << 1, /* the server's first application frame arrived */
    SF_DIRTY = 1 << 2,       /* in the dirty list: flushed at the end of this loop turn */
    SF_POLLOUT = 1 << 3,     /* EPOLLOUT armed: bytes are waiting for the socket */
    SF_GOAWAY = 1 << 4,      /* the server said GOAWAY: send no new SEND */
    SF_WAITING = 1 << 5,     /* lost; reconnects at next_ns */
    SF_ACK = 1 << 6,         /* a DELIVER_ACK is due after this read */
    SF_FINISHED = 1 << 7,    /* the mode is done with this connection (handshake storm) */
    SF_RAMP = 1 << 8,        /* opened by the ramp, not yet established or given up */
    SF_REFUSED = 1 << 9,     /* the server refused the handshake for load: retries at next_ns (section 5.9) */
};

typedef struct sess {
    kc_conn core; /* first: a kc_conn* from the core's sink is the session */
    int fd;
    uint16_t flags;
    uint8_t attempts, suite_idx;
    uint32_t id, backoff_n;
    uint64_t user, conv, ack_seq;
    int64_t t_start_ns, last_send_ns, last_recv_ns, next_ns;
    uint32_t gw_delay_ms, gw_binit_ms, gw_bmax_ms;
    uint16_t gw_jitter, lost_code;
    kc_ticket *ticket;
    kc_ticket *offered; /* the ticket offered by the handshake in progress: a refusal gives it back (5.9) */
    uint32_t *unacked; /* message indices sent (or due) on this session without a SEND_ACK */
    uint32_t n_unacked, cap_unacked;
} sess;

struct gen;
typedef struct mode_ops {
    void (*established)(struct gen *g, sess *s);
    void (*frame)(struct gen *g, sess *s, const kc_frame *f);
    void (*lost)(struct gen *g, sess *s, uint16_t code, int clean); /* the socket is gone already */
    void (*finished)(struct gen *g, sess *s);                       /* SF_FINISHED was set */
    void (*tick)(struct gen *g, int64_t now);                      /* every loop turn */
    void (*timer)(struct gen *g, int64_t now);                     /* the timerfd fired */
    void (*report)(struct gen *g, FILE *f);                         /* the mode's fields of the JSON */
} mode_ops;

typedef struct gen {
    opts *o;
    const mode_ops *ops;
    void *mode; /* the mode's own state */
    int ep, timer_fd;
    sess *s;
    uint32_t n;
    sess **dirty;
    uint32_t ndirty;
    uint8_t *scratch;
    kc_config cfg[2]; /* per suite: the storm runs both */
    int64_t t_begin_ns, deadline_ns, next_sweep_ns, next_progress_ns;
    int done, deadline_hit, stdin_open;
    int64_t start_t0_ns; /* set by a "start T0" line on stdin (or by gen_gate itself without --wait-start) */
    int gate_waiting;
    char line[256];
    size_t line_len;
    /* ramp: open sessions [0, ramp_end) with at most `concurrency` handshakes in flight. A refused ramp session
     * gives its slot back while it waits (ramp_refused counts those), then queues in `retry` for a slot; a due
     * retry goes before a session not yet tried. */
    uint32_t ramp_next, ramp_end, inflight, ramp_refused;
    sess **retry;
    uint32_t retry_head, retry_len;
    uint64_t connected, failed, reconnects, goaways, closes;
    uint64_t refusals, refusal_wait_ms_sum, refusal_wait_ms_max; /* handshakes refused for load, the waits drawn */
    uint64_t fail_codes[1024]; /* failures by error code (index 600+: socket errors, see gen_code_name) */
    hist handshake;
} gen;

/* net.c: the adapter */
void gen_init(gen *g, opts *o, const mode_ops *ops, uint32_t nsess);
int gen_run(gen *g); /* loop until g->done or the deadline */
void sess_open(gen *g, sess *s);
void sess_drop(gen *g, sess *s, int reset); /* close the socket now (reset: RST, no TIME_WAIT) */
void sess_dirty(gen *g, sess *s);
int sess_usable(const sess *s);
void sess_app_id(const gen *g, uint64_t user, char *out); /* PREFIX + decimal user number */
void ramp_start(gen *g, uint32_t end);
void ramp_pump(gen *g);
int ramp_done(const gen *g);
/* gates: with --wait-start, print {"ready": name, ...} on stdout and wait for "start T0_NS" on stdin;
 * returns 1 once started (g->start_t0_ns set) */
int gen_gate(gen *g, const char *name, int64_t now);
void gen_count_failure(gen *g, uint16_t code);
void json_codes(FILE *f, const uint64_t *codes);
void timer_arm(gen *g, int64_t at_ns);
void progress(gen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* the modes */
extern const mode_ops hold_ops, chat_ops, storm_ops;
void hold_setup(gen *g);
void chat_setup(gen *g, int closed_loop);
void storm_setup(gen *g);
int flood_main(opts *o); /* run_flood.c: its own loop over raw sockets, no sessions */

#endif
