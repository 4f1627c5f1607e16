-- bench/rls/rls.sql, run by run.sh
\set QUIET on
SET client_min_messages = warning;
CREATE EXTENSION jwt;
SELECT jwt_key_generate('ES256') \gset

-- the user is user42: 1 row in 1,000
CREATE ROLE bench_user;
CREATE TABLE docs (id bigint, owner text, body text);
INSERT INTO docs SELECT g, 'user' || (g % 1000), 'row ' || g FROM generate_series(1, :rows) g;
VACUUM ANALYZE docs;
ALTER TABLE docs ENABLE ROW LEVEL SECURITY;
CREATE POLICY p ON docs USING (false);
GRANT SELECT ON docs TO bench_user;

-- The policies compared, all on the same table (the policy is swapped
-- between runs), in rounds so that no policy gets a warmer cache.
CREATE TABLE variants (name text, policy text, ms numeric[] DEFAULT '{}');
INSERT INTO variants (name, policy) VALUES
  ('literal',     $$owner = 'user42'$$),
  ('jwt_claim',   $$owner = jwt_claim('sub')$$),
  ('jwt_claims',  $$owner = jwt_claims() ->> 'sub'$$),
  ('initplan',    $$owner = (SELECT jwt_claim('sub'))$$),
  -- the floor: PostgreSQL's own cheapest per-row call that looks a name up
  -- and returns text (a GUC read, no JSON)
  ('setting',     $$owner = current_setting('bench.sub')$$),
  -- PostgREST's classic policy, reading the (forgeable) setting
  ('request_guc', $$owner = current_setting('request.jwt.claims', true)::json ->> 'sub'$$);

CREATE FUNCTION run_rounds(rounds int, expect bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v record;
  t0 timestamptz;
  c bigint;
BEGIN
  FOR r IN 0..rounds LOOP                -- round 0 warms up
    FOR v IN SELECT * FROM variants ORDER BY name LOOP
      EXECUTE format('ALTER POLICY p ON docs USING (%s)', v.policy);
      SET LOCAL ROLE bench_user;
      t0 := clock_timestamp();
      EXECUTE 'SELECT count(*) FROM docs' INTO c;
      RESET ROLE;
      IF c <> expect THEN
        RAISE EXCEPTION '%: expected % rows, got %', v.name, expect, c;
      END IF;
      IF r > 0 THEN
        UPDATE variants SET ms = ms || (extract(epoch FROM clock_timestamp() - t0) * 1000)::numeric
        WHERE name = v.name;
      END IF;
    END LOOP;
  END LOOP;
END $$;

SELECT jwt_issue('{"sub": "user42"}') AS token \gset
SET max_parallel_workers_per_gather = 0;
BEGIN;
SELECT jwt_authenticate(:'token') IS NOT NULL AS authenticated \gset
SELECT set_config('request.jwt.claims', '{"sub": "user42"}', true) IS NOT NULL AS set \gset
SELECT set_config('bench.sub', 'user42', true) IS NOT NULL AS set \gset
SELECT run_rounds(:rounds, :rows / 1000) \gset
COMMIT;
\unset QUIET
\echo
\echo count(*) over :rows rows through an RLS policy, median of :rounds runs, parallel query off
WITH m AS (
  SELECT name, policy, (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(ms) x) AS ms
  FROM variants)
SELECT name AS "policy", policy AS "USING", round(ms, 1) AS "ms",
       round(ms / (SELECT ms FROM m WHERE name = 'literal'), 2) AS "× literal"
FROM m ORDER BY ms;
