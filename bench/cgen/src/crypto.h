/* The primitives of the two suites (spec/PROTOCOL.md section 6), on the system's OpenSSL 3.0.
 *
 * national (0x00C6): SM3, SM4-GCM (our own GCM over OpenSSL's SM4-CTR: OpenSSL 3.0 has no SM4-GCM),
 *                    ECDHE on curveSM2 (EC_POINT_mul), SM2-with-SM3 signatures with the RFC 8998 signer ID;
 * international (0x1301): SHA-256, AES-128-GCM, X25519, Ed25519 (all through EVP).
 *
 * A process is single-threaded: the hash and HMAC contexts are per-process scratch objects. */
#ifndef CGEN_CRYPTO_H
#define CGEN_CRYPTO_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#define SUITE_NATIONAL 0x00C6
#define SUITE_INTERNATIONAL 0x1301
#define HASH_LEN 32
#define TAG_LEN 16
#define NONCE_LEN 12
#define KEY_TYPE_SM2 1
#define KEY_TYPE_ED25519 2

typedef enum { H_SM3 = 0, H_SHA256 = 1 } hash_id;

void crypto_init(void);
const EVP_MD *hash_md(hash_id h);
hash_id suite_hash(uint16_t suite);
int suite_known(uint16_t suite);
int suite_key_type(uint16_t suite);
size_t suite_share_len(uint16_t suite);

void hash_once(hash_id h, const uint8_t *data, size_t n, uint8_t out[HASH_LEN]);
void hmac(hash_id h, const uint8_t *key, size_t klen, const uint8_t *msg, size_t mlen, uint8_t out[HASH_LEN]);
void hkdf_extract(hash_id h, const uint8_t *salt, size_t slen, const uint8_t *ikm, size_t ilen,
                  uint8_t out[HASH_LEN]);
/* RFC 5869 HKDF-Expand, any length up to 255 blocks (the key schedule itself needs at most one block). */
int hkdf_expand(hash_id h, const uint8_t *prk, const uint8_t *info, size_t ilen, uint8_t *out, size_t len);
/* HKDF-Expand-Label with the "kefu1 " prefix (section 6.2); len <= 32. */
void expand_label(hash_id h, const uint8_t *secret, const char *label, const uint8_t *ctx, size_t clen,
                  uint8_t *out, size_t len);
/* Derive-Secret with the transcript hash already computed. */
void derive_secret(hash_id h, const uint8_t *secret, const char *label, const uint8_t th[HASH_LEN],
                   uint8_t out[HASH_LEN]);

/* --- AEAD: SM4-GCM or AES-128-GCM, one key --- */
typedef struct ghash_key {
    uint64_t hl[16], hh[16];
} ghash_key;

typedef struct aead {
    EVP_CIPHER_CTX *ctx; /* SM4: SM4-CTR keyed once; AES: AES-128-GCM keyed once */
    ghash_key *gk;       /* SM4 only */
    int sm4;
    int enc;
} aead;

int aead_init(aead *a, int sm4, const uint8_t key[16], int encrypt);
void aead_free(aead *a);
/* out = ciphertext || tag (ptlen + 16 bytes); returns 0 on success */
int aead_seal(aead *a, const uint8_t nonce[NONCE_LEN], const uint8_t *aad, size_t aadlen, const uint8_t *pt,
              size_t ptlen, uint8_t *out);
/* in = ciphertext || tag; out gets inlen - 16 bytes; returns 0 when it authenticates */
int aead_open(aead *a, const uint8_t nonce[NONCE_LEN], const uint8_t *aad, size_t aadlen, const uint8_t *in,
              size_t inlen, uint8_t *out);

/* GCM pieces, exposed for the self-test (GCM over AES-CTR is checked against the NIST AES-GCM vectors) */
void ghash_setup(ghash_key *k, const uint8_t h[16]);
int gcm_over_ctr(const EVP_CIPHER *ctr, const uint8_t *key, const uint8_t *iv, size_t ivlen, const uint8_t *aad,
                 size_t aadlen, const uint8_t *pt, size_t ptlen, uint8_t *ct, uint8_t tag[16]);

/* --- ephemeral key exchange --- */
typedef struct eph_key {
    uint16_t suite;
    uint8_t pub[65];
    size_t publen;
    void *priv; /* BIGNUM (SM2) or EVP_PKEY (X25519) */
} eph_key;

/* fixed: a 32-byte private scalar for reproducible vectors, or NULL for a fresh random key */
int eph_generate(eph_key *k, uint16_t suite, const uint8_t *fixed);
/* returns 0, or the error code BAD_KEY_SHARE (202) */
int eph_exchange(eph_key *k, const uint8_t *peer, size_t plen, uint8_t out[32]);
void eph_free(eph_key *k);

/* --- long-term signatures (server keys) --- */
/* 1 when `sig` is a valid signature of `msg` under (key_type, pub); SM2 uses the RFC 8998 signer ID */
int sig_verify(int key_type, const uint8_t *pub, size_t publen, const uint8_t *sig, size_t siglen,
               const uint8_t *msg, size_t mlen);
/* SM2 verification with another distinguishing id (the self-test's GB/T vector) */
int sm2_verify_id(const uint8_t *pub, size_t publen, const uint8_t *sig, size_t siglen, const uint8_t *msg,
                  size_t mlen, const uint8_t *id, size_t idlen);
/* "sm2:<hex SM3>" or "ed25519:<hex SHA-256>" into out (at least 80 bytes) */
void fingerprint(int key_type, const uint8_t *pub, size_t publen, char *out);

#endif
