/*
 * fuzz_jws.c
 *		libFuzzer target over the server-independent layers of the jwt
 *		extension: src/base64url.c and src/jws.c.
 *
 * One input is read in several ways at once, so that a seed of any kind (a
 * compact JWS, a DER or raw ECDSA signature, a base64url string, an
 * algorithm name) drives every harness:
 *
 *	1. base64url: the whole input and, if it has two dots, its three
 *	   segments are decoded strictly and encoded, against a reference model
 *	   of what the strict decoder must accept; decode->encode gives back the
 *	   text and encode->decode the bytes.
 *	2. jws_alg_find on the whole input, on the first segment and on the
 *	   "alg" value of a header that decodes.
 *	3. ECDSA R||S <-> DER for ES256/384/512: raw->DER->raw round-trips, and a
 *	   canonical DER with r and s in range comes back byte for byte.
 *	4. jws_verify with every algorithm of the table and the keys below:
 *	   "raw" (two bytes of big-endian signature length, the signature, then
 *	   the message; every key, including those no algorithm may use) and,
 *	   when the input has two dots, "compact" (the third segment
 *	   base64url-decoded and verified over "header.payload", with the keys
 *	   that fit).  The result is compared with a reference verifier that
 *	   takes another path through OpenSSL (hash, then EVP_PKEY_verify).
 *	5. A token signed with jws_sign in LLVMFuzzerInitialize, chosen by the
 *	   first byte and edited by the rest of the input: it must verify if and
 *	   only if the edits left it unchanged.
 *
 * A violated invariant prints what broke and calls abort(); libFuzzer
 * reports that as a crash and saves the input.
 *
 * The keys are TEST KEYS ONLY, generated for this file with "openssl
 * genpkey" (two crafted public keys besides, described where they are) and
 * embedded so the binary needs no files at run time.
 * make_corpus.sh reads them back out of this file to sign its seed tokens
 * with the openssl command line tool, so the seeds do not come from the code
 * under test.  If you replace them keep the layout: "static const char
 * pem_NAME[] =", then one "...\n" string per PEM line.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "base64url.h"
#include "jws.h"

/* ------------------------------------------------------------------------
 * Test keys (private, PKCS#8).  TEST KEYS ONLY: they are public.
 * ------------------------------------------------------------------------
 */

static const char pem_rsa[] =
"-----BEGIN PRIVATE KEY-----\n"
"MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCPZsaRZGA94fzq\n"
"IcmPMsumVeclDFDNWizIoY/M2zFlCS0dEvPaLu652+EE/9u8Vo2z/rvba5w8DRqc\n"
"6Al9UUqZO48+SR69W5YptN2++e4FEpvf4i95CqqDu7SsQFKQ3AZ+Hp/BNl7MQaoQ\n"
"Nbosg31nTMxtjZS1YIbAaXvWTRhPPV8AoBedd5V7BfhLWQ3qVl40oJZEpoe7hC8i\n"
"552GFHYmVThOQw88lBWYrXbs0lF3Xo+IxzCxDDpBzqQJU6XybMVN2WpbQJb6GXxv\n"
"qXvE5O+K0gONkAEpUTnJkQcE5Mu7RHowU/9PLoVvgISbCPeNPQ+v+T32gbC2yGeM\n"
"nWSmC4OBAgMBAAECggEAPi0KOJ0Ea6ByGBQZQBj+mrrRU0txN3B7TWxbnK+HTa76\n"
"XApNJ9NEl9phyNik7ha7Lwlqa1tPrOvjl5e2EZtvFFxyIcfzZ5fv1lqA8N6N2K42\n"
"Xo7EFZ/NyftXfX4QLpXvzLw7eTs5RCfOdGPPOqCyfVkbo/6ItVHKa1/xHTxlJ2mm\n"
"/wb8puM2lPn5hZjQTrpDpYf2KbcVj9y4BtlRJjXj+6xpIur3As8aVWmwq0xOPTZC\n"
"RgpTfaSQT7TXkX0LDFUUMiY72Fo2YYmfwiZYw4owdFW7ARudvT2WK67pWlMU6c9c\n"
"7PcpYWzoi8Eq5YfjA9EGP2DrFvyAf/cTj1/Jot2gfwKBgQDCA1BXaZllE8IV6ZSK\n"
"QF0G3fEhWBY1mtbvNP58T6CM1dtQShg6CFWdV+U5NgM1Zmjxy6I3uoCmMos8lhTf\n"
"PHFVZIzk9vJ+9zZwQ2bslq/QtITvWjRtcr3XyYo2T+rHDIhKyhFiWRec7S7w6EMF\n"
"tGFFtCufhQPawtLIRhOsJjnZvwKBgQC9N9puikasVO99rmj8jZgu1KspgJK5SHjj\n"
"soc0YSRxvC+udnc44i//7lR/4vREghwvPkNOXHqdUGll1aWXz21rvz2AuWssXFkP\n"
"ezX832VOWMQDz1UVMJIHGYRvK+u2zuwgFLaDUN9MpiRF4mXLQScfgi2Npq5L0x/3\n"
"DDyMTtVyvwKBgA4xI91hEiF8soPb1EvQrX1lGtBvmyBMtVBGNh9ty7bBpgtXgDIu\n"
"jeS2m0P2GYH8fczCMpmVAPgnVlwWNmymBTxT4KKXFeIHv2my5IKF+1JvAhJoLNGc\n"
"xRpV2dBjRC9PUWD3KxJgpgOKrhZdRxnRuhPZPB+tIT0NZ1HTHnlHSpANAoGAeGzJ\n"
"ujyLCjbsTULpUoMTbgqv/LP1rbJwLgp7flytAy3P8us2qZ9bCTm30cSxzcA5C+BG\n"
"meLFrsV0rvkwcNP1QfPuwrQ/f3YuwGmcTJopMZnQ9tPHxLqq1ZXp8Y80b552LVzB\n"
"ZAXeeDvtLgUO4DNRIP6K23JPz7ZIy8Sf7HRn6KUCgYEArpvBctEyjjAG+cV6uU3Q\n"
"gKXFv3E0huecr71frStnplunznOnEi6PSxN0eB8l5fDv/mchkzmxKGaXbtvbz66a\n"
"WQDHkYXnOF2ATxzgo5NQSdywxjrHEHjWyH/Q+SCdWjMtE3r3ChpBozGyTEEEfvpA\n"
"4Zwl9FORH9inPytOlZvdjCw=\n"
"-----END PRIVATE KEY-----\n";

static const char pem_ec256[] =
"-----BEGIN PRIVATE KEY-----\n"
"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg6g3oMUAgPqt7fttG\n"
"d2rfNN0pPn8YjwWJNcAK0m4arJShRANCAASzoOTNwW0b+IirzHdJE7kG3u1PuuY0\n"
"eL8EvwewfcVxBwtmvlsXdIW8JjNJLvAIHk0ZBkFyNanZxcEYomSZMk7k\n"
"-----END PRIVATE KEY-----\n";

static const char pem_ec384[] =
"-----BEGIN PRIVATE KEY-----\n"
"MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDClV+22/04lK7R3RULk\n"
"0Tx7+GhMw4eO4NOVLrvOsTxFlYZ+p1ZQN8e6wvhEU3Ra8FehZANiAAQL83NgKu8U\n"
"nw6rkgTeahfiScTl+PyNT3rE8HoXBnnfjdPUkfnAt8IIcHIdrFO6rP2cmSRBLntD\n"
"7if5blWR4ysdecoOMaxOaRg/nDL7WN4hvGJ5NAcZ73v7+I1X5voLKW4=\n"
"-----END PRIVATE KEY-----\n";

static const char pem_ec521[] =
"-----BEGIN PRIVATE KEY-----\n"
"MIHuAgEAMBAGByqGSM49AgEGBSuBBAAjBIHWMIHTAgEBBEIATSy855MRp7ZOqR8V\n"
"JLeZNgQiKQVtJpIxJt+vWdGvKcanD/lYwgVrU/tIYpDycHyMmjHmwG1F26FI9zPc\n"
"pbNkC7ShgYkDgYYABABqGZrJL3d7e+SJIJ5Dg5epQI4g81rpfUre2vc7Yg+Bh/tQ\n"
"695Ajdt0Qf/Sba28SSgfHy4IP6loaKYlnDLS6vhxMwEla4agc1Qs+GrlZv6GPIJH\n"
"1f47xXEIYNksDwRKh5hivl8ILZ9V3LpMwxdD5dyq9sjz64nGZuASvs25PgmA3lPO\n"
"DQ==\n"
"-----END PRIVATE KEY-----\n";

static const char pem_ed25519[] =
"-----BEGIN PRIVATE KEY-----\n"
"MC4CAQAwBQYDK2VwBCIEIHl7PGHWy8L4zwZCBjG1FcQb1Ybom5fZhe9HpA7hDmL9\n"
"-----END PRIVATE KEY-----\n";

static const char pem_ed448[] =
"-----BEGIN PRIVATE KEY-----\n"
"MEcCAQAwBQYDK2VxBDsEOT97nPtrH7ejEUDvM4tqBlAO/RKrKJb4Orf9tlB8jlkb\n"
"8GImFqCUyQgHsql8nteAuR64tjzUrOa1JQ==\n"
"-----END PRIVATE KEY-----\n";

/*
 * Public keys that no algorithm may use, beyond those generated at start-up:
 * P-256 written with explicit parameters but generator 2G instead of G (the
 * "CurveBall" shape: OpenSSL must not call it prime256v1), and the RSA key
 * above with public exponent 1.
 */
static const char pem_ec256_other_g_pub[] =
"-----BEGIN PUBLIC KEY-----\n"
"MIIBMzCB7AYHKoZIzj0CATCB4AIBATAsBgcqhkjOPQEBAiEA/////wAAAAEAAAAA\n"
"AAAAAAAAAAD///////////////8wRAQg/////wAAAAEAAAAAAAAAAAAAAAD/////\n"
"//////////wEIFrGNdiqOpPns+u9VXaYhrxlHQawzFOw9jvOPD4n0mBLBEEEfPJ7\n"
"GI0DT36KUjgDBLUaw8CJaeJ38hs1pgtI/EdmmXgHd1UQ247QQCk9msafdDDbun2t\n"
"5jzpgimeBLedInhz0QIhAP////8AAAAA//////////+85vqtpxeehPO5ysL8YyVR\n"
"AgEBA0IABLAaFyp2pGAsktMkLLiX3eMCTHQN67IVtMawquk8IpGp6FwQdDI32tVv\n"
"7A4t+6cDeRwA93Acfha9/XxIU4/Hf+I=\n"
"-----END PUBLIC KEY-----\n";

static const char pem_rsa_e1_pub[] =
"-----BEGIN PUBLIC KEY-----\n"
"MIIBIDANBgkqhkiG9w0BAQEFAAOCAQ0AMIIBCAKCAQEAj2bGkWRgPeH86iHJjzLL\n"
"plXnJQxQzVosyKGPzNsxZQktHRLz2i7uudvhBP/bvFaNs/6722ucPA0anOgJfVFK\n"
"mTuPPkkevVuWKbTdvvnuBRKb3+IveQqqg7u0rEBSkNwGfh6fwTZezEGqEDW6LIN9\n"
"Z0zMbY2UtWCGwGl71k0YTz1fAKAXnXeVewX4S1kN6lZeNKCWRKaHu4QvIuedhhR2\n"
"JlU4TkMPPJQVmK127NJRd16PiMcwsQw6Qc6kCVOl8mzFTdlqW0CW+hl8b6l7xOTv\n"
"itIDjZABKVE5yZEHBOTLu0R6MFP/Ty6Fb4CEmwj3jT0Pr/k99oGwtshnjJ1kpguD\n"
"gQIBAQ==\n"
"-----END PUBLIC KEY-----\n";

static const char hmac_secret_hex[] =
"d887be531c40bc96dc24ed31e4557987b1d2cb6e95351bc09acf91c31ced5f44";

/* ------------------------------------------------------------------------
 * Invariant checking
 * ------------------------------------------------------------------------
 */

static void fail(const char *file, int line, const char *cond,
				 const char *fmt,...)
			__attribute__((noreturn, format(printf, 4, 5)));

/*
 * Report a violated invariant and abort(), so that libFuzzer saves the input
 * as crash-*.  The OpenSSL error queue is printed too: it usually says why.
 */
static void
fail(const char *file, int line, const char *cond, const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "\nfuzz_jws: invariant violated at %s:%d: %s\n",
			file, line, cond);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	ERR_print_errors_fp(stderr);
	abort();
}

#define CHECK(cond, ...) \
	do { \
		if (!(cond)) \
			fail(__FILE__, __LINE__, #cond, __VA_ARGS__); \
	} while (0)

static const char *
st_name(JwsStatus st)
{
	switch (st)
	{
		case JWS_OK:
			return "JWS_OK";
		case JWS_BAD_SIGNATURE:
			return "JWS_BAD_SIGNATURE";
		case JWS_BAD_SIGNATURE_FORMAT:
			return "JWS_BAD_SIGNATURE_FORMAT";
		case JWS_KEY_TYPE_MISMATCH:
			return "JWS_KEY_TYPE_MISMATCH";
		case JWS_KEY_WEAK:
			return "JWS_KEY_WEAK";
		case JWS_CRYPTO_ERROR:
			return "JWS_CRYPTO_ERROR";
	}
	return "(not a JwsStatus)";
}

/*
 * Copy into a heap block of exactly len bytes.  libFuzzer's own buffer only
 * has a redzone after the whole input; a segment in the middle of it would
 * let an over-read go unnoticed.
 */
static unsigned char *
dup_exact(const void *src, size_t len)
{
	unsigned char *p = malloc(len);

	if (p == NULL)
		abort();
	if (len > 0)
		memcpy(p, src, len);
	return p;
}

static void *
xmalloc(size_t len)
{
	void	   *p = malloc(len);

	if (p == NULL)
		abort();
	return p;
}

/*
 * The jws layer promises to leave no OpenSSL error behind (its callers in
 * the server would otherwise report a stale error later).  Every call into
 * it is bracketed by ERR_clear_error() before and this check after.
 */
#define CHECK_ERR_CLEAN(what) \
	CHECK(ERR_peek_error() == 0, "%s left an OpenSSL error queued", (what))

/* ------------------------------------------------------------------------
 * Keys and algorithms
 * ------------------------------------------------------------------------
 */

enum
{
	K_SECRET,					/* the HMAC secret */
	K_RSA,
	K_EC256,
	K_EC384,
	K_EC521,
	K_ED25519,
	K_ED448,
	/* keys that no algorithm may use */
	K_EMPTY_SECRET,
	K_RSA1024,
	K_RSA_E1,
	K_SECP256K1,
	K_EC256_OTHER_G,
	K_X25519,
	N_KEYS
};

static const char *const key_names[N_KEYS] = {
	"secret", "rsa2048", "P-256", "P-384", "P-521", "Ed25519", "Ed448",
	"empty secret", "rsa1024", "rsa e=1", "secp256k1", "P-256 with G=2G",
	"X25519"
};

#define MAX_ALGS 16

static unsigned char hmac_secret[32];
static const unsigned char empty_secret[1] = {0};
static JwsKey vkeys[N_KEYS];	/* verification: public halves */
static EVP_PKEY *skeys[N_KEYS]; /* signing: private keys, K_RSA..K_ED448 */
static int	n_algs;
static const JwsAlg *algs[MAX_ALGS];
static JwsStatus fit[MAX_ALGS][N_KEYS]; /* what jws_key_fits must say */

/*
 * Per ECDSA algorithm, written down here rather than taken from the
 * JwsAlg, so that a wrong table entry shows up as a disagreement.
 */
typedef struct EcInfo
{
	const char *alg;
	int			nid;
	int			coord_len;
	int			key;
	BIGNUM	   *order;			/* from OpenSSL's own group */
} EcInfo;

static EcInfo ec_info[] = {
	{"ES256", NID_X9_62_prime256v1, 32, K_EC256, NULL},
	{"ES384", NID_secp384r1, 48, K_EC384, NULL},
	{"ES512", NID_secp521r1, 66, K_EC521, NULL},
};

#define N_EC ((int) (sizeof(ec_info) / sizeof(ec_info[0])))

static const EcInfo *
ec_of(const JwsAlg *alg)
{
	for (int i = 0; i < N_EC; i++)
	{
		if (strcmp(alg->name, ec_info[i].alg) == 0)
			return &ec_info[i];
	}
	return NULL;
}

static EVP_PKEY *
load_private(const char *pem, const char *what)
{
	BIO		   *bio = BIO_new_mem_buf(pem, -1);
	EVP_PKEY   *pkey = NULL;

	if (bio != NULL)
		pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	CHECK(pkey != NULL, "setup: cannot load the embedded %s key", what);
	return pkey;
}

static EVP_PKEY *
load_public(const char *pem, const char *what)
{
	BIO		   *bio = BIO_new_mem_buf(pem, -1);
	EVP_PKEY   *pkey = NULL;

	if (bio != NULL)
		pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	CHECK(pkey != NULL, "setup: cannot load the embedded %s key", what);
	return pkey;
}

/* The public half alone, as a verifier holds it: SPKI out and back in. */
static EVP_PKEY *
public_half(EVP_PKEY *priv, const char *what)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	int			len = i2d_PUBKEY(priv, &der);
	EVP_PKEY   *pub = NULL;

	if (len > 0)
	{
		p = der;
		pub = d2i_PUBKEY(NULL, &p, len);
	}
	OPENSSL_free(der);
	CHECK(pub != NULL, "setup: cannot take the public half of %s", what);
	return pub;
}

static EVP_PKEY *
keygen(const char *type, const char *what)
{
	EVP_PKEY   *pkey;

	if (strcmp(type, "RSA") == 0)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 1024);
	else if (strcmp(type, "EC") == 0)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp256k1");
	else
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, type);
	CHECK(pkey != NULL, "setup: cannot generate %s", what);
	return pkey;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static void
setup_keys(void)
{
	static const struct
	{
		int			k;
		const char *pem;
	}			pems[] = {
		{K_RSA, pem_rsa}, {K_EC256, pem_ec256}, {K_EC384, pem_ec384},
		{K_EC521, pem_ec521}, {K_ED25519, pem_ed25519}, {K_ED448, pem_ed448},
	};

	CHECK(strlen(hmac_secret_hex) == 2 * sizeof(hmac_secret),
		  "setup: hmac_secret_hex has the wrong length");
	for (size_t i = 0; i < sizeof(hmac_secret); i++)
	{
		int			hi = hexval(hmac_secret_hex[2 * i]);
		int			lo = hexval(hmac_secret_hex[2 * i + 1]);

		CHECK(hi >= 0 && lo >= 0, "setup: hmac_secret_hex is not hex");
		hmac_secret[i] = (unsigned char) (hi << 4 | lo);
	}
	vkeys[K_SECRET].secret = hmac_secret;
	vkeys[K_SECRET].secret_len = sizeof(hmac_secret);
	vkeys[K_EMPTY_SECRET].secret = empty_secret;
	vkeys[K_EMPTY_SECRET].secret_len = 0;

	for (size_t i = 0; i < sizeof(pems) / sizeof(pems[0]); i++)
	{
		int			k = pems[i].k;

		skeys[k] = load_private(pems[i].pem, key_names[k]);
		vkeys[k].pkey = public_half(skeys[k], key_names[k]);
	}

	/* never signed with: generated, no need to embed them */
	vkeys[K_RSA1024].pkey = keygen("RSA", "rsa1024");
	vkeys[K_SECP256K1].pkey = keygen("EC", "secp256k1");
	vkeys[K_X25519].pkey = keygen("X25519", "X25519");
	vkeys[K_RSA_E1].pkey = load_public(pem_rsa_e1_pub, key_names[K_RSA_E1]);
	vkeys[K_EC256_OTHER_G].pkey = load_public(pem_ec256_other_g_pub,
											  key_names[K_EC256_OTHER_G]);

	for (int i = 0; i < N_EC; i++)
	{
		EC_GROUP   *g = EC_GROUP_new_by_curve_name(ec_info[i].nid);

		CHECK(g != NULL, "setup: no group for %s", ec_info[i].alg);
		ec_info[i].order = BN_dup(EC_GROUP_get0_order(g));
		EC_GROUP_free(g);
		CHECK(ec_info[i].order != NULL, "setup: BN_dup");
	}
}

/* What jws_key_fits must answer, derived from the names, not the table. */
static JwsStatus
expected_fit(const JwsAlg *alg, int k)
{
	const EcInfo *ec = ec_of(alg);

	if (strncmp(alg->name, "HS", 2) == 0)
		return k == K_SECRET ? JWS_OK :
			k == K_EMPTY_SECRET ? JWS_KEY_WEAK : JWS_KEY_TYPE_MISMATCH;
	if (strncmp(alg->name, "RS", 2) == 0 || strncmp(alg->name, "PS", 2) == 0)
		return k == K_RSA ? JWS_OK :
			(k == K_RSA1024 || k == K_RSA_E1) ? JWS_KEY_WEAK :
			JWS_KEY_TYPE_MISMATCH;
	if (ec != NULL)
		return k == ec->key ? JWS_OK : JWS_KEY_TYPE_MISMATCH;
	if (strcmp(alg->name, "EdDSA") == 0)
		return (k == K_ED25519 || k == K_ED448) ? JWS_OK :
			JWS_KEY_TYPE_MISMATCH;
	CHECK(false, "algorithm %s is new: teach fuzz_jws.c about it", alg->name);
	return JWS_CRYPTO_ERROR;
}

static void
setup_algs(void)
{
	n_algs = jws_alg_count();
	CHECK(n_algs > 0 && n_algs <= MAX_ALGS, "setup: %d algorithms", n_algs);
	for (int a = 0; a < n_algs; a++)
	{
		const JwsAlg *alg = jws_alg_at(a);
		const EcInfo *ec;

		CHECK(alg != NULL, "jws_alg_at(%d) is NULL", a);
		algs[a] = alg;
		CHECK(jws_alg_find(alg->name, strlen(alg->name)) == alg,
			  "jws_alg_find(\"%s\") does not find its own entry", alg->name);

		/* the hard-coded group orders of jws.c against OpenSSL's */
		ec = ec_of(alg);
		CHECK((ec != NULL) == (alg->family == JWS_ECDSA),
			  "%s: family disagrees with the name", alg->name);
		if (ec != NULL)
		{
			unsigned char order[66];

			CHECK(alg->coord_len == ec->coord_len &&
				  BN_bn2binpad(ec->order, order, ec->coord_len) ==
				  ec->coord_len &&
				  memcmp(order, alg->order, (size_t) ec->coord_len) == 0,
				  "%s: coordinate length or group order is wrong", alg->name);
		}

		for (int k = 0; k < N_KEYS; k++)
		{
			JwsStatus	st;

			fit[a][k] = expected_fit(alg, k);
			ERR_clear_error();
			st = jws_key_fits(alg, &vkeys[k]);
			CHECK_ERR_CLEAN("jws_key_fits");
			CHECK(st == fit[a][k], "jws_key_fits(%s, %s) = %s, want %s",
				  alg->name, key_names[k], st_name(st), st_name(fit[a][k]));
		}
	}
}

/* ------------------------------------------------------------------------
 * Reference models
 * ------------------------------------------------------------------------
 */

/* Is the big-endian value of len bytes in [1, order - 1]? */
static bool
ref_in_range(const unsigned char *v, int len, const BIGNUM *order)
{
	BIGNUM	   *bn = BN_bin2bn(v, len, NULL);
	bool		ok;

	CHECK(bn != NULL, "BN_bin2bn");
	ok = !BN_is_zero(bn) && BN_cmp(bn, order) < 0;
	BN_free(bn);
	return ok;
}

/* Would a correct jws_verify reject this signature by its form alone? */
static bool
ref_sig_form_ok(const JwsAlg *alg, int k, const unsigned char *sig,
				size_t siglen)
{
	const EcInfo *ec = ec_of(alg);

	switch (alg->family)
	{
		case JWS_HMAC:
			return siglen ==
				(size_t) EVP_MD_get_size(EVP_get_digestbyname(alg->digest));
		case JWS_RSA_PKCS1:
		case JWS_RSA_PSS:
			return siglen == 2048 / 8;
		case JWS_EDDSA:
			return siglen == (k == K_ED25519 ? 64 : 114);
		case JWS_ECDSA:
			return siglen == 2 * (size_t) ec->coord_len &&
				ref_in_range(sig, ec->coord_len, ec->order) &&
				ref_in_range(sig + ec->coord_len, ec->coord_len, ec->order);
	}
	return false;
}

/* DER of an ECDSA raw signature, allocated by OpenSSL; length or -1. */
static int
ref_ecdsa_der(const EcInfo *ec, const unsigned char *raw, unsigned char **der)
{
	ECDSA_SIG  *esig = ECDSA_SIG_new();
	BIGNUM	   *r = BN_bin2bn(raw, ec->coord_len, NULL);
	BIGNUM	   *s = BN_bin2bn(raw + ec->coord_len, ec->coord_len, NULL);
	int			len;

	CHECK(esig != NULL && r != NULL && s != NULL && ECDSA_SIG_set0(esig, r, s),
		  "ECDSA_SIG setup");
	*der = NULL;
	len = i2d_ECDSA_SIG(esig, der);
	ECDSA_SIG_free(esig);
	return len;
}

/*
 * Reference verification: hash first, then a bare EVP_PKEY_verify with the
 * padding set explicitly, rather than jws.c's EVP_DigestVerify; HMAC with
 * EVP_Q_mac; EdDSA has only the one-shot DigestVerify.
 */
static bool
ref_verify_pkey(const JwsAlg *alg, EVP_PKEY *pkey,
				const unsigned char *msg, size_t msglen,
				const unsigned char *sig, size_t siglen)
{
	const EVP_MD *md = EVP_get_digestbyname(alg->digest);
	unsigned char dig[EVP_MAX_MD_SIZE];
	unsigned int diglen = 0;
	EVP_PKEY_CTX *pctx;
	bool		ok;

	if (md == NULL || EVP_Digest(msg, msglen, dig, &diglen, md, NULL) != 1)
		return false;
	pctx = EVP_PKEY_CTX_new(pkey, NULL);
	ok = pctx != NULL &&
		EVP_PKEY_verify_init(pctx) == 1 &&
		EVP_PKEY_CTX_set_signature_md(pctx, md) == 1;
	if (ok && alg->family == JWS_RSA_PKCS1)
		ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1;
	else if (ok && alg->family == JWS_RSA_PSS)
		ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
			EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
			EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) == 1;
	ok = ok && EVP_PKEY_verify(pctx, sig, siglen, dig, diglen) == 1;
	EVP_PKEY_CTX_free(pctx);
	return ok;
}

static bool
ref_verify(const JwsAlg *alg, int k,
		   const unsigned char *msg, size_t msglen,
		   const unsigned char *sig, size_t siglen)
{
	const JwsKey *key = &vkeys[k];
	bool		ok = false;

	if (alg->family == JWS_HMAC)
	{
		unsigned char mac[EVP_MAX_MD_SIZE];
		size_t		maclen = 0;

		if (EVP_Q_mac(NULL, "HMAC", NULL, alg->digest, NULL,
					  key->secret, key->secret_len, msg, msglen,
					  mac, sizeof(mac), &maclen) != NULL)
			ok = maclen == siglen && memcmp(mac, sig, siglen) == 0;
	}
	else if (alg->family == JWS_EDDSA)
	{
		EVP_MD_CTX *mctx = EVP_MD_CTX_new();

		ok = mctx != NULL &&
			EVP_DigestVerifyInit(mctx, NULL, NULL, NULL, key->pkey) == 1 &&
			EVP_DigestVerify(mctx, sig, siglen, msg, msglen) == 1;
		EVP_MD_CTX_free(mctx);
	}
	else if (alg->family == JWS_ECDSA)
	{
		const EcInfo *ec = ec_of(alg);
		unsigned char *der = NULL;
		int			derlen;

		if (siglen == 2 * (size_t) ec->coord_len)
		{
			derlen = ref_ecdsa_der(ec, sig, &der);
			ok = derlen > 0 &&
				ref_verify_pkey(alg, key->pkey, msg, msglen,
								der, (size_t) derlen);
			OPENSSL_free(der);
		}
	}
	else
		ok = ref_verify_pkey(alg, key->pkey, msg, msglen, sig, siglen);

	ERR_clear_error();
	return ok;
}

/* ------------------------------------------------------------------------
 * 1. base64url
 * ------------------------------------------------------------------------
 */

static int
ref_b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

static void
check_b64(const char *text, size_t len)
{
	size_t		rem = len % 4;
	bool		alphabet = true;
	bool		want_ok;
	size_t		want_len;
	unsigned char *src = dup_exact(text, len);
	unsigned char *dec;
	size_t		declen = (size_t) -1;
	bool		ok;
	char	   *enc;
	size_t		enclen;
	unsigned char *back;
	size_t		backlen = (size_t) -1;

	/* reference: what a strict decoder accepts, and how much it writes */
	for (size_t i = 0; i < len; i++)
		alphabet &= ref_b64_value(src[i]) >= 0;
	want_ok = alphabet && rem != 1;
	if (want_ok && rem == 2)
		want_ok = (ref_b64_value(src[len - 1]) & 0x0f) == 0;
	else if (want_ok && rem == 3)
		want_ok = (ref_b64_value(src[len - 1]) & 0x03) == 0;
	want_len = len / 4 * 3 + (rem == 2 ? 1 : rem == 3 ? 2 : 0);

	CHECK(b64url_is_alphabet((const char *) src, len) == alphabet,
		  "b64url_is_alphabet disagrees on %zu bytes", len);
	CHECK(B64URL_DECODED_MAX(len) >= want_len, "B64URL_DECODED_MAX(%zu)", len);

	/*
	 * The output buffer is exactly as large as the decoded bytes, not
	 * B64URL_DECODED_MAX: the decoder must never write more than it
	 * reports, even on input it goes on to reject.
	 */
	dec = xmalloc(want_len);
	ok = b64url_decode((const char *) src, len, dec, &declen);
	CHECK(ok == want_ok, "b64url_decode of %zu chars: %s, want %s",
		  len, ok ? "accepted" : "rejected", want_ok ? "accepted" : "rejected");

	if (ok)
	{
		/* decode -> encode gives the same text: one spelling per value */
		CHECK(declen == want_len, "decoded %zu bytes, want %zu",
			  declen, want_len);
		enclen = B64URL_ENCODED_LEN(declen);
		CHECK(enclen == len, "B64URL_ENCODED_LEN(%zu) = %zu, want %zu",
			  declen, enclen, len);
		enc = xmalloc(enclen);
		CHECK(b64url_encode(dec, declen, enc) == len &&
			  memcmp(enc, src, len) == 0,
			  "decode -> encode does not give back the %zu chars", len);
		free(enc);
	}
	free(dec);

	/* encode -> decode gives the same bytes, for the input taken as bytes */
	enclen = B64URL_ENCODED_LEN(len);
	CHECK(enclen == (4 * len + 2) / 3, "B64URL_ENCODED_LEN(%zu) = %zu",
		  len, enclen);
	enc = xmalloc(enclen);
	CHECK(b64url_encode(src, len, enc) == enclen,
		  "b64url_encode of %zu bytes: wrong length", len);
	CHECK(b64url_is_alphabet(enc, enclen), "b64url_encode: not base64url");
	back = xmalloc(len);
	CHECK(b64url_decode(enc, enclen, back, &backlen) &&
		  backlen == len && memcmp(back, src, len) == 0,
		  "encode -> decode does not give back the %zu bytes", len);
	free(back);
	free(enc);
	free(src);
}

/* ------------------------------------------------------------------------
 * 2. jws_alg_find
 * ------------------------------------------------------------------------
 */

static void
check_alg_find(const char *name, size_t len)
{
	unsigned char *copy = dup_exact(name, len);
	char	   *cstr = xmalloc(len + 1);
	const JwsAlg *got;
	const JwsAlg *want = NULL;

	/* reference: exact, case-sensitive, no NUL inside */
	memcpy(cstr, name, len);
	cstr[len] = '\0';
	if (memchr(cstr, '\0', len) == NULL)
	{
		for (int a = 0; a < n_algs; a++)
		{
			if (strcmp(cstr, algs[a]->name) == 0)
				want = algs[a];
		}
	}

	got = jws_alg_find((const char *) copy, len);
	CHECK(got == want, "jws_alg_find(\"%.*s\") = %s, want %s",
		  (int) (len < 40 ? len : 40), cstr,
		  got ? got->name : "NULL", want ? want->name : "NULL");
	free(cstr);
	free(copy);
}

/* Find "alg":"..." in a decoded header, the way a lax reader might. */
static void
check_header_alg(const unsigned char *hdr, size_t len)
{
	static const char key[] = "\"alg\"";
	const unsigned char *end = hdr + len;

	for (const unsigned char *p = hdr; p + sizeof(key) - 1 <= end; p++)
	{
		const unsigned char *v;
		const unsigned char *q;

		if (memcmp(p, key, sizeof(key) - 1) != 0)
			continue;
		v = p + sizeof(key) - 1;
		while (v < end && (*v == ' ' || *v == ':'))
			v++;
		if (v >= end || *v != '"')
			continue;
		v++;
		q = memchr(v, '"', (size_t) (end - v));
		if (q != NULL)
			check_alg_find((const char *) v, (size_t) (q - v));
	}
}

/* ------------------------------------------------------------------------
 * 3. ECDSA raw R||S <-> DER
 * ------------------------------------------------------------------------
 */

static void
check_ecdsa_raw(const JwsAlg *alg, const EcInfo *ec,
				const unsigned char *data, size_t len)
{
	size_t		n = (size_t) ec->coord_len;
	unsigned char *raw = dup_exact(data, len);
	unsigned char *der = xmalloc(JWS_ECDSA_DER_MAX);
	unsigned char *back = xmalloc(2 * n);
	size_t		derlen = (size_t) -1;
	bool		want_ok;
	JwsStatus	st;

	want_ok = len == 2 * n &&
		ref_in_range(raw, ec->coord_len, ec->order) &&
		ref_in_range(raw + n, ec->coord_len, ec->order);

	ERR_clear_error();
	st = jws_ecdsa_raw_to_der(alg, raw, len, der, &derlen);
	CHECK_ERR_CLEAN("jws_ecdsa_raw_to_der");
	CHECK(st == (want_ok ? JWS_OK : JWS_BAD_SIGNATURE_FORMAT),
		  "%s raw_to_der of %zu bytes: %s", alg->name, len, st_name(st));
	if (st == JWS_OK)
	{
		CHECK(derlen > 0 && derlen <= JWS_ECDSA_DER_MAX,
			  "%s raw_to_der: DER length %zu", alg->name, derlen);
		st = jws_ecdsa_der_to_raw(alg, der, derlen, back);
		CHECK_ERR_CLEAN("jws_ecdsa_der_to_raw");
		CHECK(st == JWS_OK && memcmp(back, raw, 2 * n) == 0,
			  "%s raw -> DER -> raw does not round-trip (%s)",
			  alg->name, st_name(st));
	}
	free(back);
	free(der);
	free(raw);
}

static void
check_ecdsa_der(const JwsAlg *alg, const EcInfo *ec,
				const unsigned char *data, size_t len)
{
	size_t		n = (size_t) ec->coord_len;
	unsigned char *der = dup_exact(data, len);
	unsigned char *raw = xmalloc(2 * n);
	unsigned char *der2 = xmalloc(JWS_ECDSA_DER_MAX);
	size_t		der2len = (size_t) -1;
	const unsigned char *p = der;
	ECDSA_SIG  *esig;
	const BIGNUM *r = NULL;
	const BIGNUM *s = NULL;
	JwsStatus	st;

	ERR_clear_error();
	st = jws_ecdsa_der_to_raw(alg, der, len, raw);
	CHECK_ERR_CLEAN("jws_ecdsa_der_to_raw");
	CHECK(st == JWS_OK || st == JWS_BAD_SIGNATURE_FORMAT,
		  "%s der_to_raw: %s", alg->name, st_name(st));

	/* reference parse: all of the input, r and s fit in coord_len bytes */
	esig = d2i_ECDSA_SIG(NULL, &p, (long) len);
	if (esig != NULL)
		ECDSA_SIG_get0(esig, &r, &s);
	if (esig == NULL || p != der + len ||
		BN_num_bytes(r) > ec->coord_len || BN_num_bytes(s) > ec->coord_len)
		CHECK(st != JWS_OK, "%s der_to_raw accepted %zu bytes that are not "
			  "one DER signature of this curve's size", alg->name, len);
	else
	{
		unsigned char rb[66];
		unsigned char sb[66];
		unsigned char *canon = NULL;
		int			canonlen;

		CHECK(st == JWS_OK, "%s der_to_raw refused a valid DER signature",
			  alg->name);
		BN_bn2binpad(r, rb, ec->coord_len);
		BN_bn2binpad(s, sb, ec->coord_len);
		CHECK(memcmp(raw, rb, n) == 0 && memcmp(raw + n, sb, n) == 0,
			  "%s der_to_raw: wrong r or s", alg->name);

		/*
		 * DER -> raw -> DER: a signature in canonical DER, with r and s in
		 * range, must come back byte for byte.
		 */
		canonlen = i2d_ECDSA_SIG(esig, &canon);
		if (canonlen > 0 && (size_t) canonlen == len &&
			memcmp(canon, der, len) == 0 &&
			!BN_is_negative(r) && !BN_is_negative(s) &&
			ref_in_range(rb, ec->coord_len, ec->order) &&
			ref_in_range(sb, ec->coord_len, ec->order))
		{
			st = jws_ecdsa_raw_to_der(alg, raw, 2 * n, der2, &der2len);
			CHECK_ERR_CLEAN("jws_ecdsa_raw_to_der");
			CHECK(st == JWS_OK && der2len == len &&
				  memcmp(der2, der, len) == 0,
				  "%s DER -> raw -> DER does not round-trip (%s)",
				  alg->name, st_name(st));
		}
		OPENSSL_free(canon);
	}
	ECDSA_SIG_free(esig);
	ERR_clear_error();
	free(der2);
	free(raw);
	free(der);
}

static void
check_ecdsa(const unsigned char *data, size_t len)
{
	for (int a = 0; a < n_algs; a++)
	{
		const JwsAlg *alg = algs[a];
		const EcInfo *ec = ec_of(alg);
		size_t		sz;

		if (ec == NULL)
		{
			unsigned char der[JWS_ECDSA_DER_MAX];
			unsigned char raw[2 * 66];
			size_t		derlen = 12345;

			/* not an ECDSA algorithm: refused, nothing written */
			memset(raw, 0xa5, sizeof(raw));
			CHECK(jws_ecdsa_raw_to_der(alg, data, len, der, &derlen) ==
				  JWS_BAD_SIGNATURE_FORMAT && derlen == 12345,
				  "raw_to_der accepted %s", alg->name);
			CHECK(jws_ecdsa_der_to_raw(alg, data, len, raw) ==
				  JWS_BAD_SIGNATURE_FORMAT && raw[0] == 0xa5,
				  "der_to_raw accepted %s", alg->name);
			continue;
		}
		sz = 2 * (size_t) ec->coord_len;
		check_ecdsa_raw(alg, ec, data, len);
		/* the whole input is rarely of the one right length: try a prefix */
		if (len > sz)
			check_ecdsa_raw(alg, ec, data, sz);
		check_ecdsa_der(alg, ec, data, len);
	}
}

/* ------------------------------------------------------------------------
 * 4. jws_verify, every algorithm with every key
 * ------------------------------------------------------------------------
 */

/*
 * Verify with every algorithm and key.  Keys of the wrong family or too weak
 * must be refused before the signature is looked at; that costs a third of
 * the time and does not depend much on the input, so only the raw harness
 * asks for it (with_unfit).
 */
static void
verify_all(const unsigned char *msg, size_t msglen,
		   const unsigned char *sig, size_t siglen, bool with_unfit)
{
	for (int a = 0; a < n_algs; a++)
	{
		const JwsAlg *alg = algs[a];

		for (int k = 0; k < N_KEYS; k++)
		{
			JwsStatus	st;
			bool		ref;

			if (fit[a][k] != JWS_OK && !with_unfit)
				continue;
			ERR_clear_error();
			st = jws_verify(alg, &vkeys[k], msg, msglen, sig, siglen);
			CHECK_ERR_CLEAN("jws_verify");

			/* the binding of algorithm to key comes before the signature */
			if (fit[a][k] != JWS_OK)
			{
				CHECK(st == fit[a][k], "jws_verify(%s, key %s) = %s, want %s",
					  alg->name, key_names[k], st_name(st),
					  st_name(fit[a][k]));
				continue;
			}

			if (!ref_sig_form_ok(alg, k, sig, siglen))
			{
				CHECK(st == JWS_BAD_SIGNATURE_FORMAT,
					  "jws_verify(%s, key %s), %zu-byte signature of the "
					  "wrong form: %s", alg->name, key_names[k], siglen,
					  st_name(st));
				continue;
			}
			CHECK(st == JWS_OK || st == JWS_BAD_SIGNATURE,
				  "jws_verify(%s, key %s), %zu-byte signature: %s",
				  alg->name, key_names[k], siglen, st_name(st));
			ref = ref_verify(alg, k, msg, msglen, sig, siglen);
			CHECK((st == JWS_OK) == ref,
				  "jws_verify(%s, key %s) = %s, but the reference says %s",
				  alg->name, key_names[k], st_name(st),
				  ref ? "valid" : "invalid");
		}
	}
}

/* Raw: two bytes of big-endian signature length, signature, message. */
static void
fuzz_raw(const unsigned char *data, size_t size)
{
	size_t		siglen;
	unsigned char *sig;
	unsigned char *msg;

	if (size < 2)
		return;
	siglen = ((size_t) data[0] << 8) | data[1];
	if (siglen > size - 2)
		siglen = size - 2;
	sig = dup_exact(data + 2, siglen);
	msg = dup_exact(data + 2 + siglen, size - 2 - siglen);
	verify_all(msg, size - 2 - siglen, sig, siglen, true);
	free(msg);
	free(sig);
}

/*
 * Split "header.payload.signature" at its first two dots.  Returns false
 * without two dots; a further dot stays in the signature segment, where
 * base64url decoding refuses it.
 */
static bool
split_compact(const unsigned char *text, size_t len,
			  size_t *dot1, size_t *dot2)
{
	const unsigned char *d1 = memchr(text, '.', len);
	const unsigned char *d2;

	if (d1 == NULL)
		return false;
	d2 = memchr(d1 + 1, '.', len - (size_t) (d1 + 1 - text));
	if (d2 == NULL)
		return false;
	*dot1 = (size_t) (d1 - text);
	*dot2 = (size_t) (d2 - text);
	return true;
}

/* Strict base64url decode into an exact-size buffer; NULL if refused. */
static unsigned char *
b64_decode_dup(const unsigned char *text, size_t len, size_t *outlen)
{
	unsigned char *out = xmalloc(B64URL_DECODED_MAX(len));

	if (!b64url_decode((const char *) text, len, out, outlen))
	{
		free(out);
		return NULL;
	}
	return out;
}

static void
fuzz_compact(const unsigned char *data, size_t size)
{
	size_t		dot1;
	size_t		dot2;
	size_t		hdrlen;
	size_t		siglen;
	unsigned char *hdr;
	unsigned char *sig;
	unsigned char *msg;

	if (!split_compact(data, size, &dot1, &dot2))
		return;

	/* each segment on its own */
	check_b64((const char *) data, dot1);
	check_b64((const char *) data + dot1 + 1, dot2 - dot1 - 1);
	check_b64((const char *) data + dot2 + 1, size - dot2 - 1);
	check_alg_find((const char *) data, dot1);

	hdr = b64_decode_dup(data, dot1, &hdrlen);
	if (hdr != NULL)
	{
		check_header_alg(hdr, hdrlen);
		free(hdr);
	}

	sig = b64_decode_dup(data + dot2 + 1, size - dot2 - 1, &siglen);
	if (sig == NULL)
		return;
	check_ecdsa(sig, siglen);
	msg = dup_exact(data, dot2);
	verify_all(msg, dot2, sig, siglen, false);
	free(msg);
	free(sig);
}

/* ------------------------------------------------------------------------
 * 5. Signed tokens, edited
 * ------------------------------------------------------------------------
 */

typedef struct Token
{
	const JwsAlg *alg;
	int			key;
	char	   *text;			/* "header.payload.signature", no NUL */
	size_t		len;
	size_t		siginput_len;	/* length of "header.payload" */
	unsigned char sig[JWS_MAX_SIGNATURE];
	size_t		siglen;
} Token;

#define MAX_TOKENS (MAX_ALGS + 1)

static Token tokens[MAX_TOKENS];
static int	n_tokens;

static char *
b64_encode_str(const void *src, size_t len, char *out)
{
	return out + b64url_encode(src, len, out);
}

static void
make_token(const JwsAlg *alg, int k)
{
	Token	   *t = &tokens[n_tokens];
	char		header[128];
	char		payload[128];
	JwsKey		skey = vkeys[k];
	JwsStatus	st;
	char	   *p;
	unsigned char *sig;
	size_t		siglen;

	CHECK(n_tokens < MAX_TOKENS, "setup: too many tokens");
	snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\"}",
			 alg->name);
	snprintf(payload, sizeof(payload),
			 "{\"sub\":\"fuzz\",\"key\":\"%s\",\"iat\":1700000000}",
			 key_names[k]);

	t->alg = alg;
	t->key = k;
	t->text = xmalloc(B64URL_ENCODED_LEN(strlen(header)) + 1 +
					  B64URL_ENCODED_LEN(strlen(payload)) + 1 +
					  B64URL_ENCODED_LEN(JWS_MAX_SIGNATURE));
	p = b64_encode_str(header, strlen(header), t->text);
	*p++ = '.';
	p = b64_encode_str(payload, strlen(payload), p);
	t->siginput_len = (size_t) (p - t->text);

	if (skeys[k] != NULL)
		skey.pkey = skeys[k];
	sig = xmalloc(jws_signature_max(alg, &skey));
	siglen = jws_signature_max(alg, &skey);
	ERR_clear_error();
	st = jws_sign(alg, &skey, (unsigned char *) t->text, t->siginput_len,
				  sig, &siglen);
	CHECK_ERR_CLEAN("jws_sign");
	CHECK(st == JWS_OK && siglen <= jws_signature_max(alg, &skey) &&
		  siglen <= JWS_MAX_SIGNATURE,
		  "setup: jws_sign(%s, %s) = %s", alg->name, key_names[k], st_name(st));
	memcpy(t->sig, sig, siglen);
	t->siglen = siglen;
	free(sig);

	*p++ = '.';
	p = b64_encode_str(t->sig, t->siglen, p);
	t->len = (size_t) (p - t->text);

	/* the unedited token verifies, by jws_verify and by the reference */
	ERR_clear_error();
	st = jws_verify(alg, &vkeys[k], (unsigned char *) t->text,
					t->siginput_len, t->sig, t->siglen);
	CHECK_ERR_CLEAN("jws_verify");
	CHECK(st == JWS_OK && ref_verify(alg, k, (unsigned char *) t->text,
									 t->siginput_len, t->sig, t->siglen),
		  "setup: fresh %s token with key %s does not verify (%s)",
		  alg->name, key_names[k], st_name(st));
	n_tokens++;
}

static void
setup_tokens(void)
{
	for (int a = 0; a < n_algs; a++)
	{
		for (int k = 0; k < N_KEYS; k++)
		{
			if (fit[a][k] == JWS_OK)
				make_token(algs[a], k);
		}
	}
}

/*
 * ECDSA signatures are malleable: (r, n - s) verifies wherever (r, s) does
 * (src/base64url.c says so too).  An edit that lands exactly on it is not a
 * bug of this layer, so it is the one exception to "edited never verifies".
 */
static bool
is_ecdsa_twin(const Token *t, const unsigned char *sig, size_t siglen)
{
	const EcInfo *ec = ec_of(t->alg);
	size_t		n;
	BIGNUM	   *s;
	BIGNUM	   *s2;
	bool		twin;

	if (ec == NULL || siglen != t->siglen)
		return false;
	n = (size_t) ec->coord_len;
	if (memcmp(sig, t->sig, n) != 0)
		return false;
	s = BN_bin2bn(t->sig + n, (int) n, NULL);
	s2 = BN_bin2bn(sig + n, (int) n, NULL);
	CHECK(s != NULL && s2 != NULL && BN_sub(s, ec->order, s), "BN");
	twin = BN_cmp(s, s2) == 0;
	BN_free(s);
	BN_free(s2);
	return twin;
}

/*
 * The first byte picks a token, the rest is a list of 3-byte edits: two
 * bits of operation and 14 bits of position, then a byte value.
 */
static void
fuzz_token_edits(const unsigned char *data, size_t size)
{
	const Token *t;
	char	   *m;
	size_t		mlen;
	size_t		dot1;
	size_t		dot2;
	unsigned char *sig;
	size_t		siglen;
	unsigned char *msg;
	JwsStatus	st;
	bool		same;

	if (size == 0)
		return;
	t = &tokens[data[0] % n_tokens];
	m = xmalloc(t->len + size / 3 + 1);
	memcpy(m, t->text, t->len);
	mlen = t->len;

	for (size_t i = 1; i + 3 <= size; i += 3)
	{
		int			op = data[i] >> 6;
		size_t		pos = ((((size_t) data[i] & 0x3f) << 8) | data[i + 1]) %
			(mlen + 1);
		char		v = (char) data[i + 2];

		switch (op)
		{
			case 0:				/* replace; at the end, append */
				m[pos] = v;
				if (pos == mlen)
					mlen++;
				break;
			case 1:				/* insert */
				memmove(m + pos + 1, m + pos, mlen - pos);
				m[pos] = v;
				mlen++;
				break;
			case 2:				/* delete */
				if (pos < mlen)
				{
					memmove(m + pos, m + pos + 1, mlen - pos - 1);
					mlen--;
				}
				break;
			default:			/* truncate */
				mlen = pos;
				break;
		}
	}

	same = mlen == t->len && memcmp(m, t->text, mlen) == 0;
	if (split_compact((unsigned char *) m, mlen, &dot1, &dot2) &&
		(sig = b64_decode_dup((unsigned char *) m + dot2 + 1,
							  mlen - dot2 - 1, &siglen)) != NULL)
	{
		msg = dup_exact(m, dot2);
		ERR_clear_error();
		st = jws_verify(t->alg, &vkeys[t->key], msg, dot2, sig, siglen);
		CHECK_ERR_CLEAN("jws_verify");
		if (same)
			CHECK(st == JWS_OK, "unedited %s token (key %s): %s",
				  t->alg->name, key_names[t->key], st_name(st));
		else if (st == JWS_OK)
			CHECK(dot2 == t->siginput_len &&
				  memcmp(msg, t->text, dot2) == 0 &&
				  is_ecdsa_twin(t, sig, siglen),
				  "edited %s token (key %s) verifies: \"%.*s\"",
				  t->alg->name, key_names[t->key], (int) mlen, m);
		free(msg);
		free(sig);
	}
	else
		CHECK(!same, "unedited %s token does not split or decode",
			  t->alg->name);
	free(m);
}

/* ------------------------------------------------------------------------
 * libFuzzer entry points
 * ------------------------------------------------------------------------
 */

int			LLVMFuzzerInitialize(int *argc, char ***argv);
int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void) argc;
	(void) argv;
	setup_keys();
	setup_algs();
	setup_tokens();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_b64((const char *) data, size);
	check_alg_find((const char *) data, size);
	check_ecdsa(data, size);
	fuzz_raw(data, size);
	fuzz_compact(data, size);
	fuzz_token_edits(data, size);
	return 0;
}
