--
-- jwt_verify, jwt_is_valid, jwt_header, jwt_decode_unverified: keys and algorithms
--

-- A token and its claims; NULL token gives NULL (is_valid: false)
SELECT jwt_verify(jwt_sign('{"sub":"alice"}', 'secret'), 'secret') AS claims;
SELECT jwt_verify(NULL, 'secret') IS NULL AS null_token,
       jwt_is_valid(NULL, 'secret') AS null_is_valid;

-- Unverified inspection
SELECT jwt_header(t), jwt_decode_unverified(t)
FROM (SELECT jwt_sign('{"sub":"alice"}', 'whatever', 'HS384', '{"kid":"x"}') AS t) s;

-- algorithms => NULL: whatever the key itself allows
--   a secret allows HS256/384/512, an RSA key RS* and PS*, an EC key its curve's ES*
SELECT alg, verify_outcome(jwt_sign('{}', k(priv), alg), k(pub)) AS outcome
FROM (VALUES ('HS384', 'oct_jwk', 'oct_jwk'), ('HS512', 'oct_jwk', 'oct_jwk'),
             ('RS384', 'rsa_priv_pkcs8', 'rsa_pub_spki'), ('PS512', 'rsa_priv_pkcs8', 'rsa_pub_spki'),
             ('ES384', 'ec384_priv', 'ec384_pub'), ('EdDSA', 'ed448_priv', 'ed448_pub')) AS t(alg, priv, pub);

-- an explicit allow-list is compared case-sensitively, and narrows further
SELECT verify_outcome(jwt_sign('{}', 'secret', 'HS256'), 'secret', ARRAY['HS256']) AS listed,
       verify_outcome(jwt_sign('{}', 'secret', 'HS256'), 'secret', ARRAY['HS512']) AS not_listed,
       verify_outcome(jwt_sign('{}', 'secret', 'HS256'), 'secret', ARRAY['hs256']) AS wrong_case,
       verify_outcome(jwt_sign('{}', 'secret', 'HS256'), 'secret', '{}') AS empty_list;
-- the list cannot make a key serve another family
SELECT verify_outcome(jwt_sign('{}', k('rsa_priv_pkcs8'), 'RS256'), k('ec256_pub'), ARRAY['RS256', 'ES256']) AS rsa_token_ec_key;

-- Wrong key, same family: the signature does not verify
SELECT verify_outcome(jwt_sign('{}', 'secret'), 'other') AS hmac_other_secret,
       verify_outcome(jwt_sign('{}', k('rsa_priv_pkcs8'), 'RS256'), k('rsa2_pub_spki')) AS rsa_other_key,
       verify_outcome(jwt_sign('{}', k('rsa_priv_pkcs8'), 'PS256'), k('rsa2_pub_spki')) AS pss_other_key;

-- RS and PS are different algorithms over the same key: a PS256 signature
-- relabelled RS256 (or the reverse) does not verify
SELECT verify_outcome(split_part(r, '.', 1) || '.' || split_part(r, '.', 2) || '.' || split_part(p, '.', 3),
                      k('rsa_pub_spki')) AS ps_signature_as_rs
FROM (SELECT jwt_sign('{}', k('rsa_priv_pkcs8'), 'RS256') AS r,
             jwt_sign('{}', k('rsa_priv_pkcs8'), 'PS256') AS p) s;

-- A private key verifies too (its public half is used)
SELECT verify_outcome(jwt_sign('{}', k('ec256_priv_sec1'), 'ES256'), k('ec256_priv_pkcs8')) AS private_key_verifies;

-- Weak keys are refused for verifying as well: JW009
SELECT verify_outcome(jwt_sign('{}', k('rsa_priv_pkcs8'), 'RS256'), k('rsa1024_pub')) AS rsa_1024,
       verify_outcome(jwt_sign('{}', k('rsa_priv_pkcs8'), 'RS256'), k('rsa_jwk_e1')) AS rsa_exponent_1;

-- A JWKS: the key is picked by the token's kid
SELECT verify_outcome(jwt_sign('{"x":1}', k('jwks_priv'), alg, format('{"kid":"%s"}', kid)::jsonb), k('jwks_pub')) AS outcome, alg, kid
FROM (VALUES ('RS256', 'rsa1'), ('PS384', 'rsa1'), ('ES256', 'ec256'), ('EdDSA', 'ed1')) AS t(alg, kid);
-- unknown kid: JW009; the kid of a key of another type: JW003
SELECT verify_outcome(jwt_sign('{}', k('rsa_priv_pkcs8'), 'RS256', '{"kid":"nope"}'), k('jwks_pub')) AS unknown_kid,
       verify_outcome(jwt_sign('{}', k('rsa_priv_pkcs8'), 'RS256', '{"kid":"ec256"}'), k('jwks_pub')) AS kid_of_other_type;
-- an encryption key ("use":"enc") never verifies a signature
SELECT verify_outcome(jwt_sign('{}', k('rsa2_priv_pkcs8'), 'RS256', '{"kid":"enc1"}'), k('jwks_pub')) AS enc_key;
-- no kid: the keys that fit the algorithm are tried
SELECT verify_outcome(jwt_sign('{}', k('ed25519_priv'), 'EdDSA'), k('jwks_pub')) AS no_kid_fitting,
       verify_outcome(jwt_sign('{}', k('ec384_priv'), 'ES384'), k('jwks_pub')) AS no_kid_no_fit,
       verify_outcome(jwt_sign('{}', k('rsa2_priv_pkcs8'), 'RS256'), k('jwks_pub')) AS no_kid_wrong_key;
-- a key set is read up to its limit of candidates and no further: a
-- malformed key after eight that fit but do not verify is never parsed
-- (without a kid that is a signature failure, not the key's 22023)
CREATE TEMP TABLE decoys AS
SELECT jsonb_agg(jwt_jwk_generate('ES256') - 'd') AS keys FROM generate_series(1, 8);
SELECT verify_outcome(jwt_sign('{}', k('ec256_priv_pkcs8'), 'ES256'),
         jsonb_build_object('keys', keys || '[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]')::text) AS malformed_ninth,
       verify_outcome(jwt_sign('{}', k('ec256_priv_pkcs8'), 'ES256'),
         jsonb_build_object('keys', '[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]'::jsonb || keys)::text) AS malformed_first
FROM decoys;
DROP TABLE decoys;
-- the kid is an exact-match value, nothing more
SELECT verify_outcome(jwt_sign('{}', k('rsa_priv_pkcs8'), 'RS256', jsonb_build_object('kid', kid)), k('jwks_pub')) AS outcome,
       left(kid, 12) AS kid
FROM (VALUES ('RSA1'), ('rsa1 '), ('../rsa1'), ('rsa1'' OR 1=1 --'), ('%'), (repeat('a', 10000))) AS t(kid);
-- a single JWK or PEM ignores the kid
SELECT verify_outcome(jwt_sign('{}', k('rsa_priv_pkcs8'), 'RS256', '{"kid":"whatever"}'), k('rsa_jwk_pub')) AS single_jwk;

-- No key at all: JW009 (the key table arrives with a later version)
SELECT verify_outcome(jwt_sign('{}', 'secret'), NULL) AS no_key;

-- jwt_is_valid answers, never raises, for bad tokens
SELECT jwt_is_valid(jwt_sign('{}', 'secret'), 'secret') AS good,
       jwt_is_valid(jwt_sign('{}', 'secret'), 'other') AS bad_signature,
       jwt_is_valid('garbage', 'secret') AS garbage,
       jwt_is_valid(jwt_sign('{"exp":1}', 'secret'), 'secret') AS expired,
       jwt_is_valid(jwt_sign('{}', 'secret'), k('rsa_pub_spki')) AS wrong_family,
       jwt_is_valid(jwt_sign('{"aud":"x"}', 'secret'), 'secret', audience => 'x') AS audience_ok;
-- but a key argument that does not parse is the caller's error
SELECT outcome($$SELECT jwt_is_valid('a.b.c', '{"kty":"RSA"}')$$) AS bad_key_argument;

-- Volatility: nothing time-dependent is IMMUTABLE, nothing is LEAKPROOF
SELECT p.oid::regprocedure AS function, p.provolatile AS volatility, p.proparallel AS parallel,
       p.proleakproof AS leakproof, p.prosecdef AS security_definer
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'jwt'
ORDER BY p.oid::regprocedure::text COLLATE "C";
