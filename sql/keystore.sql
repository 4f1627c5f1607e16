--
-- The key table and trusted issuers: generate, import, publish, rotate,
-- revoke; jwt_issue; jwt_verify(token) with no key.
--

-- jwt_verify with no key, at the real clock: OK or the SQLSTATE and message
CREATE FUNCTION store_outcome(token text, algorithms text[] DEFAULT NULL,
                              audience text DEFAULT NULL, now timestamptz DEFAULT NULL)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM jwt_verify(token, NULL::text, algorithms, audience, now => now);
  RETURN 'OK';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ' ' || SQLERRM;
END $$;

-- a token for a fixture private key, with a kid and an issuer in the claims
CREATE FUNCTION idp_token(keyname text, alg text, kid text, claims jsonb)
RETURNS text LANGUAGE sql AS $$
  SELECT jwt_sign(jsonb_build_object('iat', floor(extract(epoch FROM now()))::bigint,
                                     'exp', floor(extract(epoch FROM now()))::bigint + 3600) || claims,
                  k(keyname), alg, jsonb_build_object('kid', kid))
$$;

-- no key yet: nothing verifies, nothing is issued
SELECT store_outcome(jwt_sign('{}', 'secret')) AS empty_table,
       outcome($$SELECT jwt_issue('{}')$$) AS issue_without_keys;

------------------------------------------------------------------------
-- RFC 7638 thumbprints: the RFC's own example (§3.1), and every family
------------------------------------------------------------------------
SELECT jwt_jwk_thumbprint('{"kty":"RSA","e":"AQAB","alg":"RS256","kid":"2011-04-29",
  "n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}')
       AS rfc7638_example;
SELECT jwt_jwk_thumbprint(k('ec256_jwk_pub')::jsonb) = jwt_jwk_thumbprint(jwt_jwk(k('ec256_pub'))) AS ec_pem_and_jwk_agree,
       jwt_jwk_thumbprint(k('rsa_jwk_pub')::jsonb) = jwt_jwk_thumbprint(jwt_jwk(k('rsa_priv_pkcs1'))) AS rsa_private_and_public_agree,
       jwt_jwk_thumbprint(k('ed25519_jwk_pub')::jsonb) = jwt_jwk_thumbprint(jwt_jwk(k('ed25519_pub'))) AS okp_agree;

-- jwt_jwk: one key as a JWK with its algorithm; private members only when given
SELECT name, j ->> 'kty' AS kty, j ->> 'alg' AS alg, j ->> 'crv' AS crv,
       j ?| ARRAY['d', 'p', 'q', 'k'] AS has_private
FROM (SELECT name, jwt_jwk(k(name)) AS j
      FROM unnest(ARRAY['rsa_pub_spki', 'rsa_pub_pkcs1', 'rsa_cert', 'rsa_priv_pkcs1', 'rsa_priv_pkcs8',
                        'ec384_pub', 'ec521_priv', 'ec256_priv_sec1', 'ed25519_pub', 'ed448_priv',
                        'oct_jwk', 'rsa_jwk_pub']) AS name) s;
-- a private JWK round-trips: what it signs, its public half verifies
SELECT alg, verify_outcome(jwt_sign('{"n":1}', priv::text, alg),
                           (priv - ARRAY['d', 'p', 'q', 'dp', 'dq', 'qi'])::text) AS private_signs_public_verifies,
       priv ?& ARRAY['d'] AS has_d
FROM (SELECT alg, jwt_jwk_generate(alg) AS priv
      FROM unnest(ARRAY['RS256', 'PS384', 'ES256', 'ES384', 'ES512', 'EdDSA']) AS alg) s;
-- generated sizes: RSA from jwt.rsa_bits, HMAC secrets as long as the hash
SELECT length(b64url_decode(jwt_jwk_generate('RS256') ->> 'n')) * 8 AS rsa_default_bits;
SET jwt.rsa_bits = 3072;
SELECT length(b64url_decode(jwt_jwk_generate('RS256') ->> 'n')) * 8 AS rsa_3072_bits;
RESET jwt.rsa_bits;
SELECT outcome($$SET jwt.rsa_bits = 1024$$) AS rsa_1024_refused;
SELECT alg, length(b64url_decode(jwt_jwk_generate(alg) ->> 'k')) AS secret_bytes
FROM unnest(ARRAY['HS256', 'HS384', 'HS512']) AS alg;
-- weak and misfit keys are refused
SELECT outcome($$SELECT jwt_jwk(k('rsa1024_pub'))$$) AS rsa_1024,
       outcome($$SELECT jwt_jwk(k('rsa_jwk_e1'))$$) AS rsa_exponent_1,
       outcome($$SELECT jwt_jwk('too short for HS256', 'HS256')$$) AS short_secret,
       outcome($$SELECT jwt_jwk(k('ec256_pub'), 'ES384')$$) AS wrong_curve,
       outcome($$SELECT jwt_jwk(k('rsa_pub_spki'), 'HS256')$$) AS rsa_as_hmac,
       outcome($$SELECT jwt_jwk(k('jwks_pub'))$$) AS key_set;

------------------------------------------------------------------------
-- Own keys: generate, issue, verify, rotate
------------------------------------------------------------------------
-- every family can be generated; kid defaults to the thumbprint
SELECT count(jwt_key_generate(alg)) AS generated
FROM unnest(ARRAY['RS256', 'PS256', 'ES256', 'ES384', 'ES512', 'EdDSA', 'HS384']) AS alg;
SELECT alg, kid = jwt_jwk_thumbprint(jwk) AS kid_is_thumbprint, state,
       private_jwk IS NOT NULL AS has_private, jwk ?| ARRAY['d', 'p', 'q', 'k'] AS public_has_private
FROM jwt_keys WHERE alg <> 'HS384'
ORDER BY alg;
-- an HMAC key's kid is random, never a hash of the secret
SELECT kid <> jwt_jwk_thumbprint(private_jwk) AS kid_not_thumbprint, length(kid) AS kid_length,
       jwk ? 'k' AS public_has_secret
FROM jwt_keys WHERE alg = 'HS384';
DELETE FROM jwt_keys;

-- issuing: iat, exp, jti added, the caller's claims win; kid in the header
SELECT jwt_key_generate('ES256', 'es-1') AS kid;
SELECT jwt_header(t) AS header,
       (c ->> 'exp')::bigint - (c ->> 'iat')::bigint AS ttl_seconds,
       c ? 'jti' AS has_jti, c ->> 'sub' AS sub, c ->> 'role' AS role
FROM (SELECT t, jwt_decode_unverified(t) AS c
      FROM (SELECT jwt_issue('{"sub":"alice","role":"admin"}') AS t) s0) s;
SELECT c ->> 'exp' AS exp, c ->> 'jti' AS jti
FROM (SELECT jwt_decode_unverified(jwt_issue('{"sub":"a","jti":"mine","exp":4102444800}', ttl => '5 minutes')) AS c) s;
SET jwt.default_ttl = '15min';
SELECT (c ->> 'exp')::bigint - (c ->> 'iat')::bigint AS default_ttl_seconds
FROM (SELECT jwt_decode_unverified(jwt_issue('{}')) AS c) s;
RESET jwt.default_ttl;
SELECT outcome($$SELECT jwt_issue('[1]')$$) AS claims_not_object,
       outcome($$SELECT jwt_issue('{}', ttl => '-1 minute')$$) AS negative_ttl,
       outcome($$SELECT jwt_issue('{}', 'RS256')$$) AS no_key_for_alg,
       outcome($$SELECT jwt_issue('{}', kid => 'nope')$$) AS no_such_kid;

-- the own issuer: jwt.issuer fills iss; such tokens verify with own keys
SET jwt.issuer = 'https://api.example';
SELECT jwt_decode_unverified(jwt_issue('{}')) ->> 'iss' AS iss,
       store_outcome(jwt_issue('{}')) AS own_issuer,
       store_outcome(jwt_issue('{"iss":"https://other.example"}')) AS other_issuer;
RESET jwt.issuer;
SELECT store_outcome(jwt_issue('{}')) AS no_issuer,
       store_outcome(jwt_issue('{"iss":"https://api.example"}')) AS issuer_unset_now;

-- rotation: a new key signs, the old one retired still verifies
CREATE TEMP TABLE tok AS SELECT jwt_issue('{"sub":"old"}') AS t1;
SELECT jwt_key_generate('ES256', 'es-2') AS kid;
ALTER TABLE tok ADD COLUMN t2 text;
UPDATE tok SET t2 = jwt_issue('{"sub":"new"}');
SELECT jwt_header(t1) ->> 'kid' AS t1_kid, jwt_header(t2) ->> 'kid' AS t2_kid FROM tok;
SELECT jwt_key_retire('es-1');
SELECT kid, state, retired_at IS NOT NULL AS retired_at_set FROM jwt_keys ORDER BY kid;
SELECT store_outcome(t1) AS retired_key_token, store_outcome(t2) AS active_key_token,
       jwt_header(jwt_issue('{}')) ->> 'kid' AS now_signing FROM tok;
-- a retired key verifies until it expires
UPDATE jwt_keys SET expires_at = now() + interval '1 day' WHERE kid = 'es-1';
SELECT store_outcome(t1) AS before_expiry, store_outcome(t1, now => now() + interval '2 days') AS after_expiry
FROM tok;
-- retiring is undone by activating
SELECT jwt_key_activate('es-1');
SELECT state, retired_at FROM jwt_keys WHERE kid = 'es-1';
SELECT jwt_key_retire('es-1');
-- a staged key is published but does not sign
SELECT jwt_key_stage(jwt_key_generate('EdDSA', 'ed-next'));
SELECT jwt_header(jwt_issue('{}')) ->> 'kid' AS still_signing,
       ARRAY(SELECT j ->> 'kid' FROM jsonb_array_elements(jwt_jwks() -> 'keys') j ORDER BY 1) AS published;
SELECT jwt_key_activate('ed-next');
SELECT jwt_header(jwt_issue('{}')) ->> 'kid' AS newest_active_signs;
SELECT jwt_header(jwt_issue('{}', 'ES256')) ->> 'kid' AS es256_signer;
-- no active key for an algorithm: issuing fails, verifying goes on
SELECT jwt_key_retire('es-2');
SELECT outcome($$SELECT jwt_issue('{}', 'ES256')$$) AS no_active_es256,
       store_outcome(t2) AS retired_es2_verifies FROM tok;

-- revocation rejects the key's tokens at once, and is final
SELECT jwt_key_revoke('es-1');
SELECT store_outcome(t1) AS revoked_key_token FROM tok;
SELECT outcome($$SELECT jwt_key_activate('es-1')$$) AS undo_revoke,
       outcome($$SELECT jwt_key_retire('no-such-key')$$) AS unknown_kid;
-- inside a transaction that rolls back, the revocation is undone with it
BEGIN;
SELECT jwt_key_revoke('es-2');
SELECT store_outcome(t2) AS revoked_in_transaction FROM tok;
ROLLBACK;
SELECT store_outcome(t2) AS after_rollback FROM tok;

-- jwt_jwks: public members only, no HMAC key, nothing revoked or expired
SELECT jwt_key_generate('HS256', 'hs-1');
SELECT jwt_key_generate('RS256', 'rs-expired', now() - interval '1 second');
SELECT ARRAY(SELECT j ->> 'kid' FROM jsonb_array_elements(jwt_jwks() -> 'keys') j ORDER BY 1) AS published,
       (SELECT bool_or(j ?| ARRAY['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth'])
        FROM jsonb_array_elements(jwt_jwks() -> 'keys') j) AS any_private_member;
-- what jwt_jwks publishes verifies what jwt_issue signs (at the clock's time:
-- the iat is the clock's, which a slow statement carries past now())
SELECT verify_outcome(jwt_issue('{}', 'EdDSA'), jwt_jwks()::text, now => clock_timestamp()) AS jwks_verifies;

-- a token without kid tries at most 4 keys of its algorithm, newest first
DELETE FROM jwt_keys;
SELECT jwt_key_import(repeat(chr(64 + n), 32), 'HS256', 'hs-' || n) FROM generate_series(1, 5) n;
UPDATE jwt_keys SET created_at = created_at + (substr(kid, 4)::int * interval '1 second');
SELECT n, store_outcome(jwt_sign('{}', repeat(chr(64 + n), 32))) AS kidless
FROM generate_series(1, 5) n;
SELECT store_outcome(jwt_sign('{}', repeat('A', 32), 'HS256', '{"kid":"hs-1"}')) AS oldest_by_kid;
DELETE FROM jwt_keys;

------------------------------------------------------------------------
-- Import: PEM, JWK, JWKS, secrets; own keys and trusted issuers
------------------------------------------------------------------------
SELECT jwt_key_import(k('rsa_priv_pkcs1'), 'RS256', 'own-rsa') AS pkcs1,
       jwt_key_import(k('rsa2_pub_spki'), 'PS256', 'own-rsa2-public') AS spki,
       jwt_key_import(k('ec256_priv_sec1')) AS sec1_default_kid,
       jwt_key_import(k('ed25519_jwk_priv')) AS jwk;
SELECT kid, alg, private_jwk IS NOT NULL AS has_private, issuer, state FROM jwt_keys ORDER BY kid;
-- an imported private key signs; a public one only verifies
SELECT store_outcome(jwt_issue('{}', 'RS256')) AS issued_with_import,
       jwt_header(jwt_issue('{}', 'RS256')) ->> 'kid' AS kid,
       outcome($$SELECT jwt_issue('{}', 'PS256')$$) AS public_cannot_sign,
       store_outcome(jwt_sign('{}', k('rsa2_priv_pkcs8'), 'PS256', '{"kid":"own-rsa2-public"}')) AS public_verifies;
-- weak keys, bad input, kid collisions
SELECT outcome($$SELECT jwt_key_import(k('rsa1024_priv'))$$) AS rsa_1024,
       outcome($$SELECT jwt_key_import('short', 'HS512')$$) AS short_secret,
       outcome($$SELECT jwt_key_import(k('ec256_pub'), kid => 'own-rsa')$$) AS kid_taken,
       outcome($$SELECT jwt_key_import(k('ec256_pub'), 'RS256')$$) AS wrong_alg,
       outcome($$SELECT jwt_key_import(k('rsa_cert'), 'RS256', '')$$) AS empty_kid,
       outcome($$SELECT jwt_key_import('{"keys":[]}')$$) AS empty_set;
-- a key set: each key with its own kid
DELETE FROM jwt_keys;
SELECT jwt_key_import(k('jwks_pub')) AS imported_kids;
DELETE FROM jwt_keys;

-- A trusted issuer's JWKS, the way an IdP publishes it: RS256 keys with
-- kid and x5c, and an encryption key that is skipped
CREATE TEMP TABLE idp AS
SELECT jsonb_build_object('keys', jsonb_build_array(
         k('rsa_jwk_pub')::jsonb || jsonb_build_object(
           'kid', 'idp-key-1', 'alg', 'RS256', 'use', 'sig',
           'x5c', jsonb_build_array(regexp_replace(k('rsa_cert'), '-----[A-Z ]+-----|\s', '', 'g'))),
         k('ec256_jwk_pub')::jsonb || '{"kid":"idp-key-2","use":"sig"}',
         k('rsa_jwk_pub')::jsonb || '{"kid":"idp-enc","use":"enc","alg":"RSA-OAEP"}',
         '{"kty":"EC","crv":"secp256k1","kid":"idp-k1","x":"AA","y":"AA"}'::jsonb)) AS jwks;
SELECT jwt_jwks_import(jwks, 'https://idp.example') AS imported FROM idp;
SELECT kid, alg, issuer, private_jwk IS NULL AS public_only FROM jwt_keys ORDER BY kid;
SELECT issuer, algorithms, audiences, jwks_updated_at IS NOT NULL AS updated FROM jwt_issuers;
-- its tokens verify; the same key never verifies another issuer's token
SELECT store_outcome(idp_token('rsa_priv_pkcs8', 'RS256', 'idp-key-1', '{"iss":"https://idp.example"}')) AS idp_token,
       store_outcome(idp_token('ec256_priv_pkcs8', 'ES256', 'idp-key-2', '{"iss":"https://idp.example"}')) AS idp_ec_token,
       store_outcome(idp_token('rsa_priv_pkcs8', 'RS256', 'idp-key-1', '{"iss":"https://evil.example"}')) AS other_iss,
       store_outcome(idp_token('rsa_priv_pkcs8', 'RS256', 'idp-key-1', '{}')) AS no_iss,
       store_outcome(idp_token('rsa_priv_pkcs8', 'RS256', 'idp-key-1', '{"iss":["https://idp.example"]}')) AS iss_not_string;
-- an own key never verifies a token claiming the issuer, nor the reverse
SELECT jwt_key_import(k('rsa2_priv_pkcs8'), 'RS256', 'own-1');
SELECT store_outcome(idp_token('rsa2_priv_pkcs8', 'RS256', 'own-1', '{"iss":"https://idp.example"}')) AS own_key_for_idp,
       store_outcome(idp_token('rsa_priv_pkcs8', 'RS256', 'idp-key-1', '{}')) AS idp_key_for_own,
       store_outcome(idp_token('rsa2_priv_pkcs8', 'RS256', 'own-1', '{}')) AS own_key_own_token;
-- the issuer's rules apply where the caller leaves a default
UPDATE jwt_issuers SET algorithms = '{ES256}', audiences = '{api,admin}', required_claims = '{sub}',
                       leeway = '30 seconds';
SELECT store_outcome(idp_token('rsa_priv_pkcs8', 'RS256', 'idp-key-1', '{"iss":"https://idp.example","aud":"api","sub":"a"}')) AS alg_not_allowed,
       store_outcome(idp_token('ec256_priv_pkcs8', 'ES256', 'idp-key-2', '{"iss":"https://idp.example","aud":"admin","sub":"a"}')) AS allowed,
       store_outcome(idp_token('ec256_priv_pkcs8', 'ES256', 'idp-key-2', '{"iss":"https://idp.example","aud":"web","sub":"a"}')) AS wrong_audience,
       store_outcome(idp_token('ec256_priv_pkcs8', 'ES256', 'idp-key-2', '{"iss":"https://idp.example","aud":"web","sub":"a"}'), audience => 'web') AS caller_audience,
       store_outcome(idp_token('ec256_priv_pkcs8', 'ES256', 'idp-key-2', '{"iss":"https://idp.example","aud":"api"}')) AS missing_sub;
SELECT store_outcome(idp_token('ec256_priv_pkcs8', 'ES256', 'idp-key-2', '{"iss":"https://idp.example","aud":"api","sub":"a"}'),
                     now => now() + interval '3620 seconds') AS within_leeway,
       store_outcome(idp_token('ec256_priv_pkcs8', 'ES256', 'idp-key-2', '{"iss":"https://idp.example","aud":"api","sub":"a"}'),
                     now => now() + interval '3640 seconds') AS beyond_leeway;
UPDATE jwt_issuers SET algorithms = NULL, audiences = NULL, required_claims = '{}', leeway = NULL;
-- a re-import replaces the issuer's keys at once
SELECT jwt_jwks_import(jsonb_build_object('keys', jsonb_build_array(
         k('ec384_jwk_pub')::jsonb || '{"kid":"idp-key-3"}')), 'https://idp.example') AS reimported;
SELECT kid, issuer FROM jwt_keys ORDER BY kid;
SELECT store_outcome(idp_token('rsa_priv_pkcs8', 'RS256', 'idp-key-1', '{"iss":"https://idp.example"}')) AS rotated_out,
       store_outcome(idp_token('ec384_priv', 'ES384', 'idp-key-3', '{"iss":"https://idp.example"}')) AS rotated_in;
-- a document with no usable key leaves the keys as they were
SELECT outcome($$SELECT jwt_jwks_import('{"keys":[{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"}]}', 'https://idp.example')$$) AS unusable_document,
       outcome($$SELECT jwt_jwks_import('{"error":"rate limited"}', 'https://idp.example')$$) AS error_document,
       outcome($$SELECT jwt_jwks_import('{"keys":[]}', NULL)$$) AS no_issuer,
       (SELECT count(*) FROM jwt_keys WHERE issuer = 'https://idp.example') AS keys_kept;
-- an HMAC secret shared with an issuer (as with PostgREST or Supabase)
SELECT jwt_key_import('a-shared-secret-of-32-bytes-at-least!', 'HS256', 'shared', 'https://auth.example');
SELECT store_outcome(jwt_sign('{"iss":"https://auth.example"}', 'a-shared-secret-of-32-bytes-at-least!', 'HS256', '{"kid":"shared"}')) AS shared_secret,
       (SELECT private_jwk IS NOT NULL FROM jwt_keys WHERE kid = 'shared') AS secret_kept;
-- deleting an issuer deletes its keys
DELETE FROM jwt_issuers WHERE issuer = 'https://auth.example';
SELECT count(*) AS shared_keys_left FROM jwt_keys WHERE kid = 'shared';

-- a kid is unique within its issuer: two identity providers may both call a
-- key "key-1", and so may we; each key verifies only its issuer's tokens
SELECT jwt_jwks_import(jsonb_build_object('keys', jsonb_build_array(
         k('rsa_jwk_pub')::jsonb || '{"kid":"key-1","alg":"RS256"}',
         k('ec384_jwk_pub')::jsonb || '{"kid":"key-2"}')), 'https://a.example') AS idp_a,
       jwt_jwks_import(jsonb_build_object('keys', jsonb_build_array(
         k('ec256_jwk_pub')::jsonb || '{"kid":"key-1"}')), 'https://b.example') AS idp_b,
       jwt_key_import(k('ed25519_jwk_priv'), kid => 'key-1') AS own;
SELECT issuer, kid, alg, state FROM jwt_keys WHERE kid LIKE 'key-_' ORDER BY issuer NULLS FIRST, kid;
CREATE TEMP TABLE kid_tokens AS
SELECT idp_token('rsa_priv_pkcs8', 'RS256', 'key-1', '{"iss":"https://a.example"}') AS a,
       idp_token('ec256_priv_pkcs8', 'ES256', 'key-1', '{"iss":"https://b.example"}') AS b,
       idp_token('rsa_priv_pkcs8', 'RS256', 'key-1', '{"iss":"https://b.example"}') AS a_key_b_iss,
       idp_token('rsa_priv_pkcs8', 'RS256', 'key-1', '{}') AS a_key_own_iss,
       jwt_issue('{}', kid => 'key-1') AS own;
SELECT store_outcome(a) AS a, store_outcome(b) AS b, store_outcome(own) AS own,
       store_outcome(a_key_b_iss) AS a_key_b_iss, store_outcome(a_key_own_iss) AS a_key_own_iss
FROM kid_tokens;
-- one argument names a key only when one issuer has it; two name the issuer
SELECT outcome($$SELECT jwt_key_revoke('key-1')$$) AS ambiguous,
       outcome($$SELECT jwt_key_revoke('key-9', 'https://a.example')$$) AS unknown_in_issuer,
       outcome($$SELECT jwt_key_retire('key-2', NULL)$$) AS not_ours;
SELECT jwt_key_revoke('key-1', 'https://a.example'), jwt_key_retire('key-1', NULL),
       jwt_key_retire('key-2');
SELECT issuer, kid, state FROM jwt_keys WHERE kid LIKE 'key-_' ORDER BY issuer NULLS FIRST, kid;
SELECT store_outcome(a) AS a, store_outcome(b) AS b, store_outcome(own) AS own FROM kid_tokens;
-- a revoked key stays revoked: the provider's next document, still
-- carrying it (under its kid or another), does not bring it back
SELECT jwt_jwks_import(jsonb_build_object('keys', jsonb_build_array(
         k('rsa_jwk_pub')::jsonb || '{"kid":"key-1","alg":"RS256"}',
         k('ec384_jwk_pub')::jsonb || '{"kid":"key-2"}')), 'https://a.example') AS same_document;
SELECT jwt_jwks_import(jsonb_build_object('keys', jsonb_build_array(
         k('rsa_jwk_pub')::jsonb || '{"kid":"key-1-renamed","alg":"RS256"}',
         k('ec384_jwk_pub')::jsonb || '{"kid":"key-2"}')), 'https://a.example') AS renamed;
SELECT issuer, kid, state FROM jwt_keys WHERE issuer = 'https://a.example' ORDER BY kid;
SELECT store_outcome(a) AS a_after_reimport FROM kid_tokens;
SELECT outcome($$SELECT jwt_key_import(k('rsa_jwk_pub'), 'RS256', 'key-1-again', 'https://a.example')$$) AS import_revoked,
       outcome($$SELECT jwt_jwks_import(jsonb_build_object('keys', jsonb_build_array(
         k('rsa_jwk_pub')::jsonb || '{"kid":"key-x","alg":"RS256"}')), 'https://a.example')$$) AS only_revoked,
       (SELECT count(*) FROM jwt_keys WHERE issuer = 'https://a.example') AS keys_kept;
-- the same public key is not revoked for another issuer
SELECT jwt_key_import(k('rsa_jwk_pub'), 'RS256', 'key-1', 'https://c.example') AS other_issuer;
DROP TABLE kid_tokens;
DELETE FROM jwt_issuers WHERE issuer IN ('https://a.example', 'https://b.example', 'https://c.example');
DELETE FROM jwt_keys WHERE kid = 'key-1' AND issuer IS NULL;

------------------------------------------------------------------------
-- Another backend sees a change at its next statement
------------------------------------------------------------------------
CREATE EXTENSION dblink;
SELECT dblink_connect('other', format('host=%s port=%s dbname=%s user=%s',
         split_part(current_setting('unix_socket_directories'), ',', 1),
         current_setting('port'), current_database(), current_user));
UPDATE tok SET t1 = jwt_issue('{"sub":"cached"}', kid => 'own-1');
-- the other backend verifies (and caches the key), we revoke, it refuses
SELECT * FROM dblink('other', format('SELECT jwt_is_valid(%L)', (SELECT t1 FROM tok))) AS r(valid boolean);
SELECT jwt_key_revoke('own-1');
SELECT * FROM dblink('other', format('SELECT jwt_is_valid(%L)', (SELECT t1 FROM tok))) AS r(valid boolean);
-- and the reverse: we cache, the other backend changes the table
SELECT jwt_key_import(k('ec521_priv'), 'ES512', 'own-2');
UPDATE tok SET t1 = jwt_issue('{}', kid => 'own-2');
SELECT jwt_is_valid(t1) AS cached_here FROM tok;
SELECT * FROM dblink('other', $$SELECT jwt_key_revoke('own-2')::text$$) AS r(done text);
SELECT jwt_is_valid(t1) AS after_other_revoked FROM tok;
SELECT dblink_disconnect('other');
DROP EXTENSION dblink;

------------------------------------------------------------------------
-- Privileges: a role that is not the owner
------------------------------------------------------------------------
DELETE FROM jwt_keys;
SELECT jwt_key_generate('ES256', 'priv-test');
CREATE ROLE jwt_app;
GRANT SELECT ON tok TO jwt_app;
UPDATE tok SET t1 = jwt_issue('{"sub":"app"}');
SET ROLE jwt_app;
SELECT outcome($$SELECT private_jwk FROM jwt_keys$$) AS select_keys,
       outcome($$SELECT kid FROM jwt_keys$$) AS select_kids,
       outcome($$SELECT * FROM jwt_issuers$$) AS select_issuers,
       outcome($$SELECT jwt_issue('{}')$$) AS issue,
       outcome($$SELECT jwt_key_generate('ES256')$$) AS generate,
       outcome($$SELECT jwt_key_revoke('priv-test')$$) AS revoke,
       outcome($$SELECT jwt_jwks_import('{"keys":[]}', 'x')$$) AS jwks_import,
       outcome($$DELETE FROM jwt_keys$$) AS delete_keys;
-- verifying and publishing need no privilege on the tables
SELECT store_outcome(t1) AS verify, jsonb_array_length(jwt_jwks() -> 'keys') AS jwks_keys FROM tok;
RESET ROLE;
-- minting is granted like any function
GRANT EXECUTE ON FUNCTION jwt_issue(jsonb, text, text, interval) TO jwt_app;
SET ROLE jwt_app;
SELECT store_outcome(jwt_issue('{"sub":"granted"}')) AS granted_issue;
RESET ROLE;
REVOKE EXECUTE ON FUNCTION jwt_issue(jsonb, text, text, interval) FROM jwt_app;
DROP TABLE tok;
DROP ROLE jwt_app;

-- every SECURITY DEFINER function pins its search_path; nothing is LEAKPROOF
SELECT p.oid::regprocedure AS definer_without_search_path
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'jwt'
WHERE p.prosecdef AND NOT coalesce(p.proconfig @> '{"search_path=pg_catalog, pg_temp"}', false);
SELECT count(*) AS leakproof FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'jwt' WHERE p.proleakproof;
-- internal functions (a leading underscore) are not for PUBLIC, and every
-- function has a comment
SELECT p.oid::regprocedure AS internal_for_public
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'jwt'
WHERE p.proname LIKE '\_%' AND has_function_privilege('public', p.oid, 'EXECUTE');
SELECT p.oid::regprocedure AS without_comment
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'jwt'
WHERE obj_description(p.oid, 'pg_proc') IS NULL ORDER BY 1::text;
-- EXECUTE granted to PUBLIC: exactly the functions anyone may call
SELECT p.proname
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'jwt'
WHERE has_function_privilege('public', p.oid, 'EXECUTE') AND p.prosecdef
ORDER BY 1;

DELETE FROM jwt_keys;
DELETE FROM jwt_issuers;
