-- ================================================================
-- src/sql/10_tokens.sql: sign, verify and inspect tokens (C)
-- ================================================================

-- The functions of 0.1, each key an argument: an HMAC secret, a PEM key, a
-- JWK or a JWKS.  With no key, jwt_verify and jwt_is_valid use the key table
-- and the trusted issuers (20_keys.sql).

-- Signing is VOLATILE: ECDSA and RSASSA-PSS signatures are randomized.
CREATE FUNCTION jwt_sign(claims jsonb, key text, algorithm text DEFAULT 'HS256',
                         header jsonb DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'jwt_sign'
LANGUAGE C VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION jwt_sign(jsonb, text, text, jsonb) IS
'sign claims into a JWS compact token; key is an HMAC secret, a PEM private key, a private JWK or a JWKS';

CREATE FUNCTION jwt_sign(claims jsonb, key bytea, algorithm text DEFAULT 'HS256',
                         header jsonb DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'jwt_sign_bytea'
LANGUAGE C VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION jwt_sign(jsonb, bytea, text, jsonb) IS
'sign claims into a JWS compact token with a binary HMAC secret';

-- Verification reads the clock (statement time) and GUCs: STABLE, never IMMUTABLE.
CREATE FUNCTION jwt_verify(token text, key text DEFAULT NULL,
                           algorithms text[] DEFAULT NULL,
                           audience text DEFAULT NULL, issuer text DEFAULT NULL,
                           leeway interval DEFAULT NULL, require text[] DEFAULT NULL,
                           now timestamptz DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'jwt_verify'
LANGUAGE C STABLE PARALLEL SAFE;

COMMENT ON FUNCTION jwt_verify(text, text, text[], text, text, interval, text[], timestamptz) IS
'verify a token and return its claims; with no key, the key table and trusted issuers are used; raises SQLSTATE JW001..JW010 on any failure';

CREATE FUNCTION jwt_verify(token text, key bytea,
                           algorithms text[] DEFAULT NULL,
                           audience text DEFAULT NULL, issuer text DEFAULT NULL,
                           leeway interval DEFAULT NULL, require text[] DEFAULT NULL,
                           now timestamptz DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'jwt_verify_bytea'
LANGUAGE C STABLE PARALLEL SAFE;

COMMENT ON FUNCTION jwt_verify(text, bytea, text[], text, text, interval, text[], timestamptz) IS
'verify an HMAC-signed token with a binary secret and return its claims';

CREATE FUNCTION jwt_is_valid(token text, key text DEFAULT NULL,
                             algorithms text[] DEFAULT NULL,
                             audience text DEFAULT NULL, issuer text DEFAULT NULL,
                             leeway interval DEFAULT NULL, require text[] DEFAULT NULL,
                             now timestamptz DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'jwt_is_valid'
LANGUAGE C STABLE PARALLEL SAFE;

COMMENT ON FUNCTION jwt_is_valid(text, text, text[], text, text, interval, text[], timestamptz) IS
'whether jwt_verify would accept the token; false, never an error, for a bad token';

CREATE FUNCTION jwt_is_valid(token text, key bytea,
                             algorithms text[] DEFAULT NULL,
                             audience text DEFAULT NULL, issuer text DEFAULT NULL,
                             leeway interval DEFAULT NULL, require text[] DEFAULT NULL,
                             now timestamptz DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'jwt_is_valid_bytea'
LANGUAGE C STABLE PARALLEL SAFE;

COMMENT ON FUNCTION jwt_is_valid(text, bytea, text[], text, text, interval, text[], timestamptz) IS
'whether jwt_verify with this binary secret would accept the token';

-- Inspection only: nothing is verified, as the names say.
CREATE FUNCTION jwt_header(token text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'jwt_header'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION jwt_header(text) IS
'the token''s header, UNVERIFIED: for inspection only';

CREATE FUNCTION jwt_decode_unverified(token text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'jwt_decode_unverified'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION jwt_decode_unverified(text) IS
'the token''s claims, UNVERIFIED: never use them to authorize anything';
