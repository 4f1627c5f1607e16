-- test/stress/memory.sql: objects of the memory stress suite.
--
-- Not run by itself: test/stress/memory.py sends it to psql with one
-- variable per key file (:'k_rsa_jwk_pub' is test/fixtures/keys/rsa_jwk_pub.json),
-- then runs stress_memory.run(family, ...) in one session per family, in
-- parallel.  Everything lives in the schema stress_memory, dropped at the end.

SET client_min_messages = warning;
DROP SCHEMA IF EXISTS stress_memory CASCADE;
CREATE SCHEMA stress_memory;
RESET client_min_messages;

CREATE TABLE stress_memory.key (name text PRIMARY KEY, k text NOT NULL);
INSERT INTO stress_memory.key(name, k) VALUES
  ('rsa_priv',        :'k_rsa_priv_pkcs8'),
  ('rsa_jwk_pub',     :'k_rsa_jwk_pub'),
  ('ec256_priv',      :'k_ec256_priv_pkcs8'),
  ('ec256_jwk_pub',   :'k_ec256_jwk_pub'),
  ('ed25519_priv',    :'k_ed25519_priv'),
  ('ed25519_jwk_pub', :'k_ed25519_jwk_pub'),
  ('jwks_pub',        :'k_jwks_pub'),
  ('hs_secret',       'memory-stress-secret: not a real one, 0123456789');
INSERT INTO stress_memory.key VALUES
  ('hs_jwk', jsonb_build_object('kty', 'oct', 'kid', 'hs-mem',
             'k', rtrim(translate(encode(convert_to((SELECT k FROM stress_memory.key WHERE name = 'hs_secret'),
                                                    'UTF8'), 'base64'), E'+/\n', '-_'), '='))::text);

CREATE FUNCTION stress_memory.k(n text) RETURNS text LANGUAGE sql STABLE STRICT
AS $$ SELECT k FROM stress_memory.key WHERE name = n $$;

-- Calls that succeed, cycled: a NULL key means the bytea overload with the
-- HMAC secret's bytes; a NULL alg means no allow-list.
CREATE TABLE stress_memory.good (
  fam text, j int, alg text, token text, key text, allow text, jti text,
  PRIMARY KEY (fam, j)
);
CREATE FUNCTION stress_memory.sign(fam text, j int, alg text, signkey text, kid text) RETURNS text
LANGUAGE sql VOLATILE AS $$
  SELECT jwt_sign(jsonb_build_object('jti', fam || '-' || j, 'sub', 'memory', 'iat', 1700000000,
                                     'exp', 1900000000, 'roles', jsonb_build_array('a', 'b')),
                  stress_memory.k(signkey), alg,
                  CASE WHEN kid IS NOT NULL THEN jsonb_build_object('kid', kid) END)
$$;
INSERT INTO stress_memory.good(fam, j, alg, token, key, allow, jti)
SELECT fam, j, alg, stress_memory.sign(fam, j, alg, signkey, kid), stress_memory.k(vkey), allow, fam || '-' || j
FROM (VALUES
  -- HMAC: text secret, bytea secret, oct JWK
  ('HMAC',  1, 'HS256', 'hs_secret', NULL, 'hs_secret', 'HS256'),
  ('HMAC',  2, 'HS384', 'hs_secret', NULL, NULL,        NULL),
  ('HMAC',  3, 'HS512', 'hs_secret', NULL, 'hs_jwk',    'HS512'),
  ('HMAC',  4, 'HS256', 'hs_secret', NULL, 'hs_jwk',    NULL),
  -- RSA: RS and PS, JWK, now and then the JWKS (key picked by kid)
  ('RSA',   1, 'RS256', 'rsa_priv', 'rsa1', 'rsa_jwk_pub', 'RS256'),
  ('RSA',   2, 'PS256', 'rsa_priv', 'rsa1', 'rsa_jwk_pub', NULL),
  ('RSA',   3, 'RS512', 'rsa_priv', 'rsa1', 'rsa_jwk_pub', NULL),
  ('RSA',   4, 'PS384', 'rsa_priv', 'rsa1', 'jwks_pub',    'PS384'),
  -- ECDSA: ES256 (ES384/512 are 6x slower in OpenSSL: not for volume)
  ('ECDSA', 1, 'ES256', 'ec256_priv', 'ec256', 'ec256_jwk_pub', 'ES256'),
  ('ECDSA', 2, 'ES256', 'ec256_priv', NULL,    'ec256_jwk_pub', NULL),
  ('ECDSA', 3, 'ES256', 'ec256_priv', 'ec256', 'ec256_jwk_pub', NULL),
  ('ECDSA', 4, 'ES256', 'ec256_priv', 'ec256', 'jwks_pub',      'ES256'),
  -- EdDSA: Ed25519
  ('EdDSA', 1, 'EdDSA', 'ed25519_priv', 'ed1', 'ed25519_jwk_pub', 'EdDSA'),
  ('EdDSA', 2, 'EdDSA', 'ed25519_priv', NULL,  'ed25519_jwk_pub', NULL),
  ('EdDSA', 3, 'EdDSA', 'ed25519_priv', 'ed1', 'ed25519_jwk_pub', NULL),
  ('EdDSA', 4, 'EdDSA', 'ed25519_priv', 'ed1', 'jwks_pub',        'EdDSA')
) AS v(fam, j, alg, signkey, kid, vkey, allow);

-- Calls that fail (every 10th), cycled: their SQLSTATE is learnt once
-- (column expected) and must then be the same every time.
--   tamper    one character in the middle of the signature changed -> JW002
--   wrong_key a key of another family                               -> JW003
--   expired   verified at a time after exp                          -> JW004
--   bad_key   a key that does not parse (broken JWK)                -> 22023
CREATE TABLE stress_memory.bad (
  fam text, b int, kind text, token text, key text, allow text, at timestamptz, expected text,
  PRIMARY KEY (fam, b)
);
CREATE FUNCTION stress_memory.tamper(tok text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT left(tok, p - 1) || CASE WHEN substr(tok, p, 1) = 'A' THEN 'B' ELSE 'A' END || substr(tok, p + 1)
  FROM (SELECT length(tok) - 10 AS p) x
$$;
INSERT INTO stress_memory.bad(fam, b, kind, token, key, allow, at)
SELECT g.fam, v.b, v.kind,
       CASE WHEN v.kind = 'tamper' THEN stress_memory.tamper(g.token) ELSE g.token END,
       CASE v.kind
         WHEN 'wrong_key' THEN stress_memory.k(CASE g.fam WHEN 'HMAC' THEN 'rsa_jwk_pub' WHEN 'RSA' THEN 'ec256_jwk_pub'
                                                          WHEN 'ECDSA' THEN 'ed25519_jwk_pub' ELSE 'hs_secret' END)
         WHEN 'bad_key' THEN CASE g.fam
           WHEN 'HMAC' THEN '{"kty":"oct","k":"not base64url!"}'
           WHEN 'RSA' THEN replace(stress_memory.k('rsa_jwk_pub'), '"e":"AQAB"', '"e":"AQAB!"')
           WHEN 'ECDSA' THEN regexp_replace(stress_memory.k('ec256_jwk_pub'), '"x":"[^"]*"', '"x":"AAAA"')
           ELSE regexp_replace(stress_memory.k('ed25519_jwk_pub'), '"x":"[^"]*"', '"x":"AAAA"') END
         ELSE g.key END,
       g.allow,
       CASE WHEN v.kind = 'expired' THEN timestamptz '2100-01-01 00:00:00+00' ELSE timestamptz '2025-06-01 00:00:00+00' END
FROM stress_memory.good g,
     (VALUES (1, 'tamper'), (2, 'wrong_key'), (3, 'expired'), (4, 'bad_key')) AS v(b, kind)
WHERE g.j = 1;
CREATE FUNCTION stress_memory.outcome(tok text, key text, allow text, at timestamptz) RETURNS text
LANGUAGE plpgsql AS $f$
DECLARE st text;
BEGIN
  PERFORM jwt_verify(tok, key, CASE WHEN allow IS NOT NULL THEN ARRAY[allow] END, now => at);
  RETURN '00000';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
  RETURN st;
END
$f$;
UPDATE stress_memory.bad SET expected = stress_memory.outcome(token, key, allow, at);

-- The backend's own memory, from the kernel (kB)
CREATE FUNCTION stress_memory.status(field text) RETURNS int LANGUAGE sql VOLATILE AS $$
  SELECT substring(pg_read_file('/proc/self/status') FROM field || ':\s+(\d+) kB')::int
$$;

-- CPU time of the backend so far, in clock ticks (utime + stime, /proc/self/stat
-- fields 14 and 15, counted after the ")" that ends the command name)
CREATE FUNCTION stress_memory.cpu_ticks() RETURNS bigint LANGUAGE sql VOLATILE AS $$
  SELECT f[12]::bigint + f[13]::bigint
  FROM (SELECT string_to_array(substring(pg_read_file('/proc/self/stat') FROM '\) (.*)$'), ' ') AS f) x
$$;

-- p_warm calls, then p_calls calls, of family p_fam; every 10th call fails
-- inside a subtransaction that is rolled back; every 20th iteration also asks
-- jwt_is_valid about a tampered token (no subtransaction there).
--
-- plpgsql plans each statement the first time it runs, and keeps the plan:
-- so the statements that read the figures are the same ones during the
-- warm-up, at every sample and at the end (one block in the loop), and every
-- statement of the measured part has run during the warm-up.  Else the
-- first sample would count a few plans (tens of kB) as growth.
CREATE FUNCTION stress_memory.run(p_fam text, p_calls int, p_warm int, p_sample int)
RETURNS TABLE(fam text, calls bigint, ok_calls bigint, failed_calls bigint, isvalid_calls bigint,
              unexpected bigint, anon_start int, anon_warm int, anon_end int,
              rss_start int, rss_warm int, rss_end int, hwm_end int, seconds numeric, cpu_seconds numeric,
              samples text, codes text, first_unexpected text)
LANGUAGE plpgsql AS $f$
DECLARE
  T CONSTANT timestamptz := '2025-06-01 00:00:00+00';
  hs_bytes CONSTANT bytea := convert_to(stress_memory.k('hs_secret'), 'UTF8');
  last CONSTANT int := p_warm + p_calls;
  wstep CONSTANT int := greatest(p_warm / 5, 1);
  toks text[]; keys text[]; allows text[]; jtis text[]; n int;
  btoks text[]; bkeys text[]; ballows text[]; bats timestamptz[]; bexp text[]; nb int;
  res jsonb; st text; msg text; j int; b int; v boolean;
  t0 timestamptz; t1 timestamptz; c0 bigint; c1 bigint;
  ok0 bigint; failed0 bigint; isvalid0 bigint;
  smp int[] := '{}';
BEGIN
  fam := p_fam;
  SELECT array_agg(g.token ORDER BY g.j), array_agg(g.key ORDER BY g.j),
         array_agg(g.allow ORDER BY g.j), array_agg(g.jti ORDER BY g.j)
    INTO toks, keys, allows, jtis FROM stress_memory.good g WHERE g.fam = p_fam;
  SELECT array_agg(x.token ORDER BY x.b), array_agg(x.key ORDER BY x.b), array_agg(x.allow ORDER BY x.b),
         array_agg(x.at ORDER BY x.b), array_agg(x.expected ORDER BY x.b)
    INTO btoks, bkeys, ballows, bats, bexp FROM stress_memory.bad x WHERE x.fam = p_fam;
  n := cardinality(toks);
  nb := cardinality(btoks);
  IF n IS NULL OR nb IS NULL THEN
    RAISE EXCEPTION 'no such family: %', p_fam;
  END IF;
  codes := (SELECT string_agg(x.kind || ' ' || x.expected, ', ' ORDER BY x.b) FROM stress_memory.bad x
            WHERE x.fam = p_fam);
  ok_calls := 0; failed_calls := 0; isvalid_calls := 0; unexpected := 0;
  anon_start := stress_memory.status('RssAnon');
  rss_start := stress_memory.status('VmRSS');

  FOR i IN 1 .. last LOOP
    IF i % 10 = 0 THEN
      b := 1 + (i / 10) % nb;
      BEGIN
        PERFORM jwt_verify(btoks[b], bkeys[b], CASE WHEN ballows[b] IS NOT NULL THEN ARRAY[ballows[b]] END,
                           now => bats[b]);
        st := '00000';
      EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
      END;
      IF st = bexp[b] AND st <> '00000' THEN
        failed_calls := failed_calls + 1;
      ELSE
        unexpected := unexpected + 1;
        first_unexpected := coalesce(first_unexpected,
          format('call %s (failing kind %s): SQLSTATE %s, expected %s: %s', i, b, st, bexp[b], msg));
      END IF;
    ELSE
      j := 1 + i % n;
      IF keys[j] IS NULL THEN
        res := jwt_verify(toks[j], hs_bytes, CASE WHEN allows[j] IS NOT NULL THEN ARRAY[allows[j]] END, now => T);
      ELSE
        res := jwt_verify(toks[j], keys[j], CASE WHEN allows[j] IS NOT NULL THEN ARRAY[allows[j]] END, now => T);
      END IF;
      IF res->>'jti' IS DISTINCT FROM jtis[j] THEN
        unexpected := unexpected + 1;
        first_unexpected := coalesce(first_unexpected, format('call %s: wrong claims %s', i, res));
      ELSE
        ok_calls := ok_calls + 1;
      END IF;
    END IF;
    IF i % 20 = 5 THEN
      v := jwt_is_valid(btoks[1], bkeys[1], NULL, now => T);
      IF v IS DISTINCT FROM false THEN
        unexpected := unexpected + 1;
        first_unexpected := coalesce(first_unexpected, format('call %s: jwt_is_valid(tampered) = %s', i, v));
      END IF;
      isvalid_calls := isvalid_calls + 1;
    END IF;

    -- the one reading block: 5 times in the warm-up, every p_sample calls, at the end
    IF (i <= p_warm AND (i % wstep = 0 OR i = p_warm))
       OR (i > p_warm AND ((i - p_warm) % p_sample = 0 OR i = last)) THEN
      t1 := clock_timestamp();
      c1 := stress_memory.cpu_ticks();
      hwm_end := stress_memory.status('VmHWM');
      rss_end := stress_memory.status('VmRSS');
      anon_end := stress_memory.status('RssAnon');
      IF i <= p_warm THEN
        -- the last of these, at i = p_warm, is the "after the warm-up" point
        anon_warm := anon_end; rss_warm := rss_end; t0 := t1; c0 := c1;
        ok0 := ok_calls; failed0 := failed_calls; isvalid0 := isvalid_calls;
        smp := '{}';
      END IF;
      smp := smp || anon_end;
    END IF;
  END LOOP;

  calls := ok_calls + failed_calls - ok0 - failed0;
  ok_calls := ok_calls - ok0;
  failed_calls := failed_calls - failed0;
  isvalid_calls := isvalid_calls - isvalid0;
  seconds := round(extract(epoch FROM t1 - t0)::numeric, 1);
  cpu_seconds := round((c1 - c0) / 100.0, 1);      -- USER_HZ is 100 on Linux
  samples := array_to_string(smp, ' ');
  RETURN NEXT;
END
$f$;

-- Control: the measurement must see a deliberate allocation of p_kb kB
-- (touched, so resident), else a passing result would mean nothing.
CREATE FUNCTION stress_memory.control(p_kb int) RETURNS int LANGUAGE plpgsql AS $f$
DECLARE
  before int := stress_memory.status('RssAnon');
  ballast text := repeat(md5(random()::text), p_kb * 1024 / 32);
BEGIN
  RETURN stress_memory.status('RssAnon') - before + 0 * length(ballast);
END
$f$;
