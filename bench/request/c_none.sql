-- (c) no authentication: the same lookup of the user's row, no role switch,
-- no policy; the query itself asks for the user's rows.
-- pgbench variables: users, rows, warm.
\set id random(1, :users)
\if :warm = 0
SELECT set_config('bench.warm', 'on', false), count(*) FROM bench_users WHERE current_setting('bench.warm', true) IS DISTINCT FROM 'on' AND claims IS NOT NULL;
\set warm 1
\endif
BEGIN;
SELECT claims IS NOT NULL FROM bench_users WHERE id = :id;
SELECT 1 / coalesce(count(*) = :rows AND bool_and(d.owner = 'user' || :id) AND current_user = 'jwt_bench_login', false)::int AS own_rows_only, json_agg(d) AS body FROM docs_open AS d WHERE d.owner = 'user' || :id;
COMMIT;
