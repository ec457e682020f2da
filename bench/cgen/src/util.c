#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory (%zu bytes)", n);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        die("out of memory (%zu x %zu bytes)", n, size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        die("out of memory (%zu bytes)", n);
    return p;
}

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("cgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

void buf_reserve(buf_t *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra)
        cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}

void buf_put(buf_t *b, const void *data, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

void buf_consume(buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

void buf_free(buf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void buf_u16(buf_t *b, uint16_t v)
{
    uint8_t t[2];
    wr16(t, v);
    buf_put(b, t, 2);
}

void buf_u32(buf_t *b, uint32_t v)
{
    uint8_t t[4];
    wr32(t, v);
    buf_put(b, t, 4);
}

void buf_u64(buf_t *b, uint64_t v)
{
    uint8_t t[8];
    wr64(t, v);
    buf_put(b, t, 8);
}

const uint8_t *rd_bytes(reader_t *r, size_t n)
{
    static const uint8_t zeros[8];
    if (r->bad || r->len - r->off < n) {
        r->bad = 1;
        return n <= sizeof zeros ? zeros : NULL;
    }
    const uint8_t *p = r->p + r->off;
    r->off += n;
    return p;
}

uint8_t rd_u8(reader_t *r) { return *rd_bytes(r, 1); }
uint16_t rd_u16(reader_t *r) { return rd16(rd_bytes(r, 2)); }
uint32_t rd_u32(reader_t *r) { return rd32(rd_bytes(r, 4)); }
uint64_t rd_u64(reader_t *r) { return rd64(rd_bytes(r, 8)); }

const uint8_t *rd_var(reader_t *r, int prefix_bytes, size_t *n)
{
    size_t len = prefix_bytes == 1 ? rd_u8(r) : prefix_bytes == 2 ? rd_u16(r) : rd_u32(r);
    *n = 0;
    if (r->bad)
        return NULL;
    const uint8_t *p = rd_bytes(r, len);
    if (r->bad)
        return NULL;
    *n = len;
    return p;
}

int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Randomness comes from a per-process buffer refilled with getrandom(): hello randoms, ephemeral keys and
 * client message ids draw thousands of small values per second, and one syscall per 4 KiB is enough. */
static uint8_t rnd_pool[4096];
static size_t rnd_left;

void random_bytes(void *out, size_t n)
{
    uint8_t *o = out;
    while (n) {
        if (!rnd_left) {
            size_t got = 0;
            while (got < sizeof rnd_pool) {
                ssize_t r = getrandom(rnd_pool + got, sizeof rnd_pool - got, 0);
                if (r < 0 && errno != EINTR)
                    die("getrandom failed");
                if (r > 0)
                    got += (size_t)r;
            }
            rnd_left = sizeof rnd_pool;
        }
        size_t take = n < rnd_left ? n : rnd_left;
        memcpy(o, rnd_pool + sizeof rnd_pool - rnd_left, take);
        memset(rnd_pool + sizeof rnd_pool - rnd_left, 0, take);
        rnd_left -= take;
        o += take;
        n -= take;
    }
}

uint64_t random_u64(void)
{
    uint64_t v;
    random_bytes(&v, sizeof v);
    return v;
}

double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int hex_decode(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = strlen(hex);
    if (n % 2 || n / 2 > cap)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return (int)(n / 2);
}

void hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = 0;
}
