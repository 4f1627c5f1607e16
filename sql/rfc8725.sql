--
-- RFC 8725 (JSON Web Token Best Current Practices), section by section:
-- one test per MUST or SHOULD that applies to a JWS verifier, named
-- after its section.  Each row shows what happened; the expected file
-- holds what must.  The HMAC secret is 'secret' unless a key is named.
--
-- Not applicable here, so not tested: §3.4's ECDH-ES input checks and
-- §3.6 (compression) concern JWE, which the extension does not implement;
-- a five-segment JWE is refused as malformed (errors.sql).  §3.8's binding
-- of keys to issuers and §3.12's distinct token kinds arrive with the key
-- table and refresh tokens, and are tested in their suites.
--

-- §3.1 Perform Algorithm Verification
-- "Libraries MUST enable the caller to specify a supported set of
-- algorithms and MUST NOT use any other algorithms"
SELECT 'rfc8725_3_1_allow_list' AS test,
       verify_outcome(jwt_sign('{}', 'secret', 'HS512'), 'secret', ARRAY['HS256']) AS outside_list,
       verify_outcome(jwt_sign('{}', 'secret', 'HS512'), 'secret', ARRAY['HS256', 'HS512']) AS inside_list;
-- "The library MUST ensure that the "alg" ... header specifies the same
-- algorithm that is used for the cryptographic operation": a token whose
-- header is relabelled from HS512 to HS256, with the HS512 MAC kept
SELECT 'rfc8725_3_1_alg_is_the_operation' AS test,
       verify_outcome(b64url('{"alg":"HS256","typ":"JWT"}') || '.' || split_part(t, '.', 2)
                      || '.' || split_part(t, '.', 3), 'secret') AS relabelled
FROM (SELECT jwt_sign('{"sub":"a"}', 'secret', 'HS512') AS t) s;
-- "each key MUST be used with exactly one algorithm, and this MUST be
-- checked when the cryptographic operation is performed": a JWK whose
-- "alg" names one algorithm verifies nothing else, not even its own family
SELECT 'rfc8725_3_1_key_bound_to_alg' AS test,
       verify_outcome(jwt_sign('{}', k('rsa_priv_pkcs8'), 'RS256'), jwk) AS own_alg,
       verify_outcome(jwt_sign('{}', k('rsa_priv_pkcs8'), 'PS256'), jwk) AS same_family,
       verify_outcome(jwt_sign('{}', k('rsa_priv_pkcs8'), 'RS512'), jwk, ARRAY['RS512']) AS listed_anyway
FROM (SELECT (k('rsa_jwk_pub')::jsonb || '{"alg":"RS256"}')::text AS jwk) s;
-- and a key of one family never serves another, whatever the list allows
SELECT 'rfc8725_3_1_key_family' AS test,
       verify_outcome(forge('{"alg":"HS256"}', '{}', k('rsa_pub_spki')), k('rsa_pub_spki'),
                      ARRAY['HS256', 'RS256']) AS rsa_pem_as_hmac,
       verify_outcome(forge('{"alg":"HS256"}', '{}', k('ec256_jwk_pub')), k('ec256_jwk_pub'),
                      ARRAY['HS256', 'ES256']) AS ec_jwk_as_hmac,
       verify_outcome(jwt_sign('{}', k('ec256_priv_pkcs8'), 'ES256'), 'secret',
                      ARRAY['HS256', 'ES256']) AS secret_as_ec;

-- §3.2 Use Appropriate Algorithms
-- "none" is not accepted: in any spelling, signed or not, even if listed
SELECT 'rfc8725_3_2_no_none' AS test, alg,
       verify_outcome(b64url(format('{"alg":"%s"}', alg)) || '.' || b64url('{"sub":"a"}') || '.' || sig,
                      'secret', ARRAY[alg, 'HS256']) AS outcome
FROM (VALUES ('none', ''), ('None', ''), ('NONE', ''), ('none', 'c2ln')) AS t(alg, sig);
-- RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used" with RS*/PS*
SELECT 'rfc8725_3_2_rsa_2048' AS test,
       outcome($$SELECT jwt_sign('{}', k('rsa1024_priv'), 'RS256')$$) AS sign_1024,
       verify_outcome(jwt_sign('{}', k('rsa_priv_pkcs8'), 'RS256'), k('rsa1024_pub')) AS verify_1024;

-- §3.3 Validate All Cryptographic Operations
-- "the entire JWT MUST be rejected if any of them fail to validate":
-- no claims come back from a token whose signature fails
SELECT 'rfc8725_3_3_reject_whole' AS test,
       verify_outcome(t, 'secret') AS signature_changed,
       jwt_is_valid(t, 'secret') AS is_valid
FROM (SELECT split_part(t, '.', 1) || '.' || split_part(t, '.', 2) || '.' ||
             CASE WHEN left(split_part(t, '.', 3), 1) = 'A' THEN 'B' ELSE 'A' END ||
             substr(split_part(t, '.', 3), 2) AS t
      FROM (SELECT jwt_sign('{"sub":"a"}', 'secret') AS t) s0) s;
-- "This is true ... also for Nested JWTs": the extension does not unwrap
-- a nested JWT (cty "JWT"), so an inner token is never taken unverified;
-- its payload is a string, not a claims object
SELECT 'rfc8725_3_3_nested' AS test,
       verify_outcome(forge('{"alg":"HS256","cty":"JWT"}', to_json(jwt_sign('{"sub":"x"}', 'other'))::text))
         AS nested_as_json_string,
       verify_outcome(forge('{"alg":"HS256","cty":"JWT"}', jwt_sign('{"sub":"x"}', 'other')))
         AS nested_as_raw_token;

-- §3.4 Validate Cryptographic Inputs
-- an EC key's point must be on its curve (invalid-curve attacks): a JWK
-- with y changed is refused before any signature is checked
SELECT 'rfc8725_3_4_point_on_curve' AS test,
       verify_outcome(jwt_sign('{}', k('ec256_priv_pkcs8'), 'ES256'),
                      jsonb_set(k('ec256_jwk_pub')::jsonb, '{y}',
                                to_jsonb(b64url(decode(repeat('01', 32), 'hex'))))::text) AS off_curve;
-- ECDSA inputs: r or s of zero, or the group order n ("psychic signatures")
SELECT 'rfc8725_3_4_ecdsa_r_s_range' AS test, what,
       verify_outcome(split_part(t, '.', 1) || '.' || split_part(t, '.', 2) || '.' || b64url(sig),
                      k('ec256_pub')) AS outcome
FROM (SELECT jwt_sign('{}', k('ec256_priv_pkcs8'), 'ES256') AS t) s,
     (VALUES ('r = s = 0', decode(repeat('00', 64), 'hex')),
             ('r = s = n', decode(repeat('ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551', 2), 'hex')))
       AS v(what, sig);

-- §3.5 Ensure Cryptographic Keys Have Sufficient Entropy
-- an empty HMAC secret is refused for signing and verifying; keys made by
-- the key table are drawn from OpenSSL's RNG (tested with the key table)
SELECT 'rfc8725_3_5_empty_secret' AS test,
       outcome($$SELECT jwt_sign('{}', '')$$) AS sign_text,
       outcome($$SELECT jwt_sign('{}', ''::bytea)$$) AS sign_bytea,
       verify_outcome(forge('{"alg":"HS256"}', '{}', ''), '') AS verify;

-- §3.7 Use UTF-8
-- "not use or admit the use of other Unicode encodings": UTF-16 and
-- Latin-1 JSON, overlong UTF-8 and a lone surrogate are all refused
SELECT 'rfc8725_3_7_utf8_only' AS test, what,
       verify_outcome(b64url('{"alg":"HS256"}') || '.' || b64url(payload) || '.' ||
                      b64url(hmac(convert_to(b64url('{"alg":"HS256"}') || '.' || b64url(payload), 'UTF8'),
                                  'secret', 'sha256')), 'secret') AS outcome
FROM (VALUES ('utf-16le', '\x7b002200730022003a002200610022007d00'::bytea),
             ('utf-16be with bom', '\xfeff007b002200730022003a002200610022007d'::bytea),
             ('latin-1', '\x7b2273223a22e9227d'::bytea),
             ('overlong slash', '\x7b2273223a22c0af227d'::bytea),
             ('cesu surrogate', '\x7b2273223a22eda080227d'::bytea),
             ('utf-8 bom', '\xefbbbf7b7d'::bytea),
             ('valid utf-8', '\x7b2273223a22c3a9e282ac227d'::bytea)) AS v(what, payload);
-- and what the extension writes is UTF-8 JSON, read back unchanged
SELECT 'rfc8725_3_7_utf8_round_trip' AS test,
       convert_from(b64url_decode(split_part(t, '.', 2)), 'UTF8') AS payload_text,
       jwt_verify(t, 'secret') ->> 'name' AS name
FROM (SELECT jwt_sign('{"name":"Zoë 😀 日本"}', 'secret') AS t) s;

-- §3.8 Validate Issuer and Subject
-- an expected issuer must match exactly; a token without iss fails it
SELECT 'rfc8725_3_8_issuer' AS test,
       verify_outcome(jwt_sign('{"iss":"https://idp.example"}', 'secret'), issuer => 'https://idp.example') AS same,
       verify_outcome(jwt_sign('{"iss":"https://idp.example"}', 'secret'), issuer => 'https://idp.example/') AS trailing_slash,
       verify_outcome(jwt_sign('{"iss":"https://IDP.example"}', 'secret'), issuer => 'https://idp.example') AS other_case,
       verify_outcome(jwt_sign('{"sub":"a"}', 'secret'), issuer => 'https://idp.example') AS absent,
       verify_outcome(jwt_sign('{"iss":["https://idp.example"]}', 'secret'), issuer => 'https://idp.example') AS not_a_string;

-- §3.9 Use and Validate Audience
-- "if the audience value is not present or not associated with the
-- recipient, it MUST reject the JWT"
SELECT 'rfc8725_3_9_audience' AS test,
       verify_outcome(jwt_sign('{"aud":"api"}', 'secret'), audience => 'api') AS same,
       verify_outcome(jwt_sign('{"aud":["web","api"]}', 'secret'), audience => 'api') AS in_array,
       verify_outcome(jwt_sign('{"aud":"web"}', 'secret'), audience => 'api') AS other,
       verify_outcome(jwt_sign('{}', 'secret'), audience => 'api') AS absent,
       verify_outcome(jwt_sign('{"aud":[]}', 'secret'), audience => 'api') AS empty_array;
-- a token meant for some audience is not accepted by a verifier that
-- expects none: it was minted for another relying party
SELECT 'rfc8725_3_9_unexpected_audience' AS test,
       verify_outcome(jwt_sign('{"aud":"web"}', 'secret')) AS no_audience_expected;
-- the expected audience may come from the GUC jwt.audience
SET jwt.audience = 'api';
SELECT 'rfc8725_3_9_audience_guc' AS test,
       verify_outcome(jwt_sign('{"aud":"api"}', 'secret')) AS same,
       verify_outcome(jwt_sign('{"aud":"web"}', 'secret')) AS other;
RESET jwt.audience;

-- §3.10 Do Not Trust Received Claims
-- "kid" is only an exact-match lookup value: injection strings, paths and
-- huge values find no key in a JWKS, and never reach SQL
SELECT 'rfc8725_3_10_kid' AS test, left(kid, 24) AS kid,
       verify_outcome(jwt_sign('{}', k('rsa_priv_pkcs8'), 'RS256', jsonb_build_object('kid', kid)),
                      k('jwks_pub')) AS outcome
FROM (VALUES ($$' OR '1'='1$$), ('../../../../etc/passwd'), ('*'), (''),
             (repeat('k', 10240))) AS v(kid);
-- "blindly following a "jku" ... or "x5u" header ... could result in SSRF":
-- these headers, and an embedded "jwk" or "x5c", never choose the key
SELECT 'rfc8725_3_10_key_headers' AS test, header,
       verify_outcome(forge(format('{"alg":"HS256",%s}', header), '{"sub":"a"}', 'attacker'),
                      'secret') AS outcome
FROM (VALUES ('"jku":"https://attacker.example/jwks.json"'),
             ('"x5u":"https://attacker.example/cert.pem"'),
             ('"jwk":{"kty":"oct","k":"YXR0YWNrZXI"}'),
             ('"x5c":["MIIB"]')) AS v(header);
-- an issuer claim is not trusted to select a rule: a token claiming the
-- expected issuer still needs the right key
SELECT 'rfc8725_3_10_claims_after_signature' AS test,
       verify_outcome(jwt_sign('{"iss":"https://idp.example"}', 'attacker'),
                      issuer => 'https://idp.example') AS forged_issuer;

-- §3.11 Use Explicit Typing
-- tokens the extension signs carry "typ":"JWT", and the header is there
-- for the application to check (explicit types such as "at+jwt" pass
-- through jwt_sign's header argument)
SELECT 'rfc8725_3_11_typ' AS test,
       jwt_header(jwt_sign('{}', 'secret')) ->> 'typ' AS default_typ,
       jwt_header(jwt_sign('{}', 'secret', 'HS256', '{"typ":"at+jwt"}')) ->> 'typ' AS explicit_typ,
       verify_outcome(jwt_sign('{}', 'secret', 'HS256', '{"typ":"at+jwt"}')) AS explicit_verifies;
