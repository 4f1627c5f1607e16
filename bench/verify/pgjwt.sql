-- bench/verify/pgjwt.sql: the pgcrypto baseline of the verify benchmark.
--
-- HS256 signing and verification written in SQL on pgcrypto's hmac(), the
-- way the pgjwt project does it (written anew here, not copied): base64url
-- by encode()/decode() and translate(), the signature compared as text, the
-- time claims checked with a tstzrange.  It is what many databases run
-- today, and the cost that jwt_sign and jwt_verify replace.
--
-- A baseline, not a recommendation.  It shares pgjwt's known weaknesses,
-- kept on purpose so that the cost is pgjwt's: the signature is compared
-- with text equality (not in constant time), a malformed exp or nbf never
-- expires (the casts below turn anything that is not a number into NULL,
-- an unbounded range), and nothing in the header is checked.  Unlike pgjwt,
-- verify() is STABLE rather than IMMUTABLE, because it reads the clock.
--
-- pgcrypto must be on the search_path when the functions run (they find
-- hmac() there, as pgjwt does).  Everything else lives in pgjwt_baseline.

CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE SCHEMA IF NOT EXISTS pgjwt_baseline;

-- base64url without padding; encode() breaks lines every 76 characters
CREATE OR REPLACE FUNCTION pgjwt_baseline.url_encode(data bytea)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT translate(encode(data, 'base64'), E'+/=\n', '-_');
$$;

-- put back the padding that decode() insists on
CREATE OR REPLACE FUNCTION pgjwt_baseline.url_decode(data text)
RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
  SELECT decode(translate(data, '-_', '+/') ||
                repeat('=', (4 - length(data) % 4) % 4), 'base64');
$$;

-- the base64url HMAC of a signing input, for HS256, HS384 or HS512
CREATE OR REPLACE FUNCTION pgjwt_baseline.algorithm_sign(signables text, secret text,
                                                         algorithm text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT pgjwt_baseline.url_encode(
           hmac(signables, secret,
                CASE algorithm
                  WHEN 'HS256' THEN 'sha256'
                  WHEN 'HS384' THEN 'sha384'
                  WHEN 'HS512' THEN 'sha512'
                END));
$$;

-- a number, or NULL for anything else (so a bad exp is no exp: pgjwt's way)
CREATE OR REPLACE FUNCTION pgjwt_baseline.try_numeric(v text)
RETURNS double precision LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  RETURN v::double precision;
EXCEPTION WHEN invalid_text_representation THEN
  RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION pgjwt_baseline.sign(payload json, secret text,
                                               algorithm text DEFAULT 'HS256')
RETURNS text LANGUAGE sql IMMUTABLE AS $$
  WITH parts AS (
    SELECT pgjwt_baseline.url_encode(convert_to(
             '{"alg":"' || algorithm || '","typ":"JWT"}', 'utf8')) || '.' ||
           pgjwt_baseline.url_encode(convert_to(payload::text, 'utf8')) AS signables
  )
  SELECT signables || '.' || pgjwt_baseline.algorithm_sign(signables, secret, algorithm)
  FROM parts;
$$;

CREATE OR REPLACE FUNCTION pgjwt_baseline.verify(token text, secret text,
                                                 algorithm text DEFAULT 'HS256')
RETURNS TABLE (header json, payload json, valid boolean)
LANGUAGE sql STABLE AS $$
  SELECT d.header,
         d.payload,
         d.signature_ok AND
           tstzrange(to_timestamp(pgjwt_baseline.try_numeric(d.payload ->> 'nbf')),
                     to_timestamp(pgjwt_baseline.try_numeric(d.payload ->> 'exp')))
             @> now()
  FROM (
    SELECT convert_from(pgjwt_baseline.url_decode(part[1]), 'utf8')::json AS header,
           convert_from(pgjwt_baseline.url_decode(part[2]), 'utf8')::json AS payload,
           part[3] = pgjwt_baseline.algorithm_sign(part[1] || '.' || part[2],
                                                   secret, algorithm) AS signature_ok
    FROM regexp_split_to_array(token, '\.') AS part
  ) AS d;
$$;
