/* `cgen selftest [SPEC_VECTORS_DIR]`: the primitives and the core against spec/vectors, byte for byte.
 *
 * - crypto-known-answers.json: SM3, HMAC-SM3, HKDF-SHA256, SM4 (ECB, CTR), SM4-GCM (RFC 8998 A.1), our GCM
 *   over AES-CTR against every NIST AES-GCM vector (so the GHASH is checked on 750 more), AES-GCM through EVP,
 *   X25519, and SM2 signature verification (GB/T 32918.5 Annex A, with its distinguishing id);
 * - records.json: key and IV from a traffic secret, records sealed in sequence, a key update;
 * - handshakes.json: the client side of the full and resumed handshakes, replayed: every byte the client
 *   sends must equal the recorded bytes, and the final traffic secrets must match;
 * - negative cases: a tampered tag, a server key that is not pinned, a flipped byte in the server's flight.
 * Prints one JSON object: checks per group and the names of the failures. Exit status 1 if any failed. */
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <stdio.h>
#include <stdlib.h>

#include "json.h"
#include "proto.h"

#define MAXB 4096

static int checks, failures;
static char failed_names[4096];
static struct {
    const char *name;
    int n;
} groups[32];

static void record(const char *group, const char *id, int ok)
{
    int i = 0;
    while (groups[i].name && strcmp(groups[i].name, group))
        i++;
    groups[i].name = group;
    groups[i].n++;
    checks++;
    if (!ok) {
        failures++;
        size_t used = strlen(failed_names);
        snprintf(failed_names + used, sizeof failed_names - used, "%s\"%s\"", used ? "," : "", id);
    }
}

/* hex member -> bytes; returns the length (or -1) */
static int hexm(const jnode *v, const char *key, uint8_t *out, size_t cap)
{
    const char *s = json_str(v, key);
    return s ? hex_decode(s, out, cap) : -1;
}

static int same(const uint8_t *a, int alen, const uint8_t *b, int blen)
{
    return alen >= 0 && alen == blen && !memcmp(a, b, (size_t)alen);
}

/* --- known answers --------------------------------------------------------------------------------------- */

static void check_hash(const jnode *v, int is_hmac)
{
    static uint8_t msg[65536];
    uint8_t key[256], want[32], got[32];
    int mlen = hexm(v, "msg_hex", msg, sizeof msg), wlen = hexm(v, is_hmac ? "mac" : "digest", want, 32);
    if (is_hmac)
        hmac(H_SM3, key, (size_t)hexm(v, "key", key, sizeof key), msg, (size_t)mlen, got);
    else
        hash_once(H_SM3, msg, (size_t)mlen, got);
    record(is_hmac ? "HMAC-SM3" : "SM3", json_str(v, "id"), mlen >= 0 && same(got, 32, want, wlen));
}

static void check_hkdf(const jnode *v)
{
    uint8_t ikm[256], salt[256], info[256], prk[32], okm[256], want_prk[32], want_okm[256];
    int il = hexm(v, "ikm", ikm, 256), sl = hexm(v, "salt", salt, 256), nl = hexm(v, "info", info, 256);
    int L = (int)json_int(v, "L", 0);
    hkdf_extract(H_SHA256, salt, (size_t)(sl < 0 ? 0 : sl), ikm, (size_t)il, prk);
    int ok = hkdf_expand(H_SHA256, prk, info, (size_t)(nl < 0 ? 0 : nl), okm, (size_t)L) == 0;
    ok = ok && same(prk, 32, want_prk, hexm(v, "prk", want_prk, 32)) &&
         same(okm, L, want_okm, hexm(v, "okm", want_okm, sizeof want_okm));
    record("HKDF-SHA256", json_str(v, "id"), ok);
}

static void check_sm4(const jnode *v, const char *mode)
{
    uint8_t key[16], iv[16] = {0}, pt[MAXB], ct[MAXB], got[MAXB];
    int pl = hexm(v, "pt", pt, MAXB), cl = hexm(v, "ct", ct, MAXB), n = 0, m = 0;
    hexm(v, "key", key, 16);
    hexm(v, "iv", iv, 16);
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, mode, NULL);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int ok = c && EVP_EncryptInit_ex(ctx, c, NULL, key, iv) && EVP_CIPHER_CTX_set_padding(ctx, 0) &&
             EVP_EncryptUpdate(ctx, got, &n, pt, pl) && EVP_EncryptFinal_ex(ctx, got + n, &m);
    record(!strcmp(mode, "SM4-ECB") ? "SM4-ECB" : "SM4-CTR", json_str(v, "id"), ok && same(got, n + m, ct, cl));
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(c);
}

/* An AEAD vector both ways through `aead`, and (AES) through our own GCM over AES-CTR. */
static void check_gcm(const jnode *v, int sm4)
{
    static uint8_t pt[MAXB], ct[MAXB], out[MAXB + 16], back[MAXB];
    uint8_t key[32], iv[64], aad[MAXB], tag[16], mytag[16];
    int kl = hexm(v, "key", key, 32), ivl = hexm(v, "iv", iv, 64), al = hexm(v, "aad", aad, MAXB);
    int pl = hexm(v, "pt", pt, MAXB), cl = hexm(v, "ct", ct, MAXB), tl = hexm(v, "tag", tag, 16);
    const char *id = json_str(v, "id");
    if (ivl != 12 || tl != 16 || kl < 0 || al < 0 || pl < 0)
        return; /* the records use 96-bit nonces and full tags only */
    if (!sm4) {
        const char *ctr = kl == 16 ? "AES-128-CTR" : kl == 24 ? "AES-192-CTR" : "AES-256-CTR";
        EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, ctr, NULL);
        int ok = c && !gcm_over_ctr(c, key, iv, 12, aad, (size_t)al, pt, (size_t)pl, out, mytag);
        record("GCM over AES-CTR (NIST AES-GCM)", id, ok && same(out, pl, ct, cl) && same(mytag, 16, tag, 16));
        EVP_CIPHER_free(c);
        if (kl != 16)
            return;
    }
    const char *group = sm4 ? "SM4-GCM" : "AES-128-GCM";
    aead enc = {0}, dec = {0};
    int ok = !aead_init(&enc, sm4, key, 1) && !aead_seal(&enc, iv, aad, (size_t)al, pt, (size_t)pl, out) &&
             same(out, pl, ct, cl) && !memcmp(out + pl, tag, 16);
    ok = ok && !aead_init(&dec, sm4, key, 0) && !aead_open(&dec, iv, aad, (size_t)al, out, (size_t)pl + 16, back) &&
         same(back, pl, pt, pl);
    record(group, id, ok);
    if (ok) { /* a flipped tag bit must not authenticate, and neither must a flipped aad bit */
        out[pl] ^= 1;
        int refused = aead_open(&dec, iv, aad, (size_t)al, out, (size_t)pl + 16, back) != 0;
        out[pl] ^= 1;
        aad[0] ^= 0x80;
        refused = refused && (al == 0 || aead_open(&dec, iv, aad, (size_t)al, out, (size_t)pl + 16, back) != 0);
        record(group, "tampered tag or aad refused", refused);
    }
    aead_free(&enc);
    aead_free(&dec);
}

static void check_x25519(const jnode *v)
{
    uint8_t a[32], b[65], want[32], got[32];
    eph_key k;
    int ok;
    if (json_get(v, "a_priv")) {
        hexm(v, "a_priv", a, 32);
        hexm(v, "b_pub", b, 32);
        ok = !eph_generate(&k, SUITE_INTERNATIONAL, a) && same(k.pub, 32, want, hexm(v, "a_pub", want, 32)) &&
             !eph_exchange(&k, b, 32, got) && same(got, 32, want, hexm(v, "shared", want, 32));
    } else {
        hexm(v, "scalar", a, 32);
        hexm(v, "u", b, 32);
        ok = !eph_generate(&k, SUITE_INTERNATIONAL, a) && !eph_exchange(&k, b, 32, got) &&
             same(got, 32, want, hexm(v, "out", want, 32));
    }
    eph_free(&k);
    record("X25519", json_str(v, "id"), ok);
}

static void check_sm2_sign(const jnode *v)
{
    const char *curve = json_str(v, "curve");
    if (!curve || strcmp(curve, "sm2p256v1"))
        return; /* the example curve of GB/T 32918.2 is not curveSM2 */
    uint8_t pub[65], id[256], msg[1024], rs[64], der[80];
    pub[0] = 4;
    int pl = hexm(v, "pub", pub + 1, 64), il = hexm(v, "uid", id, sizeof id), ml = hexm(v, "msg_hex", msg, 1024);
    hexm(v, "r", rs, 32);
    hexm(v, "s", rs + 32, 32);
    ECDSA_SIG *sig = ECDSA_SIG_new();
    ECDSA_SIG_set0(sig, BN_bin2bn(rs, 32, NULL), BN_bin2bn(rs + 32, 32, NULL));
    uint8_t *p = der;
    int dl = i2d_ECDSA_SIG(sig, &p);
    ECDSA_SIG_free(sig);
    int ok = pl == 64 && sm2_verify_id(pub, 65, der, (size_t)dl, msg, (size_t)ml, id, (size_t)il);
    msg[0] ^= 1;
    int refused = !sm2_verify_id(pub, 65, der, (size_t)dl, msg, (size_t)ml, id, (size_t)il);
    record("SM2-SIGN verify", json_str(v, "id"), ok && refused);
}

static void known_answers(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/crypto-known-answers.json", dir);
    char *text = read_file(path, NULL);
    jnode *root = text ? json_parse(text) : NULL;
    record("files", "crypto-known-answers.json", root != NULL);
    for (jnode *v = root ? json_get(root, "vectors")->child : NULL; v; v = v->next) {
        const char *alg = json_str(v, "alg");
        if (!strcmp(alg, "SM3"))
            check_hash(v, 0);
        else if (!strcmp(alg, "HMAC-SM3"))
            check_hash(v, 1);
        else if (!strcmp(alg, "HKDF-SHA256"))
            check_hkdf(v);
        else if (!strcmp(alg, "SM4-ECB") || !strcmp(alg, "SM4-CTR"))
            check_sm4(v, alg);
        else if (!strcmp(alg, "SM4-GCM"))
            check_gcm(v, 1);
        else if (!strcmp(alg, "AES-GCM"))
            check_gcm(v, 0);
        else if (!strcmp(alg, "X25519") || !strcmp(alg, "X25519-DH"))
            check_x25519(v);
        else if (!strcmp(alg, "SM2-SIGN"))
            check_sm2_sign(v);
    }
    json_free(root);
    free(text);
}

/* --- records ----------------------------------------------------------------------------------------------- */

static const uint8_t M16[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

static void records(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/records.json", dir);
    char *text = read_file(path, NULL);
    jnode *root = text ? json_parse(text) : NULL;
    record("files", "records.json", root != NULL);
    for (jnode *s = root ? json_get(root, "suites")->child : NULL; s; s = s->next) {
        uint16_t suite = (uint16_t)json_int(s, "suite", 0);
        uint8_t secret[32], want[MAXB], pt[MAXB], key[16];
        hexm(s, "secret", secret, 32);
        kc_config cfg = {{suite}, 1};
        kc_conn c;
        kc_init(&c, &cfg, NULL, NULL);
        c.suite = suite;
        c.state = ST_CONNECTED;
        kc_dir *d = c.send = xcalloc(1, sizeof *d);
        kc_dir_install(d, secret, suite);
        expand_label(suite_hash(suite), secret, "key", NULL, 0, key, 16);
        record("key schedule (records.json)", "key and iv", same(key, 16, want, hexm(s, "key", want, 16)) &&
                                                               same(d->iv, 12, want, hexm(s, "iv", want, 12)));
        for (jnode *r = json_get(s, "records")->child; r; r = r->next) {
            int pl = hexm(r, "plaintext", pt, MAXB);
            c.out.len = 0;
            if (json_int(r, "seq", 0) == 1) { /* build this batch with our own frame builders */
                put_send(&c, 0, M16, 42, 1, (const uint8_t *)"hello", 5, NULL, NULL, 0);
                kc_ping(&c, 1);
                record("frames (records.json)", "SEND and PING encoded", same(c.pend.p, (int)c.pend.len, pt, pl));
                c.pend.len = 0;
            }
            buf_put(&c.pend, pt, (size_t)pl);
            kc_flush(&c);
            record("records (records.json)", "sealed record", same(c.out.p, (int)c.out.len, want, hexm(r, "hex", want, MAXB)));
        }
        jnode *ku = json_get(s, "after_key_update");
        uint8_t next[32];
        expand_label(suite_hash(suite), secret, "traffic upd", NULL, 0, next, 32);
        record("key schedule (records.json)", "traffic upd", same(next, 32, want, hexm(ku, "secret", want, 32)));
        kc_dir_install(d, next, suite);
        c.out.len = 0;
        buf_put(&c.pend, pt, (size_t)hexm(ku, "plaintext", pt, MAXB));
        kc_flush(&c);
        record("records (records.json)", "record after key update",
               same(c.out.p, (int)c.out.len, want, hexm(ku, "hex", want, MAXB)));
        kc_free(&c);
    }
    json_free(root);
    free(text);
}

/* --- handshakes -------------------------------------------------------------------------------------------- */

/* What the client reports is checked against the scenario's `final.client_events`, in order: the sink's
 * callbacks walk that list. HandshakeComplete is our `established`, TicketReceived our `ticket`, and every
 * application frame the event named after its type, with the fields the file gives. */
typedef struct {
    const jnode *inputs, *event; /* the next expected client event */
    const char *pins[2];
    kc_ticket *ticket;
    uint8_t sent_cmid[8][16];   /* the client_msg_ids of the SENDs the client sent */
    int nsent, acks, delivers, mismatches, closed_code, established;
    int64_t now_ms;
} replay_state;

static const jnode *next_event(replay_state *rs, const char *name)
{
    const jnode *e = rs->event;
    if (!e || strcmp(json_str(e, "event") ? json_str(e, "event") : "", name)) {
        rs->mismatches++;
        return NULL;
    }
    rs->event = e->next;
    return json_get(e, "fields");
}

static int bool_is(const jnode *obj, const char *key, int want)
{
    const jnode *n = json_get(obj, key);
    return n && n->type == J_BOOL && !n->boolean == !want;
}

static int hex_is(const jnode *obj, const char *key, const uint8_t *p, size_t n)
{
    static uint8_t want[MAXB];
    return same(p, (int)n, want, hexm(obj, key, want, MAXB));
}

static int str_is(const jnode *obj, const char *key, const uint8_t *p, size_t n)
{
    const char *s = json_str(obj, key);
    return s && strlen(s) == n && !memcmp(s, p, n);
}

static void rs_established(kc_conn *c)
{
    replay_state *rs = c->user;
    rs->established++;
    const jnode *f = next_event(rs, "HandshakeComplete");
    const char *app_id = json_str(rs->inputs, "app_id"), *key = json_str(f, "server_key");
    /* a full handshake names the pinned key the server signed with; a resumed one names none */
    int key_ok = key && (c->resumed ? !*key : !strcmp(key, rs->pins[c->suite == SUITE_NATIONAL ? 0 : 1]));
    if (f && !(json_int(f, "suite", -1) == c->suite && bool_is(f, "resumed", c->resumed) && app_id &&
               str_is(f, "app_id", (const uint8_t *)app_id, strlen(app_id)) &&
               json_int(f, "keepalive_ms", -1) == c->keepalive_ms && key_ok))
        rs->mismatches++;
}
static void rs_ticket(kc_conn *c, kc_ticket *t)
{
    replay_state *rs = c->user;
    t->received_ms = rs->now_ms;
    free(rs->ticket);
    rs->ticket = t;
    const jnode *f = next_event(rs, "TicketReceived");
    if (f && !(json_int(f, "suite", -1) == t->suite && hex_is(f, "ticket", t->data, t->len) &&
               hex_is(f, "psk", t->psk, HASH_LEN) && json_int(f, "lifetime_s", -1) == t->lifetime_s &&
               json_int(f, "age_add", -1) == t->age_add))
        rs->mismatches++;
}
static void rs_frame(kc_conn *c, const kc_frame *f)
{
    replay_state *rs = c->user;
    const jnode *e = rs->event, *x = NULL;
    int ok = 0;
    if (f->type == FT_SEND_ACK) {
        x = next_event(rs, "SEND_ACK");
        for (int i = 0; i < rs->nsent; i++)
            if (!memcmp(f->u.ack.cmid, rs->sent_cmid[i], 16)) {
                rs->acks++;
                break;
            }
        ok = x && hex_is(x, "client_msg_id", f->u.ack.cmid, 16) && json_int(x, "status", -1) == f->u.ack.status &&
             json_int(x, "server_msg_id", -1) == (int64_t)f->u.ack.server_msg_id &&
             json_int(x, "conversation_id", -1) == (int64_t)f->u.ack.conversation_id &&
             json_int(x, "seq", -1) == (int64_t)f->u.ack.seq && json_int(x, "timestamp_ms", -1) == (int64_t)f->u.ack.ts;
    } else if (f->type == FT_DELIVER) {
        x = next_event(rs, "DELIVER");
        ok = x && json_int(x, "conversation_id", -1) == (int64_t)f->u.deliver.conversation_id &&
             json_int(x, "seq", -1) == (int64_t)f->u.deliver.seq &&
             json_int(x, "server_msg_id", -1) == (int64_t)f->u.deliver.server_msg_id &&
             json_int(x, "timestamp_ms", -1) == (int64_t)f->u.deliver.ts &&
             hex_is(x, "client_msg_id", f->u.deliver.cmid, 16) &&
             json_int(x, "content_type", -1) == f->u.deliver.content_type &&
             str_is(x, "sender", f->u.deliver.sender.ptr, f->u.deliver.sender.len) &&
             hex_is(x, "body", f->u.deliver.body.ptr, f->u.deliver.body.len);
        rs->delivers += ok;
    } else {
        rs->mismatches++; /* nothing else is in the recorded flights */
        return;
    }
    ok = ok && json_int(e, "request_id", -1) == f->request_id && json_int(e, "flags", -1) == f->flags;
    if (x && !ok)
        rs->mismatches++;
}
static void rs_closed(kc_conn *c, uint16_t code, int by_peer, int clean)
{
    (void)by_peer, (void)clean;
    ((replay_state *)c->user)->closed_code = code ? code : -1;
}
static const kc_sink replay_sink = {rs_established, rs_frame, rs_ticket, rs_closed};

static void server_pins(const jnode *inputs, char pins[2][80])
{
    uint8_t d[32], pub[65];
    hexm(json_get(inputs, "server_private_keys"), "sm2", d, 32);
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_sm2);
    EC_POINT *p = EC_POINT_new(g);
    BIGNUM *bn = BN_bin2bn(d, 32, NULL);
    EC_POINT_mul(g, p, bn, NULL, NULL, NULL);
    EC_POINT_point2oct(g, p, POINT_CONVERSION_UNCOMPRESSED, pub, 65, NULL);
    fingerprint(KEY_TYPE_SM2, pub, 65, pins[0]);
    BN_free(bn);
    EC_POINT_free(p);
    EC_GROUP_free(g);
    hexm(json_get(inputs, "server_private_keys"), "ed25519", d, 32);
    EVP_PKEY *ed = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, d, 32);
    size_t n = 32;
    EVP_PKEY_get_raw_public_key(ed, pub, &n);
    fingerprint(KEY_TYPE_ED25519, pub, 32, pins[1]);
    EVP_PKEY_free(ed);
}

/* The ticket a scenario presents, from its inputs (NULL for a full handshake). */
static kc_ticket *given_ticket(const jnode *sc)
{
    const jnode *g = json_get(json_get(sc, "inputs"), "ticket");
    static uint8_t data[MAXB];
    int n = g ? hexm(g, "ticket", data, MAXB) : -1;
    if (n < 0)
        return NULL;
    kc_ticket *t = xcalloc(1, sizeof *t + (size_t)n);
    t->suite = (uint16_t)json_int(g, "suite", 0);
    t->lifetime_s = (uint32_t)json_int(g, "lifetime_s", 0);
    t->age_add = (uint32_t)json_int(g, "age_add", 0);
    t->received_ms = json_int(g, "received_at_ms", 0);
    hexm(g, "psk", t->psk, HASH_LEN);
    t->len = (uint16_t)n;
    memcpy(t->data, data, (size_t)n);
    return t;
}

static int same_ticket(const kc_ticket *a, const kc_ticket *b)
{
    return a && b && a->suite == b->suite && a->lifetime_s == b->lifetime_s && a->age_add == b->age_add &&
           a->received_ms == b->received_ms && !memcmp(a->psk, b->psk, HASH_LEN) && a->len == b->len &&
           !memcmp(a->data, b->data, a->len);
}

/* What the client's application sends in a step, as the file lists it: a SEND through our own builder (so
 * its encoding is checked too), anything else as recorded. Returns whether each frame queued is the
 * recorded one. */
static int send_step(kc_conn *c, replay_state *rs, const jnode *step)
{
    static uint8_t frame[MAXB], body[MAXB], mv[MAXB];
    int ok = 1;
    for (const jnode *s = json_get(step, "sends") ? json_get(step, "sends")->child : NULL; s; s = s->next) {
        int n = hexm(s, "hex", frame, MAXB);
        if (n < HEADER_LEN) {
            ok = 0;
            continue;
        }
        size_t at = c->pend.len;
        const jnode *f = json_get(s, "fields"), *meta = json_get(f, "metadata");
        const jnode *m = meta ? meta->child : NULL;
        uint8_t cmid[16];
        int bl = hexm(f, "body", body, MAXB), ml = m ? hexm(m, "value", mv, MAXB) : 0;
        if (json_int(s, "type", -1) == FT_SEND && !json_int(s, "flags", 0) && bl >= 0 && ml >= 0 &&
            (!m || (!m->next && json_str(m, "key"))) && hexm(f, "client_msg_id", cmid, 16) == 16) {
            put_send(c, (uint32_t)json_int(s, "request_id", 0), cmid, (uint64_t)json_int(f, "conversation_id", 0),
                     (uint16_t)json_int(f, "content_type", 0), body, (size_t)bl, m ? json_str(m, "key") : NULL, mv,
                     (size_t)ml);
            if (rs->nsent < 8)
                memcpy(rs->sent_cmid[rs->nsent++], cmid, 16);
        } else {
            memcpy(kc_frame_begin(c, frame[5], rd16(frame + 6), rd32(frame + 8), (size_t)n - HEADER_LEN),
                   frame + HEADER_LEN, (size_t)n - HEADER_LEN);
        }
        ok = ok && same(c->pend.p + at, (int)(c->pend.len - at), frame, n);
    }
    return ok;
}

/* mutate: 0 replay as recorded; 1 pin a wrong key (expect 204); 2 flip a byte of the server's record (300).
 * `source` is the ticket the scenario named in `ticket_from` received when it was replayed: it must be the
 * one this scenario's inputs give. Returns the ticket the client received. */
static kc_ticket *replay(const jnode *inputs, const jnode *sc, const kc_ticket *source, int mutate)
{
    static uint8_t want[MAXB], in[MAXB];
    const char *name = json_str(sc, "name");
    uint16_t suite = (uint16_t)json_int(sc, "suite", 0);
    const char *sname = suite == SUITE_NATIONAL ? "national" : "international";
    uint8_t random[32], eph[32], secret[32];
    char pin_store[2][80], *pins[2] = {pin_store[0], pin_store[1]};
    server_pins(inputs, pin_store);
    if (mutate == 1)
        pin_store[suite == SUITE_NATIONAL ? 0 : 1][10] ^= 1;
    hexm(inputs, "client_random", random, 32);
    hexm(json_get(inputs, "client_ephemeral"), sname, eph, 32);
    hexm(inputs, "app_secret", secret, 32);
    jnode *opts = json_get(sc, "options");
    kc_config cfg = {{suite}, 1, pins, 2, (uint32_t)json_int(inputs, "keepalive_ms", 30000),
                     (uint8_t)json_int(opts, "psk_mode", PSK_ONLY), random, {eph}};
    jnode *fin = json_get(sc, "final"), *events = json_get(fin, "client_events");
    replay_state rs = {.inputs = inputs, .event = events ? events->child : NULL, .pins = {pin_store[0], pin_store[1]},
                       .now_ms = json_int(sc, "now_ms", 0)};
    kc_ticket *ticket = given_ticket(sc);
    kc_conn c;
    kc_init(&c, &cfg, &replay_sink, &rs);
    jnode *step = json_get(sc, "steps")->child;
    char label[160];
    snprintf(label, sizeof label, "%s%s", name, mutate == 1 ? " (wrong pin)" : mutate == 2 ? " (tampered)" : "");
    int ok = (!json_str(opts, "ticket_from") || same_ticket(ticket, source)) &&
             !kc_connect(&c, json_str(inputs, "app_id"), secret, ticket, rs.now_ms) &&
             same(c.out.p, (int)c.out.len, want, hexm(step, "hex", want, MAXB));
    record("handshakes (handshakes.json)", label, ok || mutate);
    c.out.len = 0;
    step = step->next;
    int n = hexm(step, "hex", in, MAXB);
    if (mutate == 2 && n > 20)
        in[n - 20] ^= 0x40; /* inside the server's last record: SERVER_FINISHED */
    for (int i = 0; i < n; i++) /* fed a byte at a time: the framing must not care how the stream is cut */
        kc_receive(&c, in + i, 1);
    if (mutate) {
        int want_code = mutate == 1 ? E_SERVER_KEY_NOT_PINNED : E_BAD_RECORD_MAC;
        int plain_error = c.out.len == 16 && c.out.p[5] == FT_ERROR && rd16(c.out.p + 12) == want_code;
        record("handshakes refused", label, rs.closed_code == want_code && plain_error && c.state == ST_CLOSED);
        kc_free(&c);
        free(ticket);
        free(rs.ticket);
        return NULL;
    }
    step = step->next;
    ok = send_step(&c, &rs, step);
    kc_flush(&c);
    record("handshakes (handshakes.json)", label,
           ok && c.state == ST_CONNECTED && same(c.out.p, (int)c.out.len, want, hexm(step, "hex", want, MAXB)));
    step = step->next;
    n = hexm(step, "hex", in, MAXB);
    kc_receive(&c, in, (size_t)n);
    ok = c.state == ST_CONNECTED && rs.nsent > 0 && rs.acks == rs.nsent && rs.delivers >= 1 && !rs.mismatches &&
         !rs.event && rs.ticket && rs.established == 1 &&
         same(c.send->secret, 32, want, hexm(fin, "client_send_secret", want, 32)) &&
         same(c.recv->secret, 32, want, hexm(fin, "server_send_secret", want, 32)) &&
         same(c.res_secret, 32, want, hexm(fin, "resumption_secret", want, 32)) && c.resumed == (ticket != NULL);
    record("handshakes (handshakes.json)", label, ok);
    kc_free(&c);
    free(ticket);
    return rs.ticket;
}

static void handshakes(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/handshakes.json", dir);
    char *text = read_file(path, NULL);
    jnode *root = text ? json_parse(text) : NULL;
    record("files", "handshakes.json", root != NULL);
    jnode *inputs = json_get(root, "inputs");
    struct {
        const char *name;
        kc_ticket *ticket;
    } received[16] = {{0}};
    int nreceived = 0;
    for (jnode *sc = root ? json_get(root, "scenarios")->child : NULL; sc; sc = sc->next) {
        jnode *opts = json_get(sc, "options");
        if (json_get(opts, "client_key"))
            continue; /* CLIENT_KEY authentication: the generator authenticates with app secrets only */
        const char *from = json_str(opts, "ticket_from");
        const kc_ticket *source = NULL;
        for (int i = 0; from && i < nreceived; i++)
            if (!strcmp(received[i].name, from))
                source = received[i].ticket;
        kc_ticket *t = replay(inputs, sc, source, 0);
        if (nreceived < 16 && json_str(sc, "name")) {
            received[nreceived].name = json_str(sc, "name");
            received[nreceived++].ticket = t;
        } else {
            free(t);
        }
        if (!from) {
            replay(inputs, sc, NULL, 1);
            replay(inputs, sc, NULL, 2);
        }
    }
    for (int i = 0; i < nreceived; i++)
        free(received[i].ticket);
    json_free(root);
    free(text);
}

int selftest_main(const char *dir)
{
    crypto_init();
    known_answers(dir);
    records(dir);
    handshakes(dir);
    printf("{\"checks\": %d, \"failed\": [%s], \"groups\": {", checks, failed_names);
    for (int i = 0; groups[i].name; i++)
        printf("%s\"%s\": %d", i ? ", " : "", groups[i].name, groups[i].n);
    printf("}}\n");
    return failures ? 1 : 0;
}
