/* The client side of the kefu protocol as a sans-IO core: bytes in (kc_receive), bytes out (c->out after
 * kc_flush), time passed in. It never touches a socket; gen.c is the epoll adapter and selftest.c drives
 * it with the recorded handshakes of spec/vectors/handshakes.json.
 *
 * Unlike the Python core, which queues events, this one hands them to a sink as it parses them: a DELIVER
 * body is then read in place (in the record's plaintext) instead of being copied into an event. The sink
 * must not free the connection from inside a callback; it looks at c->state after kc_receive returns. */
#ifndef CGEN_PROTO_H
#define CGEN_PROTO_H

#include "crypto.h"
#include "util.h"

/* --- wire constants (spec sections 3.4, 8, 9) --- */
enum frame_type {
    FT_CLIENT_HELLO = 0x01, FT_SERVER_HELLO = 0x02, FT_SERVER_FINISHED = 0x03, FT_CLIENT_FINISHED = 0x04,
    FT_NEW_TICKET = 0x05, FT_KEY_UPDATE = 0x06, FT_RECORD = 0x0F, FT_SEND = 0x10, FT_SEND_ACK = 0x11,
    FT_DELIVER = 0x12, FT_DELIVER_ACK = 0x13, FT_SYNC = 0x14, FT_SYNC_DONE = 0x15, FT_PING = 0x20,
    FT_PONG = 0x21, FT_ERROR = 0x30, FT_GOAWAY = 0x31, FT_CLOSE = 0x32,
};

enum error_code {
    E_OK = 0, E_MALFORMED_FRAME = 100, E_FRAME_TOO_LARGE = 101, E_UNSUPPORTED_VERSION = 102,
    E_UNKNOWN_FRAME_TYPE = 103, E_UNEXPECTED_FRAME = 104, E_RECORD_FRAGMENT = 105, E_TRUNCATED = 106,
    E_HANDSHAKE_FAILURE = 200, E_NO_COMMON_SUITE = 201, E_BAD_KEY_SHARE = 202, E_BAD_SIGNATURE = 203,
    E_SERVER_KEY_NOT_PINNED = 204, E_BAD_FINISHED = 205, E_AUTH_FAILED = 206, E_BAD_BINDER = 207,
    E_TICKET_REJECTED = 208, E_DOWNGRADE_DETECTED = 209, E_HANDSHAKE_TIMEOUT = 210, E_BAD_RECORD_MAC = 300,
    E_KEY_LIMIT_EXCEEDED = 301, E_CRYPTO_SELF_TEST_FAILED = 302, E_INTERNAL_ERROR = 500,
    E_SHUTTING_DOWN = 503, E_KEEPALIVE_TIMEOUT = 504, E_OVERLOADED = 505,
};

#define HEADER_LEN 12
#define PROTOCOL_VERSION 1
#define MAX_BODY 1048576u               /* frames.MAX_BODY */
#define MAX_HANDSHAKE_BODY 4096u        /* CLIENT_HELLO, SERVER_HELLO */
#define MAX_RECORD_PLAINTEXT 1048588u   /* one maximal frame and its header */
#define MAX_RECORD_BODY 1048604u        /* plus the tag */
#define RECORD_LIMIT (1u << 20)         /* records per key and direction */
#define BYTE_LIMIT (1ull << 30)         /* plaintext bytes per key and direction */
#define UPDATE_MARGIN 64                /* kept under BYTE_LIMIT for the KEY_UPDATE record */
#define MIN_KEEPALIVE_MS 5000u
#define MAX_KEEPALIVE_MS 300000u
#define MAX_TICKET_LIFETIME_S 86400u
#define FLAG_DUPLICATE 0x0001           /* SEND_ACK */
#define FLAG_REDELIVERY 0x0001          /* DELIVER */

enum kc_state { ST_START, ST_WAIT_SERVER_HELLO, ST_WAIT_SERVER_FINISHED, ST_CONNECTED, ST_CLOSING, ST_CLOSED };
enum psk_mode { PSK_NONE = 0, PSK_ONLY = 1, PSK_WITH_ECDHE = 2 };

/* --- parsed application frames handed to the sink --- */
typedef struct {
    const uint8_t *ptr;
    size_t len;
} span;

typedef struct kc_frame {
    uint8_t type;
    uint16_t flags;
    uint32_t request_id;
    span body;
    union {
        struct { const uint8_t *cmid; uint16_t status; uint64_t server_msg_id, conversation_id, seq, ts; } ack;
        struct {
            uint64_t conversation_id, seq, server_msg_id, ts;
            const uint8_t *cmid;
            uint16_t content_type;
            span sender, body;
        } deliver;
        struct { uint64_t conversation_id, last_seq; uint8_t more; } sync_done;
        struct { uint16_t code; span reason; } error; /* also CLOSE */
        struct { uint16_t code; uint32_t delay_ms, backoff_initial_ms, backoff_max_ms; uint16_t jitter; } goaway;
        struct { uint64_t opaque; } pong;
    } u;
} kc_frame;

typedef struct kc_ticket {
    uint16_t suite;
    uint32_t lifetime_s, age_add;
    int64_t received_ms;
    uint8_t psk[HASH_LEN];
    uint16_t len;
    uint8_t data[]; /* the ticket as received, sent back as is */
} kc_ticket;

struct kc_conn;
typedef struct kc_sink {
    void (*established)(struct kc_conn *c);  /* first frame under the server's application key */
    void (*frame)(struct kc_conn *c, const kc_frame *f);
    void (*ticket)(struct kc_conn *c, kc_ticket *t); /* the sink owns t (free() it) */
    void (*closed)(struct kc_conn *c, uint16_t code, int by_peer, int clean);
    /* The server refused the handshake for load (section 5.9): its plaintext GOAWAY in WAIT_SERVER_HELLO, in
     * place of SERVER_HELLO. closed() follows at once (its code, OVERLOADED as a rule; not clean). */
    void (*refused)(struct kc_conn *c, const kc_frame *goaway);
} kc_sink;

/* What every connection of a run shares. */
typedef struct kc_config {
    uint16_t suites[2];
    int nsuites;
    char **pins;
    int npins;
    uint32_t keepalive_ms;
    uint8_t psk_mode; /* PSK_ONLY or PSK_WITH_ECDHE when a ticket is offered */
    const uint8_t *fixed_random;   /* test vectors only */
    const uint8_t *fixed_eph[2];   /* per offered suite, test vectors only */
} kc_config;

typedef struct kc_dir {
    aead a;
    hash_id h;
    uint8_t secret[HASH_LEN], iv[NONCE_LEN];
    uint64_t seq, bytes;
} kc_dir;

typedef struct kc_hs kc_hs; /* handshake-only state, freed once connected */

typedef struct kc_conn {
    const kc_config *cfg;
    const kc_sink *sink;
    void *user;
    kc_hs *hs;
    kc_dir *send, *recv;
    buf_t in;   /* bytes of an incomplete frame */
    buf_t pend; /* whole plaintext frames waiting to be sealed into one record */
    buf_t out;  /* bytes to write to the socket */
    uint8_t state, resumed, sent_close, got_app_frame;
    uint16_t suite;
    uint32_t keepalive_ms;
    uint8_t res_secret[HASH_LEN];
} kc_conn;

void kc_init(kc_conn *c, const kc_config *cfg, const kc_sink *sink, void *user);
void kc_free(kc_conn *c);
/* Queue CLIENT_HELLO. `ticket` may be NULL; one for an unoffered suite or expired at now_ms is not used. */
int kc_connect(kc_conn *c, const char *app_id, const uint8_t secret[32], const kc_ticket *ticket, int64_t now_ms);
/* Feed received bytes; n == 0 means the peer ended the stream. */
void kc_receive(kc_conn *c, const uint8_t *data, size_t n);
/* Start an application frame of `body_len` bytes in the pending record and return where its body goes. */
uint8_t *kc_frame_begin(kc_conn *c, uint8_t type, uint16_t flags, uint32_t request_id, size_t body_len);
void kc_flush(kc_conn *c); /* seal what is pending into c->out */
void kc_close(kc_conn *c, uint16_t code);
void kc_fail(kc_conn *c, uint16_t code); /* a local failure: ERROR to the peer, then CLOSED */
void kc_dir_install(kc_dir *d, const uint8_t secret[HASH_LEN], uint16_t suite); /* a sending key (tests) */
void kc_ping(kc_conn *c, uint64_t opaque);
int code_is_fatal(uint16_t code);

/* frame builders the drivers share */
void put_send(kc_conn *c, uint32_t request_id, const uint8_t cmid[16], uint64_t conversation_id,
              uint16_t content_type, const uint8_t *body, size_t blen, const char *meta_key, const uint8_t *meta_value,
              size_t mvlen);
void put_deliver_ack(kc_conn *c, uint64_t conversation_id, uint64_t seq);
void put_sync(kc_conn *c, uint32_t request_id, uint64_t conversation_id, uint64_t after, uint64_t until,
              uint32_t limit);

#endif
