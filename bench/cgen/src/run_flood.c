/* `flood`: a handshake flood, as a hostile peer makes it (issue #13).
 *
 * Theory of operation: `--concurrency` sockets, socket i bound to src[i % nsrc], each in a loop for
 * `--duration` seconds: connect, send a valid CLIENT_HELLO (which makes the server do its half of the key
 * exchange and sign), read until the server's first flight (SERVER_HELLO, then the RECORD that carries
 * SERVER_FINISHED) or until a GOAWAY, an ERROR or the end of the stream, then reset the connection and
 * connect again at once. An attacker pays for nothing it can skip: the flight is only framed, never
 * verified or decrypted, a GOAWAY's reconnect delay is ignored, and the CLIENT_HELLOs are built once, before
 * the flood, for apps PREFIX<first> .. PREFIX<first+count-1> (one SM2 key generation each) and replayed
 * round robin: every one is still a valid hello that costs the server a full handshake's first half.
 *
 * This mode does not use the session machinery of net.c (whose core would verify the flight): it has its
 * own small epoll loop over raw sockets, and with --wait-start one gate ("flood") before it begins.
 * Counted: attempts, flights received (`answered`, with the time from connect to the flight), refusals
 * (GOAWAY, by code, with the delay it asked for), ERROR frames and socket errors (`errors`, by code or errno
 * name), ends of stream and resets before an answer, attempts that got nothing in ATTEMPT_TIMEOUT_NS; and
 * per second of the flood the flights and refusals. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "gen.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define ATTEMPT_TIMEOUT_NS 15000000000LL /* past the server's 10 s handshake deadline: a stuck attempt ends */
#define RETRY_NS 10000000LL              /* after a local socket error (ports, descriptors): not a busy loop */
#define TICK_NS 10000000LL               /* retries and timeouts are checked a hundred times a second */
#define KEPT_BODY 64                     /* bytes of a GOAWAY or ERROR body kept: its code and delays */
#define MAX_SECONDS 3600                 /* length of the per-second series */
#define CODE_SOCKET 600                  /* codes[600 + errno], as net.c's fail codes */

enum { F_IDLE, F_CONNECTING, F_READING };

typedef struct {
    int fd;
    uint8_t state, got_hello, type;
    uint32_t src, hello, hdr_len, body_len, body_need;
    int64_t t_start_ns, retry_ns;
    uint8_t hdr[HEADER_LEN], body[KEPT_BODY];
} slot;

typedef struct {
    opts *o;
    int ep;
    slot *slots;
    uint32_t n;
    buf_t *hellos;
    uint32_t nhellos, next_hello;
    struct sockaddr_in dst, *src;
    int64_t t0_ns, end_ns;
    uint64_t attempts, answered, refused, error_frames, eof, resets, timeouts, other_frames, goaway_delay_ms_sum;
    uint64_t codes[1024], goaway_codes[1024];
    uint32_t answered_per_s[MAX_SECONDS], refused_per_s[MAX_SECONDS];
    hist latency;
    uint8_t scratch[16384];
} flood;

static void build_hellos(flood *f)
{
    kc_config cfg = {.suites = {f->o->suites[0]}, .nsuites = 1, .pins = f->o->pins, .npins = f->o->npins,
                     .keepalive_ms = f->o->keepalive_ms, .psk_mode = PSK_NONE};
    f->nhellos = f->o->count ? (uint32_t)f->o->count : 1;
    f->hellos = xcalloc(f->nhellos, sizeof *f->hellos);
    for (uint32_t i = 0; i < f->nhellos; i++) {
        char app_id[256];
        uint8_t secret[32];
        kc_conn c;
        snprintf(app_id, sizeof app_id, "%s%llu", f->o->prefix, (unsigned long long)(f->o->first + i));
        hmac(H_SHA256, (const uint8_t *)f->o->seed, strlen(f->o->seed), (const uint8_t *)app_id, strlen(app_id),
             secret); /* server/bulk.py's secret; the flood never gets to use it */
        kc_init(&c, &cfg, NULL, NULL);
        if (kc_connect(&c, app_id, secret, NULL, wall_ms()))
            die("cannot build CLIENT_HELLO for %s", app_id);
        buf_put(&f->hellos[i], c.out.p, c.out.len);
        kc_free(&c);
    }
}

static void count_second(flood *f, uint32_t *series, int64_t now)
{
    int64_t s = (now - f->t0_ns) / 1000000000;
    if (s >= 0 && s < MAX_SECONDS)
        series[s]++;
}

static void slot_close(flood *f, slot *sl, int64_t now)
{
    struct linger l = {1, 0}; /* reset: no TIME_WAIT on the client port, as a flooder would */
    setsockopt(sl->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    epoll_ctl(f->ep, EPOLL_CTL_DEL, sl->fd, NULL);
    close(sl->fd);
    sl->fd = -1;
    sl->state = F_IDLE;
    sl->retry_ns = now; /* again at once */
}

static void socket_error(flood *f, slot *sl, int err, int64_t now)
{
    f->codes[CODE_SOCKET + err < 1024 ? CODE_SOCKET + err : 1022]++;
    if (sl->fd >= 0)
        slot_close(f, sl, now);
    sl->state = F_IDLE;
    sl->retry_ns = now + RETRY_NS;
}

static void slot_open(flood *f, slot *sl, int64_t now)
{
    sl->state = F_CONNECTING;
    sl->got_hello = 0;
    sl->hdr_len = sl->body_len = sl->body_need = 0;
    sl->t_start_ns = now;
    sl->hello = f->next_hello++ % f->nhellos;
    f->attempts++;
    sl->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (sl->fd < 0) {
        socket_error(f, sl, errno, now);
        return;
    }
    int one = 1;
    setsockopt(sl->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(sl->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(sl->fd, (struct sockaddr *)&f->src[sl->src], sizeof f->src[0]) ||
        (connect(sl->fd, (struct sockaddr *)&f->dst, sizeof f->dst) && errno != EINPROGRESS)) {
        socket_error(f, sl, errno, now);
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = sl};
    epoll_ctl(f->ep, EPOLL_CTL_ADD, sl->fd, &ev);
}

static void on_connected(flood *f, slot *sl, int64_t now)
{
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(sl->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    const buf_t *h = &f->hellos[sl->hello];
    if (!err && send(sl->fd, h->p, h->len, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)h->len)
        err = errno ? errno : EAGAIN; /* a fresh socket takes a few hundred bytes whole */
    if (err) {
        socket_error(f, sl, err, now);
        return;
    }
    sl->state = F_READING;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = sl};
    epoll_ctl(f->ep, EPOLL_CTL_MOD, sl->fd, &ev);
}

/* A whole frame arrived: 1 if the attempt is over. */
static int on_frame(flood *f, slot *sl, int64_t now)
{
    reader_t r = reader(sl->body, sl->body_len);
    switch (sl->type) {
    case FT_SERVER_HELLO:
        sl->got_hello = 1;
        return 0;
    case FT_RECORD:
        if (!sl->got_hello)
            break;
        f->answered++;
        count_second(f, f->answered_per_s, now);
        hist_record_ns(&f->latency, now - sl->t_start_ns);
        return 1;
    case FT_GOAWAY: { /* section 4.8; the attacker ignores the delay */
        uint16_t code = rd_u16(&r);
        f->refused++;
        f->goaway_codes[code < 1024 ? code : 1022]++;
        f->goaway_delay_ms_sum += rd_u32(&r);
        count_second(f, f->refused_per_s, now);
        return 1;
    }
    case FT_ERROR: {
        uint16_t code = rd_u16(&r);
        f->error_frames++;
        f->codes[code < CODE_SOCKET ? code : 1022]++;
        return 1;
    }
    }
    f->other_frames++;
    return 1;
}

/* Frame the bytes: headers whole, bodies skipped but for the first KEPT_BODY bytes. 1 if the attempt is over. */
static int on_bytes(flood *f, slot *sl, const uint8_t *p, size_t n, int64_t now)
{
    while (n) {
        if (sl->hdr_len < HEADER_LEN) {
            size_t take = HEADER_LEN - sl->hdr_len < n ? HEADER_LEN - sl->hdr_len : n;
            memcpy(sl->hdr + sl->hdr_len, p, take);
            sl->hdr_len += (uint32_t)take, p += take, n -= take;
            if (sl->hdr_len < HEADER_LEN)
                return 0;
            sl->type = sl->hdr[5];
            sl->body_need = rd32(sl->hdr);
            sl->body_len = 0;
        } else {
            size_t left = sl->body_need - sl->body_len, take = left < n ? left : n;
            if (sl->body_len < KEPT_BODY)
                memcpy(sl->body + sl->body_len, p, take < KEPT_BODY - sl->body_len ? take : KEPT_BODY - sl->body_len);
            sl->body_len += (uint32_t)take, p += take, n -= take;
        }
        if (sl->body_len == sl->body_need) {
            if (sl->body_len > KEPT_BODY)
                sl->body_len = KEPT_BODY;
            sl->hdr_len = 0;
            if (on_frame(f, sl, now))
                return 1;
        }
    }
    return 0;
}

static void on_readable(flood *f, slot *sl, int64_t now)
{
    ssize_t n = recv(sl->fd, f->scratch, sizeof f->scratch, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n > 0 && !on_bytes(f, sl, f->scratch, (size_t)n, now))
        return;
    if (n == 0)
        f->eof++;
    else if (n < 0)
        f->resets++;
    slot_close(f, sl, now);
}

static void sweep(flood *f, int64_t now)
{
    for (uint32_t i = 0; i < f->n; i++) {
        slot *sl = &f->slots[i];
        if (sl->state == F_IDLE && now >= sl->retry_ns && now < f->end_ns)
            slot_open(f, sl, now);
        else if (sl->state != F_IDLE && now - sl->t_start_ns > ATTEMPT_TIMEOUT_NS) {
            f->timeouts++;
            slot_close(f, sl, now);
        }
    }
}

static void wait_start(flood *f)
{
    char line[256];
    printf("{\"ready\": \"flood\", \"wid\": %d, \"hellos\": %u}\n", f->o->wid, f->nhellos);
    fflush(stdout);
    long long t0 = 0;
    while (fgets(line, sizeof line, stdin) && sscanf(line, "start %lld", &t0) != 1)
        ;
    if (!t0)
        exit(0); /* the driver is gone */
    f->t0_ns = t0;
}

static void series_json(FILE *out, const uint32_t *series, int64_t seconds)
{
    fputc('[', out);
    for (int64_t i = 0; i < seconds && i < MAX_SECONDS; i++)
        fprintf(out, "%s%u", i ? ", " : "", series[i]);
    fputc(']', out);
}

static void report(flood *f, int64_t begin_ns, int64_t stopped_ns)
{
    double secs = (stopped_ns - f->t0_ns) / 1e9;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"mode\": \"flood\", \"wid\": %d, \"elapsed_s\": %.3f, \"cpu_s\": %.3f, \"maxrss_kb\": %ld, "
           "\"sockets\": %u, \"addresses\": %d, \"hellos\": %u, \"start_ns\": %lld, \"end_ns\": %lld, "
           "\"attempts\": %llu, \"answered\": %llu, \"refused\": %llu, \"error_frames\": %llu, \"eof\": %llu, "
           "\"resets\": %llu, \"timeouts\": %llu, \"other_frames\": %llu, \"goaway_delay_ms_sum\": %llu, ",
           f->o->wid, (stopped_ns - begin_ns) / 1e9, cpu_seconds(), ru.ru_maxrss, f->n, f->o->nsrc, f->nhellos,
           (long long)f->t0_ns, (long long)stopped_ns, (unsigned long long)f->attempts,
           (unsigned long long)f->answered, (unsigned long long)f->refused, (unsigned long long)f->error_frames,
           (unsigned long long)f->eof, (unsigned long long)f->resets, (unsigned long long)f->timeouts,
           (unsigned long long)f->other_frames, (unsigned long long)f->goaway_delay_ms_sum);
    fputs("\"errors\": ", stdout);
    json_codes(stdout, f->codes);
    fputs(", \"goaway_codes\": ", stdout);
    json_codes(stdout, f->goaway_codes);
    int64_t whole = (int64_t)(secs + 0.5); /* the last second only if mostly run */
    fputs(", \"answered_per_s\": ", stdout);
    series_json(stdout, f->answered_per_s, whole);
    fputs(", \"refused_per_s\": ", stdout);
    series_json(stdout, f->refused_per_s, whole);
    fputs(", \"latency\": ", stdout);
    hist_json(stdout, &f->latency);
    fputs("}\n", stdout);
}

int flood_main(opts *o)
{
    flood *f = xcalloc(1, sizeof *f);
    f->o = o;
    f->n = (uint32_t)o->concurrency;
    f->slots = xcalloc(f->n, sizeof *f->slots);
    f->src = xcalloc((size_t)o->nsrc, sizeof *f->src);
    for (int i = 0; i < o->nsrc; i++) {
        f->src[i] = (struct sockaddr_in){.sin_family = AF_INET};
        if (inet_pton(AF_INET, o->src[i], &f->src[i].sin_addr) != 1)
            die("bad --src address %s", o->src[i]);
    }
    f->dst = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    inet_pton(AF_INET, o->host, &f->dst.sin_addr);
    for (uint32_t i = 0; i < f->n; i++)
        f->slots[i] = (slot){.fd = -1, .src = i % (uint32_t)o->nsrc};
    int64_t begin = mono_ns();
    build_hellos(f);
    f->ep = epoll_create1(EPOLL_CLOEXEC);
    if (o->wait_start)
        wait_start(f);
    else
        f->t0_ns = mono_ns();
    while (mono_ns() < f->t0_ns)
        usleep(1000);
    f->end_ns = f->t0_ns + (int64_t)(o->duration_s * 1e9);
    int64_t deadline = begin + (int64_t)(o->deadline_s * 1e9), next_sweep = 0, now;
    struct epoll_event evs[512];
    while ((now = mono_ns()) < f->end_ns && now < deadline) {
        if (now >= next_sweep) {
            sweep(f, now);
            next_sweep = now + TICK_NS;
        }
        int k = epoll_wait(f->ep, evs, 512, 10);
        now = mono_ns();
        for (int i = 0; i < k; i++) {
            slot *sl = evs[i].data.ptr;
            if (sl->state == F_CONNECTING)
                on_connected(f, sl, now);
            else if (sl->state == F_READING)
                on_readable(f, sl, now);
        }
    }
    now = mono_ns();
    for (uint32_t i = 0; i < f->n; i++) /* attempts still open are neither answered nor refused */
        if (f->slots[i].fd >= 0)
            slot_close(f, &f->slots[i], now);
    report(f, begin, now);
    return 0;
}
