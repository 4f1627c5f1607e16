-- The multi-tenant example of the README: row-level security from the
-- claims of a verified token, and the Supabase-style auth.* shims.
\set VERBOSITY default
SET client_min_messages = warning;

DELETE FROM jwt_keys;
DELETE FROM jwt_issuers;
SELECT length(jwt_key_generate('ES256')) > 0 AS key_made;

-- the application logs in as app_login and runs requests as app_user
CREATE ROLE app_login NOINHERIT;
CREATE ROLE app_user;
GRANT app_user TO app_login;

-- README: multi-tenant example (begin)
CREATE SCHEMA app;
CREATE TABLE app.projects (
  id     int PRIMARY KEY,
  tenant text NOT NULL,
  owner  text NOT NULL,
  name   text NOT NULL
);
ALTER TABLE app.projects ENABLE ROW LEVEL SECURITY;
-- a user sees and writes the rows of their own tenant that they own
CREATE POLICY own_rows ON app.projects
  USING (tenant = jwt_claim('tenant') AND owner = jwt_claim('sub'))
  WITH CHECK (tenant = jwt_claim('tenant') AND owner = jwt_claim('sub'));
GRANT USAGE ON SCHEMA app TO app_user;
GRANT SELECT, INSERT, UPDATE, DELETE ON app.projects TO app_user;
-- README: multi-tenant example (end)

INSERT INTO app.projects VALUES
  (1, 'acme',   'alice', 'rocket'),
  (2, 'acme',   'alice', 'anvil'),
  (3, 'acme',   'bob',   'magnet'),
  (4, 'globex', 'carol', 'dome'),
  (5, 'globex', 'alice', 'other alice');

SET jwt.role_claim = 'role';

CREATE TABLE toks AS SELECT
  jwt_issue('{"sub": "alice", "tenant": "acme",   "role": "app_user"}') AS alice,
  jwt_issue('{"sub": "bob",   "tenant": "acme",   "role": "app_user"}') AS bob,
  jwt_issue('{"sub": "carol", "tenant": "globex", "role": "app_user"}') AS carol,
  -- alice's name, but a token for another tenant
  jwt_issue('{"sub": "alice", "tenant": "globex", "role": "app_user"}') AS alice_globex,
  jwt_issue('{"sub": "alice", "tenant": "acme", "role": "app_user", "iat": 1000000000, "exp": 1000000600}') AS expired;
GRANT SELECT ON toks TO PUBLIC;
SELECT * FROM toks \gset

SET SESSION AUTHORIZATION app_login;

-- three users, each sees only their rows
BEGIN;
SELECT jwt_authenticate(:'alice') ->> 'sub' AS who;
SELECT id, tenant, owner, name FROM app.projects ORDER BY id;
COMMIT;
BEGIN;
SELECT jwt_authenticate(:'bob') ->> 'sub' AS who;
SELECT id, tenant, owner, name FROM app.projects ORDER BY id;
COMMIT;
BEGIN;
SELECT jwt_authenticate(:'carol') ->> 'sub' AS who;
SELECT id, tenant, owner, name FROM app.projects ORDER BY id;
COMMIT;

-- the same subject in another tenant sees that tenant's rows only
BEGIN;
SELECT jwt_authenticate(:'alice_globex') ->> 'sub' AS who;
SELECT id, tenant, owner, name FROM app.projects ORDER BY id;
COMMIT;

-- no token: nothing (as app_user, so only the policy stands in the way)
BEGIN;
SET LOCAL ROLE app_user;
SELECT count(*) AS without_a_token FROM app.projects;
COMMIT;

-- an expired token is an error, not an empty result
SELECT outcome(format('SELECT jwt_authenticate(%L)', :'expired')) AS expired;

-- writes are checked too
BEGIN;
SELECT jwt_authenticate(:'bob') ->> 'sub' AS who;
INSERT INTO app.projects VALUES (6, 'acme', 'bob', 'spring');
SAVEPOINT s;
INSERT INTO app.projects VALUES (7, 'acme', 'alice', 'planted for alice');
ROLLBACK TO s;
UPDATE app.projects SET name = 'renamed' WHERE id = 1;
DELETE FROM app.projects WHERE owner = 'alice';
SELECT id, owner, name FROM app.projects ORDER BY id;
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT id, owner, name FROM app.projects ORDER BY id;

-- ----------------------------------------------------------------
-- Supabase-style schemas: auth.uid(), auth.role(), auth.jwt()
-- ----------------------------------------------------------------
-- README: auth shims (begin)
CREATE SCHEMA auth;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$ SELECT nullif(jwt_claim('sub'), '')::uuid $$;
CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $$ SELECT jwt_claim('role') $$;
CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $$ SELECT jwt_claims() $$;
-- README: auth shims (end)
GRANT USAGE ON SCHEMA auth TO PUBLIC;

-- a table with policies as Supabase's documentation writes them
CREATE TABLE app.profiles (user_id uuid PRIMARY KEY, plan text NOT NULL);
ALTER TABLE app.profiles ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_profile ON app.profiles FOR SELECT
  USING ((SELECT auth.uid()) = user_id);
CREATE POLICY pro_plan ON app.profiles FOR UPDATE
  USING (auth.uid() = user_id AND auth.jwt() -> 'app_metadata' ->> 'plan' = 'pro');
GRANT SELECT, UPDATE ON app.profiles TO app_user;
INSERT INTO app.profiles VALUES
  ('7b0b0b0b-0000-4000-8000-000000000001', 'free'),
  ('7b0b0b0b-0000-4000-8000-000000000002', 'pro');
CREATE TABLE supa AS SELECT jwt_issue('{"sub": "7b0b0b0b-0000-4000-8000-000000000002", "role": "app_user",
  "app_metadata": {"plan": "pro"}}') AS pro;
GRANT SELECT ON supa TO PUBLIC;
SELECT * FROM supa \gset

SET SESSION AUTHORIZATION app_login;
SELECT auth.uid() IS NULL AS no_uid, auth.role() IS NULL AS no_role, auth.jwt() IS NULL AS no_jwt;
BEGIN;
SELECT jwt_authenticate(:'pro') IS NOT NULL AS authenticated;
SELECT auth.uid(), auth.role(), auth.jwt() -> 'app_metadata' AS app_metadata;
SELECT user_id, plan FROM app.profiles;
UPDATE app.profiles SET plan = 'pro+' RETURNING user_id, plan;
COMMIT;
RESET SESSION AUTHORIZATION;

DROP SCHEMA app CASCADE;
DROP SCHEMA auth CASCADE;
DROP TABLE toks, supa;
DROP ROLE app_login, app_user;
DELETE FROM jwt_keys;
