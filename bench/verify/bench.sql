-- bench/verify/bench.sql: the in-server half of the verify benchmark.
--
-- Not run by itself: run.sh sends it to psql in a database of its own, with
-- one variable per key (:'k_rsa_priv' and so on) and these settings:
--
--   :target    seconds each measurement should last (when :fixed_n is 0)
--   :fixed_n   when not 0, calls per measurement, for every operation
--   :probe     calls per operation when warming up and calibrating
--   :max_rows  most calls per measurement
--
-- Every measurement is one statement over a table of distinct tokens (or
-- claims), one call per row, timed inside the server with clock_timestamp():
--
--   SELECT count(*) FROM (SELECT tok FROM bench.run_11 LIMIT n) s
--   WHERE jwt_verify(s.tok, '<key literal>') IS NOT NULL
--
-- so no client round trip is counted, only the executor's per-row overhead,
-- which the operation "scan" measures on its own (the same statement with
-- no call).  The key is a literal, a constant of the plan, as an
-- application's parameter would be.  Parallel query and JIT are off, for
-- every session of this database: each figure is one backend doing the
-- calls one after another, like c_limit.
--
-- This file makes the tables, calibrates and makes the tokens; run.sh then
-- calls bench.measure_round() once per round, alternating with c_limit, and
-- reports the medians of what it leaves in bench.op.

\set ON_ERROR_STOP on
SET client_min_messages = warning;
ALTER DATABASE :"DBNAME" SET max_parallel_workers_per_gather = 0;
ALTER DATABASE :"DBNAME" SET jit = off;
SET max_parallel_workers_per_gather = 0;
SET jit = off;

CREATE EXTENSION IF NOT EXISTS jwt;
\ir pgjwt.sql

CREATE SCHEMA bench;

CREATE TABLE bench.key (name text PRIMARY KEY, k text NOT NULL);
INSERT INTO bench.key (name, k) VALUES
  ('hs_secret',     :'k_hs_secret'),
  ('rsa_priv',      :'k_rsa_priv'),
  ('rsa_pub',       :'k_rsa_pub'),
  ('rsa_jwk_priv',  :'k_rsa_jwk_priv'),
  ('rsa_jwk_pub',   :'k_rsa_jwk_pub'),
  ('ec_priv',       :'k_ec_priv'),
  ('ec_pub',        :'k_ec_pub'),
  ('ec_jwk_priv',   :'k_ec_jwk_priv'),
  ('ec_jwk_pub',    :'k_ec_jwk_pub'),
  ('ed_priv',       :'k_ed_priv'),
  ('ed_pub',        :'k_ed_pub'),
  ('ed_jwk_priv',   :'k_ed_jwk_priv'),
  ('ed_jwk_pub',    :'k_ed_jwk_pub');

CREATE FUNCTION bench.k(keyname text) RETURNS text LANGUAGE sql STABLE STRICT
AS $$ SELECT k FROM bench.key WHERE name = keyname $$;

-- The algorithms: the table of their tokens, the private PEM that signs them.
CREATE TABLE bench.alg (
  alg     text PRIMARY KEY,
  tab     text NOT NULL,              -- bench.tok_<tab>
  signer  text NOT NULL               -- bench.key name
);
INSERT INTO bench.alg VALUES
  ('HS256', 'hs256', 'hs_secret'),
  ('RS256', 'rs256', 'rsa_priv'),
  ('PS256', 'ps256', 'rsa_priv'),
  ('ES256', 'es256', 'ec_priv'),
  ('EdDSA', 'eddsa', 'ed_priv');

-- Claims, distinct per row (sub, jti), valid for a week: no two tokens of an
-- algorithm are alike.  The same claims as json feed the pgcrypto baseline,
-- so that it pays no jsonb-to-json cast.
CREATE TABLE bench.claims (i int PRIMARY KEY, c jsonb NOT NULL, cj json NOT NULL);

CREATE FUNCTION bench.add_claims(upto int) RETURNS void LANGUAGE sql AS $$
  INSERT INTO bench.claims
  SELECT i, c, c::json
  FROM (SELECT i, jsonb_build_object(
                    'iss', 'https://bench.example/',
                    'sub', 'user-' || i,
                    'jti', 'bench-' || lpad(i::text, 8, '0'),
                    'role', 'app_user',
                    'iat', t,
                    'exp', t + 7 * 86400) AS c
        FROM generate_series(coalesce((SELECT max(i) FROM bench.claims), 0) + 1, upto) AS i,
             (SELECT extract(epoch FROM date_trunc('second', now()))::bigint AS t) AS now) AS s;
$$;

-- Sign claims into the algorithm's token table up to row `upto`, with jwt_sign.
CREATE FUNCTION bench.add_tokens(a bench.alg, upto int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM bench.add_claims(upto);
  EXECUTE format('INSERT INTO bench.%I (i, tok)
                  SELECT i, jwt_sign(c, %L, %L) FROM bench.claims
                  WHERE i > coalesce((SELECT max(i) FROM bench.%I), 0) AND i <= %s
                  ORDER BY i',
                 'tok_' || a.tab, bench.k(a.signer), a.alg, 'tok_' || a.tab, upto);
END $$;

-- A table of its own for the tokens lo..hi of an algorithm.
CREATE FUNCTION bench.slice(a bench.alg, name text, lo int, hi int) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('CREATE TABLE bench.%I AS SELECT i, tok FROM bench.%I
                  WHERE i BETWEEN %s AND %s ORDER BY i',
                 name, 'tok_' || a.tab, lo, hi);
END $$;

DO $$
DECLARE
  a bench.alg;
BEGIN
  FOR a IN SELECT * FROM bench.alg LOOP
    EXECUTE format('CREATE TABLE bench.%I (i int PRIMARY KEY, tok text NOT NULL)', 'tok_' || a.tab);
  END LOOP;
END $$;

-- The operations measured.  Each is the statement
--   SELECT count(*) FROM (SELECT <col> AS x FROM <table> LIMIT <rows>) s <joins> WHERE <pred>
-- which must count <rows>: every call must succeed.
--
-- No token is verified twice in a session, so that no per-backend memo of
-- verified tokens or signatures can shorten a timed call: each verify
-- operation has tokens of its own, in three tables cut from its algorithm's
-- tokens: cal_<ord> for calibrating it, run_<ord> for timing it, and warm_<tab>
-- (shared by the algorithm's operations) for warming up.  Each round runs
-- in a new session.  Signing operations all read bench.claims.
CREATE TABLE bench.op (
  op       text PRIMARY KEY,          -- '<impl> <alg> <action> <keyform>'
  ord      int NOT NULL UNIQUE,
  impl     text NOT NULL,             -- jwt, pgcrypto, or scan (no call)
  alg      text NOT NULL REFERENCES bench.alg,
  action   text NOT NULL,             -- verify or sign
  keyform  text NOT NULL,             -- secret, pem, jwk (none for scan)
  col      text NOT NULL,             -- tok, c (jsonb claims) or cj (json claims)
  joins    text NOT NULL DEFAULT '',
  pred     text NOT NULL,
  warm_src text,                      -- table for the warm-up passes
  cal_src  text,                      -- table for calibration
  src      text,                      -- table for the timed runs
  rows     int,                       -- calls per timed run
  us       double precision[] NOT NULL DEFAULT '{}'   -- µs per call, one per round
);

INSERT INTO bench.op (op, ord, impl, alg, action, keyform, col, joins, pred)
SELECT concat_ws(' ', impl, alg, action, keyform), ord, impl, alg, action, keyform,
       col, joins, pred
FROM (VALUES
  (1, 'scan', 'HS256', 'verify', 'none', 'tok', '', 's.x IS NOT NULL'),
  (2, 'jwt', 'HS256', 'verify', 'secret', 'tok', '',
      format('jwt_verify(s.x, %L) IS NOT NULL', bench.k('hs_secret'))),
  (3, 'pgcrypto', 'HS256', 'verify', 'secret', 'tok',
      format('CROSS JOIN LATERAL pgjwt_baseline.verify(s.x, %L) AS v', bench.k('hs_secret')),
      'v.valid'),
  (4, 'jwt', 'HS256', 'sign', 'secret', 'c', '',
      format('jwt_sign(s.x, %L, ''HS256'') IS NOT NULL', bench.k('hs_secret'))),
  (5, 'pgcrypto', 'HS256', 'sign', 'secret', 'cj', '',
      format('pgjwt_baseline.sign(s.x, %L) IS NOT NULL', bench.k('hs_secret')))
) AS v(ord, impl, alg, action, keyform, col, joins, pred);

-- the asymmetric algorithms: verify and sign, with the key as PEM and as JWK
INSERT INTO bench.op (op, ord, impl, alg, action, keyform, col, pred)
SELECT concat_ws(' ', 'jwt', a.alg, o.action, o.keyform), 10 * a.n + o.n,
       'jwt', a.alg, o.action, o.keyform,
       CASE o.action WHEN 'verify' THEN 'tok' ELSE 'c' END,
       CASE o.action
         WHEN 'verify' THEN format('jwt_verify(s.x, %L) IS NOT NULL',
                                   bench.k(a.fam || o.keyname || '_pub'))
         ELSE format('jwt_sign(s.x, %L, %L) IS NOT NULL',
                     bench.k(a.fam || o.keyname || '_priv'), a.alg)
       END
FROM (VALUES (1, 'RS256', 'rsa'), (2, 'PS256', 'rsa'), (3, 'ES256', 'ec'), (4, 'EdDSA', 'ed'))
       AS a(n, alg, fam),
     (VALUES (1, 'verify', 'pem', ''), (2, 'verify', 'jwk', '_jwk'),
             (3, 'sign', 'pem', ''),   (4, 'sign', 'jwk', '_jwk'))
       AS o(n, action, keyform, keyname);

UPDATE bench.op SET warm_src = 'bench.claims', cal_src = 'bench.claims', src = 'bench.claims'
WHERE action = 'sign';
UPDATE bench.op AS o SET warm_src = 'bench.warm_' || a.tab,
                         cal_src = 'bench.cal_' || o.ord,
                         src = 'bench.run_' || o.ord
FROM bench.alg AS a
WHERE a.alg = o.alg AND o.action = 'verify' AND o.impl <> 'scan';
-- the scan reads the tokens of jwt's HS256 verify, as many
UPDATE bench.op SET warm_src = 'bench.warm_hs256' WHERE impl = 'scan';

-- One run of an operation over the first `nrows` rows of `tab`: µs per call.
CREATE FUNCTION bench.run(o bench.op, tab text, nrows int) RETURNS double precision
LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz;
  t1 timestamptz;
  got bigint;
BEGIN
  t0 := clock_timestamp();
  EXECUTE format('SELECT count(*) FROM (SELECT %s AS x FROM %s LIMIT %s) AS s %s WHERE %s',
                 o.col, tab, nrows, o.joins, o.pred)
    INTO got;
  t1 := clock_timestamp();
  IF got <> nrows THEN
    RAISE EXCEPTION '%: % calls of % succeeded (on %)', o.op, got, nrows, tab;
  END IF;
  RETURN extract(epoch FROM t1 - t0) * 1e6 / nrows;
END $$;

-- Tokens for warming up and calibrating: per algorithm, `probe` tokens in
-- warm_<tab>, then `probe` for each verify operation in its cal_<ord>.
CREATE PROCEDURE bench.prepare_calibration(probe int) LANGUAGE plpgsql AS $$
DECLARE
  a bench.alg;
  o bench.op;
  next int;
BEGIN
  PERFORM bench.add_claims(probe);
  FOR a IN SELECT * FROM bench.alg ORDER BY alg LOOP
    next := probe + 1;
    PERFORM bench.add_tokens(a, probe * (1 + (SELECT count(*)::int FROM bench.op
                                              WHERE alg = a.alg AND action = 'verify'
                                                AND impl <> 'scan')));
    PERFORM bench.slice(a, 'warm_' || a.tab, 1, probe);
    FOR o IN SELECT * FROM bench.op WHERE alg = a.alg AND action = 'verify' AND impl <> 'scan'
             ORDER BY ord LOOP
      PERFORM bench.slice(a, 'cal_' || o.ord, next, next + probe - 1);
      next := next + probe;
    END LOOP;
  END LOOP;
END $$;

-- Calibration: each operation warmed up, then timed over `probe` calls,
-- then given the calls that last `target` seconds.
CREATE PROCEDURE bench.calibrate(target double precision, max_rows int, probe int)
LANGUAGE plpgsql AS $$
DECLARE
  o bench.op;
  cost_us double precision;
BEGIN
  FOR o IN SELECT * FROM bench.op WHERE impl <> 'scan' ORDER BY ord LOOP
    PERFORM bench.run(o, o.warm_src, probe);
    cost_us := bench.run(o, o.cal_src, probe);
    UPDATE bench.op
    SET rows = least(max_rows, greatest(probe, ceil(target * 1e6 / cost_us)::int))
    WHERE op = o.op;
  END LOOP;
END $$;

-- Tokens for the timed runs: per algorithm, after the calibration tokens,
-- `rows` for each verify operation in its run_<ord>.
CREATE PROCEDURE bench.prepare_runs(probe int) LANGUAGE plpgsql AS $$
DECLARE
  a bench.alg;
  o bench.op;
  first int;
  next int;
BEGIN
  UPDATE bench.op SET rows = (SELECT rows FROM bench.op WHERE op = 'jwt HS256 verify secret'),
                      src = (SELECT src FROM bench.op WHERE op = 'jwt HS256 verify secret')
  WHERE impl = 'scan';
  PERFORM bench.add_claims((SELECT max(rows) FROM bench.op WHERE action = 'sign'));
  FOR a IN SELECT * FROM bench.alg ORDER BY alg LOOP
    EXECUTE format('SELECT max(i) + 1 FROM bench.%I', 'tok_' || a.tab) INTO first;
    PERFORM bench.add_tokens(a, first - 1 + (SELECT sum(rows)::int FROM bench.op
                                             WHERE alg = a.alg AND action = 'verify'
                                               AND impl <> 'scan'));
    next := first;
    FOR o IN SELECT * FROM bench.op WHERE alg = a.alg AND action = 'verify' AND impl <> 'scan'
             ORDER BY ord LOOP
      PERFORM bench.slice(a, 'run_' || o.ord, next, next + o.rows - 1);
      next := next + o.rows;
    END LOOP;
  END LOOP;
END $$;

\warn calibrating
CALL bench.prepare_calibration(:probe);
SELECT :fixed_n > 0 AS fixed \gset
\if :fixed
UPDATE bench.op SET rows = :fixed_n;
\else
CALL bench.calibrate(:target, :max_rows, :probe);
\endif

\warn generating tokens
CALL bench.prepare_runs(:probe);
VACUUM ANALYZE;

CREATE FUNCTION bench.token_counts() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  a bench.alg;
  n bigint;
  counts text[] := '{}';
BEGIN
  FOR a IN SELECT * FROM bench.alg ORDER BY alg LOOP
    EXECUTE format('SELECT count(*) FROM bench.%I', 'tok_' || a.tab) INTO n;
    counts := counts || format('%s %s', a.alg, n);
  END LOOP;
  RETURN array_to_string(counts, ', ');
END $$;
SELECT bench.token_counts() AS counts, (SELECT count(*) FROM bench.claims) AS nclaims \gset
\warn tokens: :counts; claims: :nclaims

-- One round, in a session of its own: every operation warmed up over
-- `probe` rows, then every operation timed once, in turn.  run.sh runs
-- c_limit between rounds, so that a slow spell of a shared machine spreads
-- over all operations and both sides rather than spoiling one figure.
CREATE PROCEDURE bench.measure_round(probe int) LANGUAGE plpgsql AS $$
DECLARE
  o bench.op;
BEGIN
  FOR o IN SELECT * FROM bench.op ORDER BY ord LOOP
    PERFORM bench.run(o, o.warm_src, least(o.rows, probe));
  END LOOP;
  FOR o IN SELECT * FROM bench.op ORDER BY ord LOOP
    UPDATE bench.op SET us = us || bench.run(o, o.src, o.rows) WHERE op = o.op;
  END LOOP;
END $$;
