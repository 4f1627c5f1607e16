--
-- Hostile and malformed tokens: each case with the SQLSTATE it must raise
-- (SECURITY.md items 1-6, 8, 11-13).  The HMAC secret is 'secret'.
--

-- 1. Shape: exactly three base64url segments, checked before any decoding
SELECT label, verify_outcome(tok) AS outcome
FROM (SELECT jwt_sign('{"sub":"a"}', 'secret') AS good) g,
LATERAL (VALUES
  ('empty',              ''),
  ('one segment',        'abc'),
  ('two segments',       split_part(good, '.', 1) || '.' || split_part(good, '.', 2)),
  ('four segments',      good || '.x'),
  ('JWE, five segments', good || '.x.y'),
  ('empty header',       '.' || split_part(good, '.', 2) || '.' || split_part(good, '.', 3)),
  ('empty payload',      split_part(good, '.', 1) || '..' || split_part(good, '.', 3)),
  ('leading space',      ' ' || good),
  ('trailing newline',   good || E'\n'),
  ('padding =',          split_part(good, '.', 1) || '=.' || split_part(good, '.', 2) || '.' || split_part(good, '.', 3)),
  ('standard base64 +/', replace(replace(good, '-', '+'), '_', '/')),
  ('JSON serialization', '{"payload":"e30","signatures":[]}'),
  ('non-ASCII',          good || 'é')
) AS t(label, tok);

-- 2. Strict base64url: a length of 4k+1, or non-zero unused bits, is refused
SELECT length(split_part(t, '.', 1)) % 4 AS header_length_mod_4,
       verify_outcome(split_part(t, '.', 1) || 'A.' || split_part(t, '.', 2) || '.' || split_part(t, '.', 3)) AS length_4k_plus_1,
       verify_outcome(split_part(t, '.', 1) || '.' || split_part(t, '.', 2) || '.' ||
                      left(split_part(t, '.', 3), 42) || 'F') AS nonzero_trailing_bits
FROM (SELECT jwt_sign('{"sub":"a"}', 'secret') AS t) s;

-- 3. Header and payload must be strict JSON objects
SELECT label, verify_outcome(forge(h, p)) AS outcome
FROM (VALUES
  ('header not JSON',          '{"alg":"HS256"',                     '{}'),
  ('header an array',          '["HS256"]',                          '{}'),
  ('header a string',          '"HS256"',                            '{}'),
  ('duplicate alg',            '{"alg":"none","alg":"HS256"}',       '{}'),
  ('duplicate kid',            '{"alg":"HS256","kid":"a","kid":"b"}', '{}'),
  ('duplicate nested member',  '{"alg":"HS256","x":{"a":1,"a":2}}',  '{}'),
  ('payload duplicate sub',    '{"alg":"HS256"}',                    '{"sub":"a","sub":"admin"}'),
  ('payload not JSON',         '{"alg":"HS256"}',                    'Payload'),
  ('payload an array',         '{"alg":"HS256"}',                    '[1,2]'),
  ('payload a number',         '{"alg":"HS256"}',                    '42'),
  ('payload JSON null',        '{"alg":"HS256"}',                    'null'),
  ('payload trailing garbage', '{"alg":"HS256"}',                    '{}x'),
  ('escaped NUL',              '{"alg":"HS256"}',                    '{"sub":"a\u0000b"}'),
  ('lone surrogate',           '{"alg":"HS256"}',                    '{"sub":"\ud800"}'),
  ('deep nesting, 10000',      '{"alg":"HS256"}',                    '{"a":' || repeat('[', 10000) || repeat(']', 10000) || '}'),
  ('nesting at the limit, 64', '{"alg":"HS256"}',                    repeat('{"a":', 63) || '1' || repeat('}', 63) || ''),
  ('nesting over, 65',         '{"alg":"HS256"}',                    repeat('{"a":', 65) || '1' || repeat('}', 65)),
  ('brackets in strings',      '{"alg":"HS256"}',                    '{"a":"' || repeat('[{', 100) || '"}'),
  ('number too large',         '{"alg":"HS256"}',                    '{"n":1e1000000}'),
  ('number too precise',       '{"alg":"HS256"}',                    '{"n":0.' || repeat('1', 2000) || '}')
) AS t(label, h, p);

-- raw bytes that are not UTF-8, or hold a NUL, in header or payload
SELECT label, verify_outcome(seg1 || '.' || seg2 || '.' || b64url(hmac(seg1 || '.' || seg2, 'secret', 'sha256'))) AS outcome
FROM (VALUES
  ('invalid UTF-8 payload', b64url('{"alg":"HS256"}'), b64url('{"sub":"'::bytea || '\xff'::bytea || '"}'::bytea)),
  ('NUL byte in payload',   b64url('{"alg":"HS256"}'), b64url('{"sub":"a'::bytea || '\x00'::bytea || '"}'::bytea)),
  ('overlong UTF-8 header', b64url('{"alg":"HS256","x":"'::bytea || '\xc0af'::bytea || '"}'::bytea), b64url('{}'))
) AS t(label, seg1, seg2);

-- 1 MB payloads: over the token size limit, refused before decoding
SELECT verify_outcome(forge('{"alg":"HS256"}', '{"pad":"' || repeat('x', 1024 * 1024) || '"}')) AS one_megabyte;
-- just under the limit is fine
SELECT verify_outcome(forge('{"alg":"HS256"}', '{"pad":"' || repeat('x', 700000) || '"}')) AS under_limit;

-- 4. crit and b64 extensions are refused
SELECT verify_outcome(forge('{"alg":"HS256","crit":["exp"],"exp":1}', '{}')) AS crit,
       verify_outcome(forge('{"alg":"HS256","crit":[]}', '{}')) AS crit_empty,
       verify_outcome(forge('{"alg":"HS256","b64":false,"crit":["b64"]}', '{}')) AS b64_false_crit,
       verify_outcome(forge('{"alg":"HS256","b64":false}', '{}')) AS b64_false,
       verify_outcome(forge('{"alg":"HS256","b64":true}', '{}')) AS b64_true_is_default;

-- 5. "none" is never accepted, in any spelling, signed or not, whatever the list says
SELECT alg, sig, verify_outcome(b64url(format('{"alg":"%s"}', alg)) || '.' || b64url('{"sub":"admin"}') || '.' || sig,
                                'secret', ARRAY['none', 'None', 'NONE', 'nOnE', 'HS256']) AS outcome
FROM (VALUES ('none'), ('None'), ('NONE'), ('nOnE')) AS a(alg),
     (VALUES (''), ('c2ln')) AS s(sig);
-- alg missing, not a string, unknown, or in the wrong case
SELECT label, verify_outcome(forge(h, '{}')) AS outcome
FROM (VALUES ('alg missing', '{"typ":"JWT"}'), ('alg null', '{"alg":null}'), ('alg number', '{"alg":256}'),
             ('alg lower case', '{"alg":"hs256"}'), ('alg unknown', '{"alg":"HS1024"}'),
             ('alg with space', '{"alg":"HS256 "}'), ('kid not string', '{"alg":"HS256","kid":7}')) AS t(label, h);

-- 6. Algorithm confusion: an HS256 token MACed with the text of a public key
--    never verifies with that key, whatever the allow-list says
SELECT pub, verify_outcome(forge('{"alg":"HS256"}', '{"sub":"admin"}', k(pub)), k(pub), ARRAY['HS256', 'RS256', 'ES256', 'EdDSA']) AS outcome
FROM (VALUES ('rsa_pub_spki'), ('rsa_pub_pkcs1'), ('rsa_cert'), ('rsa_jwk_pub'), ('ec256_pub'),
             ('ec256_jwk_pub'), ('ed25519_pub'), ('ed25519_jwk_pub'), ('jwks_pub')) AS t(pub);
-- and the reverse: a secret never verifies an RS256 token
SELECT verify_outcome(jwt_sign('{}', k('rsa_priv_pkcs8'), 'RS256'), 'secret') AS rs256_with_secret;

-- 8. ECDSA signatures: exactly R||S, r and s in [1, n-1], never DER
SELECT label, verify_outcome(split_part(t, '.', 1) || '.' || split_part(t, '.', 2) || '.' || sig, k('ec256_pub')) AS outcome
FROM (SELECT jwt_sign('{"sub":"a"}', k('ec256_priv_sec1'), 'ES256') AS t) tok,
LATERAL (SELECT b64url_decode(split_part(t, '.', 3)) AS raw) r,
LATERAL (VALUES
  ('genuine',            b64url(raw)),
  ('r = s = 0',          b64url(decode(repeat('00', 64), 'hex'))),
  ('r = 0',              b64url(decode(repeat('00', 32), 'hex') || substring(raw from 33))),
  ('s = 0',              b64url(substring(raw from 1 for 32) || decode(repeat('00', 32), 'hex'))),
  ('s = n',              b64url(substring(raw from 1 for 32) || decode('ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551', 'hex'))),
  ('r = n',              b64url(decode('ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551', 'hex') || substring(raw from 33))),
  ('r, s all ones',      b64url(decode(repeat('ff', 64), 'hex'))),
  ('63 bytes',           b64url(substring(raw from 1 for 63))),
  ('65 bytes',           b64url(raw || '\x00'::bytea)),
  ('DER form',           b64url('\x3044022000'::bytea || substring(raw from 1 for 31) || '\x022000'::bytea || substring(raw from 33 for 31))),
  ('empty',              '')
) AS v(label, sig);
-- an ES512 signature is 132 bytes; ES384's 96 is refused
SELECT verify_outcome(split_part(t, '.', 1) || '.' || split_part(t, '.', 2) || '.' || b64url(substring(b64url_decode(split_part(t, '.', 3)) from 1 for 96)),
                      k('ec521_pub')) AS es512_short
FROM (SELECT jwt_sign('{}', k('ec521_priv'), 'ES512') AS t) s;

-- Tampering: a flipped bit anywhere, truncation, extension
SELECT alg, label, verify_outcome(tok, k(pub)) AS outcome
FROM (VALUES ('HS256', 'oct_jwk', 'oct_jwk'), ('RS256', 'rsa_priv_pkcs8', 'rsa_pub_spki'),
             ('PS256', 'rsa_priv_pkcs8', 'rsa_pub_spki'), ('ES256', 'ec256_priv_sec1', 'ec256_pub'),
             ('EdDSA', 'ed25519_priv', 'ed25519_pub')) AS a(alg, priv, pub),
LATERAL (SELECT jwt_sign('{"sub":"alice","admin":false}', k(priv), alg) AS t) s,
LATERAL (SELECT split_part(t, '.', 1) AS h, split_part(t, '.', 2) AS p, b64url_decode(split_part(t, '.', 3)) AS sig) parts,
LATERAL (VALUES
  ('bit flipped in signature', h || '.' || p || '.' || b64url(set_bit(sig, 5, 1 - get_bit(sig, 5)))),
  ('last byte flipped',        h || '.' || p || '.' || b64url(set_byte(sig, length(sig) - 1, get_byte(sig, length(sig) - 1) # 1))),
  ('signature truncated',      h || '.' || p || '.' || b64url(substring(sig from 1 for length(sig) - 1))),
  ('signature extended',       h || '.' || p || '.' || b64url(sig || '\x00'::bytea)),
  ('payload swapped',          h || '.' || b64url('{"sub":"alice","admin":true}') || '.' || b64url(sig)),
  ('header swapped',           b64url(format('{"alg":"%s","typ":"JWT","x":1}', alg)) || '.' || p || '.' || b64url(sig)),
  ('signature removed',        h || '.' || p || '.')
) AS v(label, tok)
ORDER BY alg, label;

-- 11. jwk, jku, x5u, x5c headers never choose a key and are never fetched:
--     a token MACed with an attacker's key fails, whatever the header says
SELECT verify_outcome(forge('{"alg":"HS256","jwk":{"kty":"oct","k":"YXR0YWNrZXI"}}', '{"sub":"admin"}', 'attacker')) AS embedded_jwk,
       verify_outcome(forge('{"alg":"HS256","jku":"https://attacker.example/jwks.json"}', '{"sub":"admin"}', 'attacker')) AS jku,
       verify_outcome(forge('{"alg":"HS256","x5u":"https://attacker.example/cert.pem"}', '{"sub":"admin"}', 'attacker')) AS x5u,
       verify_outcome(forge('{"alg":"HS256","jku":"https://attacker.example/jwks.json"}', '{"sub":"admin"}')) AS jku_with_our_key;

-- No message above contains the token or the key: errors carry only fixed text
SELECT count(*) AS messages_with_secret
FROM (SELECT verify_outcome(jwt_sign('{"sub":"a"}', 'hunter2-secret'), 'hunter2-secreT') AS o
      UNION ALL SELECT outcome(format('SELECT jwt_sign(%L, %L, %L)', '{}', 'hunter2-secret', 'RS256'))) s
WHERE o LIKE '%hunter2%';
