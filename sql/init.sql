-- Helpers shared by the suites that follow (pg_regress runs them in one
-- database, in order).

-- pgcrypto gives an independent HMAC, to forge tokens byte by byte
CREATE EXTENSION pgcrypto;

-- a fixture key by name (sql/fixtures.sql); an unknown name is an error,
-- so a typo can never turn into a NULL key
CREATE FUNCTION k(keyname text) RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
  result text;
BEGIN
  SELECT key INTO STRICT result FROM test_keys WHERE name = keyname;
  RETURN result;
END $$;

-- base64url without padding, of bytes or of UTF-8 text
CREATE FUNCTION b64url(data bytea) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT translate(rtrim(replace(encode(data, 'base64'), E'\n', ''), '='), '+/', '-_')
$$;
CREATE FUNCTION b64url(data text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT b64url(convert_to(data, 'UTF8'))
$$;

-- a token with exactly this header and payload text, HMAC-signed by pgcrypto
CREATE FUNCTION forge(header text, payload text, secret text DEFAULT 'secret',
                      hash text DEFAULT 'sha256') RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT b64url(header) || '.' || b64url(payload) || '.' ||
         b64url(hmac(b64url(header) || '.' || b64url(payload), secret, hash))
$$;

-- run jwt_verify, report OK or the SQLSTATE and message of its error;
-- the clock is fixed at 2026-01-01 00:00:00 UTC (unix 1767225600) unless given
CREATE FUNCTION verify_outcome(token text, key text DEFAULT 'secret',
                               algorithms text[] DEFAULT NULL,
                               audience text DEFAULT NULL, issuer text DEFAULT NULL,
                               leeway interval DEFAULT NULL, require text[] DEFAULT NULL,
                               now timestamptz DEFAULT '2026-01-01 00:00:00+00')
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM jwt_verify(token, key, algorithms, audience, issuer, leeway, require, now);
  RETURN 'OK';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ' ' || SQLERRM;
END $$;

-- run any statement, report OK or the SQLSTATE and message of its error
CREATE FUNCTION outcome(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'OK';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ' ' || SQLERRM;
END $$;

-- whether a query ran in parallel workers, and the rows it returned
CREATE FUNCTION parallel_run(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  plan json;
BEGIN
  EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, FORMAT JSON) ' || q INTO plan;
  RETURN format('workers launched: %s, rows: %s',
                (plan -> 0 -> 'Plan' ->> 'Workers Launched')::int > 0,
                -- 18 prints a row count with two decimals
                round((plan -> 0 -> 'Plan' ->> 'Actual Rows')::numeric));
END $$;

-- the extension is loaded by pg_regress (--load-extension=jwt)
SELECT extname, extversion FROM pg_extension WHERE extname = 'jwt';

-- the bytes a base64url segment holds, for checking what was signed
CREATE FUNCTION b64url_decode(s text) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
  SELECT decode(translate(s, '-_', '+/') || repeat('=', (4 - length(s) % 4) % 4), 'base64')
$$;
