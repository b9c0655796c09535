/*
 * Copyright (c) 2013 Damien Miller <djm@mindrot.org>
 *
 * Adapted by Will Cosgrove <will@panic.com> for libssh2
 *
 * Permission to use, copy, modify, and distribute this software for any
 * purpose with or without fee is hereby granted, provided that the above
 * copyright notice and this permission notice appear in all copies.
 *
 * THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES
 * WITH REGARD TO THIS SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF
 * MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL THE AUTHOR BE LIABLE FOR
 * ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES
 * WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS, WHETHER IN AN
 * ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF
 * OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THIS SOFTWARE.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */

/* $OpenBSD: cipher-chachapoly.c,v 1.8 2016/08/03 05:41:57 djm Exp $ */

#include "libssh2_priv.h"
#include "cipher-chachapoly.h"

static int chachapoly_timingsafe_bcmp(const void *b1, const void *b2, size_t n)
{
    const unsigned char *p1 = b1, *p2 = b2;
    int ret = 0;

    for(; n > 0; n--)
        ret |= *p1++ ^ *p2++;
    return ret != 0;
}

int chachapoly_init(struct chachapoly_ctx *ctx, const unsigned char *key,
                    size_t keylen)
{
    ctx->main_evp = NULL;
    ctx->header_evp = NULL;
    ctx->header_seqnr = 0;
    ctx->header_seqnr_set = 0;
#ifdef CHACHAPOLY_EVP_MAC
    ctx->poly = NULL;
    ctx->poly_ctx = NULL;
#endif
    if(keylen != (32 + 32)) /* 2 x 256-bit keys */
        return LIBSSH2_ERROR_INVAL;
#ifdef CHACHAPOLY_EVP_MAC
    ctx->poly = EVP_MAC_fetch(NULL, "POLY1305", NULL);
    if(!ctx->poly)
        goto fail;
    ctx->poly_ctx = EVP_MAC_CTX_new(ctx->poly);
    if(!ctx->poly_ctx)
        goto fail;
#endif
    ctx->main_evp = EVP_CIPHER_CTX_new();
    ctx->header_evp = EVP_CIPHER_CTX_new();
    if(!ctx->main_evp || !ctx->header_evp)
        goto fail;
    if(EVP_CipherInit_ex(ctx->main_evp, EVP_chacha20(), NULL,
                         key, NULL, 1) != 1)
        goto fail;
    if(EVP_CipherInit_ex(ctx->header_evp, EVP_chacha20(), NULL,
                         key + 32, NULL, 1) != 1)
        goto fail;
    /* libcrypto's ChaCha20 IV: 32-bit block counter || 96-bit nonce */
    if(EVP_CIPHER_CTX_iv_length(ctx->header_evp) != 16)
        goto fail;
    return 0;
fail:
    chachapoly_free(ctx);
    return -1;
}

void chachapoly_free(struct chachapoly_ctx *ctx)
{
    /* EVP_CIPHER_CTX_free clears the key schedule */
    ssh2_explicit_zero(ctx->header_ks, sizeof(ctx->header_ks));
    ctx->header_seqnr_set = 0;
    EVP_CIPHER_CTX_free(ctx->main_evp);
    EVP_CIPHER_CTX_free(ctx->header_evp);
    ctx->main_evp = NULL;
    ctx->header_evp = NULL;
#ifdef CHACHAPOLY_EVP_MAC
    EVP_MAC_CTX_free(ctx->poly_ctx);
    EVP_MAC_free(ctx->poly);
    ctx->poly_ctx = NULL;
    ctx->poly = NULL;
#endif
}

/* The Poly1305 tag of m[0..len) under the one-time key. */
static int chachapoly_tag(struct chachapoly_ctx *ctx,
                          unsigned char tag[POLY1305_TAGLEN],
                          const unsigned char *m, size_t len,
                          const unsigned char key[POLY1305_KEYLEN])
{
#ifdef CHACHAPOLY_EVP_MAC
    size_t outl = 0;

    if(EVP_MAC_init(ctx->poly_ctx, key, POLY1305_KEYLEN, NULL) != 1 ||
       EVP_MAC_update(ctx->poly_ctx, m, len) != 1 ||
       EVP_MAC_final(ctx->poly_ctx, tag, &outl, POLY1305_TAGLEN) != 1 ||
       outl != POLY1305_TAGLEN)
        return -1;
#else
    (void)ctx;
    poly1305_auth(tag, m, len, key);
#endif
    return 0;
}

/* ChaCha20 over len more bytes of the stream `evp` is in. */
static int chachapoly_update(EVP_CIPHER_CTX *evp, unsigned char *dest,
                             const unsigned char *src, size_t len)
{
    int outl = 0;

    if(len > 0x7fffffff)
        return -1;
    if(EVP_CipherUpdate(evp, dest, &outl, src, (int)len) != 1 ||
       outl != (int)len)
        return -1;
    return 0;
}

/* ChaCha20 over len bytes with the IV `iv` (counter || nonce). */
static int chachapoly_stream(EVP_CIPHER_CTX *evp, const unsigned char *iv,
                             unsigned char *dest, const unsigned char *src,
                             size_t len)
{
    if(EVP_CipherInit_ex(evp, NULL, NULL, NULL, iv, 1) != 1)
        return -1;
    return chachapoly_update(evp, dest, src, len);
}

/*
 * chachapoly_crypt() operates as following:
 * En/decrypt with header key 'aadlen' bytes from 'src', storing result
 * to 'dest'. The ciphertext here is treated as additional authenticated
 * data for MAC calculation.
 * En/decrypt 'len' bytes at offset 'aadlen' from 'src' to 'dest'. Use
 * POLY1305_TAGLEN bytes at offset 'len'+'aadlen' as the authentication
 * tag. This tag is written on encryption and verified on decryption.
 */
int chachapoly_crypt(struct chachapoly_ctx *ctx, libssh2_uint64_t seqnr,
                     unsigned char *dest, const unsigned char *src, size_t len,
                     size_t aadlen, int do_encrypt)
{
    /* The IV: a 64-bit little-endian block counter (libcrypto uses its low
       32 bits; an SSH packet never needs more) and the packet sequence
       number, big-endian, as the nonce: the same key stream as the
       original's chacha_ivsetup(seqnr, counter). */
    unsigned char seqbuf[16];
    unsigned char expected_tag[POLY1305_TAGLEN], poly_key[POLY1305_KEYLEN];
    unsigned char block0[64];
    int r = LIBSSH2_ERROR_DECRYPT;  /* fail */
    unsigned char *ptr = NULL;
    size_t i;

    /*
     * Run ChaCha20 once to generate the Poly1305 key. The IV is the
     * packet sequence number. Gatehouse patch: the whole of block 0, so
     * that the same stream goes on at block 1 for the payload below (as a
     * second setup with the counter at 1 would): one IV setup less per
     * packet.
     */
    memset(seqbuf, 0, sizeof(seqbuf));
    ptr = &seqbuf[8];
    ssh2_store_u64(&ptr, seqnr);
    memset(block0, 0, sizeof(block0));
    if(chachapoly_stream(ctx->main_evp, seqbuf, block0, block0,
                         sizeof(block0)))
        goto out;
    memcpy(poly_key, block0, sizeof(poly_key));

    /* If decrypting, check tag before anything else */
    if(!do_encrypt) {
        const unsigned char *tag = src + aadlen + len;

        if(chachapoly_tag(ctx, expected_tag, src, aadlen + len, poly_key))
            goto out;
        if(chachapoly_timingsafe_bcmp(expected_tag, tag, POLY1305_TAGLEN))
            goto out;
    }

    /* Crypt additional data. Gatehouse patch: a packet being decrypted
       had its length read by chachapoly_get_length, which kept that key
       stream: not made twice. */
    if(aadlen == sizeof(ctx->header_ks) && ctx->header_seqnr_set &&
       ctx->header_seqnr == seqnr) {
        for(i = 0; i < aadlen; i++)
            dest[i] = src[i] ^ ctx->header_ks[i];
    }
    else if(aadlen) {
        if(chachapoly_stream(ctx->header_evp, seqbuf, dest, src, aadlen))
            goto out;
    }
    ctx->header_seqnr_set = 0;
    ssh2_explicit_zero(ctx->header_ks, sizeof(ctx->header_ks));

    /* The payload: block 1 on, where block 0's stream left off */
    if(chachapoly_update(ctx->main_evp, dest + aadlen, src + aadlen, len))
        goto out;

    /* If encrypting, calculate and append tag */
    if(do_encrypt) {
        if(chachapoly_tag(ctx, dest + aadlen + len, dest, aadlen + len,
                          poly_key))
            goto out;
    }

    r = LIBSSH2_ERROR_NONE;
out:
    ssh2_explicit_zero(expected_tag, sizeof(expected_tag));
    ssh2_explicit_zero(seqbuf, sizeof(seqbuf));
    ssh2_explicit_zero(poly_key, sizeof(poly_key));
    ssh2_explicit_zero(block0, sizeof(block0));
    return r;
}

/* Decrypt and extract the encrypted packet length */
int chachapoly_get_length(struct chachapoly_ctx *ctx, unsigned int *plenp,
                          libssh2_uint64_t seqnr, const unsigned char *cp,
                          size_t len)
{
    unsigned char buf[4], seqbuf[16];
    unsigned char *ptr = NULL;
    size_t i;

    if(len < 4)
        return -1;  /* fail */
    memset(seqbuf, 0, sizeof(seqbuf));
    ptr = &seqbuf[8];
    ssh2_store_u64(&ptr, seqnr);
    /* Gatehouse patch: the key stream itself, kept for this packet's
       chachapoly_crypt (its additional data is these same 4 bytes). */
    memset(ctx->header_ks, 0, sizeof(ctx->header_ks));
    ctx->header_seqnr_set = 0;
    if(chachapoly_stream(ctx->header_evp, seqbuf, ctx->header_ks,
                         ctx->header_ks, sizeof(ctx->header_ks)))
        return -1;  /* fail */
    ctx->header_seqnr = seqnr;
    ctx->header_seqnr_set = 1;
    for(i = 0; i < sizeof(buf); i++)
        buf[i] = cp[i] ^ ctx->header_ks[i];
    *plenp = ssh2_ntohu32(buf);
    return 0;  /* success */
}
