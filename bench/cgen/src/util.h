/* Small helpers shared by every part of the generator: growable byte buffers, big-endian access,
 * clocks, randomness and hex. Nothing here knows the protocol. */
#ifndef CGEN_UTIL_H
#define CGEN_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    uint8_t *p;
    size_t len, cap;
} buf_t;

void buf_reserve(buf_t *b, size_t extra);
void buf_put(buf_t *b, const void *data, size_t n);
void buf_consume(buf_t *b, size_t n); /* drop the first n bytes */
void buf_free(buf_t *b);
static inline void buf_u8(buf_t *b, uint8_t v) { buf_put(b, &v, 1); }
void buf_u16(buf_t *b, uint16_t v);
void buf_u32(buf_t *b, uint32_t v);
void buf_u64(buf_t *b, uint64_t v);

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) << 32 | rd32(p + 4); }
static inline void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void wr64(uint8_t *p, uint64_t v) { wr32(p, (uint32_t)(v >> 32)); wr32(p + 4, (uint32_t)v); }

/* A bounds-checked reader over a frame body: any read past the end sets `bad` and returns zeros. */
typedef struct {
    const uint8_t *p;
    size_t len, off;
    int bad;
} reader_t;

static inline reader_t reader(const uint8_t *p, size_t len) { return (reader_t){p, len, 0, 0}; }
const uint8_t *rd_bytes(reader_t *r, size_t n);
uint8_t rd_u8(reader_t *r);
uint16_t rd_u16(reader_t *r);
uint32_t rd_u32(reader_t *r);
uint64_t rd_u64(reader_t *r);
/* opaque<u8|u16|u32>: returns a pointer into the body and its length in *n */
const uint8_t *rd_var(reader_t *r, int prefix_bytes, size_t *n);

int64_t mono_ns(void);   /* CLOCK_MONOTONIC: comparable across processes on one host */
int64_t wall_ms(void);   /* CLOCK_REALTIME in milliseconds */
void random_bytes(void *out, size_t n);
uint64_t random_u64(void);
double cpu_seconds(void); /* utime + stime of this process (getrusage) */
long rss_kb(void);        /* VmRSS of this process */

int hex_decode(const char *hex, uint8_t *out, size_t cap); /* -> bytes written, -1 on bad input */
void hex_encode(const uint8_t *in, size_t n, char *out);   /* out needs 2n+1 */

void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);

#endif
