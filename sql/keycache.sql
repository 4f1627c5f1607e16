-- The per-backend cache of parsed key arguments (jwt.key_cache_size):
-- PEM and JWK arguments are parsed once, found again by the digest of their
-- text, evicted least recently used first; key sets (JWKS) too, as parsed
-- JSON; secrets are not kept.
\set VERBOSITY default
SET client_min_messages = warning;

CREATE FUNCTION cached_keys() RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM pg_backend_memory_contexts WHERE name = 'jwt cached key'
$$;

SET jwt.key_cache_size = 4;
SELECT cached_keys() AS at_start;

-- the same PEMs many times: one entry per key (the private key signs, the
-- public one verifies), and every call verifies
CREATE TABLE kc_tokens AS
  SELECT g, jwt_sign(jsonb_build_object('sub', 'u' || g), k('rsa_priv_pkcs8'), 'RS256') AS t
  FROM generate_series(1, 20) g;
SELECT count(*) FILTER (WHERE jwt_is_valid(t, k('rsa_pub_spki'))) AS verified FROM kc_tokens;
SELECT cached_keys() AS two_keys_forty_calls;

-- a JWK, an EC PEM, an Ed25519 PEM: up to the limit, then the oldest goes
SELECT jwt_is_valid(jwt_sign('{}', k('ec256_priv_pkcs8'), 'ES256'), k('ec256_jwk_pub')) AS ec_jwk,
       jwt_is_valid(jwt_sign('{}', k('ed25519_priv'), 'EdDSA'), k('ed25519_pub')) AS ed_pem;
SELECT cached_keys() AS at_the_limit;
SELECT jwt_is_valid(jwt_sign('{}', k('ec384_priv'), 'ES384'), k('ec384_pub')) AS ec384;
SELECT cached_keys() AS still_at_the_limit;
-- the evicted key parses again and still verifies
SELECT count(*) FILTER (WHERE jwt_is_valid(t, k('rsa_pub_spki'))) AS verified_again FROM kc_tokens;

-- a secret is not kept; a key set is
SET jwt.key_cache_size = 16;
CREATE TABLE kc_more AS SELECT
  jwt_sign('{}', 'a text secret of thirty-two bytes!') AS hs,
  jwt_sign('{}', k('rsa_priv_pkcs8'), 'RS256', '{"kid": "rsa1"}') AS rs;
SELECT cached_keys() AS before;
SELECT jwt_is_valid(hs, 'a text secret of thirty-two bytes!') AS secret,
       jwt_is_valid(rs, k('jwks_pub')) AS jwks
FROM kc_more;
SELECT cached_keys() AS after_secret_and_jwks;
DROP TABLE kc_more;

-- a key that does not parse raises as before and leaves nothing behind
SELECT outcome($$SELECT jwt_verify(jwt_sign('{}', 'x'), '-----BEGIN PUBLIC KEY-----
not base64
-----END PUBLIC KEY-----')$$) AS bad_pem,
       outcome($$SELECT jwt_verify(jwt_sign('{}', 'x'), '{"kty": "RSA", "n": "AQAB"}')$$) AS bad_jwk;
SELECT cached_keys() AS after_errors;

-- a cached key keeps its rules: its own family only, and a weak key stays weak
SELECT outcome(format('SELECT jwt_verify(%L, %L)', jwt_sign('{}', 'secret', 'HS256'), k('rsa_pub_spki'))) AS hs_with_rsa,
       outcome(format('SELECT jwt_verify(%L, %L)', jwt_sign('{}', 'secret', 'HS256'), k('rsa_pub_spki'))) AS again,
       outcome(format('SELECT jwt_sign(%L, %L, %L)', '{}', k('rsa1024_priv'), 'RS256')) AS weak,
       outcome(format('SELECT jwt_sign(%L, %L, %L)', '{}', k('rsa1024_priv'), 'RS256')) AS weak_again;

-- off: nothing is kept, and a lowered size empties the slots above it
SET jwt.key_cache_size = 1;
SELECT jwt_is_valid(jwt_sign('{}', k('ec256_priv_pkcs8'), 'ES256'), k('ec256_pub')) AS ok;
SELECT cached_keys() AS size_one;
SET jwt.key_cache_size = 0;
SELECT count(*) FILTER (WHERE jwt_is_valid(t, k('rsa_pub_spki'))) AS verified_uncached FROM kc_tokens;
SELECT cached_keys() AS size_zero;
RESET jwt.key_cache_size;

-- bounded in bytes too (jwt.key_cache_memory): the least recently used
-- entries go until the rest fit, and an entry over a quarter of the bound
-- is used for its call and not kept
CREATE FUNCTION cached_bytes() RETURNS bigint LANGUAGE sql AS $$
  SELECT coalesce(sum(total_bytes), 0) FROM pg_backend_memory_contexts WHERE name = 'jwt cached key'
$$;
-- the bound: room for five entries of the size one takes on this server
-- (an assert-enabled build's chunks are larger)
SELECT jwt_sign('{}', k('ec256_priv_pkcs8'), 'ES256') AS kc_tok \gset
SELECT cached_keys() AS before_kept, cached_bytes() AS before_bytes \gset
SELECT jwt_is_valid(:'kc_tok', (k('ec256_jwk_pub')::jsonb || '{"kid": "k0"}')::text) AS ok;
SELECT cached_keys() - :before_kept AS one_more_kept;
SELECT (5 * (cached_bytes() - :before_bytes) + 1023) / 1024 * 1024 AS bound FROM (SELECT) AS x \gset
SELECT set_config('jwt.key_cache_memory', (:bound / 1024)::text || 'kB', false) IS NOT NULL AS bound_set;
SELECT count(*) FILTER (WHERE jwt_is_valid(:'kc_tok', (k('ec256_jwk_pub')::jsonb || jsonb_build_object('kid', 'k' || g))::text)) AS verified
FROM generate_series(1, 12) g;
SELECT cached_keys() BETWEEN 2 AND 5 AS some_kept, cached_bytes() <= :bound AS within_bound;
SELECT bytes <= :bound AS stats_within_bound FROM jwt_cache_stats() WHERE cache = 'key';
-- a key set of 60 keys is over a quarter of the bound: used, and not kept
CREATE TABLE kc_set AS
SELECT jsonb_build_object('keys', (SELECT jsonb_agg(k('ec256_jwk_pub')::jsonb || jsonb_build_object('kid', 'k' || g))
                                   FROM generate_series(1, 60) g))::text AS jwks,
       jwt_sign('{}', k('ec256_priv_pkcs8'), 'ES256', '{"kid": "k7"}') AS tok;
SELECT jwt_is_valid(tok, jwks) AS set_verifies FROM kc_set;
SELECT cached_bytes() <= :bound AS within_bound;
SELECT jwt_is_valid(tok, jwks) AS set_verifies_again FROM kc_set;
SELECT hits, misses FROM jwt_cache_stats() WHERE cache = 'key' \gset before_
SELECT jwt_is_valid(tok, jwks) FROM kc_set \g /dev/null
SELECT hits - :before_hits AS set_hits, misses - :before_misses AS set_misses FROM jwt_cache_stats() WHERE cache = 'key';
-- lowered, it evicts at the next call; 0 keeps nothing
SET jwt.key_cache_memory = '4kB';
SELECT jwt_is_valid(jwt_sign('{}', k('ec256_priv_pkcs8'), 'ES256'), k('ec256_pub')) AS ok;
SELECT cached_bytes() <= 4096 AS within_lowered_bound;
SET jwt.key_cache_memory = 0;
SELECT jwt_is_valid(jwt_sign('{}', k('ec256_priv_pkcs8'), 'ES256'), k('ec256_pub')) AS ok;
SELECT cached_keys() AS none_kept;
RESET jwt.key_cache_memory;
-- the default (4 MB) keeps it
SELECT jwt_is_valid(tok, jwks) AS set_verifies FROM kc_set;
SELECT hits, misses FROM jwt_cache_stats() WHERE cache = 'key' \gset before_
SELECT jwt_is_valid(tok, jwks) FROM kc_set \g /dev/null
SELECT hits - :before_hits AS set_hits, misses - :before_misses AS set_misses FROM jwt_cache_stats() WHERE cache = 'key';
DROP TABLE kc_set;
DROP FUNCTION cached_bytes();

-- ----------------------------------------------------------------
-- the key of one call site: what a call was given is remembered for the
-- rows that follow, recognised only by its exact bytes, and gone with the
-- query
-- ----------------------------------------------------------------
CREATE TABLE cs AS SELECT * FROM (VALUES
  (1, 'secret number one, 32 bytes long', 'secret number one, 32 bytes long'),
  (2, 'secret number one, 32 bytes long', 'secret number one, 32 bytes lonG'),
  (3, 'secret number one, 32 bytes long', 'secret number one, 32 bytes lon'),
  (4, 'secret number one, 32 bytes long', 'secret number one, 32 bytes long!'),
  (5, 'secret number one, 32 bytes long', 'secret number one, 32 bytes long'),
  (6, 'secret number two, 32 bytes long', 'secret number one, 32 bytes long'),
  (7, 'secret number two, 32 bytes long', 'secret number two, 32 bytes long')) AS v(i, signer, verifier);
SELECT i, jwt_is_valid(jwt_sign('{}', signer), verifier) AS valid FROM cs ORDER BY i;
-- PEMs and JWKs that change from row to row
SELECT i, jwt_is_valid(tok, key) AS valid
FROM (SELECT jwt_sign('{}', k('rsa_priv_pkcs8'), 'RS256') AS rs,
             jwt_sign('{}', k('ec256_priv_pkcs8'), 'ES256') AS es) AS t,
     LATERAL (VALUES (1, rs, k('rsa_pub_spki')), (2, rs, k('ec256_pub')), (3, es, k('ec256_pub')),
                     (4, es, k('rsa_pub_spki')), (5, es, k('ec256_jwk_pub')), (6, rs, k('rsa_pub_spki')),
                     (7, rs, 'secret number one, 32 bytes long')) AS v(i, tok, key)
ORDER BY i;
-- with the caches off, the same answers
SET jwt.key_cache_size = 0;
SELECT i, jwt_is_valid(jwt_sign('{}', signer), verifier) AS valid FROM cs ORDER BY i;
RESET jwt.key_cache_size;
SELECT count(*) AS call_site_keys_left FROM pg_backend_memory_contexts WHERE name = 'jwt call-site key';
DROP TABLE cs;

-- ----------------------------------------------------------------
-- verified signatures: a token presented again skips the signature check,
-- and nothing else
-- ----------------------------------------------------------------
SET jwt.verify_cache_size = 64;
-- counters since the last call of memo()
CREATE TABLE memo_last AS SELECT 0::bigint AS hits, 0::bigint AS misses;
CREATE FUNCTION memo() RETURNS text LANGUAGE sql AS $$
  WITH s AS (SELECT entries, hits, misses FROM jwt_cache_stats() WHERE cache = 'verify'),
  d AS (SELECT format('%s entries, %s hits, %s misses', s.entries, s.hits - l.hits, s.misses - l.misses) AS r
        FROM s, memo_last l)
  UPDATE memo_last SET hits = s.hits, misses = s.misses FROM s, d RETURNING d.r
$$;
CREATE TABLE memo_tok AS SELECT
  jwt_sign(jsonb_build_object('sub', 'm', 'jti', 'memo-1', 'exp', extract(epoch FROM now())::bigint + 600),
           k('ec256_priv_pkcs8'), 'ES256') AS t,
  jwt_sign('{"sub": "h"}', 'a text secret of thirty-two bytes!') AS h;
SELECT capacity, bytes FROM jwt_cache_stats() WHERE cache = 'verify';
SELECT memo() IS NOT NULL AS baseline;
SELECT jwt_verify(t, k('ec256_pub')) ->> 'sub' AS first FROM memo_tok;
SELECT memo() AS after_first;
SELECT jwt_verify(t, k('ec256_pub')) ->> 'sub' AS second, jwt_verify(t, k('ec256_jwk_pub')) ->> 'sub' AS same_key_as_jwk
FROM memo_tok;
SELECT memo() AS after_two_more;
-- HMAC is not memoized: the MAC costs no more than the lookup
SELECT jwt_is_valid(h, 'a text secret of thirty-two bytes!') AS hs FROM memo_tok;
SELECT memo() AS after_hmac;
-- what a remembered signature does not decide
SELECT outcome(format('SELECT jwt_verify(%L, %L, now => now() + interval ''1 hour'')', t, k('ec256_pub'))) AS expired,
       outcome(format('SELECT jwt_verify(%L, %L, ARRAY[''ES384''])', t, k('ec256_pub'))) AS not_allowed,
       outcome(format('SELECT jwt_verify(%L, %L)', t, k('rsa_pub_spki'))) AS other_key,
       outcome(format('SELECT jwt_verify(%L, %L)', left(t, -4) || 'AAAA', k('ec256_pub'))) AS other_signature
FROM memo_tok;
SELECT jwt_revoke('memo-1');
SELECT outcome(format('SELECT jwt_verify(%L, %L)', t, k('ec256_pub'))) AS revoked FROM memo_tok;
DELETE FROM jwt_revoked;
-- off
SET jwt.verify_cache_size = 0;
SELECT jwt_verify(t, k('ec256_pub')) ->> 'sub' AS uncached FROM memo_tok;
SELECT capacity, entries FROM jwt_cache_stats() WHERE cache = 'verify';
RESET jwt.verify_cache_size;

SELECT cache, entries > 0 AS has_entries, capacity FROM jwt_cache_stats() ORDER BY cache;
DROP TABLE memo_tok, memo_last;
DROP FUNCTION memo();
DROP TABLE kc_tokens;
DROP FUNCTION cached_keys();
