/* The client core: framing (section 3), records (6.3, 6.4), the handshake (5) and the state table (7.2).
 *
 * Theory of operation: kc_receive() splits the stream into frames, checking each header before its body is
 * buffered (version, then the body limit of its type). A RECORD is opened under the receive key and its
 * plaintext split into inner frames, all checked before any is handled; SERVER_FINISHED and KEY_UPDATE must be
 * last in their record. Each frame is parsed (MALFORMED_FRAME), then checked against the state table
 * (UNEXPECTED_FRAME). Anything the peer gets wrong ends in kc_fail(): an ERROR to the peer, under the sending
 * key if there is one, and state CLOSED. Frames the application sends go to `pend` and are sealed into one
 * record per kc_flush(), so a batch of SENDs costs one AEAD call. */
#include "proto.h"

#include <openssl/crypto.h>
#include <stdlib.h>

struct kc_hs {
    buf_t ch; /* CLIENT_HELLO, header and body: the transcript starts with it once SERVER_HELLO names a suite */
    eph_key eph[2];
    EVP_MD_CTX *tr;
    hash_id h;
    uint8_t psk_mode, has_ticket;
    uint16_t ticket_suite;
    uint8_t ticket_psk[HASH_LEN];
    uint8_t master[HASH_LEN], c_hs[HASH_LEN];
    uint8_t alen;
    char app_id[256];
    uint8_t secret[32];
};

static EVP_MD_CTX *digest_scratch;
static uint8_t *record_plain; /* one record's plaintext at a time (single-threaded) */

static const char SERVER_CONTEXT[] = "kefu v1, server signature"; /* preceded by 64 spaces, followed by 0 */

/* --- small helpers ----------------------------------------------------------------------------------------- */

int code_is_fatal(uint16_t code)
{
    switch (code) {
    case 0: case 400: case 401: case 403: case 404: case 409: case 413: case 429: case 503: case 507:
        return 0;
    case 100: case 101: case 102: case 103: case 104: case 105: case 106: case 200: case 201: case 202:
    case 203: case 204: case 205: case 206: case 207: case 208: case 209: case 210: case 300: case 301:
    case 302: case 500: case 504: case 505:
        return 1;
    default: /* section 3.5: an unknown code in 400-499 is a request error, any other is fatal */
        return !(code >= 400 && code < 500);
    }
}

static int code_known(uint16_t code)
{
    return !code_is_fatal(code) ? (code == 0 || code == 400 || code == 401 || code == 403 || code == 404 ||
                                   code == 409 || code == 413 || code == 429 || code == 503 || code == 507)
                                : (code <= 106 && code >= 100) || (code >= 200 && code <= 210) ||
                                      (code >= 300 && code <= 302) || code == 500 || code == 504 || code == 505;
}

static int utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            k = 1, cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            k = 2, cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            k = 3, cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i <= k) /* the k continuation bytes must be there */
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += k + 1;
    }
    return 1;
}

static size_t body_limit(uint8_t type)
{
    if (type == FT_CLIENT_HELLO || type == FT_SERVER_HELLO)
        return MAX_HANDSHAKE_BODY;
    return type == FT_RECORD ? MAX_RECORD_BODY : MAX_BODY;
}

/* Types version 1 defines (section 3.4): an unknown critical one in a record is UNKNOWN_FRAME_TYPE. */
static int type_known(uint8_t t)
{
    return (t >= 0x01 && t <= 0x06) || t == 0x0F || (t >= 0x10 && t <= 0x15) || t == 0x20 || t == 0x21 ||
           (t >= 0x30 && t <= 0x32) || (t >= 0x40 && t <= 0x4B) || t == 0x4F;
}

/* Server pushes of the service layer (section 13): accepted once connected, passed on unparsed. */
static int service_push(uint8_t t) { return t == 0x42 || t == 0x48 || t == 0x49 || t == 0x4A || t == 0x4F; }

static void transcript_hash(kc_hs *hs, const uint8_t *extra, size_t n, uint8_t out[HASH_LEN])
{
    EVP_MD_CTX_copy_ex(digest_scratch, hs->tr);
    EVP_DigestUpdate(digest_scratch, extra, n);
    EVP_DigestFinal_ex(digest_scratch, out, NULL);
}

/* --- directions ------------------------------------------------------------------------------------------ */

static int dir_install(kc_dir *d, const uint8_t secret[HASH_LEN], int encrypt, uint16_t suite)
{
    uint8_t key[16];
    aead_free(&d->a);
    d->h = suite_hash(suite);
    memcpy(d->secret, secret, HASH_LEN);
    expand_label(d->h, secret, "key", NULL, 0, key, 16);
    expand_label(d->h, secret, "iv", NULL, 0, d->iv, NONCE_LEN);
    d->seq = d->bytes = 0;
    int rc = aead_init(&d->a, suite == SUITE_NATIONAL, key, encrypt);
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

void kc_dir_install(kc_dir *d, const uint8_t secret[HASH_LEN], uint16_t suite)
{
    if (dir_install(d, secret, 1, suite))
        die("cannot set up an AEAD key");
}

static kc_dir *dir_new(kc_dir *old, const uint8_t secret[HASH_LEN], int encrypt, uint16_t suite)
{
    kc_dir *d = old ? old : xcalloc(1, sizeof *d);
    if (dir_install(d, secret, encrypt, suite))
        die("cannot set up an AEAD key");
    return d;
}

static void dir_update(kc_dir *d, int encrypt, uint16_t suite)
{
    uint8_t next[HASH_LEN];
    expand_label(d->h, d->secret, "traffic upd", NULL, 0, next, HASH_LEN);
    dir_install(d, next, encrypt, suite);
}

static void dir_free(kc_dir *d)
{
    if (!d)
        return;
    aead_free(&d->a);
    OPENSSL_cleanse(d, sizeof *d);
    free(d);
}

static void nonce_for(const kc_dir *d, uint8_t nonce[NONCE_LEN])
{
    memcpy(nonce, d->iv, NONCE_LEN);
    for (int i = 0; i < 8; i++)
        nonce[NONCE_LEN - 1 - i] ^= (uint8_t)(d->seq >> (8 * i));
}

static void seal_into(kc_conn *c, const uint8_t *pt, size_t n)
{
    uint8_t nonce[NONCE_LEN];
    buf_reserve(&c->out, HEADER_LEN + n + TAG_LEN);
    uint8_t *h = c->out.p + c->out.len;
    wr32(h, (uint32_t)(n + TAG_LEN));
    h[4] = PROTOCOL_VERSION;
    h[5] = FT_RECORD;
    memset(h + 6, 0, 6);
    nonce_for(c->send, nonce);
    if (aead_seal(&c->send->a, nonce, h, HEADER_LEN, pt, n, h + HEADER_LEN))
        die("AEAD seal failed");
    c->out.len += HEADER_LEN + n + TAG_LEN;
    c->send->seq++;
    c->send->bytes += n;
}

void kc_flush(kc_conn *c)
{
    if (!c->pend.len || !c->send)
        return;
    kc_dir *d = c->send;
    if (d->seq >= RECORD_LIMIT - 1 || d->bytes + c->pend.len > BYTE_LIMIT - UPDATE_MARGIN) {
        static const uint8_t key_update[HEADER_LEN + 1] = {0, 0, 0, 1, PROTOCOL_VERSION, FT_KEY_UPDATE};
        seal_into(c, key_update, sizeof key_update); /* section 6.4: update before a limit is reached */
        dir_update(d, 1, c->suite);
    }
    seal_into(c, c->pend.p, c->pend.len);
    c->pend.len = 0;
}

/* --- sending frames -------------------------------------------------------------------------------------- */

static uint8_t *frame_into(buf_t *b, uint8_t type, uint16_t flags, uint32_t rid, size_t body_len)
{
    buf_reserve(b, HEADER_LEN + body_len);
    uint8_t *h = b->p + b->len;
    wr32(h, (uint32_t)body_len);
    h[4] = PROTOCOL_VERSION;
    h[5] = type;
    wr16(h + 6, flags);
    wr32(h + 8, rid);
    b->len += HEADER_LEN + body_len;
    return h + HEADER_LEN;
}

uint8_t *kc_frame_begin(kc_conn *c, uint8_t type, uint16_t flags, uint32_t request_id, size_t body_len)
{
    if (c->pend.len + HEADER_LEN + body_len > MAX_RECORD_PLAINTEXT)
        kc_flush(c);
    return frame_into(&c->pend, type, flags, request_id, body_len);
}

static void queue_code_frame(kc_conn *c, uint8_t type, uint16_t code, const char *reason)
{
    size_t rlen = strlen(reason);
    uint8_t *b = kc_frame_begin(c, type, 0, 0, 4 + rlen);
    wr16(b, code);
    wr16(b + 2, (uint16_t)rlen);
    memcpy(b + 4, reason, rlen);
}

static void closed(kc_conn *c, uint16_t code, int by_peer, int clean)
{
    c->state = ST_CLOSED;
    if (c->sink && c->sink->closed)
        c->sink->closed(c, code, by_peer, clean);
}

void kc_fail(kc_conn *c, uint16_t code)
{
    if (c->state == ST_CLOSED)
        return;
    if (!c->sent_close) {
        if (c->send) {
            c->pend.len = 0; /* section 7.4: discard whatever else was queued */
            queue_code_frame(c, FT_ERROR, code, "");
            kc_flush(c);
        } else {
            uint8_t *b = frame_into(&c->out, FT_ERROR, 0, 0, 4);
            wr16(b, code);
            wr16(b + 2, 0);
        }
    }
    closed(c, code, 0, 0);
}

void kc_close(kc_conn *c, uint16_t code)
{
    if (c->state == ST_CONNECTED) {
        queue_code_frame(c, FT_CLOSE, code, "");
        c->sent_close = 1;
        c->state = ST_CLOSING;
    } else if (c->state != ST_CLOSING && c->state != ST_CLOSED) {
        closed(c, code, 0, 0);
    }
}

void kc_ping(kc_conn *c, uint64_t opaque)
{
    if (c->state == ST_CONNECTED)
        wr64(kc_frame_begin(c, FT_PING, 0, 0, 8), opaque);
}

void put_send(kc_conn *c, uint32_t request_id, const uint8_t cmid[16], uint64_t conversation_id,
              uint16_t content_type, const uint8_t *body, size_t blen, const char *meta_key, const uint8_t *meta_value,
              size_t mvlen)
{
    size_t klen = meta_key ? strlen(meta_key) : 0;
    size_t n = 16 + 8 + 2 + 4 + blen + 1 + (meta_key ? 1 + klen + 2 + mvlen : 0);
    uint8_t *b = kc_frame_begin(c, FT_SEND, 0, request_id, n);
    memcpy(b, cmid, 16);
    wr64(b + 16, conversation_id);
    wr16(b + 24, content_type);
    wr32(b + 26, (uint32_t)blen);
    memcpy(b + 30, body, blen);
    b += 30 + blen;
    *b++ = meta_key ? 1 : 0;
    if (meta_key) {
        *b++ = (uint8_t)klen;
        memcpy(b, meta_key, klen);
        wr16(b + klen, (uint16_t)mvlen);
        memcpy(b + klen + 2, meta_value, mvlen);
    }
}

void put_deliver_ack(kc_conn *c, uint64_t conversation_id, uint64_t seq)
{
    uint8_t *b = kc_frame_begin(c, FT_DELIVER_ACK, 0, 0, 2 + 16);
    wr16(b, 1);
    wr64(b + 2, conversation_id);
    wr64(b + 10, seq);
}

void put_sync(kc_conn *c, uint32_t request_id, uint64_t conversation_id, uint64_t after, uint64_t until,
              uint32_t limit)
{
    uint8_t *b = kc_frame_begin(c, FT_SYNC, 0, request_id, 28);
    wr64(b, conversation_id);
    wr64(b + 8, after);
    wr64(b + 16, until);
    wr32(b + 24, limit);
}

/* --- connection life ------------------------------------------------------------------------------------- */

void kc_init(kc_conn *c, const kc_config *cfg, const kc_sink *sink, void *user)
{
    memset(c, 0, sizeof *c);
    c->cfg = cfg;
    c->sink = sink;
    c->user = user;
    c->state = ST_START;
    if (!digest_scratch) {
        digest_scratch = EVP_MD_CTX_new();
        record_plain = xmalloc(MAX_RECORD_BODY);
    }
}

static void hs_free(kc_hs *hs)
{
    if (!hs)
        return;
    buf_free(&hs->ch);
    for (int i = 0; i < 2; i++)
        eph_free(&hs->eph[i]);
    EVP_MD_CTX_free(hs->tr);
    OPENSSL_cleanse(hs, sizeof *hs);
    free(hs);
}

void kc_free(kc_conn *c)
{
    hs_free(c->hs);
    dir_free(c->send);
    dir_free(c->recv);
    buf_free(&c->in);
    buf_free(&c->pend);
    buf_free(&c->out);
    c->hs = NULL;
    c->send = c->recv = NULL;
    c->state = ST_CLOSED;
}

/* binder = HMAC(binder_key, Hash(CH body up to the binder's length byte)) under the ticket's suite (5.6) */
static void compute_binder(hash_id h, const uint8_t psk[HASH_LEN], const uint8_t *body, size_t covered,
                           uint8_t out[HASH_LEN])
{
    static const uint8_t zeros[HASH_LEN];
    uint8_t early[HASH_LEN], empty[HASH_LEN], base[HASH_LEN], key[HASH_LEN], th[HASH_LEN];
    hkdf_extract(h, zeros, HASH_LEN, psk, HASH_LEN, early);
    hash_once(h, NULL, 0, empty);
    derive_secret(h, early, "res binder", empty, base);
    expand_label(h, base, "finished", NULL, 0, key, HASH_LEN);
    hash_once(h, body, covered, th);
    hmac(h, key, HASH_LEN, th, HASH_LEN, out);
}

int kc_connect(kc_conn *c, const char *app_id, const uint8_t secret[32], const kc_ticket *ticket, int64_t now_ms)
{
    const kc_config *cfg = c->cfg;
    kc_hs *hs = c->hs = xcalloc(1, sizeof *hs);
    size_t alen = strlen(app_id);
    if (c->state != ST_START || alen > 255 || cfg->nsuites < 1 || cfg->nsuites > 2)
        return -1;
    hs->alen = (uint8_t)alen;
    memcpy(hs->app_id, app_id, alen);
    memcpy(hs->secret, secret, 32);
    if (ticket && (ticket->suite != cfg->suites[0] && (cfg->nsuites < 2 || ticket->suite != cfg->suites[1])))
        ticket = NULL; /* never offer a ticket for a suite we do not offer */
    if (ticket && now_ms - ticket->received_ms >= (int64_t)ticket->lifetime_s * 1000)
        ticket = NULL;
    buf_t *b = &hs->ch;
    size_t body_len = 32 + 1 + 2 * (size_t)cfg->nsuites + 1 + 4 + 1 + 2 + 4 + 1;
    for (int i = 0; i < cfg->nsuites; i++) {
        if (eph_generate(&hs->eph[i], cfg->suites[i], cfg->fixed_eph[i]))
            return -1;
        body_len += 4 + hs->eph[i].publen;
    }
    if (ticket)
        body_len += ticket->len + HASH_LEN;
    uint8_t *p = frame_into(b, FT_CLIENT_HELLO, 0, 0, body_len), *body = p;
    if (cfg->fixed_random)
        memcpy(p, cfg->fixed_random, 32);
    else
        random_bytes(p, 32);
    p += 32;
    *p++ = (uint8_t)cfg->nsuites;
    for (int i = 0; i < cfg->nsuites; i++, p += 2)
        wr16(p, cfg->suites[i]);
    *p++ = (uint8_t)cfg->nsuites;
    for (int i = 0; i < cfg->nsuites; i++) {
        wr16(p, cfg->suites[i]);
        wr16(p + 2, (uint16_t)hs->eph[i].publen);
        memcpy(p + 4, hs->eph[i].pub, hs->eph[i].publen);
        p += 4 + hs->eph[i].publen;
    }
    wr32(p, cfg->keepalive_ms);
    p += 4;
    *p++ = ticket ? cfg->psk_mode : PSK_NONE;
    wr16(p, ticket ? ticket->len : 0);
    p += 2;
    if (ticket) {
        memcpy(p, ticket->data, ticket->len);
        p += ticket->len;
    }
    wr32(p, ticket ? (uint32_t)((uint64_t)(now_ms - ticket->received_ms) + ticket->age_add) : 0);
    p += 4;
    *p++ = ticket ? HASH_LEN : 0;
    if (ticket) {
        hs->has_ticket = 1;
        hs->psk_mode = cfg->psk_mode;
        hs->ticket_suite = ticket->suite;
        memcpy(hs->ticket_psk, ticket->psk, HASH_LEN);
        compute_binder(suite_hash(ticket->suite), ticket->psk, body, body_len - 1 - HASH_LEN, p);
    }
    buf_put(&c->out, b->p, b->len);
    c->state = ST_WAIT_SERVER_HELLO;
    return 0;
}

/* --- the server's flight --------------------------------------------------------------------------------- */

static int on_server_hello(kc_conn *c, const uint8_t *frame, size_t flen)
{
    kc_hs *hs = c->hs;
    reader_t r = reader(frame + HEADER_LEN, flen - HEADER_LEN);
    rd_bytes(&r, 32);
    uint16_t suite = rd_u16(&r);
    size_t klen;
    const uint8_t *key_share = rd_var(&r, 2, &klen);
    uint8_t psk_accepted = rd_u8(&r);
    uint32_t keepalive = rd_u32(&r);
    if (r.bad)
        return E_MALFORMED_FRAME;
    int which = -1;
    for (int i = 0; i < c->cfg->nsuites; i++)
        if (c->cfg->suites[i] == suite)
            which = i;
    if (which < 0)
        return E_DOWNGRADE_DETECTED;
    const uint8_t *psk = NULL;
    if (psk_accepted) {
        if (!hs->has_ticket || hs->ticket_suite != suite)
            return E_HANDSHAKE_FAILURE;
        if ((hs->psk_mode == PSK_WITH_ECDHE) != (klen > 0))
            return E_BAD_KEY_SHARE;
        psk = hs->ticket_psk;
    }
    uint8_t shared[32], *shared_p = NULL;
    if (klen || !psk) {
        if (!klen)
            return E_BAD_KEY_SHARE;
        int rc = eph_exchange(&hs->eph[which], key_share, klen, shared);
        if (rc)
            return rc;
        shared_p = shared;
    }
    static const uint8_t zeros[HASH_LEN];
    uint8_t early[HASH_LEN], empty[HASH_LEN], derived[HASH_LEN], hsec[HASH_LEN], th[HASH_LEN], s_hs[HASH_LEN];
    c->suite = suite;
    hs->h = suite_hash(suite);
    hs->tr = EVP_MD_CTX_new();
    EVP_DigestInit_ex(hs->tr, hash_md(hs->h), NULL);
    EVP_DigestUpdate(hs->tr, hs->ch.p, hs->ch.len);
    EVP_DigestUpdate(hs->tr, frame, flen);
    c->resumed = psk != NULL;
    hkdf_extract(hs->h, zeros, HASH_LEN, psk ? psk : zeros, HASH_LEN, early);
    hash_once(hs->h, NULL, 0, empty);
    derive_secret(hs->h, early, "derived", empty, derived);
    hkdf_extract(hs->h, derived, HASH_LEN, shared_p ? shared_p : zeros, HASH_LEN, hsec);
    derive_secret(hs->h, hsec, "derived", empty, derived);
    hkdf_extract(hs->h, derived, HASH_LEN, zeros, HASH_LEN, hs->master);
    transcript_hash(hs, NULL, 0, th);
    derive_secret(hs->h, hsec, "c hs traffic", th, hs->c_hs);
    derive_secret(hs->h, hsec, "s hs traffic", th, s_hs);
    c->recv = dir_new(NULL, s_hs, 0, suite);
    OPENSSL_cleanse(shared, sizeof shared);
    OPENSSL_cleanse(hsec, sizeof hsec);
    if (keepalive < MIN_KEEPALIVE_MS || keepalive > MAX_KEEPALIVE_MS)
        return E_HANDSHAKE_FAILURE;
    c->keepalive_ms = keepalive;
    c->state = ST_WAIT_SERVER_FINISHED;
    return 0;
}

static int check_server_key(kc_conn *c, int key_type, const uint8_t *pub, size_t plen, const uint8_t *sig,
                            size_t slen, const uint8_t covered[HASH_LEN])
{
    uint8_t msg[64 + sizeof SERVER_CONTEXT + HASH_LEN];
    char pin[80];
    if (key_type != suite_key_type(c->suite))
        return E_BAD_SIGNATURE;
    memset(msg, ' ', 64);
    memcpy(msg + 64, SERVER_CONTEXT, sizeof SERVER_CONTEXT); /* with its terminating zero byte */
    memcpy(msg + 64 + sizeof SERVER_CONTEXT, covered, HASH_LEN);
    if (!sig_verify(key_type, pub, plen, sig, slen, msg, sizeof msg))
        return E_BAD_SIGNATURE;
    fingerprint(key_type, pub, plen, pin);
    for (int i = 0; i < c->cfg->npins; i++)
        if (!strcmp(pin, c->cfg->pins[i]))
            return 0;
    return E_SERVER_KEY_NOT_PINNED;
}

static void send_client_finished(kc_conn *c)
{
    kc_hs *hs = c->hs;
    hash_id h = hs->h;
    uint8_t prefix[1 + 255 + 1 + 2 + 2], proof[HASH_LEN], th[HASH_LEN], key[HASH_LEN], mac[HASH_LEN];
    size_t alen = c->resumed ? 0 : hs->alen, n = 0;
    prefix[n++] = (uint8_t)alen;
    memcpy(prefix + n, hs->app_id, alen);
    n += alen;
    prefix[n++] = c->resumed ? 0 : 1; /* RESUMED or APP_SECRET */
    wr16(prefix + n, 0);              /* key_type */
    wr16(prefix + n + 2, 0);          /* public_key: empty */
    n += 4;
    size_t qlen = c->resumed ? 0 : HASH_LEN;
    if (!c->resumed) { /* section 5.5: proof = ClientKey XOR HMAC(Hash(ClientKey), covered_hash) */
        uint8_t prk[HASH_LEN], ck[HASH_LEN], stored[HASH_LEN], sig[HASH_LEN];
        hkdf_extract(h, (const uint8_t *)hs->app_id, hs->alen, hs->secret, 32, prk);
        expand_label(h, prk, "client key", NULL, 0, ck, HASH_LEN);
        hash_once(h, ck, HASH_LEN, stored);
        transcript_hash(hs, prefix, n, th);
        hmac(h, stored, HASH_LEN, th, HASH_LEN, sig);
        for (int i = 0; i < HASH_LEN; i++)
            proof[i] = ck[i] ^ sig[i];
        OPENSSL_cleanse(ck, sizeof ck);
    }
    uint8_t *b = kc_frame_begin(c, FT_CLIENT_FINISHED, 0, 0, n + 2 + qlen + 1 + HASH_LEN), *frame = b - HEADER_LEN;
    memcpy(b, prefix, n);
    wr16(b + n, (uint16_t)qlen);
    memcpy(b + n + 2, proof, qlen);
    expand_label(h, hs->c_hs, "finished", NULL, 0, key, HASH_LEN);
    transcript_hash(hs, b, n + 2 + qlen, th);
    hmac(h, key, HASH_LEN, th, HASH_LEN, mac);
    b[n + 2 + qlen] = HASH_LEN;
    memcpy(b + n + 2 + qlen + 1, mac, HASH_LEN);
    EVP_DigestUpdate(hs->tr, frame, HEADER_LEN + n + 2 + qlen + 1 + HASH_LEN);
}

static int on_server_finished(kc_conn *c, const uint8_t *frame, size_t flen)
{
    kc_hs *hs = c->hs;
    const uint8_t *body = frame + HEADER_LEN;
    reader_t r = reader(body, flen - HEADER_LEN);
    size_t plen, slen, vlen;
    uint16_t key_type = rd_u16(&r);
    const uint8_t *pub = rd_var(&r, 2, &plen);
    size_t signed_len = r.off;
    const uint8_t *sig = rd_var(&r, 2, &slen);
    size_t mac_len = r.off;
    const uint8_t *verify = rd_var(&r, 1, &vlen);
    if (r.bad)
        return E_MALFORMED_FRAME;
    uint8_t th[HASH_LEN], key[HASH_LEN], expected[HASH_LEN], c_ap[HASH_LEN], s_ap[HASH_LEN];
    if (c->resumed) {
        if (key_type || plen || slen)
            return E_HANDSHAKE_FAILURE;
    } else {
        transcript_hash(hs, body, signed_len, th);
        int rc = check_server_key(c, key_type, pub, plen, sig, slen, th);
        if (rc)
            return rc;
    }
    expand_label(hs->h, c->recv->secret, "finished", NULL, 0, key, HASH_LEN);
    transcript_hash(hs, body, mac_len, th);
    hmac(hs->h, key, HASH_LEN, th, HASH_LEN, expected);
    if (vlen != HASH_LEN || CRYPTO_memcmp(expected, verify, HASH_LEN))
        return E_BAD_FINISHED;
    EVP_DigestUpdate(hs->tr, frame, flen);
    transcript_hash(hs, NULL, 0, th);
    derive_secret(hs->h, hs->master, "c ap traffic", th, c_ap);
    derive_secret(hs->h, hs->master, "s ap traffic", th, s_ap);
    c->send = dir_new(NULL, hs->c_hs, 1, c->suite);
    send_client_finished(c);
    kc_flush(c); /* CLIENT_FINISHED alone in its record under c_hs */
    transcript_hash(hs, NULL, 0, th);
    derive_secret(hs->h, hs->master, "res master", th, c->res_secret);
    dir_new(c->send, c_ap, 1, c->suite);
    dir_new(c->recv, s_ap, 0, c->suite);
    OPENSSL_cleanse(c_ap, sizeof c_ap);
    OPENSSL_cleanse(s_ap, sizeof s_ap);
    hs_free(c->hs);
    c->hs = NULL;
    c->state = ST_CONNECTED;
    return 0;
}

static int on_new_ticket(kc_conn *c, const uint8_t *body, size_t len)
{
    reader_t r = reader(body, len);
    size_t nlen, tlen;
    uint32_t lifetime = rd_u32(&r), age_add = rd_u32(&r);
    const uint8_t *nonce = rd_var(&r, 1, &nlen);
    const uint8_t *data = rd_var(&r, 2, &tlen);
    if (r.bad)
        return E_MALFORMED_FRAME;
    if (!lifetime || lifetime > MAX_TICKET_LIFETIME_S || !c->sink || !c->sink->ticket)
        return 0; /* section 5.6: a ticket with an out-of-range lifetime is ignored */
    kc_ticket *t = xmalloc(sizeof *t + tlen);
    t->suite = c->suite;
    t->lifetime_s = lifetime;
    t->age_add = age_add;
    t->received_ms = 0; /* stamped by the sink, which has the clock */
    t->len = (uint16_t)tlen;
    memcpy(t->data, data, tlen);
    expand_label(suite_hash(c->suite), c->res_secret, "resumption", nonce, nlen, t->psk, HASH_LEN);
    c->sink->ticket(c, t);
    return 0;
}

/* --- application frames ---------------------------------------------------------------------------------- */

static int parse_app(kc_frame *f)
{
    reader_t r = reader(f->body.ptr, f->body.len);
    size_t n;
    switch (f->type) {
    case FT_SEND_ACK:
        f->u.ack.cmid = rd_bytes(&r, 16);
        f->u.ack.status = rd_u16(&r);
        f->u.ack.server_msg_id = rd_u64(&r);
        f->u.ack.conversation_id = rd_u64(&r);
        f->u.ack.seq = rd_u64(&r);
        f->u.ack.ts = rd_u64(&r);
        break;
    case FT_DELIVER: {
        f->u.deliver.conversation_id = rd_u64(&r);
        f->u.deliver.seq = rd_u64(&r);
        f->u.deliver.server_msg_id = rd_u64(&r);
        f->u.deliver.ts = rd_u64(&r);
        f->u.deliver.cmid = rd_bytes(&r, 16);
        f->u.deliver.content_type = rd_u16(&r);
        f->u.deliver.sender.ptr = rd_var(&r, 1, &f->u.deliver.sender.len);
        f->u.deliver.body.ptr = rd_var(&r, 4, &f->u.deliver.body.len);
        uint8_t entries = rd_u8(&r);
        for (int i = 0; i < entries && !r.bad; i++) {
            const uint8_t *key = rd_var(&r, 1, &n);
            if (!r.bad && !utf8_valid(key, n))
                return E_MALFORMED_FRAME;
            rd_var(&r, 2, &n);
        }
        if (!r.bad && !utf8_valid(f->u.deliver.sender.ptr, f->u.deliver.sender.len))
            return E_MALFORMED_FRAME;
        break;
    }
    case FT_SYNC_DONE:
        f->u.sync_done.conversation_id = rd_u64(&r);
        f->u.sync_done.last_seq = rd_u64(&r);
        f->u.sync_done.more = rd_u8(&r);
        break;
    case FT_PING:
    case FT_PONG:
        f->u.pong.opaque = rd_u64(&r);
        break;
    case FT_ERROR:
    case FT_CLOSE:
        f->u.error.code = rd_u16(&r);
        f->u.error.reason.ptr = rd_var(&r, 2, &f->u.error.reason.len);
        if (!r.bad && !utf8_valid(f->u.error.reason.ptr, f->u.error.reason.len))
            return E_MALFORMED_FRAME;
        break;
    case FT_GOAWAY:
        f->u.goaway.code = rd_u16(&r);
        f->u.goaway.delay_ms = rd_u32(&r);
        f->u.goaway.backoff_initial_ms = rd_u32(&r);
        f->u.goaway.backoff_max_ms = rd_u32(&r);
        f->u.goaway.jitter = rd_u16(&r);
        rd_var(&r, 2, &n);
        if (!r.bad && !utf8_valid(r.p + r.off - n, n))
            return E_MALFORMED_FRAME;
        break;
    case FT_KEY_UPDATE:
        rd_u8(&r);
        break;
    default:
        break;
    }
    return r.bad ? E_MALFORMED_FRAME : 0;
}

static void on_error_frame(kc_conn *c, const kc_frame *f)
{
    uint16_t code = f->u.error.code;
    int handshake_over = c->state == ST_CONNECTED || c->state == ST_CLOSING;
    if (code_is_fatal(code) || !handshake_over) {
        closed(c, code_known(code) ? code : E_INTERNAL_ERROR, 1, 0);
    } else if (c->sink && c->sink->frame) {
        c->sink->frame(c, f);
    }
}

/* Section 5.9 and the WAIT_SERVER_HELLO row of 7.2: a GOAWAY in place of SERVER_HELLO refuses the handshake for
 * load. Reported with its delay, then the end of the connection with its code (an unknown one as OVERLOADED). */
static void on_refused(kc_conn *c, const kc_frame *f)
{
    uint16_t code = f->u.goaway.code;
    if (c->sink && c->sink->refused)
        c->sink->refused(c, f);
    closed(c, code_known(code) ? code : E_OVERLOADED, 1, 0);
}

static void on_connected_frame(kc_conn *c, kc_frame *f)
{
    if (!c->got_app_frame && f->type != FT_ERROR) {
        c->got_app_frame = 1;
        if (c->sink && c->sink->established)
            c->sink->established(c);
    }
    switch (f->type) {
    case FT_PING:
        if (c->state == ST_CONNECTED)
            wr64(kc_frame_begin(c, FT_PONG, 0, f->request_id, 8), f->u.pong.opaque);
        return;
    case FT_KEY_UPDATE:
        dir_update(c->recv, 0, c->suite);
        if (f->body.ptr[0] && c->state == ST_CONNECTED) {
            static const uint8_t none = 0;
            memcpy(kc_frame_begin(c, FT_KEY_UPDATE, 0, 0, 1), &none, 1);
            kc_flush(c);
            dir_update(c->send, 1, c->suite);
        }
        return;
    case FT_ERROR:
        on_error_frame(c, f);
        return;
    case FT_CLOSE:
        if (!c->sent_close) {
            queue_code_frame(c, FT_CLOSE, 0, "");
            c->sent_close = 1;
            kc_flush(c);
        }
        closed(c, code_known(f->u.error.code) ? f->u.error.code : 0, 1, 1);
        return;
    default:
        if (c->sink && c->sink->frame)
            c->sink->frame(c, f);
    }
}

/* One frame, plaintext or inner: classify, parse, check against the state table, handle. */
static int dispatch(kc_conn *c, const uint8_t *frame, size_t flen, int in_record)
{
    kc_frame f = {.type = frame[5], .flags = rd16(frame + 6), .request_id = rd32(frame + 8),
                  .body = {frame + HEADER_LEN, flen - HEADER_LEN}};
    if (!type_known(f.type))
        return f.type >= 0x80 ? 0 : E_UNKNOWN_FRAME_TYPE; /* ignorable types are skipped */
    if (f.type == FT_NEW_TICKET) {
        if (c->state != ST_CONNECTED && c->state != ST_CLOSING)
            return E_UNEXPECTED_FRAME;
        if (!c->got_app_frame) {
            c->got_app_frame = 1;
            if (c->sink && c->sink->established)
                c->sink->established(c);
        }
        return on_new_ticket(c, f.body.ptr, f.body.len);
    }
    if (f.type == FT_SERVER_HELLO || f.type == FT_SERVER_FINISHED || f.type == FT_CLIENT_HELLO ||
        f.type == FT_CLIENT_FINISHED) {
        if (f.type == FT_SERVER_HELLO && c->state == ST_WAIT_SERVER_HELLO && !in_record)
            return on_server_hello(c, frame, flen);
        if (f.type == FT_SERVER_FINISHED && c->state == ST_WAIT_SERVER_FINISHED && in_record)
            return on_server_finished(c, frame, flen);
        return E_UNEXPECTED_FRAME;
    }
    int rc = parse_app(&f);
    if (rc)
        return rc;
    if (f.type == FT_ERROR) {
        on_error_frame(c, &f);
        return 0;
    }
    if (f.type == FT_GOAWAY && !in_record) { /* dispatch_outer lets it through in WAIT_SERVER_HELLO only */
        on_refused(c, &f);
        return 0;
    }
    int connected = c->state == ST_CONNECTED || c->state == ST_CLOSING;
    int allowed = f.type == FT_SEND_ACK || f.type == FT_DELIVER || f.type == FT_SYNC_DONE || f.type == FT_PING ||
                  f.type == FT_PONG || f.type == FT_GOAWAY || f.type == FT_CLOSE || f.type == FT_KEY_UPDATE ||
                  service_push(f.type);
    if (!connected || !allowed)
        return E_UNEXPECTED_FRAME;
    on_connected_frame(c, &f);
    return 0;
}

/* Check a frame header (section 3.1 steps 1 and 2); 0 if fine. */
static int check_header(const uint8_t *h)
{
    if (h[4] != PROTOCOL_VERSION)
        return E_UNSUPPORTED_VERSION;
    if (rd32(h) > body_limit(h[5]))
        return E_FRAME_TOO_LARGE;
    return 0;
}

static int open_record(kc_conn *c, const uint8_t *frame, size_t flen)
{
    kc_dir *d = c->recv;
    uint8_t nonce[NONCE_LEN];
    if (!d)
        return E_UNEXPECTED_FRAME;
    if (d->seq >= RECORD_LIMIT)
        return E_KEY_LIMIT_EXCEEDED;
    size_t n = flen - HEADER_LEN;
    nonce_for(d, nonce);
    if (n < TAG_LEN || aead_open(&d->a, nonce, frame, HEADER_LEN, frame + HEADER_LEN, n, record_plain))
        return E_BAD_RECORD_MAC;
    n -= TAG_LEN;
    d->seq++;
    d->bytes += n;
    if (d->bytes > BYTE_LIMIT)
        return E_KEY_LIMIT_EXCEEDED;
    if (!n)
        return E_RECORD_FRAGMENT;
    size_t off = 0, count = 0;
    while (off < n) { /* the whole plaintext is split and checked before any frame is handled */
        if (n - off < HEADER_LEN)
            return E_RECORD_FRAGMENT;
        int rc = check_header(record_plain + off);
        if (rc)
            return rc;
        size_t len = HEADER_LEN + rd32(record_plain + off);
        if (n - off < len || record_plain[off + 5] == FT_RECORD)
            return E_RECORD_FRAGMENT;
        off += len;
        count++;
    }
    /* Frames of the plaintext may be handled with the sink queueing frames of its own: those go to `pend`,
     * never into record_plain, and no second record is opened before this one is done. */
    off = 0;
    for (size_t i = 0; i < count; i++) {
        uint8_t type = record_plain[off + 5];
        size_t len = HEADER_LEN + rd32(record_plain + off);
        if ((type == FT_SERVER_FINISHED || type == FT_KEY_UPDATE) && i != count - 1)
            return E_UNEXPECTED_FRAME; /* a key change must end its record */
        int rc = dispatch(c, record_plain + off, len, 1);
        if (rc || c->state == ST_CLOSED)
            return rc;
        off += len;
    }
    return 0;
}

static int dispatch_outer(kc_conn *c, const uint8_t *frame, size_t flen)
{
    uint8_t type = frame[5];
    if (type == FT_RECORD)
        return open_record(c, frame, flen);
    int handshaking = c->state == ST_WAIT_SERVER_HELLO || c->state == ST_WAIT_SERVER_FINISHED;
    if (type == FT_SERVER_HELLO || (type == FT_ERROR && handshaking) ||
        (type == FT_GOAWAY && c->state == ST_WAIT_SERVER_HELLO))
        return dispatch(c, frame, flen, 0);
    return E_UNEXPECTED_FRAME; /* section 7.2: nothing else travels in plaintext */
}

/* Handle the whole frames at the start of p; returns the bytes consumed (the rest is an incomplete frame). */
static size_t parse_stream(kc_conn *c, const uint8_t *p, size_t n)
{
    size_t off = 0;
    while (n - off >= HEADER_LEN && c->state != ST_CLOSED) {
        int rc = check_header(p + off);
        if (rc) {
            kc_fail(c, (uint16_t)rc);
            return n;
        }
        size_t len = HEADER_LEN + rd32(p + off);
        if (n - off < len)
            break;
        rc = dispatch_outer(c, p + off, len);
        off += len;
        if (rc) {
            kc_fail(c, (uint16_t)rc);
            return n;
        }
    }
    return c->state == ST_CLOSED ? n : off;
}

void kc_receive(kc_conn *c, const uint8_t *data, size_t n)
{
    if (c->state == ST_CLOSED)
        return;
    if (!n) {
        if (c->state == ST_CLOSING)
            closed(c, 0, 1, 1);
        else
            closed(c, E_TRUNCATED, 1, 0);
        return;
    }
    if (!c->in.len) {
        size_t used = parse_stream(c, data, n);
        if (used < n && c->state != ST_CLOSED)
            buf_put(&c->in, data + used, n - used);
        return;
    }
    buf_put(&c->in, data, n);
    size_t used = parse_stream(c, c->in.p, c->in.len);
    if (c->state == ST_CLOSED)
        c->in.len = 0;
    else
        buf_consume(&c->in, used);
    if (!c->in.len && c->in.cap > 65536)
        buf_free(&c->in); /* a large frame has passed: give its buffer back */
}
