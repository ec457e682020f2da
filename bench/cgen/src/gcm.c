/* The record AEADs: AES-128-GCM through EVP, and SM4-GCM built here (OpenSSL 3.0 has SM4 but no SM4-GCM).
 *
 * Theory of operation for SM4-GCM (NIST SP 800-38D with a 96-bit IV, RFC 8998):
 *   H  = E(K, 0^128), turned once per key into Shoup's 4-bit multiplication table (256 bytes);
 *   J0 = IV || 0x00000001; the keystream is SM4-CTR from J0, whose first block E(K, J0) masks the tag and
 *   whose following blocks (J0+1, J0+2, ...) encrypt the plaintext. OpenSSL's CTR increments all 128 bits
 *   while GCM's inc32 wraps the low 32: they agree because a record has at most 2^16 blocks.
 *   tag = GHASH_H(A || pad || C || pad || [len(A)]64 || [len(C)]64) XOR E(K, J0).
 * One EVP SM4-CTR context per key is re-armed with each record's J0 (no re-keying). */
#include <openssl/crypto.h>
#include <string.h>

#include "crypto.h"
#include "util.h"

static const uint64_t last4[16] = {0x0000, 0x1c20, 0x3840, 0x2460, 0x7080, 0x6ca0, 0x48c0, 0x54e0,
                                   0xe100, 0xfd20, 0xd940, 0xc560, 0x9180, 0x8da0, 0xa9c0, 0xb5e0};

void ghash_setup(ghash_key *k, const uint8_t h[16])
{
    uint64_t vh = rd64(h), vl = rd64(h + 8);
    k->hl[8] = vl;
    k->hh[8] = vh;
    k->hh[0] = k->hl[0] = 0;
    for (int i = 4; i > 0; i >>= 1) {
        uint64_t t = (vl & 1) * 0xe1000000ULL;
        vl = (vh << 63) | (vl >> 1);
        vh = (vh >> 1) ^ (t << 32);
        k->hl[i] = vl;
        k->hh[i] = vh;
    }
    for (int i = 2; i <= 8; i *= 2) {
        vh = k->hh[i];
        vl = k->hl[i];
        for (int j = 1; j < i; j++) {
            k->hh[i + j] = vh ^ k->hh[j];
            k->hl[i + j] = vl ^ k->hl[j];
        }
    }
}

/* x = x * H in GF(2^128) */
static void ghash_mult(const ghash_key *k, uint8_t x[16])
{
    uint8_t lo = x[15] & 0xf, hi, rem;
    uint64_t zh = k->hh[lo], zl = k->hl[lo];
    for (int i = 15; i >= 0; i--) {
        lo = x[i] & 0xf;
        hi = (x[i] >> 4) & 0xf;
        if (i != 15) {
            rem = (uint8_t)(zl & 0xf);
            zl = (zh << 60) | (zl >> 4);
            zh = (zh >> 4) ^ (last4[rem] << 48) ^ k->hh[lo];
            zl ^= k->hl[lo];
        }
        rem = (uint8_t)(zl & 0xf);
        zl = (zh << 60) | (zl >> 4);
        zh = (zh >> 4) ^ (last4[rem] << 48) ^ k->hh[hi];
        zl ^= k->hl[hi];
    }
    wr64(x, zh);
    wr64(x + 8, zl);
}

static void ghash_update(const ghash_key *k, uint8_t y[16], const uint8_t *data, size_t n)
{
    while (n >= 16) {
        for (int i = 0; i < 16; i++)
            y[i] ^= data[i];
        ghash_mult(k, y);
        data += 16;
        n -= 16;
    }
    if (n) {
        for (size_t i = 0; i < n; i++)
            y[i] ^= data[i];
        ghash_mult(k, y);
    }
}

static void ghash_tag(const ghash_key *k, const uint8_t *aad, size_t aadlen, const uint8_t *ct, size_t ctlen,
                      const uint8_t ej0[16], uint8_t tag[16])
{
    uint8_t y[16] = {0}, lens[16];
    ghash_update(k, y, aad, aadlen);
    ghash_update(k, y, ct, ctlen);
    wr64(lens, (uint64_t)aadlen * 8);
    wr64(lens + 8, (uint64_t)ctlen * 8);
    ghash_update(k, y, lens, 16);
    for (int i = 0; i < 16; i++)
        tag[i] = y[i] ^ ej0[i];
}

/* Arm the CTR context at J0 and return E(K, J0); the context then continues at J0 + 1. */
static int ctr_start(EVP_CIPHER_CTX *ctx, const uint8_t j0[16], uint8_t ej0[16])
{
    static const uint8_t zero[16];
    int n;
    return EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, j0) && EVP_EncryptUpdate(ctx, ej0, &n, zero, 16) && n == 16
               ? 0
               : -1;
}

static int ctr_xor(EVP_CIPHER_CTX *ctx, const uint8_t *in, size_t n, uint8_t *out)
{
    int m;
    if (!n)
        return 0;
    return EVP_EncryptUpdate(ctx, out, &m, in, (int)n) && (size_t)m == n ? 0 : -1;
}

int gcm_over_ctr(const EVP_CIPHER *ctr, const uint8_t *key, const uint8_t *iv, size_t ivlen, const uint8_t *aad,
                 size_t aadlen, const uint8_t *pt, size_t ptlen, uint8_t *ct, uint8_t tag[16])
{
    static const uint8_t zero[16];
    uint8_t h[16], j0[16] = {0}, ej0[16];
    ghash_key gk;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int rc = -1;
    if (ivlen != NONCE_LEN || !ctx || !EVP_EncryptInit_ex(ctx, ctr, NULL, key, zero))
        goto out;
    if (ctr_xor(ctx, zero, 16, h))
        goto out;
    ghash_setup(&gk, h);
    memcpy(j0, iv, NONCE_LEN);
    j0[15] = 1;
    if (ctr_start(ctx, j0, ej0) || ctr_xor(ctx, pt, ptlen, ct))
        goto out;
    ghash_tag(&gk, aad, aadlen, ct, ptlen, ej0, tag);
    rc = 0;
out:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

/* --- one AEAD key ---------------------------------------------------------------------------------------- */

static EVP_CIPHER *sm4_ctr, *aes_gcm;

int aead_init(aead *a, int sm4, const uint8_t key[16], int encrypt)
{
    static const uint8_t zero[16];
    memset(a, 0, sizeof *a);
    if (!sm4_ctr) {
        sm4_ctr = EVP_CIPHER_fetch(NULL, "SM4-CTR", NULL);
        aes_gcm = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
        if (!sm4_ctr || !aes_gcm)
            die("OpenSSL lacks SM4-CTR or AES-128-GCM");
    }
    a->sm4 = sm4;
    a->enc = encrypt;
    a->ctx = EVP_CIPHER_CTX_new();
    if (!a->ctx)
        return -1;
    if (!sm4) {
        int ok = encrypt ? EVP_EncryptInit_ex(a->ctx, aes_gcm, NULL, key, NULL)
                         : EVP_DecryptInit_ex(a->ctx, aes_gcm, NULL, key, NULL);
        return ok ? 0 : -1;
    }
    uint8_t h[16];
    a->gk = xmalloc(sizeof *a->gk);
    if (!EVP_EncryptInit_ex(a->ctx, sm4_ctr, NULL, key, zero) || ctr_xor(a->ctx, zero, 16, h))
        return -1;
    ghash_setup(a->gk, h);
    OPENSSL_cleanse(h, sizeof h);
    return 0;
}

void aead_free(aead *a)
{
    EVP_CIPHER_CTX_free(a->ctx);
    if (a->gk)
        OPENSSL_cleanse(a->gk, sizeof *a->gk);
    free(a->gk);
    memset(a, 0, sizeof *a);
}

int aead_seal(aead *a, const uint8_t nonce[NONCE_LEN], const uint8_t *aad, size_t aadlen, const uint8_t *pt,
              size_t ptlen, uint8_t *out)
{
    int n;
    if (!a->sm4) {
        return EVP_EncryptInit_ex(a->ctx, NULL, NULL, NULL, nonce) &&
                       EVP_EncryptUpdate(a->ctx, NULL, &n, aad, (int)aadlen) &&
                       (ptlen == 0 || EVP_EncryptUpdate(a->ctx, out, &n, pt, (int)ptlen)) &&
                       EVP_EncryptFinal_ex(a->ctx, out + ptlen, &n) &&
                       EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, out + ptlen)
                   ? 0
                   : -1;
    }
    uint8_t j0[16] = {0}, ej0[16];
    memcpy(j0, nonce, NONCE_LEN);
    j0[15] = 1;
    if (ctr_start(a->ctx, j0, ej0) || ctr_xor(a->ctx, pt, ptlen, out))
        return -1;
    ghash_tag(a->gk, aad, aadlen, out, ptlen, ej0, out + ptlen);
    return 0;
}

int aead_open(aead *a, const uint8_t nonce[NONCE_LEN], const uint8_t *aad, size_t aadlen, const uint8_t *in,
              size_t inlen, uint8_t *out)
{
    int n;
    if (inlen < TAG_LEN)
        return -1;
    size_t ctlen = inlen - TAG_LEN;
    if (!a->sm4) {
        return EVP_DecryptInit_ex(a->ctx, NULL, NULL, NULL, nonce) &&
                       EVP_DecryptUpdate(a->ctx, NULL, &n, aad, (int)aadlen) &&
                       (ctlen == 0 || EVP_DecryptUpdate(a->ctx, out, &n, in, (int)ctlen)) &&
                       EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, (void *)(in + ctlen)) &&
                       EVP_DecryptFinal_ex(a->ctx, out + ctlen, &n) > 0
                   ? 0
                   : -1;
    }
    uint8_t j0[16] = {0}, ej0[16], tag[16];
    memcpy(j0, nonce, NONCE_LEN);
    j0[15] = 1;
    if (ctr_start(a->ctx, j0, ej0))
        return -1;
    ghash_tag(a->gk, aad, aadlen, in, ctlen, ej0, tag);
    if (CRYPTO_memcmp(tag, in + ctlen, TAG_LEN)) /* authenticate before decrypting anything */
        return -1;
    return ctr_xor(a->ctx, in, ctlen, out);
}
