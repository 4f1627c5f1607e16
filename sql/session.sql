-- jwt_authenticate, jwt_claims, jwt_claim: the identity of a transaction,
-- its scope, the role switch, and what a SQL user cannot forge.
\set VERBOSITY default
SET client_min_messages = warning;

-- one own key; tokens carry fixed iat/exp/jti so that output is stable
DELETE FROM jwt_keys;
DELETE FROM jwt_issuers;
SELECT length(jwt_key_generate('ES256')) > 0 AS key_made;

CREATE FUNCTION tok(claims jsonb) RETURNS text LANGUAGE sql AS $$
  SELECT jwt_issue('{"iat": 1700000000, "exp": 4102444800, "jti": "t"}'::jsonb || claims)
$$;
CREATE TABLE toks AS SELECT
  tok('{"sub": "alice", "role": "jwt_user",
        "app_metadata": {"role": "jwt_user", "tenants": ["t1", "t2"], "level": 3},
        "https://example.com/tenant": "acme", "admin": false, "nothing": null}') AS alice,
  tok('{"sub": "bob", "role": "jwt_user"}') AS bob,
  tok('{"sub": "eve", "role": "jwt_outsider"}') AS outsider,
  tok('{"sub": "ghost", "role": "jwt_no_such_role"}') AS ghost,
  tok('{"sub": "root", "role": "postgres"}') AS root,
  tok('{"sub": "num", "role": 42}') AS numrole,
  tok('{"sub": "norole"}') AS norole,
  jwt_issue('{"sub": "late", "iat": 1000000000, "exp": 1000000600}') AS expired;
SELECT * FROM toks \gset

-- what jwt_authenticate does with a token: OK and the subject, or the error
CREATE FUNCTION auth_outcome(t text, scope text DEFAULT 'transaction')
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  RETURN 'OK ' || coalesce(jwt_authenticate(t, scope) ->> 'sub', 'anonymous');
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ' ' || SQLERRM;
END $$;

-- ----------------------------------------------------------------
-- no identity: NULL, so policies deny by default
-- ----------------------------------------------------------------
SELECT jwt_claims() IS NULL AS no_claims, jwt_claim('sub') IS NULL AS no_sub;

-- ----------------------------------------------------------------
-- transaction scope
-- ----------------------------------------------------------------
BEGIN;
SELECT jwt_authenticate(:'alice') ->> 'sub' AS authenticated;
SELECT jwt_claim('sub') AS sub, jwt_claims() ->> 'sub' AS claims_sub;
COMMIT;
SELECT jwt_claims() IS NULL AS cleared_at_commit;

BEGIN;
SELECT jwt_authenticate(:'alice') ->> 'sub' AS authenticated;
ROLLBACK;
SELECT jwt_claims() IS NULL AS cleared_at_rollback;

BEGIN;
SELECT jwt_authenticate(:'alice') ->> 'sub' AS authenticated;
SELECT 1 / 0;
ROLLBACK;
SELECT jwt_claims() IS NULL AS cleared_at_abort;

-- a statement outside a transaction block is its own transaction
SELECT jwt_authenticate(:'alice') ->> 'sub' AS authenticated, jwt_claim('sub') AS same_statement;
SELECT jwt_claim('sub') IS NULL AS gone_after_statement;

-- subtransactions: rolled back, the identity before comes back
BEGIN;
SELECT jwt_authenticate(:'alice') ->> 'sub' AS authenticated;
SAVEPOINT s1;
SELECT jwt_authenticate(:'bob') ->> 'sub' AS authenticated;
ROLLBACK TO s1;
SELECT jwt_claim('sub') AS after_rollback_to;
SAVEPOINT s2;
SELECT jwt_authenticate(:'bob') ->> 'sub' AS authenticated;
RELEASE s2;
SELECT jwt_claim('sub') AS after_release;
-- a failing token changes nothing
SAVEPOINT s3;
SELECT auth_outcome(:'expired') AS expired;
ROLLBACK TO s3;
SELECT jwt_claim('sub') AS after_failed_token;
-- an anonymous request clears it
SELECT jwt_authenticate(NULL) IS NULL AS anonymous, jwt_claims() IS NULL AS no_claims;
COMMIT;

-- a plpgsql exception block is a subtransaction too
SET my.alice = :'alice';
SET my.bob = :'bob';
BEGIN;
DO $$
BEGIN
  PERFORM jwt_authenticate(current_setting('my.alice'));
  BEGIN
    PERFORM jwt_authenticate(current_setting('my.bob'));
    RAISE EXCEPTION 'undo';
  EXCEPTION WHEN raise_exception THEN
    RAISE WARNING 'after the block: %', jwt_claim('sub');
  END;
END $$;
ROLLBACK;

-- the failure kinds come through with their SQLSTATEs
SELECT auth_outcome('not a token') AS malformed;
SELECT auth_outcome(:'expired') AS expired;
SELECT auth_outcome(:'alice', 'forever') AS bad_scope;

-- ----------------------------------------------------------------
-- claim names and paths
-- ----------------------------------------------------------------
BEGIN;
SELECT jwt_authenticate(:'alice') IS NOT NULL AS authenticated;
SELECT jwt_claim('sub') AS string,
       jwt_claim('iat') AS number,
       jwt_claim('admin') AS bool,
       jwt_claim('nothing') IS NULL AS json_null,
       jwt_claim('missing') IS NULL AS missing;
SELECT jwt_claim('app_metadata.role') AS nested,
       jwt_claim('.app_metadata.role') AS postgrest_form,
       jwt_claim('app_metadata.tenants.1') AS array_index,
       jwt_claim('app_metadata.tenants.7') IS NULL AS past_the_end,
       jwt_claim('app_metadata.level.x') IS NULL AS into_a_scalar,
       jwt_claim('app_metadata.tenants') AS array_as_json;
-- a name holding dots is found as it is, or quoted inside a path
SELECT jwt_claim('https://example.com/tenant') AS uri_name,
       jwt_claim('"https://example.com/tenant"') AS quoted;
SELECT outcome($$SELECT jwt_claim('app_metadata..role')$$) AS empty_name,
       outcome($$SELECT jwt_claim('app_metadata.')$$) AS trailing_dot,
       outcome($$SELECT jwt_claim('a."b')$$) AS open_quote;
SELECT jwt_claim(NULL) IS NULL AS null_name;
-- results are shared with later calls, and operators build new values
SELECT jwt_claims() || '{"sub": "mallory"}' ->> 'sub' AS new_value, jwt_claim('sub') AS sub;
-- a result stays valid when the identity changes within the statement
SELECT jwt_claim('sub') AS first, jwt_claims() ->> 'sub' AS first_claims,
       jwt_authenticate(:'bob') ->> 'sub' AS switched,
       jwt_claim('sub') AS second, jwt_claims() ->> 'sub' AS second_claims;
COMMIT;

-- ----------------------------------------------------------------
-- memory: the claims are replaced, not piled up, when the identity changes;
-- jwt_claim's answers (handed out without copying) go at the transaction end
-- ----------------------------------------------------------------
-- (100 times with debug_discard_caches, where each one reloads every cache)
SELECT set_config('my.loops', CASE WHEN current_setting('debug_discard_caches')::int > 0
                                   THEN '100' ELSE '2000' END, false) AS loops \gset
BEGIN;
DO $$
DECLARE
  who text;
BEGIN
  FOR i IN 1..current_setting('my.loops')::int LOOP
    who := (ARRAY['alice', 'bob'])[i % 2 + 1];
    PERFORM jwt_authenticate(current_setting('my.' || who));
    IF jwt_claim('sub') IS DISTINCT FROM who THEN
      RAISE EXCEPTION 'wrong identity at %', i;
    END IF;
    -- more names than jwt_claim keeps answers for
    PERFORM jwt_claim('n' || j) FROM generate_series(1, 12) j;
  END LOOP;
END $$;
SELECT name, total_bytes < 16384 AS small, total_bytes > 65536 AS grew
FROM pg_backend_memory_contexts WHERE name LIKE 'jwt session%' ORDER BY name;
COMMIT;
SELECT name, total_bytes < 16384 AS small
FROM pg_backend_memory_contexts WHERE name LIKE 'jwt session%' ORDER BY name;

-- ----------------------------------------------------------------
-- forgery: the settings a SQL user can write do not change the identity
-- ----------------------------------------------------------------
CREATE ROLE jwt_authenticator NOINHERIT;
CREATE ROLE jwt_anon;
CREATE ROLE jwt_user;
CREATE ROLE jwt_outsider;
GRANT jwt_anon, jwt_user TO jwt_authenticator;
GRANT SELECT ON toks TO PUBLIC;

SET SESSION AUTHORIZATION jwt_authenticator;
BEGIN;
SELECT set_config('request.jwt.claims', '{"sub": "mallory", "role": "jwt_user"}', true) IS NOT NULL AS planted;
SELECT jwt_claims() IS NULL AS no_claims, jwt_claim('sub') IS NULL AS no_sub;
SELECT jwt_authenticate(alice) ->> 'sub' AS authenticated FROM toks;
SELECT set_config('request.jwt.claims', '{"sub": "mallory"}', true) IS NOT NULL AS planted_again;
SELECT jwt_claim('sub') AS still_alice;
COMMIT;
-- the identity setting itself is for superusers only
SELECT stmt, outcome(stmt) FROM (VALUES
  ($$SELECT set_config('jwt.identity', '{"sub": "mallory"}', true)$$),
  ($$SET jwt.identity = '{"sub": "mallory"}'$$),
  ($$RESET jwt.identity$$),
  ($$SET jwt.trust_request_claims = on$$),
  ($$SET jwt.role_claim = 'sub'$$),
  ($$SET jwt.anon_role = 'jwt_user'$$),
  -- nor can a function's SET clause do it
  ($$CREATE FUNCTION pg_temp.forge() RETURNS text LANGUAGE sql
     SET jwt.identity = '{"sub": "mallory"}' AS 'SELECT jwt_claim(''sub'')'$$)) v(stmt);
RESET SESSION AUTHORIZATION;

-- trust_request_claims = on: PostgREST's claims count when jwt_authenticate
-- has not run (a superuser's decision)
SET jwt.trust_request_claims = on;
SET SESSION AUTHORIZATION jwt_authenticator;
BEGIN;
SELECT jwt_claims() IS NULL AS nothing_set;
SELECT set_config('request.jwt.claims', '{"sub": "from-postgrest"}', true) IS NOT NULL AS set;
SELECT jwt_claim('sub') AS trusted;
SELECT set_config('request.jwt.claims', '{"sub": "changed"}', true) IS NOT NULL AS set;
SELECT jwt_claim('sub') AS follows_the_setting;
-- a verified token still wins
SELECT jwt_authenticate(alice) ->> 'sub' AS authenticated FROM toks;
SELECT jwt_claim('sub') AS own_identity_first;
COMMIT;
BEGIN;
SELECT set_config('request.jwt.claims', '[1, 2]', true) IS NOT NULL AS set;
SELECT jwt_claims() IS NULL AS not_an_object;
SELECT set_config('request.jwt.claims', '', true) IS NOT NULL AS set;
SELECT jwt_claims() IS NULL AS empty;
COMMIT;
RESET SESSION AUTHORIZATION;
RESET jwt.trust_request_claims;

-- ----------------------------------------------------------------
-- session scope
-- ----------------------------------------------------------------
SELECT jwt_authenticate(:'alice', 'session') ->> 'sub' AS session_identity;
SELECT jwt_claim('sub') AS next_statement;
BEGIN;
SELECT jwt_authenticate(:'bob') ->> 'sub' AS transaction_identity;
COMMIT;
SELECT jwt_claim('sub') AS session_identity_again;
-- a session identity set in a transaction that rolls back is undone
BEGIN;
SELECT jwt_authenticate(:'bob', 'session') ->> 'sub' AS authenticated;
ROLLBACK;
SELECT jwt_claim('sub') AS still_alice;
-- ended by an anonymous call, and by RESET ALL / DISCARD ALL (what poolers send)
SELECT jwt_authenticate(NULL, 'session') IS NULL AS anonymous, jwt_claim('sub') IS NULL AS ended;
SELECT jwt_authenticate(:'alice', 'session') ->> 'sub' AS session_identity;
RESET ALL;
SELECT jwt_claim('sub') IS NULL AS reset_all_ends_it;
SELECT jwt_authenticate(:'alice', 'session') ->> 'sub' AS session_identity;
DISCARD ALL;
SELECT jwt_claim('sub') IS NULL AS discard_all_ends_it;
\set VERBOSITY default
SET client_min_messages = warning;

-- ----------------------------------------------------------------
-- roles: jwt.role_claim and jwt.anon_role
-- ----------------------------------------------------------------
SET jwt.role_claim = 'role';
SET jwt.anon_role = 'jwt_anon';
SET SESSION AUTHORIZATION jwt_authenticator;
SELECT current_user AS before;
BEGIN;
SELECT jwt_authenticate(alice) ->> 'sub' AS authenticated FROM toks;
SELECT current_user AS switched, session_user AS session;
COMMIT;
SELECT current_user AS after_commit;
-- rolled back with a subtransaction
BEGIN;
SELECT jwt_authenticate(NULL) IS NULL AS anonymous;
SELECT current_user AS anon;
SAVEPOINT s;
SELECT jwt_authenticate(alice) IS NOT NULL AS authenticated FROM toks;
SELECT current_user AS switched;
ROLLBACK TO s;
SELECT current_user AS back_to_anon, jwt_claims() IS NULL AS no_claims;
COMMIT;
-- roles the session user cannot become are refused, never skipped
SELECT auth_outcome(outsider) AS outsider, auth_outcome(ghost) AS no_such_role FROM toks;
SELECT auth_outcome(root) AS superuser, auth_outcome(numrole) AS not_a_string FROM toks;
SELECT current_user AS unchanged, jwt_claims() IS NULL AS no_claims;
-- a token without the role claim is anonymous as to its role
BEGIN;
SELECT jwt_authenticate(norole) ->> 'sub' AS authenticated FROM toks;
SELECT current_user AS anon, jwt_claim('sub') AS sub;
COMMIT;
-- a nested role claim
RESET SESSION AUTHORIZATION;
SET jwt.role_claim = 'app_metadata.role';
SET SESSION AUTHORIZATION jwt_authenticator;
BEGIN;
SELECT jwt_authenticate(alice) IS NOT NULL AS authenticated FROM toks;
SELECT current_user AS from_nested_claim;
COMMIT;
-- with no anonymous role, a request without one is refused
RESET SESSION AUTHORIZATION;
SET jwt.role_claim = 'role';
SET jwt.anon_role = '';
SELECT outcome($$SET jwt.role_claim = 'a..b'$$) AS bad_path;
SET SESSION AUTHORIZATION jwt_authenticator;
SELECT auth_outcome(NULL) AS anonymous, auth_outcome(norole) AS no_role_claim FROM toks;
-- the switch is SET ROLE's, which PostgreSQL refuses in SECURITY DEFINER code
RESET SESSION AUTHORIZATION;
CREATE FUNCTION definer_auth(t text) RETURNS text LANGUAGE sql SECURITY DEFINER
  SET search_path = pg_catalog, public AS $$ SELECT jwt_authenticate(t) ->> 'sub' $$;
GRANT EXECUTE ON FUNCTION definer_auth(text) TO PUBLIC;
SET SESSION AUTHORIZATION jwt_authenticator;
SELECT outcome(format('SELECT definer_auth(%L)', alice)) AS in_definer FROM toks;
-- with no role claim configured, tokens never change the role
RESET SESSION AUTHORIZATION;
RESET jwt.role_claim;
SET SESSION AUTHORIZATION jwt_authenticator;
BEGIN;
SELECT jwt_authenticate(outsider) ->> 'sub' AS authenticated FROM toks;
SELECT current_user AS no_switch;
COMMIT;
RESET SESSION AUTHORIZATION;
DROP FUNCTION definer_auth(text);
-- the session scope switches the role for the session too; RESET ALL keeps
-- the role (as for SET ROLE), DISCARD ALL ends both
SET jwt.role_claim = 'role';
SET SESSION AUTHORIZATION jwt_authenticator;
SELECT auth_outcome(alice, 'session') AS session_scope FROM toks;
SELECT current_user AS next_statement, jwt_claim('sub') AS sub;
RESET ALL;
SELECT current_user AS after_reset_all, jwt_claim('sub') IS NULL AS no_claims;
SELECT auth_outcome(alice, 'session') AS session_scope FROM toks;
DISCARD ALL;
SELECT current_user AS after_discard_all, jwt_claim('sub') IS NULL AS no_claims;
SET client_min_messages = warning;

-- ----------------------------------------------------------------
-- parallel workers see the identity (the claims travel with the settings)
-- ----------------------------------------------------------------
CREATE TABLE par AS SELECT g AS id, CASE WHEN g % 3 = 0 THEN 'alice' ELSE 'bob' END AS owner
FROM generate_series(1, 30000) g;
ANALYZE par;
BEGIN;
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
SET LOCAL parallel_leader_participation = off;
SELECT jwt_authenticate(:'alice') IS NOT NULL AS authenticated;
EXPLAIN (COSTS OFF) SELECT * FROM par WHERE owner = jwt_claim('sub');
SELECT parallel_run($$SELECT * FROM par WHERE owner = jwt_claim('sub')$$);
SELECT count(*) FROM par WHERE owner = jwt_claim('sub');
COMMIT;
DROP TABLE par;

DROP TABLE toks;
DROP FUNCTION tok(jsonb);
DROP FUNCTION auth_outcome(text, text);
DROP ROLE jwt_authenticator, jwt_anon, jwt_user, jwt_outsider;
DELETE FROM jwt_keys;
