-- Secret hygiene workload (test/hygiene/run.py runs it; SECURITY.md item 19).
--
-- Keys reach the database only through \copy, whose data is never logged,
-- and tokens are made and kept inside it: no statement below holds a key or
-- a token, so whatever of them the server log or pg_stat_statements ends up
-- holding can only have come from the extension.  Statements that must fail
-- run at top level, so the server logs each error with its statement
-- (log_min_error_statement = error).  Lines "-- expect XXXXX" name the
-- SQLSTATE each failing statement must raise; run.py checks them in order.

\set VERBOSITY verbose
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE EXTENSION IF NOT EXISTS jwt;
DROP SCHEMA IF EXISTS hygiene CASCADE;
CREATE SCHEMA hygiene;
CREATE TABLE hygiene.key (name text PRIMARY KEY, alg text NOT NULL,
                          priv text NOT NULL, pub text NOT NULL,
                          priv_jwk text, encrypted text);
\copy hygiene.key FROM pstdin WITH (FORMAT csv)
CREATE TABLE hygiene.token (name text PRIMARY KEY, token text NOT NULL);

-- tokens signed with every key, in both forms where there is a JWK
INSERT INTO hygiene.token
  SELECT name, jwt_sign('{"sub":"hygiene","exp":4102444800}', priv, alg) FROM hygiene.key
  UNION ALL
  SELECT name || '_jwk', jwt_sign('{"sub":"hygiene-jwk"}', priv_jwk, alg)
  FROM hygiene.key WHERE priv_jwk IS NOT NULL;
SELECT count(*) AS tokens, count(*) FILTER (WHERE jwt_is_valid(t.token, k.pub)) AS valid
FROM hygiene.token t JOIN hygiene.key k ON t.name IN (k.name, k.name || '_jwk');

-- an expired token, for the claim errors below
INSERT INTO hygiene.token
  SELECT 'expired', jwt_sign('{"sub":"hygiene","exp":1000000000}', priv, alg)
  FROM hygiene.key WHERE name = 'hmac';

-- every kind of failure, raised at top level --------------------------------

-- expect JW002: the signature does not verify under another key
SELECT jwt_verify(t.token, k.pub) FROM hygiene.token t, hygiene.key k
WHERE t.name = 'hmac' AND k.name = 'hmac2';
-- expect JW002: a tampered payload
SELECT jwt_verify(split_part(t.token, '.', 1) || '.' || 'e30' || '.' || split_part(t.token, '.', 3), k.pub)
FROM hygiene.token t JOIN hygiene.key k USING (name) WHERE name = 'rsa';
-- expect JW003: a key of another family
SELECT jwt_verify(t.token, k.pub) FROM hygiene.token t, hygiene.key k
WHERE t.name = 'rsa' AND k.name = 'ec';
-- expect JW003: an RSA public key as an HMAC secret
SELECT jwt_verify(t.token, k.pub, ARRAY['HS256']) FROM hygiene.token t, hygiene.key k
WHERE t.name = 'hmac' AND k.name = 'rsa';
-- expect JW001: a truncated token
SELECT jwt_verify(left(t.token, 60), k.pub) FROM hygiene.token t JOIN hygiene.key k USING (name)
WHERE name = 'ed25519';
-- expect JW001: a token with a fourth segment
SELECT jwt_verify(t.token || '.' || split_part(t.token, '.', 3), k.pub)
FROM hygiene.token t JOIN hygiene.key k USING (name) WHERE name = 'ec';
-- expect JW004: expired
SELECT jwt_verify(t.token, k.pub) FROM hygiene.token t, hygiene.key k
WHERE t.name = 'expired' AND k.name = 'hmac';
-- expect JW006: an audience is expected
SELECT jwt_verify(t.token, k.pub, audience => 'api') FROM hygiene.token t JOIN hygiene.key k USING (name)
WHERE name = 'hmac';
-- expect JW009: no key in a JWKS for the token's kid
SELECT jwt_verify(jwt_sign('{}', priv, alg, '{"kid":"mine"}'),
                  jsonb_build_object('keys', jsonb_build_array(priv_jwk::jsonb || '{"kid":"other"}'))::text)
FROM hygiene.key WHERE name = 'ec';
-- expect 22023: a private PEM with its body damaged
SELECT jwt_sign('{}', overlay(priv placing '!!!!' from 200 for 4), alg) FROM hygiene.key
WHERE name = 'rsa';
-- expect 22023: a private PEM cut short
SELECT jwt_sign('{}', left(priv, 300) || E'\n-----END PRIVATE KEY-----\n', alg) FROM hygiene.key
WHERE name = 'rsa';
-- expect 22023: an encrypted private key
SELECT jwt_sign('{}', encrypted, alg) FROM hygiene.key WHERE name = 'rsa';
-- expect 22023: a private JWK missing a member
SELECT jwt_sign('{}', (priv_jwk::jsonb - 'x')::text, alg) FROM hygiene.key WHERE name = 'ed25519';
-- expect 22023: a private JWK that is not JSON
SELECT jwt_sign('{}', left(priv_jwk, 40), alg) FROM hygiene.key WHERE name = 'rsa';
-- expect 22023: a private key used with an algorithm of another family
SELECT jwt_sign('{}', priv, 'ES256') FROM hygiene.key WHERE name = 'rsa';
-- expect 22023: an unknown algorithm
SELECT jwt_sign('{}', priv, 'HS257') FROM hygiene.key WHERE name = 'hmac';
-- expect JW001: jwt_header of a damaged token
SELECT jwt_header(substr(token, 3)) FROM hygiene.token WHERE name = 'rsa';
-- expect JW001: jwt_decode_unverified of a damaged token
SELECT jwt_decode_unverified(replace(token, '.', '')) FROM hygiene.token WHERE name = 'ec';
-- expect JW002: raised inside PL/pgSQL, so the log adds a context line
DO $$
DECLARE
  tok text;
  key text;
BEGIN
  SELECT token INTO tok FROM hygiene.token WHERE name = 'ed25519';
  SELECT pub INTO key FROM hygiene.key WHERE name = 'ed25519';
  PERFORM jwt_verify(left(tok, -4) || 'AAAA', key);
END $$;
-- expect JW002: raised inside a function with the token as its argument
CREATE FUNCTION hygiene.check_token(tok text, key text) RETURNS jsonb
LANGUAGE sql AS $$ SELECT jwt_verify(tok, key) $$;
SELECT hygiene.check_token(t.token, k.pub) FROM hygiene.token t, hygiene.key k
WHERE t.name = 'hmac_jwk' AND k.name = 'hmac2';

-- the key table: keys made in the database, tokens issued from it ----------
DELETE FROM jwt_keys WHERE kid LIKE 'hygiene-%';
SELECT count(jwt_key_generate(alg, 'hygiene-' || alg))
FROM unnest(ARRAY['HS256', 'RS256', 'ES256', 'EdDSA']) AS alg;
INSERT INTO hygiene.token
  SELECT 'issued_' || alg, jwt_issue('{"sub":"hygiene"}', alg)
  FROM unnest(ARRAY['HS256', 'RS256', 'ES256', 'EdDSA']) AS alg;
-- expect JW002: an issued token with its signature changed
SELECT jwt_verify(left(token, -6) || 'AAAAAA') FROM hygiene.token WHERE name = 'issued_RS256';
-- expect JW009: a revoked key
SELECT jwt_key_revoke('hygiene-ES256');
SELECT jwt_verify(token) FROM hygiene.token WHERE name = 'issued_ES256';
-- expect JW006: an audience is expected
SELECT jwt_verify(token, audience => 'api') FROM hygiene.token WHERE name = 'issued_HS256';
-- expect 23505: a kid that is taken
SELECT jwt_key_import(private_jwk::text, kid => 'hygiene-RS256') FROM jwt_keys WHERE kid = 'hygiene-RS256';
-- expect 22023: a private key imported with an algorithm it does not fit
SELECT jwt_key_import(private_jwk::text, 'ES384') FROM jwt_keys WHERE kid = 'hygiene-EdDSA';

-- sessions: jwt_authenticate and the PostgREST hook ------------------------
INSERT INTO hygiene.token
  SELECT 'issued_expired', jwt_issue('{"sub":"hygiene","iat":1000000000,"exp":1000000600}', 'RS256')
  UNION ALL
  SELECT 'issued_role', jwt_issue('{"sub":"hygiene","role":"hygiene_no_such_role"}', 'RS256');
-- expect JW004: an expired token
SELECT jwt_authenticate(token) FROM hygiene.token WHERE name = 'issued_expired';
-- expect JW002: a changed signature
SELECT jwt_authenticate(left(token, -6) || 'AAAAAA') FROM hygiene.token WHERE name = 'issued_RS256';
SET jwt.role_claim = 'role';
-- expect 42501: a role that does not exist
SELECT jwt_authenticate(token) FROM hygiene.token WHERE name = 'issued_role';
RESET jwt.role_claim;
SELECT set_config('request.headers',
                  json_build_object('authorization', 'Bearer ' || left(token, -6) || 'AAAAAA')::text,
                  false) IS NOT NULL AS set
FROM hygiene.token WHERE name = 'issued_HS256';
-- expect PGRST: the hook, a tampered token in the Authorization header
SELECT jwt_pre_request();
SET jwt.cookie = 'access_token';
SELECT set_config('request.headers', '{}', false) IS NOT NULL AS set,
       set_config('request.cookies', json_build_object('access_token', token)::text, false) IS NOT NULL AS set
FROM hygiene.token WHERE name = 'issued_expired';
-- expect PGRST: the hook, an expired token in a cookie
SELECT jwt_pre_request();
RESET jwt.cookie;

-- refresh tokens passed as literals ------------------------------------------
-- log_statement is off for these statements, as on most servers, but a
-- failing statement is still logged (log_min_error_statement = error) unless
-- the error hides it: every error raised on a token must.
SET log_statement = 'none';
SELECT refresh_token AS hy_refresh FROM jwt_issue_pair('{"sub":"hygiene"}') \gset
SELECT refresh_token AS hy_refresh2 FROM jwt_refresh(:'hy_refresh') \gset
INSERT INTO hygiene.token VALUES ('refresh_literal', :'hy_refresh'), ('refresh_literal2', :'hy_refresh2');
-- expect JW010: the rotated refresh token again (its family is revoked)
SELECT * FROM jwt_refresh(:'hy_refresh');
-- expect JW010: the next one, of a revoked family
SELECT * FROM jwt_refresh(:'hy_refresh2');
-- expect JW001: a refresh token where an access token is expected
SELECT jwt_verify(:'hy_refresh2');
-- expect 22023: a token without a jti cannot be revoked by token
SELECT jwt_revoke(jwt_sign('{"sub":"hygiene"}', private_jwk::text, alg)) FROM jwt_keys WHERE kid = 'hygiene-RS256';
RESET log_statement;
