-- (a) HS256: the database verifies the user's token (jwt_authenticate: key
-- table, role switch to the token's role) and RLS reads jwt_claim('sub').
-- pgbench variables: users, rows, warm.  With -D warm=0 the client's first
-- transaction starts by verifying every token once in its backend, unless
-- that backend has done so already (the session setting bench.warm_hs256, which
-- stays with PgBouncer's server connection), so that its caches are those of
-- a long-lived connection.
\set id random(1, :users)
\if :warm = 0
SELECT set_config('bench.warm_hs256', 'on', false), count(*) FROM bench_users WHERE current_setting('bench.warm_hs256', true) IS DISTINCT FROM 'on' AND jwt_verify(hs256) IS NOT NULL;
\set warm 1
\endif
BEGIN;
SELECT jwt_authenticate(hs256) IS NOT NULL FROM bench_users WHERE id = :id;
SELECT 1 / coalesce(count(*) = :rows AND bool_and(d.owner = 'user' || :id) AND current_user = 'jwt_bench_user', false)::int AS own_rows_only, json_agg(d) AS body FROM docs_jwt AS d;
COMMIT;
