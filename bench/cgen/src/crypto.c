/* Hashes, HMAC, HKDF, key exchange and signature checks (see crypto.h). The AEADs are in gcm.c. */
#include "crypto.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <openssl/params.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define BLOCK_LEN 64 /* SM3 and SHA-256 hash 64-byte blocks: the HMAC pad length */
#define CODE_BAD_KEY_SHARE 202

static const char SIGNER_ID_RFC8998[] = "TLSv1.3+GM+Cipher+Suite"; /* 23 bytes, section 6.1 */

static EVP_MD *mds[2];
static EVP_MD_CTX *scratch;
static EC_GROUP *sm2_group;
static BN_CTX *bn_ctx;
static BIGNUM *sm2_order_minus_1;

void crypto_init(void)
{
    if (scratch)
        return;
    mds[H_SM3] = EVP_MD_fetch(NULL, "SM3", NULL);
    mds[H_SHA256] = EVP_MD_fetch(NULL, "SHA256", NULL);
    scratch = EVP_MD_CTX_new();
    sm2_group = EC_GROUP_new_by_curve_name(NID_sm2);
    bn_ctx = BN_CTX_new();
    if (!mds[0] || !mds[1] || !scratch || !sm2_group || !bn_ctx)
        die("OpenSSL lacks SM3, SHA-256 or curveSM2");
    sm2_order_minus_1 = BN_dup(EC_GROUP_get0_order(sm2_group));
    BN_sub_word(sm2_order_minus_1, 1);
}

const EVP_MD *hash_md(hash_id h) { return mds[h]; }
hash_id suite_hash(uint16_t suite) { return suite == SUITE_NATIONAL ? H_SM3 : H_SHA256; }
int suite_known(uint16_t suite) { return suite == SUITE_NATIONAL || suite == SUITE_INTERNATIONAL; }
int suite_key_type(uint16_t suite) { return suite == SUITE_NATIONAL ? KEY_TYPE_SM2 : KEY_TYPE_ED25519; }
size_t suite_share_len(uint16_t suite) { return suite == SUITE_NATIONAL ? 65 : 32; }

void hash_once(hash_id h, const uint8_t *data, size_t n, uint8_t out[HASH_LEN])
{
    EVP_DigestInit_ex(scratch, mds[h], NULL);
    EVP_DigestUpdate(scratch, data, n);
    EVP_DigestFinal_ex(scratch, out, NULL);
}

void hmac(hash_id h, const uint8_t *key, size_t klen, const uint8_t *msg, size_t mlen, uint8_t out[HASH_LEN])
{
    uint8_t k0[BLOCK_LEN] = {0}, pad[BLOCK_LEN], inner[HASH_LEN];
    if (klen > BLOCK_LEN)
        hash_once(h, key, klen, k0);
    else if (klen)
        memcpy(k0, key, klen);
    for (int i = 0; i < BLOCK_LEN; i++)
        pad[i] = k0[i] ^ 0x36;
    EVP_DigestInit_ex(scratch, mds[h], NULL);
    EVP_DigestUpdate(scratch, pad, BLOCK_LEN);
    EVP_DigestUpdate(scratch, msg, mlen);
    EVP_DigestFinal_ex(scratch, inner, NULL);
    for (int i = 0; i < BLOCK_LEN; i++)
        pad[i] = k0[i] ^ 0x5c;
    EVP_DigestInit_ex(scratch, mds[h], NULL);
    EVP_DigestUpdate(scratch, pad, BLOCK_LEN);
    EVP_DigestUpdate(scratch, inner, HASH_LEN);
    EVP_DigestFinal_ex(scratch, out, NULL);
}

void hkdf_extract(hash_id h, const uint8_t *salt, size_t slen, const uint8_t *ikm, size_t ilen,
                  uint8_t out[HASH_LEN])
{
    static const uint8_t zeros[HASH_LEN];
    if (!slen) { /* an empty salt means 0^32 (RFC 5869) */
        salt = zeros;
        slen = HASH_LEN;
    }
    hmac(h, salt, slen, ikm, ilen, out);
}

int hkdf_expand(hash_id h, const uint8_t *prk, const uint8_t *info, size_t ilen, uint8_t *out, size_t len)
{
    uint8_t block[HASH_LEN], msg[HASH_LEN + 1024 + 1];
    size_t done = 0, blen = 0;
    if (!len || len > 255 * HASH_LEN || ilen > 1024)
        return -1;
    for (uint8_t counter = 1; done < len; counter++) {
        memcpy(msg, block, blen);
        memcpy(msg + blen, info, ilen);
        msg[blen + ilen] = counter;
        hmac(h, prk, HASH_LEN, msg, blen + ilen + 1, block);
        blen = HASH_LEN;
        size_t take = len - done < HASH_LEN ? len - done : HASH_LEN;
        memcpy(out + done, block, take);
        done += take;
    }
    return 0;
}

void expand_label(hash_id h, const uint8_t *secret, const char *label, const uint8_t *ctx, size_t clen,
                  uint8_t *out, size_t len)
{
    uint8_t info[2 + 1 + 255 + 1 + 255 + 1], t[HASH_LEN];
    size_t llen = strlen(label), n = 0;
    wr16(info, (uint16_t)len);
    info[2] = (uint8_t)(6 + llen);
    memcpy(info + 3, "kefu1 ", 6);
    memcpy(info + 9, label, llen);
    n = 9 + llen;
    info[n++] = (uint8_t)clen;
    memcpy(info + n, ctx, clen);
    n += clen;
    info[n++] = 1; /* one HKDF-Expand block: T(1) = HMAC(secret, info || 0x01) */
    hmac(h, secret, HASH_LEN, info, n, t);
    memcpy(out, t, len);
}

void derive_secret(hash_id h, const uint8_t *secret, const char *label, const uint8_t th[HASH_LEN],
                   uint8_t out[HASH_LEN])
{
    expand_label(h, secret, label, th, HASH_LEN, out, HASH_LEN);
}

/* --- ephemeral keys ------------------------------------------------------------------------------------ */

static int sm2_generate(eph_key *k, const uint8_t *fixed)
{
    BIGNUM *d = BN_secure_new();
    EC_POINT *p = EC_POINT_new(sm2_group);
    int ok = 0;
    if (fixed)
        ok = BN_bin2bn(fixed, 32, d) != NULL;
    else /* 1 <= d <= n-2: draw in [0, n-1) and refuse 0 */
        do
            ok = BN_priv_rand_range(d, sm2_order_minus_1);
        while (ok && BN_is_zero(d));
    BN_set_flags(d, BN_FLG_CONSTTIME);
    ok = ok && EC_POINT_mul(sm2_group, p, d, NULL, NULL, bn_ctx) &&
         EC_POINT_point2oct(sm2_group, p, POINT_CONVERSION_UNCOMPRESSED, k->pub, 65, bn_ctx) == 65;
    EC_POINT_free(p);
    if (!ok) {
        BN_clear_free(d);
        return -1;
    }
    k->publen = 65;
    k->priv = d;
    return 0;
}

static int x25519_generate(eph_key *k, const uint8_t *fixed)
{
    uint8_t raw[32];
    size_t n = 32;
    if (fixed)
        memcpy(raw, fixed, 32);
    else
        random_bytes(raw, 32);
    EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, raw, 32);
    OPENSSL_cleanse(raw, sizeof raw);
    if (!key || !EVP_PKEY_get_raw_public_key(key, k->pub, &n) || n != 32) {
        EVP_PKEY_free(key);
        return -1;
    }
    k->publen = 32;
    k->priv = key;
    return 0;
}

int eph_generate(eph_key *k, uint16_t suite, const uint8_t *fixed)
{
    memset(k, 0, sizeof *k);
    k->suite = suite;
    return suite == SUITE_NATIONAL ? sm2_generate(k, fixed) : x25519_generate(k, fixed);
}

static int sm2_exchange(eph_key *k, const uint8_t *peer, size_t plen, uint8_t out[32])
{
    EC_POINT *q = EC_POINT_new(sm2_group), *r = EC_POINT_new(sm2_group);
    BIGNUM *x = BN_new();
    /* uncompressed only (section 6.1); on the curve and not the point at infinity (cofactor 1) */
    int ok = plen == 65 && peer[0] == 4 && EC_POINT_oct2point(sm2_group, q, peer, plen, bn_ctx) &&
             EC_POINT_is_on_curve(sm2_group, q, bn_ctx) == 1 && !EC_POINT_is_at_infinity(sm2_group, q) &&
             EC_POINT_mul(sm2_group, r, NULL, q, k->priv, bn_ctx) && !EC_POINT_is_at_infinity(sm2_group, r) &&
             EC_POINT_get_affine_coordinates(sm2_group, r, x, NULL, bn_ctx) && BN_bn2binpad(x, out, 32) == 32;
    EC_POINT_free(q);
    EC_POINT_clear_free(r);
    BN_clear_free(x);
    return ok ? 0 : CODE_BAD_KEY_SHARE;
}

static int x25519_exchange(eph_key *k, const uint8_t *peer, size_t plen, uint8_t out[32])
{
    if (plen != 32)
        return CODE_BAD_KEY_SHARE;
    EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, 32);
    EVP_PKEY_CTX *ctx = pk ? EVP_PKEY_CTX_new(k->priv, NULL) : NULL;
    size_t n = 32;
    /* OpenSSL refuses an all-zero result (a low-order peer point), as RFC 7748 section 6.1 asks */
    int ok = ctx && EVP_PKEY_derive_init(ctx) > 0 && EVP_PKEY_derive_set_peer(ctx, pk) > 0 &&
             EVP_PKEY_derive(ctx, out, &n) > 0 && n == 32;
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pk);
    uint8_t any = 0;
    for (int i = 0; ok && i < 32; i++)
        any |= out[i];
    return ok && any ? 0 : CODE_BAD_KEY_SHARE;
}

int eph_exchange(eph_key *k, const uint8_t *peer, size_t plen, uint8_t out[32])
{
    if (!k->priv)
        return CODE_BAD_KEY_SHARE;
    return k->suite == SUITE_NATIONAL ? sm2_exchange(k, peer, plen, out) : x25519_exchange(k, peer, plen, out);
}

void eph_free(eph_key *k)
{
    if (!k->priv)
        return;
    if (k->suite == SUITE_NATIONAL)
        BN_clear_free(k->priv);
    else
        EVP_PKEY_free(k->priv);
    k->priv = NULL;
}

/* --- signatures ---------------------------------------------------------------------------------------- */

/* The server presents the same key in every full handshake: its EVP_PKEY is built once per key type. */
static struct {
    uint8_t pub[65];
    size_t len;
    EVP_PKEY *key;
} key_cache[3];

static EVP_PKEY *sm2_public(const uint8_t *pub, size_t publen)
{
    if (publen != 65 || pub[0] != 4)
        return NULL;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "SM2", NULL);
    EVP_PKEY *key = NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"SM2", 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)pub, publen),
        OSSL_PARAM_construct_end(),
    };
    if (!pc || EVP_PKEY_fromdata_init(pc) <= 0 || EVP_PKEY_fromdata(pc, &key, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        key = NULL;
    EVP_PKEY_CTX_free(pc);
    if (key) { /* fromdata does not check that the point is on the curve */
        EVP_PKEY_CTX *check = EVP_PKEY_CTX_new(key, NULL);
        int good = check && EVP_PKEY_public_check(check) == 1;
        EVP_PKEY_CTX_free(check);
        if (!good) {
            EVP_PKEY_free(key);
            key = NULL;
        }
    }
    return key;
}

static EVP_PKEY *public_key(int key_type, const uint8_t *pub, size_t publen)
{
    if (key_type != KEY_TYPE_SM2 && key_type != KEY_TYPE_ED25519)
        return NULL;
    if (publen > 65)
        return NULL;
    if (key_cache[key_type].key && key_cache[key_type].len == publen &&
        !memcmp(key_cache[key_type].pub, pub, publen))
        return key_cache[key_type].key;
    EVP_PKEY *key = key_type == KEY_TYPE_SM2 ? sm2_public(pub, publen)
                    : publen == 32          ? EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32)
                                            : NULL;
    if (key) {
        EVP_PKEY_free(key_cache[key_type].key);
        key_cache[key_type].key = key;
        memcpy(key_cache[key_type].pub, pub, publen);
        key_cache[key_type].len = publen;
    }
    return key;
}

static int sm2_verify_key(EVP_PKEY *key, const uint8_t *sig, size_t siglen, const uint8_t *msg, size_t mlen,
                          const uint8_t *id, size_t idlen)
{
    if (siglen > 72) /* the longest strict-DER SM2 signature (section 8) */
        return 0;
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new(key, NULL);
    int ok = mctx && pctx && EVP_PKEY_CTX_set1_id(pctx, id, idlen) > 0;
    if (ok) {
        EVP_MD_CTX_set_pkey_ctx(mctx, pctx);
        /* OpenSSL's SM2 verifier re-encodes the DER it parsed and refuses any difference: strict DER */
        ok = EVP_DigestVerifyInit(mctx, NULL, mds[H_SM3], NULL, key) > 0 &&
             EVP_DigestVerify(mctx, sig, siglen, msg, mlen) == 1;
    }
    EVP_MD_CTX_free(mctx);
    EVP_PKEY_CTX_free(pctx);
    return ok;
}

int sm2_verify_id(const uint8_t *pub, size_t publen, const uint8_t *sig, size_t siglen, const uint8_t *msg,
                  size_t mlen, const uint8_t *id, size_t idlen)
{
    EVP_PKEY *key = sm2_public(pub, publen);
    int ok = key && sm2_verify_key(key, sig, siglen, msg, mlen, id, idlen);
    EVP_PKEY_free(key);
    return ok;
}

int sig_verify(int key_type, const uint8_t *pub, size_t publen, const uint8_t *sig, size_t siglen,
               const uint8_t *msg, size_t mlen)
{
    EVP_PKEY *key = public_key(key_type, pub, publen);
    if (!key)
        return 0;
    if (key_type == KEY_TYPE_SM2)
        return sm2_verify_key(key, sig, siglen, msg, mlen, (const uint8_t *)SIGNER_ID_RFC8998,
                              sizeof SIGNER_ID_RFC8998 - 1);
    if (siglen != 64)
        return 0;
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    int ok = mctx && EVP_DigestVerifyInit(mctx, NULL, NULL, NULL, key) > 0 &&
             EVP_DigestVerify(mctx, sig, siglen, msg, mlen) == 1;
    EVP_MD_CTX_free(mctx);
    return ok;
}

void fingerprint(int key_type, const uint8_t *pub, size_t publen, char *out)
{
    uint8_t digest[HASH_LEN];
    const char *prefix = key_type == KEY_TYPE_SM2 ? "sm2:" : "ed25519:";
    hash_once(key_type == KEY_TYPE_SM2 ? H_SM3 : H_SHA256, pub, publen, digest);
    size_t n = strlen(prefix);
    memcpy(out, prefix, n);
    hex_encode(digest, HASH_LEN, out + n);
}
