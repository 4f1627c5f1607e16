-- Refresh tokens (jwt_issue_pair, jwt_refresh), reuse detection, revocation
-- (jwt_revoke, jwt_revoke_subject) and jwt_purge_expired.
\set VERBOSITY default
SET client_min_messages = warning;

DELETE FROM jwt_keys;
DELETE FROM jwt_issuers;
SELECT length(jwt_key_generate('ES256')) > 0 AS key_made;

-- ----------------------------------------------------------------
-- a pair: two kinds of token that are not interchangeable
-- ----------------------------------------------------------------
SELECT * FROM jwt_issue_pair('{"sub": "alice", "role": "app_user", "iat": 1, "jti": "mine"}') \gset
SELECT jwt_verify(:'access_token') - ARRAY['iat', 'exp', 'jti'] AS access_claims,
       (jwt_verify(:'access_token') ->> 'exp')::bigint - (jwt_verify(:'access_token') ->> 'iat')::bigint AS access_ttl,
       jwt_verify(:'access_token') ->> 'jti' <> 'mine' AS own_jti;
SELECT jwt_header(:'refresh_token') ->> 'typ' AS refresh_typ,
       ARRAY(SELECT jsonb_object_keys(jwt_decode_unverified(:'refresh_token')) ORDER BY 1) AS refresh_claims,
       (jwt_decode_unverified(:'refresh_token') ->> 'exp')::bigint
         - (jwt_decode_unverified(:'refresh_token') ->> 'iat')::bigint AS refresh_ttl;
-- a refresh token is not an access token, nor the other way round
SELECT outcome(format('SELECT jwt_verify(%L)', :'refresh_token')) AS verify_refresh,
       jwt_is_valid(:'refresh_token') AS is_valid_refresh,
       outcome(format('SELECT jwt_authenticate(%L)', :'refresh_token')) AS authenticate_refresh,
       outcome(format('SELECT jwt_refresh(%L)', :'access_token')) AS refresh_access;
-- whatever the letter case, with or without "application/"
SELECT outcome(format('SELECT jwt_verify(%L)', jwt_issue('{"sub": "x"}') )) AS plain,
       outcome(format('SELECT jwt_verify(%L)',
         jwt_sign('{"sub": "x", "exp": 4102444800}', private_jwk::text, alg, '{"typ": "Application/Refresh+JWT"}'))) AS spelled
FROM jwt_keys;
-- ttls: arguments, then jwt.access_ttl and jwt.refresh_ttl
SELECT (c ->> 'exp')::bigint - (c ->> 'iat')::bigint AS access_ttl,
       (r ->> 'exp')::bigint - (r ->> 'iat')::bigint AS refresh_ttl
FROM jwt_issue_pair('{"sub": "alice"}', '5 minutes', '1 day') p,
     LATERAL (SELECT jwt_verify(p.access_token) AS c, jwt_decode_unverified(p.refresh_token) AS r) x;
SET jwt.access_ttl = '2min';
SELECT (jwt_verify(access_token) ->> 'exp')::bigint - (jwt_verify(access_token) ->> 'iat')::bigint AS access_ttl
FROM jwt_issue_pair('{"sub": "alice"}');
RESET jwt.access_ttl;
SELECT outcome($$SELECT jwt_issue_pair('[1]')$$) AS not_an_object,
       outcome($$SELECT jwt_issue_pair('{"sub": 7}')$$) AS sub_not_a_string,
       outcome($$SELECT jwt_issue_pair('{}', '-1 minute')$$) AS negative_ttl;

-- ----------------------------------------------------------------
-- rotation
-- ----------------------------------------------------------------
SELECT access_token AS access2, refresh_token AS refresh2 FROM jwt_refresh(:'refresh_token') \gset
SELECT jwt_verify(:'access2') - ARRAY['iat', 'exp', 'jti'] AS same_claims,
       jwt_verify(:'access2') ->> 'jti' <> jwt_verify(:'access_token') ->> 'jti' AS new_jti;
SELECT r.used_at IS NOT NULL AS used, r.replaced_by = jwt_decode_unverified(:'refresh2') ->> 'jti' AS replaced_by_next,
       (SELECT count(*) FROM jwt_refresh_tokens r2 WHERE r2.family = r.family) AS tokens_in_family
FROM jwt_refresh_tokens r WHERE r.jti = jwt_decode_unverified(:'refresh_token') ->> 'jti';
-- and again, from the new one
SELECT access_token AS access3, refresh_token AS refresh3 FROM jwt_refresh(:'refresh2') \gset
SELECT jwt_verify(:'access3') ->> 'sub' AS third_access;

-- ----------------------------------------------------------------
-- reuse: the first refresh token again revokes the whole family, and the
-- revocation stays although the call fails
-- ----------------------------------------------------------------
SELECT outcome(format('SELECT jwt_refresh(%L)', :'refresh_token')) AS reuse;
SELECT revoked_at IS NOT NULL AS family_revoked, revoked_reason FROM jwt_token_families f
WHERE f.family = (SELECT family FROM jwt_refresh_tokens WHERE jti = jwt_decode_unverified(:'refresh3') ->> 'jti');
SELECT outcome(format('SELECT jwt_refresh(%L)', :'refresh3')) AS newest_of_family;
-- the access tokens already out stay valid until they expire (they are short)
SELECT jwt_is_valid(:'access3') AS access_still_valid;
-- inside a transaction that then rolls back, the revocation stays as well
SELECT * FROM jwt_issue_pair('{"sub": "carol"}') \gset c_
SELECT refresh_token AS c_refresh2 FROM jwt_refresh(:'c_refresh_token') \gset
BEGIN;
SELECT outcome(format('SELECT jwt_refresh(%L)', :'c_refresh_token')) AS reuse_in_transaction;
ROLLBACK;
SELECT outcome(format('SELECT jwt_refresh(%L)', :'c_refresh2')) AS after_rollback;

-- a grace period lets a client that lost the response retry
SELECT * FROM jwt_issue_pair('{"sub": "dave"}') \gset d_
SELECT refresh_token AS d_refresh2 FROM jwt_refresh(:'d_refresh_token') \gset
SET jwt.refresh_grace = '1min';
SELECT jwt_decode_unverified(refresh_token) ->> 'sub' AS retried FROM jwt_refresh(:'d_refresh_token');
SELECT outcome(format('SELECT jwt_refresh(%L)', :'d_refresh2')) AS family_intact;
RESET jwt.refresh_grace;
SELECT outcome(format('SELECT jwt_refresh(%L)', :'d_refresh_token')) AS after_grace_off;

-- an expected audience is for access tokens; refresh tokens carry none
SET jwt.audience = 'my-api';
SELECT * FROM jwt_issue_pair('{"sub": "kim", "aud": "my-api"}') \gset k_
SELECT jwt_verify(access_token) ->> 'aud' AS refreshed_access_aud FROM jwt_refresh(:'k_refresh_token');
RESET jwt.audience;

-- only our refresh tokens: unknown jti, another key
SELECT outcome(format('SELECT jwt_refresh(%L)',
  jwt_sign('{"sub": "x", "jti": "nope", "exp": 4102444800}', private_jwk::text, alg, '{"typ": "refresh+jwt"}')))
  AS unknown_jti
FROM jwt_keys;
SELECT outcome(format('SELECT jwt_refresh(%L)',
  jwt_sign('{"sub": "x", "jti": "nope", "exp": 4102444800}', 'another secret of thirty-two bytes!', 'HS256',
           '{"typ": "refresh+jwt"}'))) AS foreign_key;

-- ----------------------------------------------------------------
-- jwt_revoke: one token, by token or by jti
-- ----------------------------------------------------------------
SELECT jwt_issue('{"sub": "erin"}') AS t1, jwt_issue('{"sub": "erin"}') AS t2,
       jwt_issue('{"sub": "erin", "jti": "bare-jti"}') AS t3 \gset
SELECT jwt_revoke(:'t1', 'lost phone');
SELECT outcome(format('SELECT jwt_verify(%L)', :'t1')) AS verify_revoked,
       jwt_is_valid(:'t1') AS is_valid_revoked,
       outcome(format('SELECT jwt_authenticate(%L)', :'t1')) AS authenticate_revoked,
       jwt_is_valid(:'t2') AS other_token_valid;
-- revocation holds whatever key verifies: here the public JWK, passed in
SELECT outcome(format('SELECT jwt_verify(%L, %L)', :'t1', jwt_jwks() -> 'keys' -> 0)) AS with_explicit_key,
       outcome(format('SELECT jwt_verify(%L, %L)', :'t2', jwt_jwks() -> 'keys' -> 0)) AS other_with_key;
SELECT jwt_revoke('bare-jti');
SELECT NOT jwt_is_valid(:'t3') AS bare_jti_revoked;
-- twice is fine; the first reason stays
SELECT jwt_revoke(:'t1', 'again');
SELECT reason, expires_at IS NOT NULL AS purgeable FROM jwt_revoked
WHERE jti = jwt_decode_unverified(:'t1') ->> 'jti';
-- a token that is not ours, or has no jti, cannot be revoked by token
SELECT outcome(format('SELECT jwt_revoke(%L)', jwt_sign('{"jti": "x"}', 'another secret of thirty-two bytes!')))
  AS foreign_token,
  outcome(format('SELECT jwt_revoke(%L)', jwt_sign('{"sub": "x"}', private_jwk::text, alg))) AS no_jti,
  outcome('SELECT jwt_revoke(NULL)') AS null_arg
FROM jwt_keys;
-- an expired token can still be revoked
SELECT jwt_revoke(jwt_issue('{"sub": "erin", "iat": 1000000000, "exp": 1000000600}'));
-- a refresh token takes its family with it: logout
SELECT * FROM jwt_issue_pair('{"sub": "frank"}') \gset f_
SELECT jwt_revoke(:'f_refresh_token', 'logout');
SELECT outcome(format('SELECT jwt_refresh(%L)', :'f_refresh_token')) AS after_logout;
SELECT revoked_reason FROM jwt_token_families WHERE sub = 'frank';

-- ----------------------------------------------------------------
-- jwt_revoke_subject: logout everywhere, without listing tokens
-- ----------------------------------------------------------------
SELECT jwt_issue(jsonb_build_object('sub', 'gina', 'iat', extract(epoch FROM now())::bigint - 600)) AS g_old,
       jwt_issue(jsonb_build_object('sub', 'gina', 'iat', extract(epoch FROM now())::bigint - 10)) AS g_new,
       jwt_sign(jsonb_build_object('sub', 'gina', 'exp', 4102444800), private_jwk::text, alg) AS g_no_iat,
       jwt_issue('{"sub": "hank"}') AS h
FROM jwt_keys \gset
SELECT * FROM jwt_issue_pair('{"sub": "gina"}') \gset g_
SELECT jwt_revoke_subject('gina', now() - interval '5 minutes');
SELECT outcome(format('SELECT jwt_verify(%L)', :'g_old')) AS issued_before,
       jwt_is_valid(:'g_new') AS issued_after,
       NOT jwt_is_valid(:'g_no_iat') AS revoked_without_iat,
       jwt_is_valid(:'h') AS other_subject;
SELECT jwt_revoke_subject('gina');
SELECT NOT jwt_is_valid(:'g_new') AS revoked_after_logout_everywhere,
       outcome(format('SELECT jwt_refresh(%L)', :'g_refresh_token')) AS refresh_after;
-- an earlier time does not undo a later one
SELECT jwt_revoke_subject('gina', now() - interval '1 day');
SELECT NOT jwt_is_valid(:'g_new') AS still_revoked;
SELECT outcome($$SELECT jwt_revoke_subject(NULL)$$) AS null_sub;

-- ----------------------------------------------------------------
-- verification only reads: it works in a read-only transaction (as on a
-- hot standby), where the writing functions fail with 25006
-- ----------------------------------------------------------------
SELECT * FROM jwt_issue_pair('{"sub": "ivy"}') \gset i_
BEGIN READ ONLY;
SELECT jwt_is_valid(:'i_access_token') AS verifies, NOT jwt_is_valid(:'t1') AS revoked_still;
SELECT outcome(format('SELECT jwt_refresh(%L)', :'i_refresh_token')) AS refresh,
       outcome(format('SELECT jwt_revoke(%L)', :'i_access_token')) AS revoke,
       outcome($$SELECT jwt_revoke_subject('ivy')$$) AS revoke_subject,
       outcome($$SELECT jwt_issue_pair('{}')$$) AS issue_pair,
       outcome($$SELECT jwt_purge_expired()$$) AS purge;
COMMIT;

-- ----------------------------------------------------------------
-- a parallel query: workers read the key and revocation tables too (with
-- the query's snapshot, as a parallel query cannot take a newer one)
-- ----------------------------------------------------------------
-- (300 tokens; 40 with debug_discard_caches, where each call reloads the
-- key store: the 4 revoked ones are left out of every count below)
SELECT CASE WHEN current_setting('debug_discard_caches')::int > 0 THEN 40 ELSE 300 END AS ptoks_n \gset
CREATE TABLE ptoks AS SELECT g, jwt_issue(jsonb_build_object('sub', 'p' || g)) AS t
FROM generate_series(1, :ptoks_n) g;
ANALYZE ptoks;
-- two workers whatever the table's size (40 tokens fill 2 pages, for which
-- the planner plans 1 worker, and then a serial plan costs the same)
ALTER TABLE ptoks SET (parallel_workers = 2);
SELECT count(jwt_revoke(t)) AS revoked FROM ptoks WHERE g <= 3;
SELECT jwt_revoke_subject('p' || :ptoks_n);
BEGIN;
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
SET LOCAL parallel_leader_participation = off;
SELECT replace(parallel_run($$SELECT * FROM ptoks WHERE jwt_is_valid(t)$$),
               (:ptoks_n - 4)::text, 'all but the revoked') AS key_table;
SELECT replace(parallel_run(format('SELECT * FROM ptoks WHERE jwt_is_valid(t, %L)', jwt_jwks() -> 'keys' -> 0)),
               (:ptoks_n - 4)::text, 'all but the revoked') AS given_key;
COMMIT;
SELECT count(*) FILTER (WHERE jwt_is_valid(t)) = :ptoks_n - 4 AS serial_all_but_revoked FROM ptoks;
DROP TABLE ptoks;

-- ----------------------------------------------------------------
-- jwt_purge_expired
-- ----------------------------------------------------------------
-- a family whose refresh token expired, and a revoked token past its exp
SELECT * FROM jwt_issue_pair('{"sub": "old"}', '1 minute', '1 minute') \gset o_
UPDATE jwt_token_families SET expires_at = now() - interval '1 second' WHERE sub = 'old';
UPDATE jwt_refresh_tokens SET expires_at = now() - interval '1 second'
WHERE family = (SELECT family FROM jwt_token_families WHERE sub = 'old');
SELECT count(*) AS revoked_past_exp FROM jwt_revoked WHERE expires_at < now();
SELECT jwt_purge_expired() AS purged;
SELECT count(*) AS old_families FROM jwt_token_families WHERE sub = 'old';
SELECT count(*) AS revoked_past_exp FROM jwt_revoked WHERE expires_at < now();
SELECT jwt_purge_expired() AS purged_again;
-- revocations of live tokens stay, and of tokens that expired less than a
-- day (plus jwt.leeway, at most a day: no leeway can outlast the margin) ago
SELECT NOT jwt_is_valid(:'t1') AS t1_still_revoked;
SELECT jwt_revoke(jwt_issue('{"sub": "erin"}', ttl => '1 second'));
UPDATE jwt_revoked SET expires_at = now() - interval '1 hour' WHERE expires_at > now() AND expires_at < now() + interval '2 seconds';
SELECT jwt_purge_expired() AS purged_within_margin;
SET jwt.leeway = '1d';
UPDATE jwt_revoked SET expires_at = now() - interval '36 hours' WHERE expires_at = (SELECT max(expires_at) FROM jwt_revoked WHERE expires_at < now());
SELECT jwt_purge_expired() AS purged_within_leeway;
RESET jwt.leeway;
SELECT jwt_purge_expired() AS purged_after_margin;

-- ----------------------------------------------------------------
-- privileges: none of these is for PUBLIC; the tables are not readable
-- ----------------------------------------------------------------
CREATE ROLE jwt_refresh_app;
SET ROLE jwt_refresh_app;
SELECT outcome(format('SELECT jwt_refresh(%L)', :'i_refresh_token')) AS refresh,
       outcome($$SELECT jwt_issue_pair('{}')$$) AS issue_pair,
       outcome($$SELECT jwt_revoke('x')$$) AS revoke,
       outcome($$SELECT jwt_revoke_subject('x')$$) AS revoke_subject,
       outcome($$SELECT jwt_purge_expired()$$) AS purge,
       outcome($$SELECT count(*) FROM jwt_revoked$$) AS read_revoked,
       outcome($$SELECT count(*) FROM jwt_token_families$$) AS read_families;
-- but verification sees revocations without any privilege
SELECT NOT jwt_is_valid(:'t1') AS revoked, jwt_is_valid(:'i_access_token') AS valid;
RESET ROLE;
GRANT EXECUTE ON FUNCTION jwt_refresh(text) TO jwt_refresh_app;
SET ROLE jwt_refresh_app;
SELECT jwt_verify(access_token) ->> 'sub' AS granted_refresh FROM jwt_refresh(:'i_refresh_token');
RESET ROLE;
REVOKE EXECUTE ON FUNCTION jwt_refresh(text) FROM jwt_refresh_app;
DROP ROLE jwt_refresh_app;

-- leave the tables empty for the suites that follow
DELETE FROM jwt_revoked;
DELETE FROM jwt_revoked_subjects;
DELETE FROM jwt_token_families;
SELECT jwt_is_valid(:'t1') AS valid_once_unrevoked;
DELETE FROM jwt_keys;
