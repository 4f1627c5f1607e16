-- ================================================================
-- src/sql/30_sessions.sql: the identity of a transaction, row-level
-- security, PostgREST
-- ================================================================

-- ----------------------------------------------------------------
-- The identity of a transaction (C)
-- ----------------------------------------------------------------

-- Not SECURITY DEFINER: the role switch is checked against the session
-- user, as SET ROLE is, and PostgreSQL refuses SET ROLE inside a SECURITY
-- DEFINER function.  Anyone may call it: a token only authenticates what
-- its own signature proves.
CREATE FUNCTION @extschema@.jwt_authenticate(token text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'jwt_authenticate'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.jwt_authenticate(text) IS
'verify a token with the key table and make its claims the identity of the transaction; NULL means an anonymous request';

CREATE FUNCTION @extschema@.jwt_authenticate(token text, scope text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'jwt_authenticate'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.jwt_authenticate(text, text) IS
'jwt_authenticate with a scope: ''transaction'' (the default) or ''session''';

-- No SET clause, so that the planner can call them cheaply per row; they
-- read backend memory only.
CREATE FUNCTION @extschema@.jwt_claims()
RETURNS jsonb
AS 'MODULE_PATHNAME', 'jwt_claims'
LANGUAGE C STABLE PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.jwt_claims() IS
'claims of the current identity (set by jwt_authenticate), or NULL';

CREATE FUNCTION @extschema@.jwt_claim(name text)
RETURNS text
AS 'MODULE_PATHNAME', 'jwt_claim'
LANGUAGE C STABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.jwt_claim(text) IS
'one claim of the current identity as text, by name or dotted path (app_metadata.role), or NULL';

-- ----------------------------------------------------------------
-- PostgREST's db-pre-request hook
-- ----------------------------------------------------------------

-- The token comes from "Authorization: Bearer ..." in request.headers, or,
-- with no such header, from the cookie named by jwt.cookie.  A token that
-- fails becomes PostgREST's PGRST error: HTTP 401 with
-- WWW-Authenticate: Bearer error="invalid_token", and the JW SQLSTATE as
-- the error code in the body.  Not SECURITY DEFINER, for the role switch.
CREATE FUNCTION @extschema@.jwt_pre_request()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  headers jsonb := nullif(current_setting('request.headers', true), '')::jsonb;
  cookies jsonb := nullif(current_setting('request.cookies', true), '')::jsonb;
  cookie  text := coalesce(current_setting('jwt.cookie', true), '');
  auth    text := headers ->> 'authorization';
  token   text;
BEGIN
  IF auth IS NOT NULL THEN
    -- RFC 6750 section 2.1: the scheme is case-insensitive, b64token syntax
    token := substring(auth FROM '^[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9._~+/-]+=*) *$');
    IF token IS NULL THEN
      RAISE SQLSTATE 'PGRST' USING
        MESSAGE = json_build_object(
          'code', '28000',
          'message', 'malformed Authorization header',
          'details', NULL,
          'hint', 'Send "Authorization: Bearer" and the token.')::text,
        DETAIL = json_build_object(
          'status', 400,
          'headers', json_build_object(
            'WWW-Authenticate', 'Bearer error="invalid_request"'))::text;
    END IF;
  ELSIF cookie <> '' THEN
    token := cookies ->> cookie;
  END IF;

  BEGIN
    PERFORM @extschema@.jwt_authenticate(token);
  EXCEPTION WHEN OTHERS THEN
    -- token failures, and "no token and no anonymous role" (28000)
    IF SQLSTATE LIKE 'JW%' OR SQLSTATE = '28000' THEN
      RAISE SQLSTATE 'PGRST' USING
        MESSAGE = json_build_object(
          'code', SQLSTATE,
          'message', SQLERRM,
          'details', NULL,
          'hint', NULL)::text,
        DETAIL = json_build_object(
          'status', 401,
          'headers', json_build_object(
            'WWW-Authenticate',
            -- RFC 6750 section 3.1: no error code when no token was sent
            CASE WHEN token IS NULL THEN 'Bearer'
                 ELSE 'Bearer error="invalid_token"' END))::text;
    END IF;
    RAISE;
  END;
END $$;

COMMENT ON FUNCTION @extschema@.jwt_pre_request() IS
'PostgREST db-pre-request hook: authenticate the bearer token (or jwt.cookie) of the request; failures become HTTP 401';
