-- The per-backend cache of parsed key arguments (jwt.key_cache_size):
-- PEM and JWK arguments are parsed once, found again by the digest of their
-- text, evicted least recently used first; secrets and key sets are not kept.
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

-- secrets and key sets are not kept
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

DROP TABLE kc_tokens;
DROP FUNCTION cached_keys();
