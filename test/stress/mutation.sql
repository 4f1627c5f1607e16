-- test/stress/mutation.sql: objects of the mutation stress suite.
--
-- Not run by itself: test/stress/mutation.py sends it to psql with one
-- variable per key file (:'k_rsa_jwk_pub' is test/fixtures/keys/rsa_jwk_pub.json)
-- and then calls stress_mutation.sanity(), .run(), .attacks() and .probe().
-- Everything lives in the schema stress_mutation, dropped at the end.
--
-- The PRNG is our own (md5-seeded Park-Miller), not random(): mutation I of
-- pass P, algorithm TAG and seed S is a pure function of (S, P, TAG, I) and
-- the base tokens, so one failing mutation can be re-made on its own, on any
-- PostgreSQL version:  SELECT * FROM stress_mutation.mutate_one(S, P, TAG, I)
-- (with stress_mutation first on search_path, as this script leaves it).

SET client_min_messages = warning;
DROP SCHEMA IF EXISTS stress_mutation CASCADE;
CREATE SCHEMA stress_mutation;
-- The functions below name their tables and each other without a schema:
-- the session keeps stress_mutation first on its search_path.
SELECT set_config('search_path', 'stress_mutation, ' || current_setting('search_path'), false) \g /dev/null
RESET client_min_messages;

CREATE TABLE key (name text PRIMARY KEY, k text NOT NULL);

INSERT INTO key(name, k) VALUES
  ('rsa_priv_pkcs8',  :'k_rsa_priv_pkcs8'),
  ('rsa2_priv_pkcs8', :'k_rsa2_priv_pkcs8'),
  ('rsa_jwk_pub',     :'k_rsa_jwk_pub'),
  ('rsa_pub_spki',    :'k_rsa_pub_spki'),
  ('rsa_pub_pkcs1',   :'k_rsa_pub_pkcs1'),
  ('rsa_cert',        :'k_rsa_cert'),
  ('ec256_priv',      :'k_ec256_priv_pkcs8'),
  ('ec256_jwk_pub',   :'k_ec256_jwk_pub'),
  ('ec256_pub',       :'k_ec256_pub'),
  ('ec384_priv',      :'k_ec384_priv'),
  ('ec384_jwk_pub',   :'k_ec384_jwk_pub'),
  ('ec384_pub',       :'k_ec384_pub'),
  ('ec521_priv',      :'k_ec521_priv'),
  ('ec521_jwk_pub',   :'k_ec521_jwk_pub'),
  ('ec521_pub',       :'k_ec521_pub'),
  ('ed25519_priv',    :'k_ed25519_priv'),
  ('ed25519_jwk_pub', :'k_ed25519_jwk_pub'),
  ('ed25519_pub',     :'k_ed25519_pub'),
  ('ed448_priv',      :'k_ed448_priv'),
  ('ed448_pub',       :'k_ed448_pub'),
  ('jwks_pub',        :'k_jwks_pub'),
  ('hs_secret',       'stress-test-secret: not a real one, 0123456789abcdef');

CREATE FUNCTION k(n text) RETURNS text LANGUAGE sql STABLE STRICT
AS $$ SELECT k FROM stress_mutation.key WHERE name = n $$;

-- base64url without padding, as the tokens use it
CREATE FUNCTION b64u_enc(b bytea) RETURNS text LANGUAGE sql IMMUTABLE STRICT
AS $$ SELECT rtrim(translate(encode(b, 'base64'), E'+/\n', '-_'), '=') $$;

-- NULL when s is not base64url (our own use only: lenient about unused bits)
CREATE FUNCTION b64u_dec(s text) RETURNS bytea LANGUAGE sql IMMUTABLE STRICT
AS $$ SELECT CASE WHEN s ~ '^[A-Za-z0-9_-]*$' AND length(s) % 4 <> 1
             THEN decode(rpad(translate(s, '-_', '+/'), (length(s) + 3) / 4 * 4, '='), 'base64') END $$;

-- an HMAC secret as an oct JWK; Ed448 public key as an OKP JWK (raw key =
-- the last 57 bytes of the SubjectPublicKeyInfo); a JWKS of every public key
INSERT INTO key VALUES ('hs_jwk', jsonb_build_object('kty', 'oct', 'kid', 'hs-stress',
                         'k', b64u_enc(convert_to(k('hs_secret'), 'UTF8')))::text);
INSERT INTO key
SELECT 'ed448_jwk_pub', jsonb_build_object('kty', 'OKP', 'crv', 'Ed448', 'kid', 'ed448',
                                           'x', b64u_enc(substr(der, length(der) - 56)))::text
FROM (SELECT decode(regexp_replace(k('ed448_pub'), '-----[^-]*-----|\s', '', 'g'), 'base64') AS der) d;
INSERT INTO key VALUES ('jwks_all', jsonb_build_object('keys', jsonb_build_array(
  k('rsa_jwk_pub')::jsonb, k('ec256_jwk_pub')::jsonb, k('ec384_jwk_pub')::jsonb,
  k('ec521_jwk_pub')::jsonb, k('ed25519_jwk_pub')::jsonb, k('ed448_jwk_pub')::jsonb))::text);
-- a key set is secrets or public keys, never both (a mixed one is refused)
INSERT INTO key VALUES ('jwks_oct', jsonb_build_object('keys', jsonb_build_array(k('hs_jwk')::jsonb))::text);
INSERT INTO key VALUES ('jwks_mixed', jsonb_build_object('keys', jsonb_build_array(
  k('rsa_jwk_pub')::jsonb, k('hs_jwk')::jsonb))::text);

-- One row per algorithm variant ("tag").  Verification modes, by mutation
-- index i % 4:  0 vk[1] with algorithms NULL, 1 vk[2] with ARRAY[alg],
-- 2 vk[3] with algorithms NULL, 3 vk[4] with ARRAY[alg];  a NULL vk[] entry
-- means the bytea overload with the HMAC secret's bytes.
CREATE TABLE alg (
  tag      text PRIMARY KEY,
  ord      int NOT NULL,
  alg      text NOT NULL,
  sign_key text NOT NULL,
  kid      text NOT NULL,
  vk       text[] NOT NULL,      -- key NAMES, resolved below into vkey
  vkey     text[],
  vkb      bytea,
  hdrs     text[]                -- crafted headers, base64url, for "reheader"
);
INSERT INTO alg(tag, ord, alg, sign_key, kid, vk) VALUES
  ('HS256',  1, 'HS256', 'hs_secret',      'hs-stress', '{hs_secret,hs_jwk,jwks_oct,NULL}'),
  ('HS384',  2, 'HS384', 'hs_secret',      'hs-stress', '{hs_secret,hs_jwk,jwks_oct,NULL}'),
  ('HS512',  3, 'HS512', 'hs_secret',      'hs-stress', '{hs_secret,hs_jwk,jwks_oct,NULL}'),
  ('RS256',  4, 'RS256', 'rsa_priv_pkcs8', 'rsa1',  '{rsa_jwk_pub,rsa_jwk_pub,jwks_all,rsa_pub_spki}'),
  ('RS384',  5, 'RS384', 'rsa_priv_pkcs8', 'rsa1',  '{rsa_jwk_pub,rsa_jwk_pub,jwks_all,rsa_pub_pkcs1}'),
  ('RS512',  6, 'RS512', 'rsa_priv_pkcs8', 'rsa1',  '{rsa_jwk_pub,rsa_jwk_pub,jwks_all,rsa_cert}'),
  ('PS256',  7, 'PS256', 'rsa_priv_pkcs8', 'rsa1',  '{rsa_jwk_pub,rsa_jwk_pub,jwks_all,rsa_pub_spki}'),
  ('PS384',  8, 'PS384', 'rsa_priv_pkcs8', 'rsa1',  '{rsa_jwk_pub,rsa_jwk_pub,jwks_all,rsa_pub_pkcs1}'),
  ('PS512',  9, 'PS512', 'rsa_priv_pkcs8', 'rsa1',  '{rsa_jwk_pub,rsa_jwk_pub,jwks_all,rsa_cert}'),
  ('ES256', 10, 'ES256', 'ec256_priv',     'ec256', '{ec256_jwk_pub,ec256_jwk_pub,jwks_all,ec256_pub}'),
  ('ES384', 11, 'ES384', 'ec384_priv',     'ec384', '{ec384_jwk_pub,ec384_jwk_pub,jwks_all,ec384_pub}'),
  ('ES512', 12, 'ES512', 'ec521_priv',     'ec521', '{ec521_jwk_pub,ec521_jwk_pub,jwks_all,ec521_pub}'),
  ('EdDSA', 13, 'EdDSA', 'ed25519_priv',   'ed1',   '{ed25519_jwk_pub,ed25519_jwk_pub,jwks_all,ed25519_pub}'),
  ('EdDSA-Ed448', 14, 'EdDSA', 'ed448_priv', 'ed448', '{ed448_jwk_pub,ed448_jwk_pub,jwks_all,ed448_pub}');
UPDATE alg SET vkey = ARRAY(SELECT k(n) FROM unnest(vk) WITH ORDINALITY AS u(n, o) ORDER BY o),
               vkb = convert_to(k('hs_secret'), 'UTF8');

-- Crafted headers for the "reheader" mutation: %ALG% and %KID% are the
-- variant's own.  The signature is left as it was, so all must be rejected.
CREATE TABLE header_template (t text, raw bytea);
INSERT INTO header_template(t) VALUES
  ('{"alg":"none","typ":"JWT"}'), ('{"alg":"None"}'), ('{"alg":"NONE"}'), ('{"alg":"nOnE","typ":"JWT"}'),
  ('{"alg":"HS256","typ":"JWT"}'), ('{"alg":"HS512"}'), ('{"alg":"RS256"}'), ('{"alg":"PS512"}'),
  ('{"alg":"ES256"}'), ('{"alg":"ES512"}'), ('{"alg":"EdDSA"}'), ('{"alg":"ES256K"}'), ('{"alg":"Ed25519"}'),
  ('{"alg":"Ed448"}'), ('{"alg":"HS256","kid":"%KID%"}'), ('{"alg":"RS256","kid":"rsa1"}'),
  ('{"alg":"%ALG% "}'), ('{"alg":" %ALG%"}'), ('{"alg":"%ALG%\u0000"}'), ('{"alg":"%ALG%","alg":"%ALG%"}'),
  ('{"alg":"none","alg":"%ALG%"}'), ('{"alg":"%ALG%","alg":"none"}'),
  ('{"alg":"%ALG%","typ":"JWT","typ":"JWT"}'), ('{"alg":"%ALG%","crit":["exp"],"exp":1}'),
  ('{"alg":"%ALG%","crit":[]}'), ('{"alg":"%ALG%","b64":false}'), ('{"alg":"%ALG%","b64":true}'),
  ('{"alg":"%ALG%","kid":"%KID%"}'), ('{"alg":"%ALG%","kid":"nope"}'), ('{"alg":"%ALG%","kid":null}'),
  ('{"alg":"%ALG%","kid":1}'), ('{"alg":"%ALG%","kid":["%KID%"]}'), ('{"alg":"%ALG%","kid":"../../../../etc/passwd"}'),
  ('{"alg":"%ALG%","kid":"%KID%\u0000"}'), ('{"alg":"%ALG%","kid":"hs-stress"}'), ('{"alg":"%ALG%","kid":"enc1"}'),
  ('{"alg":"%ALG%","jku":"http://127.0.0.1:1/jwks","x5u":"http://127.0.0.1:1/x"}'),
  ('{"alg":"%ALG%","jwk":{"kty":"oct","k":"AAAA"}}'), ('{"alg":"HS256","jwk":{"kty":"oct","k":"AAAA"}}'),
  ('{"alg":"%ALG%","x5c":["MIIB"]}'), ('{"alg":"%ALG%","typ":"JWT"}'), ('{ "alg" : "%ALG%" }'),
  ('{"alg":"%ALG%"}'), (E'{"alg":"%ALG%"}\n'), (' {"alg":"%ALG%"}'), ('{"alg":"\u0052S256"}'),
  ('{"alg":"%ALG%","x":1e999}'), ('{"alg":"%ALG%","x":1e1001}'), ('{"alg":"%ALG%","x":-1e-999}'),
  ('{"alg":"%ALG%","x":123456789012345678901234567890123456789}'), ('{"alg":"%ALG%","x":01}'),
  ('{"alg":"%ALG%","x":"\ud800"}'), ('{"alg":"%ALG%","x":"\udc00\ud800"}'), ('{"alg":"%ALG%","x":"\uD83D\uDE80"}'),
  ('{"alg":"%ALG%",}'), ('{"alg":"%ALG%"}garbage'), ('{"alg":"%ALG%"} {}'), ('{"alg":''%ALG%''}'),
  ('{alg:"%ALG%"}'), ('[{"alg":"%ALG%"}]'), ('"%ALG%"'), ('null'), ('{}'), (''), ('{"alg":null}'),
  ('{"alg":256}'), ('{"alg":true}'), ('{"alg":["%ALG%"]}'), ('{"alg":{"%ALG%":1}}'), ('{"alg":""}'),
  ('{"alg":"%ALG%","x":' || repeat('[', 63) || repeat(']', 63) || '}'),
  ('{"alg":"%ALG%","x":' || repeat('[', 64) || repeat(']', 64) || '}'),
  ('{"alg":"%ALG%","x":' || repeat('[', 1000) || repeat(']', 1000) || '}'),
  ('{"alg":"%ALG%","x":' || repeat('{"a":', 70) || '1' || repeat('}', 70) || '}'),
  ('{"alg":"%ALG%","x":"' || repeat('\u00e9', 300) || '"}'),
  ('{"alg":"%ALG%","x":"' || repeat('A', 1500) || '"}');
INSERT INTO header_template(raw) VALUES
  ('\xff'),
  ('\x00'),
  ('\x7b22616c67223a22c328227d'),                          -- {"alg":"<C3 28>"}: bad UTF-8
  ('\x7b22616c67223a22c0af227d'),                          -- overlong '/'
  ('\x7b22616c67223a22eda080227d'),                        -- a UTF-16 surrogate in UTF-8
  ('\x7b22616c67223a22f4908080227d'),                      -- above U+10FFFF
  ('\x7b22616c67223a224853323536227d00'),                  -- {"alg":"HS256"} then NUL
  ('\xefbbbf'::bytea || convert_to('{"alg":"RS256"}', 'UTF8')),                         -- BOM first
  (convert_to('{"alg":"HS', 'UTF8') || '\x00'::bytea || convert_to('256"}', 'UTF8'));   -- raw NUL in a string

UPDATE alg a SET hdrs = ARRAY(
  SELECT b64u_enc(coalesce(h.raw, convert_to(replace(replace(h.t, '%ALG%', a.alg), '%KID%', a.kid), 'UTF8')))
  FROM header_template h ORDER BY h.t NULLS LAST, h.raw);

-- Base tokens: 6 per variant, every payload distinct (jti), so that no
-- two genuine tokens share header and payload and a segment swap can never
-- build another genuine token by accident (we still check for that: "pool").
CREATE TABLE base (tag text, n int, token text NOT NULL, foreign_key boolean NOT NULL DEFAULT false,
                   PRIMARY KEY (tag, n));

-- (plpgsql, so that chr() of a non-ASCII code point is only evaluated in a UTF8 database)
CREATE FUNCTION claims(tag text, n int) RETURNS jsonb LANGUAGE plpgsql STABLE AS $f$
DECLARE
  name text := 'Zoe';
BEGIN
  IF getdatabaseencoding() = 'UTF8' THEN
    name := 'Zo' || chr(235) || ' ' || chr(937) || ' ' || chr(26481) || chr(20140) || ' ' || chr(128640);
  END IF;
  RETURN jsonb_build_object('jti', tag || '-' || n) || CASE n
    WHEN 0 THEN jsonb_build_object('sub', 'stress-0')
    WHEN 1 THEN jsonb_build_object('sub', 'stress-1', 'iat', 1700000000, 'nbf', 1700000000, 'exp', 1900000000)
    WHEN 2 THEN jsonb_build_object('name', name, 'roles', jsonb_build_array('a', 'b'),
                                   'nested', '{"x":[1,2,{"y":null}]}'::jsonb)
    WHEN 3 THEN jsonb_build_object('blob', repeat('0123456789abcdef', 64))
    WHEN 4 THEN '{"f":1.5e3,"t":true,"z":null,"neg":-0.25,"exp":1900000000.5}'::jsonb
    ELSE jsonb_build_object('iss', 'https://issuer.example/', 'scope', 'read write')
  END;
END
$f$;

CREATE FUNCTION header(n int, kid text) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN n = 3 THEN jsonb_build_object('typ', 'at+jwt')
              WHEN n = 5 THEN jsonb_build_object('kid', kid, 'x5u', 'https://example.invalid/x')
              WHEN n % 2 = 0 THEN jsonb_build_object('kid', kid) END
$$;

INSERT INTO base(tag, n, token)
SELECT a.tag, n, jwt_sign(claims(a.tag, n), k(a.sign_key), a.alg, header(n, a.kid))
FROM alg a, generate_series(0, 5) n;
-- foreign tokens (another RSA key; a signature swap source, never genuine)
INSERT INTO base(tag, n, token, foreign_key)
SELECT 'foreign-' || a, n, jwt_sign(claims('foreign-' || a, n), k('rsa2_priv_pkcs8'), a, header(n, 'rsa1')), true
FROM unnest(ARRAY['RS256', 'PS256']) a, generate_series(0, 1) n;

-- Pinned base tokens.  ECDSA and RSASSA-PSS signatures are randomized, so
-- tokens signed now differ from run to run, and so would the mutations made
-- from them.  test/stress/base_tokens.txt (lines "tag TAB n TAB foreign TAB
-- token", :'base_tokens' here) holds a set signed once with the fixture
-- keys (mutation.py --write-base-tokens); it replaces the fresh set when it
-- has the same rows and every genuine token in it verifies.  base_origin
-- says which set is in use: pinned, signed (no file), or stale (a file
-- that no longer fits the keys: the fresh set is used).
CREATE TABLE pinned (tag text, n int, foreign_key boolean, token text);
INSERT INTO pinned
SELECT split_part(l, E'\t', 1), split_part(l, E'\t', 2)::int, split_part(l, E'\t', 3)::boolean, split_part(l, E'\t', 4)
FROM regexp_split_to_table(:'base_tokens', E'\n') AS l
WHERE l ~ '^[^#]';
CREATE TABLE base_origin (origin text);
INSERT INTO base_origin
SELECT CASE
  WHEN NOT EXISTS (SELECT FROM pinned) THEN 'signed'
  WHEN (SELECT count(*) FROM pinned) = (SELECT count(*) FROM base)
   AND NOT EXISTS (SELECT FROM base b LEFT JOIN pinned p USING (tag, n, foreign_key) WHERE p.token IS NULL)
   AND NOT EXISTS (SELECT FROM pinned p JOIN alg a USING (tag)
                   WHERE NOT p.foreign_key
                     AND NOT jwt_is_valid(p.token, a.vkey[1], NULL, now => '2025-06-01 00:00:00+00'))
  THEN 'pinned'
  ELSE 'stale' END;
UPDATE base b SET token = p.token FROM pinned p
WHERE p.tag = b.tag AND p.n = b.n AND (SELECT origin FROM base_origin) = 'pinned';

-- A random character, from the random numbers a and b:
--   55% base64url alphabet, 7% '.', 8% near misses (+ / = whitespace % \ " { } : ,),
--   10% any ASCII but NUL, 20% non-ASCII: in a UTF8 database a code point
--   (2-, 3- and 4-byte UTF-8, C1 controls, BOM, zero-width and look-alikes
--   of '.' and the alphabet), in SQL_ASCII any byte 0x80..0xFF.
CREATE FUNCTION rchar(a bigint, b bigint, utf8 boolean) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $f$
DECLARE
  c int := a % 100;
  lookalike CONSTANT int[] := '{65294,8228,65106,12290,183,8901,65291,65295,65309,65313,65345,65296,65293,65343,
                                304,305,383,8490,64256,160,65279,8203,8232,233,128640,1114111,173,8206,917505,
                                1040,1072,1077,1086,913,945}';
BEGIN
  IF c < 55 THEN
    RETURN substr('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_', 1 + (b % 64)::int, 1);
  ELSIF c < 62 THEN
    RETURN '.';
  ELSIF c < 70 THEN
    RETURN substr(E'+/= \t\r\n%\\"{}:,=', 1 + (b % 15)::int, 1);
  ELSIF c < 80 THEN
    RETURN chr(1 + (b % 127)::int);
  ELSIF NOT utf8 THEN
    RETURN chr(128 + (b % 128)::int);       -- a raw byte (SQL_ASCII database)
  END IF;
  CASE b % 8
    WHEN 0, 1 THEN RETURN chr(128 + ((b / 8) % 1920)::int);              -- U+0080..U+07FF
    WHEN 2 THEN RETURN chr(2048 + ((b / 8) % (55296 - 2048))::int);      -- U+0800..U+D7FF
    WHEN 3 THEN RETURN chr(57344 + ((b / 8) % 8192)::int);               -- U+E000..U+FFFF
    WHEN 4 THEN RETURN chr(65536 + ((b / 8) % 1048576)::int);            -- U+10000..U+10FFFF
    WHEN 5, 6 THEN RETURN chr(lookalike[1 + ((b / 8) % cardinality(lookalike))::int]);
    ELSE RETURN chr(128 + ((b / 8) % 128)::int);                         -- C1 controls, Latin-1
  END CASE;
END
$f$;

-- Mutate token orig: 1 to 3 edits.  pool: tokens to swap segments with;
-- hdrs: crafted headers.  Returns the new token and the edits made.
CREATE FUNCTION mutate(orig text, pool text[], hdrs text[], seed bigint, stream text, i int,
                       OUT tok text, OUT ops text)
LANGUAGE plpgsql STABLE AS $f$
DECLARE
  B64 CONSTANT text := 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  utf8 CONSTANT boolean := getdatabaseencoding() = 'UTF8';
  s bigint;
  nedit int; r int; ra bigint; rb bigint; rc bigint; rd bigint;
  L int; p int; k int; k2 int; n int; v int;
  segs text[]; osegs text[]; t text; b bytea; op text;
BEGIN
  -- md5 of (seed, stream, i) seeds a Park-Miller generator (x <- 48271 x mod 2^31-1)
  s := ('x' || substr(md5(seed::text || ':' || stream || ':' || i::text), 1, 8))::bit(32)::bigint % 2147483646 + 1;
  tok := orig;
  ops := '';
  s := s * 48271 % 2147483647;
  nedit := 1 + (s % 3)::int;
  FOR e IN 1..nedit LOOP
    s := s * 48271 % 2147483647; r := (s % 100)::int;
    s := s * 48271 % 2147483647; ra := s;
    s := s * 48271 % 2147483647; rb := s;
    s := s * 48271 % 2147483647; rc := s;
    s := s * 48271 % 2147483647; rd := s;
    L := length(tok);
    segs := string_to_array(tok, '.');
    n := coalesce(cardinality(segs), 0);
    IF n = 0 AND r >= 50 THEN
      r := 25;                                    -- nothing to work on: insert
    END IF;
    IF r < 22 THEN
      op := 'replace';
      IF L = 0 THEN
        tok := rchar(ra, rb, utf8);
      ELSE
        p := 1 + (rc % L)::int;
        tok := overlay(tok PLACING rchar(ra, rb, utf8) FROM p FOR 1);
      END IF;
    ELSIF r < 36 THEN
      op := 'insert';
      p := 1 + (rc % (L + 1))::int;
      tok := left(tok, p - 1) || rchar(ra, rb, utf8) || substr(tok, p);
    ELSIF r < 50 THEN
      op := 'delete';
      IF L > 0 THEN
        p := 1 + (rc % L)::int;
        tok := left(tok, p - 1) || substr(tok, p + 1);
      END IF;
    ELSIF r < 56 THEN
      -- change, insert or delete one byte of a decoded segment, re-encoded canonically
      k := 1 + (ra % n)::int;
      b := b64u_dec(segs[k]);
      IF b IS NULL THEN
        op := 'byte_edit(not b64)';
      ELSE
        v := (rd % 256)::int;
        p := (rc % (length(b) + 1))::int;         -- 0-based
        IF rb % 3 = 0 AND p < length(b) THEN
          op := 'byte_set';
          b := set_byte(b, p, v);
        ELSIF rb % 3 = 1 OR p >= length(b) THEN
          op := 'byte_insert';
          b := substr(b, 1, p) || set_byte('\x00'::bytea, 0, v) || substr(b, p + 1);
        ELSE
          op := 'byte_delete';
          b := substr(b, 1, p) || substr(b, p + 2);
        END IF;
        segs[k] := b64u_enc(b);
        tok := array_to_string(segs, '.');
      END IF;
    ELSIF r < 60 THEN
      -- same bytes, other unused bits in the last character: a lenient
      -- decoder would take this for the original
      op := 'noncanonical';
      k := 1 + (ra % n)::int;
      t := segs[k];
      IF length(t) % 4 IN (2, 3) AND position(right(t, 1) IN B64) > 0 THEN
        v := position(right(t, 1) IN B64) - 1;
        v := v # CASE WHEN length(t) % 4 = 2 THEN 1 + (rb % 15)::int ELSE 1 + (rb % 3)::int END;
        segs[k] := left(t, -1) || substr(B64, v + 1, 1);
        tok := array_to_string(segs, '.');
      ELSE
        op := 'noncanonical(n/a)';
      END IF;
    ELSIF r < 62 THEN
      op := 'pad';
      k := 1 + (ra % n)::int;
      segs[k] := segs[k] || repeat('=', 1 + (rb % 2)::int);
      tok := array_to_string(segs, '.');
    ELSIF r < 64 THEN
      op := 'std_alphabet';
      k := 1 + (ra % n)::int;
      segs[k] := translate(segs[k], '-_', '+/');
      tok := array_to_string(segs, '.');
    ELSIF r < 68 THEN
      op := 'drop_seg';
      k := 1 + (ra % n)::int;
      segs := segs[1:k - 1] || segs[k + 1:n];
      tok := array_to_string(segs, '.');
    ELSIF r < 72 THEN
      op := 'dup_seg';
      k := 1 + (ra % n)::int;
      segs := segs[1:k] || segs[k:n];
      tok := array_to_string(segs, '.');
    ELSIF r < 77 THEN
      op := 'swap_seg';                           -- same segment of another token
      osegs := string_to_array(pool[1 + (rb % cardinality(pool))::int], '.');
      k := 1 + (ra % least(n, 3))::int;
      segs[k] := osegs[k];
      tok := array_to_string(segs, '.');
    ELSIF r < 79 THEN
      op := 'graft_seg';                          -- any segment of another token, anywhere
      osegs := string_to_array(pool[1 + (rb % cardinality(pool))::int], '.');
      k := 1 + (ra % n)::int;
      segs[k] := osegs[1 + (rc % 3)::int];
      tok := array_to_string(segs, '.');
    ELSIF r < 82 THEN
      op := 'reorder';
      k := 1 + (ra % n)::int;
      k2 := 1 + (rb % n)::int;
      t := segs[k]; segs[k] := segs[k2]; segs[k2] := t;
      tok := array_to_string(segs, '.');
    ELSIF r < 86 THEN
      op := 'truncate';
      tok := left(tok, (ra % L)::int);
    ELSIF r < 89 THEN
      op := 'empty_seg';                          -- e.g. strip the signature: "h.p."
      k := CASE WHEN ra % 2 = 0 THEN n ELSE 1 + (rb % n)::int END;
      segs[k] := '';
      tok := array_to_string(segs, '.');
    ELSIF r < 95 THEN
      op := 'reheader';
      segs[1] := hdrs[1 + (ra % cardinality(hdrs))::int];
      tok := array_to_string(segs, '.');
    ELSIF r < 98 THEN
      op := 'extend';
      IF ra % 2 = 0 THEN
        tok := tok || '.' || segs[1 + (rb % n)::int];
      ELSE
        tok := tok || rchar(rb, rc, utf8) || rchar(rc, rd, utf8);
      END IF;
    ELSE
      op := 'repeat_seg';
      k := 1 + (ra % n)::int;
      segs[k] := repeat(segs[k], 2 + (rb % 40)::int);
      tok := array_to_string(segs, '.');
    END IF;
    ops := ops || CASE WHEN ops = '' THEN '' ELSE '+' END || op;
  END LOOP;
END
$f$;

CREATE TABLE result (
  pass text, tag text, i int, base_n int, mode int, ops text,
  outcome text,         -- unchanged | pool (equal to another genuine token) | changed
  v text,               -- jwt_verify: 00000 (accepted) or the SQLSTATE raised
  iv text,              -- jwt_is_valid: t, f, or the SQLSTATE raised
  h text,               -- jwt_header: ok or SQLSTATE
  d text,               -- jwt_decode_unverified: ok or SQLSTATE
  ok boolean,
  token text,           -- the mutated token, kept only when not ok
  msg text              -- the first unexpected error message, when not ok
);

CREATE FUNCTION is_jw(st text) RETURNS boolean LANGUAGE sql IMMUTABLE
AS $$ SELECT st ~ '^JW0(0[1-9]|10)$' $$;

-- Verify one (possibly mutated) token in every way; returns the outcomes.
CREATE FUNCTION check_token(tok text, a alg, mode int,
                            OUT v text, OUT iv text, OUT h text, OUT d text, OUT msg text)
LANGUAGE plpgsql AS $f$
DECLARE
  T CONSTANT timestamptz := '2025-06-01 00:00:00+00';
  key text := a.vkey[mode + 1];
  algs text[] := CASE WHEN mode IN (1, 3) THEN ARRAY[a.alg] END;
  res jsonb;
  bv boolean;
  m text;
BEGIN
  BEGIN
    IF key IS NULL THEN
      res := jwt_verify(tok, a.vkb, algs, now => T);
    ELSE
      res := jwt_verify(tok, key, algs, now => T);
    END IF;
    v := '00000';
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v = RETURNED_SQLSTATE, m = MESSAGE_TEXT;
    IF NOT is_jw(v) THEN msg := coalesce(msg, 'jwt_verify: ' || m); END IF;
  END;
  BEGIN
    IF key IS NULL THEN
      bv := jwt_is_valid(tok, a.vkb, algs, now => T);
    ELSE
      bv := jwt_is_valid(tok, key, algs, now => T);
    END IF;
    iv := CASE WHEN bv THEN 't' WHEN NOT bv THEN 'f' ELSE 'null' END;
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS iv = RETURNED_SQLSTATE, m = MESSAGE_TEXT;
    msg := coalesce(msg, 'jwt_is_valid: ' || m);
  END;
  BEGIN
    PERFORM jwt_header(tok);
    h := 'ok';
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS h = RETURNED_SQLSTATE, m = MESSAGE_TEXT;
    IF NOT is_jw(h) THEN msg := coalesce(msg, 'jwt_header: ' || m); END IF;
  END;
  BEGIN
    PERFORM jwt_decode_unverified(tok);
    d := 'ok';
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS d = RETURNED_SQLSTATE, m = MESSAGE_TEXT;
    IF NOT is_jw(d) THEN msg := coalesce(msg, 'jwt_decode_unverified: ' || m); END IF;
  END;
END
$f$;

-- The rule each mutated token must obey (one check per token).
CREATE FUNCTION judge(outcome text, v text, iv text, h text, d text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE outcome
    WHEN 'unchanged' THEN v = '00000' AND iv = 't' AND h = 'ok' AND d = 'ok'
    WHEN 'pool' THEN (v = '00000' OR is_jw(v)) AND iv = CASE WHEN v = '00000' THEN 't' ELSE 'f' END
                     AND h = 'ok' AND d = 'ok'
    ELSE is_jw(v) AND iv = 'f' AND (h = 'ok' OR is_jw(h)) AND (d = 'ok' OR is_jw(d))
  END
$$;

CREATE FUNCTION genuine() RETURNS text[] LANGUAGE sql STABLE
AS $$ SELECT array_agg(token ORDER BY tag, n) FROM stress_mutation.base WHERE NOT foreign_key $$;
CREATE FUNCTION swap_pool() RETURNS text[] LANGUAGE sql STABLE
AS $$ SELECT array_agg(token ORDER BY tag, n) FROM stress_mutation.base $$;

-- Mutation i of a variant: which base token, which mode, which token.
CREATE FUNCTION mutate_one(p_seed bigint, p_pass text, p_tag text, p_i int,
                           OUT base_n int, OUT mode int, OUT token text, OUT ops text)
LANGUAGE plpgsql STABLE AS $f$
DECLARE
  a alg;
  m record;
BEGIN
  SELECT * INTO STRICT a FROM alg WHERE tag = p_tag;
  base_n := (p_i / 4) % 6;
  mode := p_i % 4;
  SELECT * INTO m FROM mutate((SELECT b.token FROM base b WHERE b.tag = p_tag AND b.n = base_n),
                              swap_pool(), a.hdrs, p_seed, p_pass || ':' || p_tag, p_i);
  token := m.tok;
  ops := m.ops;
END
$f$;

-- The main loop: p_count mutations of variant p_tag, results into result.
CREATE FUNCTION run(p_seed bigint, p_pass text, p_tag text, p_first int, p_count int) RETURNS bigint
LANGUAGE plpgsql AS $f$
DECLARE
  a alg;
  bases text[];
  pool text[] := swap_pool();
  legit text[] := genuine();
  stream text := p_pass || ':' || p_tag;
  base text; bn int; mode int;
  m record; c record;
  outcome text; ok boolean;
  nbad bigint := 0;
BEGIN
  SELECT * INTO STRICT a FROM alg WHERE tag = p_tag;
  SELECT array_agg(b.token ORDER BY b.n) INTO bases FROM base b WHERE b.tag = p_tag;
  FOR i IN p_first .. p_first + p_count - 1 LOOP
    bn := (i / 4) % 6;
    mode := i % 4;
    base := bases[bn + 1];
    SELECT * INTO m FROM mutate(base, pool, a.hdrs, p_seed, stream, i);
    SELECT * INTO c FROM check_token(m.tok, a, mode);
    outcome := CASE WHEN m.tok = base THEN 'unchanged' WHEN m.tok = ANY(legit) THEN 'pool' ELSE 'changed' END;
    ok := judge(outcome, c.v, c.iv, c.h, c.d);
    IF NOT ok THEN nbad := nbad + 1; END IF;
    INSERT INTO result VALUES (p_pass, p_tag, i, bn, mode, m.ops, outcome, c.v, c.iv, c.h, c.d, ok,
                               CASE WHEN NOT ok THEN m.tok END, CASE WHEN NOT ok THEN c.msg END);
  END LOOP;
  RETURN nbad;
END
$f$;

-- Every genuine token verifies in every mode of its variant (else the
-- harness, not the extension, is wrong).  Rows: tag, n, mode, v.
CREATE FUNCTION sanity() RETURNS TABLE(tag text, n int, mode int, v text, iv text)
LANGUAGE plpgsql AS $f$
DECLARE
  a alg; b record; c record;
BEGIN
  FOR a IN SELECT * FROM alg ORDER BY ord LOOP
    FOR b IN SELECT * FROM base WHERE base.tag = a.tag ORDER BY base.n LOOP
      FOR md IN 0..3 LOOP
        SELECT * INTO c FROM check_token(b.token, a, md);
        tag := a.tag; n := b.n; mode := md; v := c.v; iv := c.iv;
        RETURN NEXT;
      END LOOP;
    END LOOP;
  END LOOP;
END
$f$;

-- Fixed forgery attempts, each must be rejected with a JW SQLSTATE.
-- Rows: name, expected (a regex on the SQLSTATE), got.
CREATE FUNCTION attacks() RETURNS TABLE(name text, expected text, got text)
LANGUAGE plpgsql AS $f$
DECLARE
  T CONSTANT timestamptz := '2025-06-01 00:00:00+00';
  a alg; b record; tok text; pk text; hs text; segs text[]; x record;
  big text;
BEGIN
  -- "alg":"none" (any spelling) with an empty or the original signature, every variant and mode
  FOR a IN SELECT * FROM alg ORDER BY ord LOOP
    SELECT * INTO b FROM base WHERE base.tag = a.tag AND base.n = 1;
    segs := string_to_array(b.token, '.');
    FOR x IN SELECT * FROM unnest(ARRAY['none', 'None', 'NONE', 'nOnE']) AS nm,
                           unnest(ARRAY['', segs[3]]) AS sig, generate_series(0, 3) AS md LOOP
      tok := b64u_enc(convert_to(format('{"alg":"%s","typ":"JWT"}', x.nm), 'UTF8')) || '.' || segs[2] || '.' || x.sig;
      name := format('%s: alg %s, %s signature, mode %s', a.tag, x.nm,
                     CASE WHEN x.sig = '' THEN 'empty' ELSE 'original' END, x.md);
      expected := '^JW00[13]$';
      got := (SELECT c.v FROM check_token(tok, a, x.md) c);
      RETURN NEXT;
    END LOOP;
  END LOOP;

  -- key confusion: HMAC over the public key's own text, verified with that public key
  FOR x IN SELECT * FROM unnest(ARRAY['rsa_jwk_pub', 'rsa_pub_spki', 'rsa_pub_pkcs1', 'rsa_cert',
                                      'ec256_jwk_pub', 'ec256_pub', 'ec384_pub', 'ec521_jwk_pub',
                                      'ed25519_jwk_pub', 'ed25519_pub', 'ed448_pub', 'ed448_jwk_pub',
                                      'jwks_pub', 'jwks_all', 'jwks_mixed']) AS kn,
                         unnest(ARRAY['HS256', 'HS384', 'HS512']) AS hs,
                         unnest(ARRAY['as is', 'newline added', 'newline removed']) AS variant LOOP
    pk := k(x.kn);
    pk := CASE x.variant WHEN 'as is' THEN pk WHEN 'newline added' THEN pk || E'\n' ELSE rtrim(pk, E'\n') END;
    tok := jwt_sign('{"sub":"admin","admin":true}', convert_to(pk, 'UTF8'), x.hs);
    FOR md IN 0..1 LOOP
      name := format('key confusion: %s over %s (%s), algorithms %s', x.hs, x.kn, x.variant,
                     CASE md WHEN 0 THEN 'NULL' ELSE 'ARRAY[''' || x.hs || ''']' END);
      -- a key set of public keys has no key for HS*; one mixing a secret in is refused
      expected := CASE WHEN x.kn = 'jwks_mixed' THEN '^22023$'
                       WHEN x.kn LIKE 'jwks%' THEN '^JW00[239]$' ELSE '^JW003$' END;
      BEGIN
        PERFORM jwt_verify(tok, pk, CASE md WHEN 1 THEN ARRAY[x.hs] END, now => T);
        got := '00000';
      EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS got = RETURNED_SQLSTATE;
      END;
      RETURN NEXT;
    END LOOP;
  END LOOP;

  -- signed by another RSA key, every RSA variant and mode
  FOR a IN SELECT * FROM alg WHERE alg.alg ~ '^[RP]S' ORDER BY ord LOOP
    tok := jwt_sign(claims('foreign', 9), k('rsa2_priv_pkcs8'), a.alg, '{"kid":"rsa1"}');
    FOR md IN 0..3 LOOP
      name := format('%s signed by another RSA key, mode %s', a.tag, md);
      expected := '^JW002$';
      got := (SELECT c.v FROM check_token(tok, a, md) c);
      RETURN NEXT;
    END LOOP;
  END LOOP;

  -- a token over the 1 MB limit
  SELECT * INTO a FROM alg WHERE tag = 'HS256';
  big := jwt_sign(jsonb_build_object('blob', repeat('x', 1100000)), k('hs_secret'), 'HS256');
  name := 'HS256 token over 1 MB';
  expected := '^JW001$';
  got := (SELECT c.v FROM check_token(big, a, 0) c);
  RETURN NEXT;
END
$f$;

-- big-endian bytes <-> numeric, for the signature probes
CREATE FUNCTION bytes_num(b bytea) RETURNS numeric LANGUAGE plpgsql IMMUTABLE AS $f$
DECLARE x numeric := 0;
BEGIN
  FOR i IN 0 .. length(b) - 1 LOOP x := x * 256 + get_byte(b, i); END LOOP;
  RETURN x;
END $f$;
CREATE FUNCTION num_bytes(x numeric, len int) RETURNS bytea LANGUAGE plpgsql IMMUTABLE AS $f$
DECLARE b bytea := '\x'; y numeric := x;
BEGIN
  FOR i IN 1 .. len LOOP
    b := set_byte('\x00'::bytea, 0, mod(y, 256)::int) || b;
    y := div(y, 256);                -- exact: y / 256 would round to some digits
  END LOOP;
  IF y <> 0 THEN RETURN NULL; END IF;
  RETURN b;
END $f$;
CREATE FUNCTION reverse_bytes(b bytea) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(string_agg(substr(b, i, 1), ''::bytea ORDER BY i DESC), '\x'::bytea)
  FROM generate_series(1, length(b)) i $$;

-- Signature twins: a second valid-looking signature for the same header
-- and payload, made from the genuine one.  Rows: name, counted (a check, or
-- information only), accepted.
--   ECDSA (r, n - s): mathematically a valid signature too (ECDSA is
--     malleable; RFC 7518 does not require low s).  Information only.
--   Ed25519 S + L: RFC 8032 section 5.1.7 requires rejecting S >= L.  Counted.
CREATE FUNCTION probe() RETURNS TABLE(name text, counted boolean, accepted text)
LANGUAGE plpgsql AS $f$
DECLARE
  T CONSTANT timestamptz := '2025-06-01 00:00:00+00';
  x record; segs text[]; sig bytea; half int; r bytea; s numeric; s2 bytea; tok text;
  L CONSTANT numeric := 2^252::numeric + 27742317777372353535851937790883648493;
BEGIN
  FOR x IN SELECT * FROM (VALUES
      ('ES256', 'FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551'),
      ('ES384', 'FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973'),
      ('ES512', '01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409'))
      AS t(tag, order_hex) LOOP
    segs := string_to_array((SELECT b.token FROM base b WHERE b.tag = x.tag AND b.n = 0), '.');
    sig := b64u_dec(segs[3]);
    half := length(sig) / 2;
    r := substr(sig, 1, half);
    s := bytes_num(decode(x.order_hex, 'hex')) - bytes_num(substr(sig, half + 1));
    tok := segs[1] || '.' || segs[2] || '.' || b64u_enc(r || num_bytes(s, half));
    name := x.tag || ' signature (r, n - s)';
    counted := false;
    accepted := (SELECT CASE c.v WHEN '00000' THEN 'yes' ELSE 'no (' || c.v || ')' END
                 FROM check_token(tok, (SELECT a FROM alg a WHERE a.tag = x.tag), 1) c);
    RETURN NEXT;
  END LOOP;

  segs := string_to_array((SELECT b.token FROM base b WHERE b.tag = 'EdDSA' AND b.n = 0), '.');
  sig := b64u_dec(segs[3]);
  s := bytes_num(reverse_bytes(substr(sig, 33))) + L;     -- S is little-endian
  s2 := num_bytes(s, 32);
  name := 'Ed25519 signature (R, S + L)';
  counted := true;
  IF s2 IS NULL THEN
    accepted := 'n/a (S + L does not fit 32 bytes)';
  ELSE
    tok := segs[1] || '.' || segs[2] || '.' || b64u_enc(substr(sig, 1, 32) || reverse_bytes(s2));
    accepted := (SELECT CASE c.v WHEN '00000' THEN 'yes' ELSE 'no (' || c.v || ')' END
                 FROM check_token(tok, (SELECT a FROM alg a WHERE a.tag = 'EdDSA'), 1) c);
  END IF;
  RETURN NEXT;
END
$f$;

