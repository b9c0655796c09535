/* $OpenBSD: cipher-chachapoly.h,v 1.4 2014/06/24 01:13:21 djm Exp $ */

/*
 * Copyright (c) Damien Miller 2013 <djm@mindrot.org>
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
#ifndef CHACHA_POLY_AEAD_H
#define CHACHA_POLY_AEAD_H

#include "poly1305.h"

/* Gatehouse patch: ChaCha20 from libcrypto (as OpenSSH's
   cipher-chachapoly-libcrypto.c), not libssh2's portable chacha.c. */
#ifndef LIBSSH2_OPENSSL
#error "this libssh2 copy's chacha20-poly1305 needs the OpenSSL backend"
#endif
#include <openssl/evp.h>
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
/* Poly1305 from libcrypto too (EVP_MAC); before OpenSSL 3, poly1305.c */
#define CHACHAPOLY_EVP_MAC 1
#endif

#define CHACHA_KEYLEN   32 /* Only 256-bit keys used here */

struct chachapoly_ctx {
    EVP_CIPHER_CTX *main_evp, *header_evp;
    /* The header key stream chachapoly_get_length made, and for which
       packet: chachapoly_crypt uses it for that packet's length. */
    unsigned char header_ks[4];
    libssh2_uint64_t header_seqnr;
    int header_seqnr_set;
#ifdef CHACHAPOLY_EVP_MAC
    EVP_MAC *poly;
    EVP_MAC_CTX *poly_ctx;
#endif
};

int chachapoly_init(struct chachapoly_ctx *ctx, const unsigned char *key,
                    size_t keylen);
int chachapoly_crypt(struct chachapoly_ctx *ctx, libssh2_uint64_t seqnr,
                     unsigned char *dest, const unsigned char *src, size_t len,
                     size_t aadlen, int do_encrypt);
void chachapoly_free(struct chachapoly_ctx *ctx);
int chachapoly_get_length(struct chachapoly_ctx *ctx,
                          unsigned int *plenp, libssh2_uint64_t seqnr,
                          const unsigned char *cp, size_t len);

#endif /* CHACHA_POLY_AEAD_H */
