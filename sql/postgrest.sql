-- PostgREST's db-pre-request hook, replayed: per request PostgREST sends
-- exactly these statements (v12; the parameters inlined), so this is what
-- jwt_pre_request() sees behind a real PostgREST.
--
--   BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
--   select set_config('search_path', ...), set_config('role', ...),
--          set_config('request.jwt.claims', ...), set_config('request.method', ...),
--          set_config('request.path', ...), set_config('request.headers', ...),
--          set_config('request.cookies', ...);
--   select "public"."jwt_pre_request"();
--   WITH pgrst_source AS (...) SELECT ...;
--   COMMIT;
\set VERBOSITY default
SET client_min_messages = warning;

-- an HMAC key with a fixed kid, so tokens (and this output) are stable
DELETE FROM jwt_keys;
DELETE FROM jwt_issuers;
SELECT jwt_key_import('postgrest-replay-secret-of-32-bytes!', 'HS256', 'replay') AS kid;

-- the usual PostgREST roles: it logs in as authenticator and switches
CREATE ROLE pgrst_authenticator NOINHERIT;
CREATE ROLE pgrst_anon;
CREATE ROLE pgrst_user;
CREATE ROLE pgrst_admin;
GRANT pgrst_anon, pgrst_user TO pgrst_authenticator;

CREATE SCHEMA api;
GRANT USAGE ON SCHEMA api TO pgrst_anon, pgrst_user;
CREATE TABLE api.notes (id int PRIMARY KEY, owner text NOT NULL, body text NOT NULL);
INSERT INTO api.notes VALUES (1, 'alice', 'alice 1'), (2, 'alice', 'alice 2'), (3, 'bob', 'bob 1');
ALTER TABLE api.notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_notes ON api.notes USING (owner = jwt_claim('sub'));
GRANT SELECT ON api.notes TO pgrst_anon, pgrst_user;

-- what the authenticator's settings would hold (ALTER ROLE ... SET, by a superuser)
SET jwt.role_claim = 'role';
SET jwt.anon_role = 'pgrst_anon';
SET jwt.cookie = 'access_token';

SELECT
  json_build_object('authorization', 'Bearer ' ||
    jwt_issue('{"sub": "alice", "role": "pgrst_user", "iat": 1700000000, "exp": 4102444800, "jti": "a"}'),
    'accept', '*/*', 'user-agent', 'curl/7.88.1')::text AS alice_headers,
  json_build_object('authorization', 'bearer ' ||
    jwt_issue('{"sub": "bob", "role": "pgrst_user", "iat": 1700000000, "exp": 4102444800, "jti": "b"}'),
    'accept', '*/*')::text AS bob_headers,
  json_build_object('authorization', 'Bearer ' ||
    jwt_issue('{"sub": "alice", "role": "pgrst_user", "iat": 1000000000, "exp": 1000000600, "jti": "c"}'))::text AS expired_headers,
  json_build_object('authorization', 'Bearer ' ||
    jwt_sign('{"sub": "alice", "role": "pgrst_user", "exp": 4102444800}', 'some-other-secret-of-32-bytes!!!!', 'HS256'))::text AS foreign_headers,
  json_build_object('authorization', 'Bearer ' ||
    jwt_issue('{"sub": "root", "role": "pgrst_admin", "iat": 1700000000, "exp": 4102444800, "jti": "d"}'))::text AS admin_headers,
  json_build_object('authorization', 'Basic YWxpY2U6c2VjcmV0')::text AS basic_headers,
  json_build_object('access_token',
    jwt_issue('{"sub": "bob", "role": "pgrst_user", "iat": 1700000000, "exp": 4102444800, "jti": "e"}'))::text AS bob_cookies,
  json_build_object('sub', 'alice', 'role', 'pgrst_user')::text AS alice_claims
\gset

SET SESSION AUTHORIZATION pgrst_authenticator;

-- GET /notes as alice (PostgREST verified the token too and set her role)
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
select set_config('search_path', '"api", "public"', true), set_config('role', 'pgrst_user', true), set_config('request.jwt.claims', :'alice_claims', true), set_config('request.method', 'GET', true), set_config('request.path', '/notes', true), set_config('request.headers', :'alice_headers', true), set_config('request.cookies', '{}', true) \g /dev/null
select "public"."jwt_pre_request"();
WITH pgrst_source AS ( SELECT "api"."notes".* FROM "api"."notes" ORDER BY "notes"."id" ) SELECT null::bigint AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, coalesce(json_agg(_postgrest_t), '[]') AS body, nullif(current_setting('response.headers', true), '') AS response_headers, nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted FROM ( SELECT * FROM pgrst_source ) _postgrest_t;
COMMIT;

-- GET /notes as bob, the scheme in lower case
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
select set_config('search_path', '"api", "public"', true), set_config('role', 'pgrst_user', true), set_config('request.jwt.claims', '{"sub":"bob","role":"pgrst_user"}', true), set_config('request.method', 'GET', true), set_config('request.path', '/notes', true), set_config('request.headers', :'bob_headers', true), set_config('request.cookies', '{}', true) \g /dev/null
select "public"."jwt_pre_request"();
WITH pgrst_source AS ( SELECT "api"."notes".* FROM "api"."notes" ORDER BY "notes"."id" ) SELECT null::bigint AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, coalesce(json_agg(_postgrest_t), '[]') AS body, nullif(current_setting('response.headers', true), '') AS response_headers, nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted FROM ( SELECT * FROM pgrst_source ) _postgrest_t;
COMMIT;

-- GET /notes without a token: the anonymous role, and the policy denies
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
select set_config('search_path', '"api", "public"', true), set_config('role', 'pgrst_anon', true), set_config('request.jwt.claims', '{"role":"pgrst_anon"}', true), set_config('request.method', 'GET', true), set_config('request.path', '/notes', true), set_config('request.headers', '{"accept":"*/*"}', true), set_config('request.cookies', '{}', true) \g /dev/null
select "public"."jwt_pre_request"();
SELECT current_user, jwt_claims();
WITH pgrst_source AS ( SELECT "api"."notes".* FROM "api"."notes" ORDER BY "notes"."id" ) SELECT null::bigint AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, coalesce(json_agg(_postgrest_t), '[]') AS body, nullif(current_setting('response.headers', true), '') AS response_headers, nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted FROM ( SELECT * FROM pgrst_source ) _postgrest_t;
COMMIT;

-- a forged request.jwt.claims (any SQL user can set it) changes nothing
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
select set_config('search_path', '"api", "public"', true), set_config('role', 'pgrst_user', true), set_config('request.jwt.claims', :'alice_claims', true), set_config('request.method', 'GET', true), set_config('request.path', '/notes', true), set_config('request.headers', '{"accept":"*/*"}', true), set_config('request.cookies', '{}', true) \g /dev/null
select "public"."jwt_pre_request"();
SELECT current_user, jwt_claims();
WITH pgrst_source AS ( SELECT "api"."notes".* FROM "api"."notes" ORDER BY "notes"."id" ) SELECT null::bigint AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, coalesce(json_agg(_postgrest_t), '[]') AS body, nullif(current_setting('response.headers', true), '') AS response_headers, nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted FROM ( SELECT * FROM pgrst_source ) _postgrest_t;
COMMIT;

-- the token in a cookie (PostgREST then needs no JWT secret of its own)
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
select set_config('search_path', '"api", "public"', true), set_config('role', 'pgrst_anon', true), set_config('request.jwt.claims', '{"role":"pgrst_anon"}', true), set_config('request.method', 'GET', true), set_config('request.path', '/notes', true), set_config('request.headers', '{"accept":"*/*"}', true), set_config('request.cookies', :'bob_cookies', true) \g /dev/null
select "public"."jwt_pre_request"();
SELECT current_user, jwt_claim('sub');
WITH pgrst_source AS ( SELECT "api"."notes".* FROM "api"."notes" ORDER BY "notes"."id" ) SELECT null::bigint AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, coalesce(json_agg(_postgrest_t), '[]') AS body, nullif(current_setting('response.headers', true), '') AS response_headers, nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted FROM ( SELECT * FROM pgrst_source ) _postgrest_t;
COMMIT;

-- failures: PostgREST answers 401 with WWW-Authenticate from the PGRST error
-- expired
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
select set_config('search_path', '"api", "public"', true), set_config('role', 'pgrst_user', true), set_config('request.jwt.claims', :'alice_claims', true), set_config('request.method', 'GET', true), set_config('request.path', '/notes', true), set_config('request.headers', :'expired_headers', true), set_config('request.cookies', '{}', true) \g /dev/null
select "public"."jwt_pre_request"();
ROLLBACK;
-- signed with a key we do not have
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
select set_config('search_path', '"api", "public"', true), set_config('role', 'pgrst_user', true), set_config('request.jwt.claims', :'alice_claims', true), set_config('request.method', 'GET', true), set_config('request.path', '/notes', true), set_config('request.headers', :'foreign_headers', true), set_config('request.cookies', '{}', true) \g /dev/null
select "public"."jwt_pre_request"();
ROLLBACK;
-- not a bearer token: 400 invalid_request
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
select set_config('search_path', '"api", "public"', true), set_config('role', 'pgrst_anon', true), set_config('request.jwt.claims', '{"role":"pgrst_anon"}', true), set_config('request.method', 'GET', true), set_config('request.path', '/notes', true), set_config('request.headers', :'basic_headers', true), set_config('request.cookies', '{}', true) \g /dev/null
select "public"."jwt_pre_request"();
ROLLBACK;
-- a valid token asking for a role the authenticator may not take: 42501 as is
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
select set_config('search_path', '"api", "public"', true), set_config('role', 'pgrst_anon', true), set_config('request.jwt.claims', '{"role":"pgrst_anon"}', true), set_config('request.method', 'GET', true), set_config('request.path', '/notes', true), set_config('request.headers', :'admin_headers', true), set_config('request.cookies', '{}', true) \g /dev/null
select "public"."jwt_pre_request"();
ROLLBACK;
RESET SESSION AUTHORIZATION;

-- with no anonymous role, a request without a token is 401 with a bare
-- "Bearer" challenge (RFC 6750 section 3.1)
SET jwt.anon_role = '';
SET SESSION AUTHORIZATION pgrst_authenticator;
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
select set_config('search_path', '"api", "public"', true), set_config('role', 'pgrst_anon', true), set_config('request.jwt.claims', '{"role":"pgrst_anon"}', true), set_config('request.method', 'GET', true), set_config('request.path', '/notes', true), set_config('request.headers', '{"accept":"*/*"}', true), set_config('request.cookies', '{}', true) \g /dev/null
select "public"."jwt_pre_request"();
ROLLBACK;
RESET SESSION AUTHORIZATION;

DROP SCHEMA api CASCADE;
DROP ROLE pgrst_authenticator, pgrst_anon, pgrst_user, pgrst_admin;
DELETE FROM jwt_keys;
