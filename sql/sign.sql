--
-- jwt_sign: every algorithm, every key format, the exact bytes written
--

-- The well-known jwt.io / pgjwt example, reproduced byte for byte
SELECT jwt_sign('{"sub":"1234567890","name":"John Doe","admin":true}', 'secret')
  = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiYWRtaW4iOnRydWV9.TJVA95OrM7E2cBab30RMHrHDcEfxjoYZgeFONFh7HgQ'
  AS jwt_io_example;

-- and the signature is the one pgcrypto computes independently
SELECT jwt_sign('{"sub":"1234567890","name":"John Doe","admin":true}', 'secret')
  = forge('{"alg":"HS256","typ":"JWT"}', '{"sub":"1234567890","name":"John Doe","admin":true}')
  AS matches_pgcrypto;

-- HS384 and HS512 likewise
SELECT jwt_sign('{"a":1}', 'k', 'HS384') = forge('{"alg":"HS384","typ":"JWT"}', '{"a":1}', 'k', 'sha384') AS hs384,
       jwt_sign('{"a":1}', 'k', 'HS512') = forge('{"alg":"HS512","typ":"JWT"}', '{"a":1}', 'k', 'sha512') AS hs512;

-- Compact JSON in jsonb key order: nesting, escapes, numbers, unicode
SELECT convert_from(b64url_decode(split_part(
         jwt_sign('{"z":[1,2.50,{"q":null}],"a":"x\"y\\z\n","n":-1e3,"ü":"✓","t":true}', 's'),
         '.', 2)), 'UTF8') AS payload_text;

-- Output is identical across runs
SELECT jwt_sign('{"a":1}', 's') = jwt_sign('{"a":1}', 's') AS deterministic_hmac,
       jwt_sign('{"a":1}', k('rsa_priv_pkcs8'), 'RS256') = jwt_sign('{"a":1}', k('rsa_priv_pkcs8'), 'RS256') AS deterministic_rs256;

-- Header: alg, typ, then kid, then the caller's members in jsonb order
SELECT convert_from(b64url_decode(split_part(jwt_sign('{}', 's', 'HS256',
         '{"kid":"k1","cty":"x","zz":[1]}'), '.', 1)), 'UTF8') AS header_text;
SELECT convert_from(b64url_decode(split_part(jwt_sign('{}', 's', 'HS256',
         '{"typ":"at+jwt","alg":"HS256"}'), '.', 1)), 'UTF8') AS typ_override;
-- a JWK's kid goes into the header
SELECT jwt_header(jwt_sign('{}', k('oct_jwk'))) AS header_from_jwk;

-- Every algorithm, signed with a private key and verified with the public one
SELECT alg, priv, pub,
       jwt_verify(jwt_sign('{"sub":"alice","n":1}', k(priv), alg), k(pub)) AS claims
FROM (VALUES
  ('RS256', 'rsa_priv_pkcs1',   'rsa_pub_spki'),
  ('RS384', 'rsa_priv_pkcs8',   'rsa_pub_pkcs1'),
  ('RS512', 'rsa_jwk_priv',     'rsa_cert'),
  ('PS256', 'rsa_priv_pkcs8',   'rsa_jwk_pub'),
  ('PS384', 'rsa_priv_pkcs1',   'rsa_pub_spki'),
  ('PS512', 'rsa_jwk_priv',     'rsa_pub_pkcs1'),
  ('ES256', 'ec256_priv_sec1',  'ec256_pub'),
  ('ES256', 'ec256_priv_pkcs8', 'ec256_jwk_pub'),
  ('ES256', 'ec256_jwk_priv',   'ec256_pub'),
  ('ES384', 'ec384_priv',       'ec384_jwk_pub'),
  ('ES512', 'ec521_priv',       'ec521_pub'),
  ('ES512', 'ec521_priv',       'ec521_jwk_pub'),
  ('EdDSA', 'ed25519_priv',     'ed25519_jwk_pub'),
  ('EdDSA', 'ed25519_jwk_priv', 'ed25519_pub'),
  ('EdDSA', 'ed448_priv',       'ed448_pub'),
  ('HS256', 'oct_jwk',          'oct_jwk')
) AS t(alg, priv, pub);

-- Signature lengths: HMAC = hash, RSA = modulus, ECDSA raw R||S (never DER)
SELECT alg, length(b64url_decode(split_part(jwt_sign('{}', k(priv), alg), '.', 3))) AS sig_bytes
FROM (VALUES ('HS256', 'oct_jwk'), ('RS256', 'rsa_priv_pkcs8'), ('ES256', 'ec256_priv_sec1'),
             ('ES384', 'ec384_priv'), ('ES512', 'ec521_priv'), ('EdDSA', 'ed25519_priv'),
             ('EdDSA', 'ed448_priv')) AS t(alg, priv);

-- Binary secrets as bytea
SELECT jwt_verify(jwt_sign('{"b":1}', '\x00ff10'::bytea), '\x00ff10'::bytea) AS bytea_secret,
       jwt_is_valid(jwt_sign('{"b":1}', '\x00ff10'::bytea), '\x00ff11'::bytea) AS other_secret;

-- A JWKS signs with the key named by the header's kid, or the first that fits
SELECT jwt_header(jwt_sign('{}', k('jwks_priv'), 'ES256')) AS first_fitting,
       jwt_header(jwt_sign('{}', k('jwks_priv'), 'RS256', '{"kid":"rsa1"}')) AS by_kid;

--
-- Arguments that are the caller's mistake: 22023 (or 22004 for NULL)
--
SELECT outcome($$SELECT jwt_sign('{}', 's', 'HS999')$$) AS unknown_alg;
SELECT outcome($$SELECT jwt_sign('{}', 's', 'none')$$) AS alg_none;
SELECT outcome($$SELECT jwt_sign('{}', 's', 'hs256')$$) AS alg_is_case_sensitive;
SELECT outcome($$SELECT jwt_sign('{}', 's', NULL)$$) AS null_alg;
SELECT jwt_sign(NULL, 's') IS NULL AS null_claims, jwt_sign('{}', NULL::text) IS NULL AS null_key;
SELECT outcome($$SELECT jwt_sign('[1]', 's')$$) AS claims_not_object;
SELECT outcome($$SELECT jwt_sign('"x"', 's')$$) AS claims_scalar;
SELECT outcome($$SELECT jwt_sign('{"exp":"tomorrow"}', 's')$$) AS exp_not_number;
SELECT outcome($$SELECT jwt_sign('{"nbf":-1}', 's')$$) AS nbf_negative;
-- the payload is compact JSON in jsonb order; numbers are written as numeric_out
-- writes them, strings escaped
SELECT convert_from(b64url_decode(split_part(jwt_sign(c, 's'), '.', 2)), 'UTF8') AS payload,
       jwt_decode_unverified(jwt_sign(c, 's'))::text = c::text AS round_trip
FROM (VALUES (jsonb_build_object('a', 1.0, 'b', -5, 'c', 2147483647, 'd', 2147483648, 'e', -2147483648,
                                 'f', -2147483649, 'g', 1e3, 'h', 0.5, 'i', -0.0, 'j', 0,
                                 'k', 12345678901234567890, 'l', 1e-7, 'm', 'NaN'::numeric)),
             ('{"s": "plain", "t": "quote \" backslash \\ tab \t nl \n ctl \u0001 é ✓"}'::jsonb)) AS t(c);
-- claims of every size and kind of member survive signing unchanged (more
-- than 16 members, and more than 32, where jsonb stores offsets)
SELECT n, jwt_decode_unverified(jwt_sign(c, 's'))::text = c::text AS round_trip
FROM (SELECT n, (SELECT jsonb_object_agg('k' || i,
                          CASE i % 6 WHEN 0 THEN to_jsonb(i) WHEN 1 THEN to_jsonb('v' || i)
                                     WHEN 2 THEN to_jsonb(i % 4 = 2) WHEN 3 THEN 'null'::jsonb
                                     WHEN 4 THEN jsonb_build_object('a', i, 'b', ARRAY[i, i + 1])
                                     ELSE to_jsonb(i * 1.5) END)
                 FROM generate_series(1, n) AS i) AS c
      FROM unnest(ARRAY[1, 2, 15, 16, 17, 31, 32, 33, 64, 100]) AS n) AS t
ORDER BY n;
-- time claims are checked as they are written: the range ends, the forms of
-- a number, and with several bad ones the first of exp, nbf, iat is named
SELECT claims, outcome(format('SELECT jwt_sign(%L, %L)', claims, 's')) AS outcome
FROM (VALUES ('{"exp":253402300799,"nbf":0,"iat":0}'), ('{"exp":253402300800}'),
             ('{"exp":2534023007990}'), ('{"exp":1e3,"iat":1.5}'), ('{"iat":-0.5}'),
             ('{"iat":true}'), ('{"iat":null}'), ('{"iat":"NaN"}'), ('{"nbf":[1]}'),
             ('{"iat":-1,"nbf":-1}'), ('{"iat":-1,"nbf":-1,"exp":-1}'),
             ('{"x":{"exp":-1}}')) AS t(claims);
SELECT outcome($$SELECT jwt_sign('{}', 's', 'HS256', '{"alg":"HS512"}')$$) AS header_alg_conflict;
SELECT outcome($$SELECT jwt_sign('{}', 's', 'HS256', '{"crit":["exp"]}')$$) AS header_crit;
SELECT outcome($$SELECT jwt_sign('{}', 's', 'HS256', '[]')$$) AS header_not_object;
SELECT outcome($$SELECT jwt_sign('{}', '', 'HS256')$$) AS empty_secret;
-- a key serves only its own family, and signing needs the private part
SELECT outcome(format('SELECT jwt_sign(%L, %L, %L)', '{}', k('rsa_priv_pkcs8'), 'HS256')) AS rsa_as_hmac;
SELECT outcome(format('SELECT jwt_sign(%L, %L, %L)', '{}', k('rsa_priv_pkcs8'), 'ES256')) AS rsa_as_ec;
SELECT outcome(format('SELECT jwt_sign(%L, %L, %L)', '{}', k('ec384_priv'), 'ES256')) AS wrong_curve;
SELECT outcome(format('SELECT jwt_sign(%L, %L, %L)', '{}', k('secp256k1_priv'), 'ES256')) AS secp256k1;
SELECT outcome(format('SELECT jwt_sign(%L, %L, %L)', '{}', k('oct_jwk'), 'RS256')) AS oct_as_rsa;
SELECT outcome(format('SELECT jwt_sign(%L, %L, %L)', '{}', k('rsa_pub_spki'), 'RS256')) AS public_key;
SELECT outcome(format('SELECT jwt_sign(%L, %L, %L)', '{}', k('ec256_jwk_pub'), 'ES256')) AS public_jwk;
SELECT outcome(format('SELECT jwt_sign(%L, %L, %L)', '{}', k('rsa1024_priv'), 'RS256')) AS rsa_1024;
SELECT outcome(format('SELECT jwt_sign(%L, %L, %L)', '{}', k('jwks_pub'), 'RS256')) AS jwks_without_private;
-- text that starts like JSON or PEM is never silently used as an HMAC secret
SELECT outcome($$SELECT jwt_sign('{}', '{secret}')$$) AS json_looking_secret;
SELECT outcome($$SELECT jwt_sign('{}', '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----')$$) AS broken_pem;
SELECT outcome($$SELECT jwt_sign('{}', '-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----')$$) AS encrypted_pem;
SELECT outcome($$SELECT jwt_sign('{}', E'-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,D6A198935F2A83D9133A3323AFC99BD3\n\nAAAA\n-----END RSA PRIVATE KEY-----\n', 'RS256')$$) AS encrypted_traditional_pem;
SELECT outcome($$SELECT jwt_sign('{}', '{"kty":"RSA","n":"AQAB"}', 'RS256')$$) AS jwk_missing_e;
SELECT outcome($$SELECT jwt_sign('{}', '{"kty":"oct","k":"c2VjcmV0","alg":"HS512"}', 'HS256')$$) AS jwk_alg_binds;
SELECT outcome($$SELECT jwt_sign('{}', '{"kty":"oct","k":"c2VjcmV0","use":"enc"}')$$) AS jwk_for_encryption;
-- DER key material as a bytea "secret" is refused
SELECT outcome(format('SELECT jwt_sign(%L, %L::bytea)', '{}',
       decode(regexp_replace(k('rsa_pub_spki'), '-----[A-Z ]+-----|\n', '', 'g'), 'base64'))) AS der_as_secret;
