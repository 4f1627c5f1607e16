-- bench/request/setup.sql, run by run.sh in the benchmark's own database:
-- the keys, the roles, three copies of one table of documents (one per
-- kind of authentication) and the 1,000 users with their tokens and claims.
-- psql variables: users, rows (each user's rows), login, web_user, db.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
CREATE EXTENSION jwt;

-- Two own keys in the key table: one ES256, one HS256 (a 32-byte secret).
SELECT jwt_key_generate('ES256', 'bench-es256') IS NOT NULL AS es256,
       jwt_key_generate('HS256', 'bench-hs256') IS NOT NULL AS hs256 \gset

-- PostgREST's roles: the login role every connection uses, and the role
-- the requests run as.  jwt_authenticate switches to the token's "role".
CREATE ROLE :"login" LOGIN NOINHERIT;
CREATE ROLE :"web_user" NOLOGIN;
GRANT :"web_user" TO :"login";
ALTER ROLE :"login" IN DATABASE :"db" SET jwt.role_claim = 'role';

-- The users: a token of each algorithm, issued from the key table, and the
-- claims those tokens carry, as text (what PostgREST puts in
-- request.jwt.claims after it verified the token).  A day's validity
-- outlives the run.
CREATE TABLE bench_users (
  id       int PRIMARY KEY,
  sub      text NOT NULL,
  role     text NOT NULL,
  es256    text NOT NULL,
  hs256    text NOT NULL,
  claims   text NOT NULL
);
INSERT INTO bench_users (id, sub, role, es256, hs256, claims)
SELECT g, 'user' || g, :'web_user',
       jwt_issue(c, 'ES256', 'bench-es256', '1 day'),
       jwt_issue(c, 'HS256', 'bench-hs256', '1 day'), ''
FROM generate_series(1, :users) AS g,
     LATERAL (SELECT jsonb_build_object('sub', 'user' || g, 'role', :'web_user')) AS m(c);
UPDATE bench_users SET claims = jwt_verify(es256)::text;

-- The documents: each user owns :rows of them, spread over the table.  The
-- same rows three times, so that each kind of authentication has its own
-- policy (or none) on a table of its own.
CREATE TABLE docs_jwt (id int PRIMARY KEY, owner text NOT NULL, title text NOT NULL, body text NOT NULL);
INSERT INTO docs_jwt
SELECT g, 'user' || ((g - 1) % :users + 1), 'document ' || g, repeat(md5(g::text), 2)
FROM generate_series(1, :users * :rows) AS g;
CREATE TABLE docs_guc (LIKE docs_jwt INCLUDING ALL);
INSERT INTO docs_guc SELECT * FROM docs_jwt;
CREATE TABLE docs_open (LIKE docs_jwt INCLUDING ALL);
INSERT INTO docs_open SELECT * FROM docs_jwt;
CREATE INDEX ON docs_jwt (owner);
CREATE INDEX ON docs_guc (owner);
CREATE INDEX ON docs_open (owner);

-- (a) the identity jwt_authenticate made, which SQL cannot forge
ALTER TABLE docs_jwt ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON docs_jwt USING (owner = jwt_claim('sub'));
-- (b) PostgREST's usual policy: the claims the application put in a setting
ALTER TABLE docs_guc ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON docs_guc USING (owner = current_setting('request.jwt.claims', true)::json ->> 'sub');
-- (c) no policy: the query says whose rows it wants

GRANT SELECT ON bench_users, docs_open TO :"login";
GRANT SELECT ON docs_jwt, docs_guc TO :"web_user";
VACUUM ANALYZE bench_users, docs_jwt, docs_guc, docs_open;

-- What the run measures, checked once: each variant sees user 1's rows
-- only, and its query reads them by the index.
SET jwt.role_claim = 'role';           -- what the login role gets when it connects
SET SESSION AUTHORIZATION :"login";
BEGIN;
SELECT jwt_authenticate(es256) IS NOT NULL AS ok FROM bench_users WHERE id = 1 \gset
SELECT count(*) = :rows AND bool_and(owner = 'user1') AS ok FROM docs_jwt \gset
\if :ok
\else
  \warn 'setup: (a) does not see user1''s rows only'
  SELECT 1 / 0;
\endif
EXPLAIN (COSTS OFF) SELECT json_agg(d) FROM docs_jwt AS d;
COMMIT;
BEGIN;
SELECT set_config('role', role, true) IS NOT NULL AND set_config('request.jwt.claims', claims, true) IS NOT NULL AS ok
FROM bench_users WHERE id = 1 \gset
SELECT count(*) = :rows AND bool_and(owner = 'user1') AS ok FROM docs_guc \gset
\if :ok
\else
  \warn 'setup: (b) does not see user1''s rows only'
  SELECT 1 / 0;
\endif
EXPLAIN (COSTS OFF) SELECT json_agg(d) FROM docs_guc AS d;
COMMIT;
EXPLAIN (COSTS OFF) SELECT json_agg(d) FROM docs_open AS d WHERE owner = 'user1';
RESET SESSION AUTHORIZATION;
