-- (b) trusted claims: the application verified the token; the database
-- takes its claims and role as given, in one statement as PostgREST does
-- (set_config('role', ..., true) is SET LOCAL ROLE), and RLS reads
-- request.jwt.claims.  pgbench variables: users, rows, warm.
\set id random(1, :users)
\if :warm = 0
SELECT set_config('bench.warm', 'on', false), count(*) FROM bench_users WHERE current_setting('bench.warm', true) IS DISTINCT FROM 'on' AND claims IS NOT NULL;
\set warm 1
\endif
BEGIN;
SELECT set_config('role', role, true) IS NOT NULL AND set_config('request.jwt.claims', claims, true) IS NOT NULL FROM bench_users WHERE id = :id;
SELECT 1 / coalesce(count(*) = :rows AND bool_and(d.owner = 'user' || :id) AND current_user = 'jwt_bench_user', false)::int AS own_rows_only, json_agg(d) AS body FROM docs_guc AS d;
COMMIT;
