-- scripts/demo.sql: a guided tour of the jwt extension, run by scripts/demo.sh.
-- Expects psql variables rsa_priv, rsa_pub, ec_priv, ec_pub, ed_priv, ed_pub (PEM text).

\echo '== 0. Install the extension (the demo stops here if this fails)'
\set ON_ERROR_STOP on
CREATE EXTENSION jwt;
\set ON_ERROR_STOP off
\x auto

\echo
\echo '== 1. HS256: the jwt.io example token, byte for byte'
-- sign the jwt.io claims with the secret 'secret' and keep the token in :hs_token
SELECT jwt_sign('{"sub":"1234567890","name":"John Doe","admin":true}', 'secret') AS hs_token \gset
-- compare with the well-known token
SELECT :'hs_token' AS token,
       :'hs_token' = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiYWRtaW4iOnRydWV9.TJVA95OrM7E2cBab30RMHrHDcEfxjoYZgeFONFh7HgQ' AS is_jwt_io_token;
-- verify it: the claims come back
SELECT jwt_verify(:'hs_token', 'secret') AS claims;
-- inspect without verifying: header and payload (never authorize from these)
SELECT jwt_header(:'hs_token') AS header, jwt_decode_unverified(:'hs_token') AS unverified_claims;

\echo
\echo '== 2. Public-key algorithms: sign with the private PEM, verify with the public PEM'
-- RS256 (RSA 2048)
SELECT jwt_verify(jwt_sign('{"sub":"alice","role":"reader"}', :'rsa_priv', 'RS256'), :'rsa_pub') AS rs256_claims;
-- ES256 (EC P-256, raw R||S signature)
SELECT jwt_verify(jwt_sign('{"sub":"bob","role":"writer"}', :'ec_priv', 'ES256'), :'ec_pub') AS es256_claims;
-- EdDSA (Ed25519)
SELECT jwt_verify(jwt_sign('{"sub":"carol","role":"admin"}', :'ed_priv', 'EdDSA'), :'ed_pub') AS eddsa_claims;
-- the header names the algorithm
SELECT jwt_header(jwt_sign('{}', :'ed_priv', 'EdDSA')) AS eddsa_header;

\echo
\echo '== 3. jwt_is_valid: a boolean, never an error'
SELECT jwt_is_valid(:'hs_token', 'secret') AS right_secret,
       jwt_is_valid(:'hs_token', 'wrong')  AS wrong_secret,
       jwt_is_valid('not.a.token', 'secret') AS garbage;

\echo
\echo '== 4. Every failure has its own SQLSTATE (JW001..JW009); these errors are on purpose'
\set VERBOSITY verbose
\set SHOW_CONTEXT never

\echo '-- JW001 decode: malformed token (not three dot-separated segments)'
SELECT jwt_verify('abc', 'secret');

\echo '-- JW002 signature: verified with the wrong secret'
SELECT jwt_verify(:'hs_token', 'not-the-secret');

\echo '-- JW003 algorithm: HS256 token, but only RS256 is allowed'
SELECT jwt_verify(:'hs_token', 'secret', algorithms => ARRAY['RS256']);

\echo '-- JW003 algorithm: an unsigned alg "none" token is never accepted'
SELECT jwt_verify('eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.', 'secret');

\echo '-- JW004 expired: exp is in 2001'
SELECT jwt_verify(jwt_sign('{"sub":"1","exp":1000000000}', 'secret'), 'secret');

\echo '-- JW005 not yet valid: nbf is in 2100'
SELECT jwt_verify(jwt_sign('{"sub":"1","nbf":4102444800}', 'secret'), 'secret');

\echo '-- JW006 audience: token for "other", we expect "api"'
SELECT jwt_verify(jwt_sign('{"sub":"1","aud":"other"}', 'secret'), 'secret', audience => 'api');

\echo '-- JW007 issuer: token from another issuer'
SELECT jwt_verify(jwt_sign('{"sub":"1","iss":"https://evil.example"}', 'secret'), 'secret',
                  issuer => 'https://auth.example');

\echo '-- JW008 required claim missing: "sub" is required'
SELECT jwt_verify(jwt_sign('{"name":"anonymous"}', 'secret'), 'secret', require => ARRAY['sub']);

\echo '-- JW009 key: the key set (JWKS) has no key with the token''s kid "b"'
SELECT jwt_verify(jwt_sign('{"sub":"1"}', 'secret', 'HS256', '{"kid":"b"}'),
                  '{"keys":[{"kty":"oct","kid":"a","k":"c2VjcmV0"}]}');

\echo '-- 22023 invalid_parameter_value: unknown algorithm in jwt_sign (not the token''s fault)'
SELECT jwt_sign('{"sub":"1"}', 'secret', 'HS999');

\echo
\echo '== 5. In PL/pgSQL, SQLSTATE ''JW000'' catches the whole JW class'
\set VERBOSITY default
-- an expired token lands in the class-wide handler, with its own SQLSTATE
DO $$
BEGIN
  PERFORM jwt_verify(jwt_sign('{"exp":1000000000}', 'secret'), 'secret');
EXCEPTION WHEN SQLSTATE 'JW000' THEN
  RAISE NOTICE 'caught % (%): treat the caller as anonymous', SQLSTATE, SQLERRM;
END $$;

\echo
\echo '== 6. The key table: generate, issue, verify with no key, rotate, revoke'
SELECT jwt_key_generate('ES256', 'demo-es-1') AS kid;
SELECT jwt_issue('{"sub":"alice"}') AS token \gset
SELECT jwt_header(:'token') AS header, jwt_verify(:'token') ->> 'sub' AS sub;
\echo '-- rotate: a new key signs, the old one is retired and still verifies'
SELECT jwt_key_generate('ES256', 'demo-es-2') AS kid;
SELECT jwt_key_retire('demo-es-1');
SELECT jwt_header(jwt_issue('{}')) ->> 'kid' AS now_signing, jwt_is_valid(:'token') AS old_token_valid;
SELECT jsonb_array_length(jwt_jwks() -> 'keys') AS published_keys;
\echo '-- JW009: revoking the old key rejects its tokens at once'
SELECT jwt_key_revoke('demo-es-1');
SELECT jwt_verify(:'token');
DELETE FROM jwt_keys WHERE kid LIKE 'demo-%';

\echo
\echo '== 7. Row-level security: a verified token is the transaction''s identity'
SELECT jwt_key_generate('ES256', 'demo-es-3') AS kid;
CREATE ROLE demo_login NOINHERIT;
CREATE ROLE demo_user;
GRANT demo_user TO demo_login;
CREATE TABLE demo_notes (owner text, body text);
INSERT INTO demo_notes VALUES ('alice', 'alice''s note'), ('bob', 'bob''s note');
ALTER TABLE demo_notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_notes ON demo_notes USING (owner = jwt_claim('sub'));
GRANT SELECT ON demo_notes TO demo_user;
SET jwt.role_claim = 'role';
SELECT jwt_issue('{"sub":"alice","role":"demo_user"}') AS alice_token \gset
SET SESSION AUTHORIZATION demo_login;
BEGIN;
SELECT jwt_authenticate(:'alice_token') ->> 'sub' AS authenticated, current_user AS now_running_as;
SELECT * FROM demo_notes;
\echo '-- forging PostgREST''s setting changes nothing'
SELECT set_config('request.jwt.claims', '{"sub":"bob"}', true) IS NOT NULL AS forged, jwt_claim('sub') AS still;
COMMIT;
\echo '-- after COMMIT: no identity, and the policy shows the same role nothing'
SET ROLE demo_user;
SELECT count(*) AS visible_without_a_token FROM demo_notes;
RESET SESSION AUTHORIZATION;
RESET jwt.role_claim;
DROP TABLE demo_notes;
DROP ROLE demo_login, demo_user;
DELETE FROM jwt_keys WHERE kid LIKE 'demo-%';

\echo
\echo '== 8. Refresh tokens: rotate, detect a replayed token, log out everywhere'
SELECT jwt_key_generate('ES256', 'demo-es-4') AS kid;
SELECT access_token AS demo_access, refresh_token AS demo_refresh
FROM jwt_issue_pair('{"sub":"alice"}') \gset
SELECT jwt_header(:'demo_refresh') ->> 'typ' AS refresh_typ,
       jwt_verify(:'demo_access') ->> 'sub' AS access_for;
\echo '-- a refresh token is not an access token (JW001)'
SELECT jwt_verify(:'demo_refresh');
\echo '-- rotate: a new pair; the old refresh token is used up'
SELECT refresh_token AS demo_refresh2 FROM jwt_refresh(:'demo_refresh') \gset
\echo '-- the old one again: theft assumed, the whole family is revoked (JW010)'
SELECT * FROM jwt_refresh(:'demo_refresh');
SELECT * FROM jwt_refresh(:'demo_refresh2');
\echo '-- logout everywhere: alice''s tokens issued until now fail (JW010)'
SELECT jwt_revoke_subject('alice', now() + interval '1 second');
SELECT jwt_verify(:'demo_access');
DELETE FROM jwt_revoked_subjects WHERE sub = 'alice';
DELETE FROM jwt_token_families;
DELETE FROM jwt_keys WHERE kid LIKE 'demo-%';

\echo
\echo '== End of the tour'
