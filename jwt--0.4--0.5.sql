/* jwt--0.4--0.5.sql: the trust boundary (issue 14) */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION jwt UPDATE TO '0.5'" to load this file. \quit

-- Every name below is schema-qualified with @extschema@ or pg_catalog (the
-- SECURITY DEFINER functions also pin search_path).

-- ----------------------------------------------------------------
-- Building blocks (C)
-- ----------------------------------------------------------------

-- Whether a family's revocation is recorded but not yet written (no
-- background worker could run): jwt_refresh refuses such a family.
CREATE FUNCTION @extschema@._jwt_family_pending(family uuid)
RETURNS boolean
AS 'MODULE_PATHNAME', 'jwt_family_pending_sql'
LANGUAGE C VOLATILE STRICT;

-- jwt_sign with a private JWK of the key table, through none of the
-- per-backend key caches
CREATE FUNCTION @extschema@._jwt_sign_private(claims jsonb, jwk jsonb, algorithm text,
                                              header jsonb DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'jwt_sign_private'
LANGUAGE C VOLATILE;

-- a key argument's JSON as jsonb, with errors that do not echo the key
CREATE FUNCTION @extschema@._jwt_key_json(key text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'jwt_key_json'
LANGUAGE C IMMUTABLE STRICT;

REVOKE ALL ON FUNCTION @extschema@._jwt_key_json(text),
  @extschema@._jwt_family_pending(uuid),
  @extschema@._jwt_sign_private(jsonb, jsonb, text, jsonb) FROM PUBLIC;

-- ----------------------------------------------------------------
-- Refresh tokens: bound to their row by a digest, checked on the clock,
-- reuse detection that fails closed
-- ----------------------------------------------------------------

ALTER TABLE @extschema@.jwt_refresh_tokens ADD COLUMN token_sha256 bytea;

CREATE OR REPLACE FUNCTION @extschema@._jwt_sign_own(claims jsonb, algorithm text, kid text,
                                          ttl interval, header jsonb)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  k record;
  iat bigint := floor(extract(epoch FROM pg_catalog.clock_timestamp()));
  iss text := nullif(current_setting('jwt.issuer', true), '');
  defaults jsonb;
BEGIN
  IF claims IS NULL OR jsonb_typeof(claims) <> 'object' THEN
    RAISE EXCEPTION 'claims must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  ttl := coalesce(ttl, nullif(current_setting('jwt.default_ttl', true), '')::interval, '1 hour');
  IF ttl <= '0'::interval THEN
    RAISE EXCEPTION 'ttl must be positive' USING ERRCODE = 'invalid_parameter_value';
  END IF;

  -- the newest active own key that can sign (for the algorithm, if named)
  SELECT k0.kid, k0.alg, k0.private_jwk INTO k
  FROM @extschema@.jwt_keys AS k0
  WHERE k0.issuer IS NULL AND k0.state = 'active' AND k0.private_jwk IS NOT NULL
    AND (_jwt_sign_own.kid IS NULL OR k0.kid = _jwt_sign_own.kid)
    AND (_jwt_sign_own.algorithm IS NULL OR k0.alg = _jwt_sign_own.algorithm)
    AND (k0.not_before IS NULL OR k0.not_before <= pg_catalog.clock_timestamp())
    AND (k0.expires_at IS NULL OR k0.expires_at > pg_catalog.clock_timestamp())
  ORDER BY k0.created_at DESC, k0.kid
  LIMIT 1;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no active signing key%',
      CASE WHEN _jwt_sign_own.kid IS NOT NULL THEN format(' with kid "%s"', _jwt_sign_own.kid)
           WHEN algorithm IS NOT NULL THEN format(' for %s', algorithm)
           ELSE '' END
      USING ERRCODE = 'JW009',
            HINT = 'Make one with jwt_key_generate, or activate a staged key.';
  END IF;

  defaults := jsonb_build_object('iat', iat,
                                 'exp', iat + floor(extract(epoch FROM ttl))::bigint,
                                 'jti', gen_random_uuid()::text);
  IF iss IS NOT NULL THEN
    defaults := defaults || jsonb_build_object('iss', iss);
  END IF;
  -- what the caller gave wins over the defaults
  -- signed without passing through the key caches: a private key is never kept
  RETURN @extschema@._jwt_sign_private(defaults || claims, k.private_jwk, k.alg, header);
END $$;

CREATE OR REPLACE FUNCTION @extschema@._jwt_refresh_token(family uuid, sub text, ttl interval)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  new_jti text := gen_random_uuid()::text;
  token text;
  t0 timestamptz := pg_catalog.clock_timestamp();
BEGIN
  INSERT INTO @extschema@.jwt_refresh_tokens (jti, family, issued_at, expires_at)
  VALUES (new_jti, family, t0, t0 + ttl);
  UPDATE @extschema@.jwt_token_families f SET expires_at = greatest(f.expires_at, t0 + ttl)
  WHERE f.family = _jwt_refresh_token.family;
  token := @extschema@._jwt_sign_own(
    jsonb_strip_nulls(jsonb_build_object('sub', sub, 'jti', new_jti)),
    NULL, NULL, ttl, '{"typ": "refresh+jwt"}');
  -- the token is bound to its row by its digest, not by its jti alone
  UPDATE @extschema@.jwt_refresh_tokens r
  SET token_sha256 = pg_catalog.sha256(pg_catalog.convert_to(token, 'UTF8'))
  WHERE r.jti OPERATOR(pg_catalog.=) new_jti;
  RETURN token;
END $$;

CREATE OR REPLACE FUNCTION @extschema@.jwt_refresh(OUT access_token text, INOUT refresh_token text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  claims jsonb;
  tok record;
  fam record;
  grace interval := coalesce(nullif(current_setting('jwt.refresh_grace', true), '')::interval, '0');
  reused uuid;
BEGIN
  PERFORM @extschema@._jwt_assert_primary('token families');
  claims := @extschema@._jwt_verify_refresh(jwt_refresh.refresh_token);

  SELECT * INTO tok FROM @extschema@.jwt_refresh_tokens r WHERE r.jti = claims ->> 'jti';
  IF NOT FOUND THEN
    PERFORM @extschema@._jwt_raise('JW010', 'refresh token is not known',
      'It was never stored here, or it has been purged.');
  END IF;
  -- the very token we issued for this jti (rows from before 0.5 have no digest)
  IF tok.token_sha256 IS NOT NULL AND tok.token_sha256 <> sha256(convert_to(jwt_refresh.refresh_token, 'UTF8')) THEN
    PERFORM @extschema@._jwt_raise('JW010', 'refresh token is not known',
      'It is not the token that was issued with this "jti".');
  END IF;
  -- the stored expiry counts, whatever leeway the token's exp was read with
  IF tok.expires_at <= clock_timestamp() THEN
    PERFORM @extschema@._jwt_raise('JW004', 'refresh token has expired');
  END IF;
  -- a reuse whose revocation no worker could write yet: refused, and the
  -- revocation tried again (no lock is held here)
  IF @extschema@._jwt_family_pending(tok.family) THEN
    PERFORM @extschema@._jwt_family_revoke(tok.family, 'refresh token reused');
    PERFORM @extschema@._jwt_raise('JW010', 'refresh token family is revoked',
      'A rotated refresh token of this family was presented again.');
  END IF;

  -- the family's lock is taken in this block, so that leaving it by an
  -- exception releases the lock before the worker updates the row
  BEGIN
    BEGIN
      SELECT * INTO fam FROM @extschema@.jwt_token_families f
      WHERE f.family = tok.family FOR UPDATE NOWAIT;
    EXCEPTION WHEN lock_not_available THEN
      -- a token already rotated is a reuse, whoever holds the lock: holding
      -- the family open must not hide a theft
      IF tok.used_at IS NOT NULL
         AND NOT (grace > '0'::interval AND clock_timestamp() <= tok.used_at + grace) THEN
        reused := tok.family;
        RAISE EXCEPTION USING ERRCODE = 'JWX01';    -- caught below
      END IF;
      PERFORM @extschema@._jwt_raise('JW010', 'refresh token is being used by another session',
        'Another refresh in the same token family is in progress.');
    END;
    IF fam.revoked_at IS NOT NULL THEN
      PERFORM @extschema@._jwt_raise('JW010', 'refresh token family is revoked');
    END IF;
    IF (claims ->> 'sub') IS DISTINCT FROM fam.sub THEN
      PERFORM @extschema@._jwt_raise('JW010', 'refresh token does not belong to its family',
        'Its "sub" is not the subject of the family its "jti" belongs to.');
    END IF;

    -- read again under the lock: a rotation may have committed meanwhile
    SELECT * INTO tok FROM @extschema@.jwt_refresh_tokens r WHERE r.jti = tok.jti;
    IF tok.used_at IS NOT NULL
       AND NOT (grace > '0'::interval AND pg_catalog.clock_timestamp() <= tok.used_at + grace) THEN
      reused := fam.family;
      RAISE EXCEPTION USING ERRCODE = 'JWX01';    -- caught below
    END IF;

    UPDATE @extschema@.jwt_refresh_tokens r
    SET used_at = coalesce(r.used_at, pg_catalog.clock_timestamp())
    WHERE r.jti = tok.jti;
    access_token := @extschema@._jwt_sign_own(fam.claims, NULL, NULL, fam.access_ttl, NULL);
    refresh_token := @extschema@._jwt_refresh_token(fam.family, fam.sub, fam.refresh_ttl);
    UPDATE @extschema@.jwt_refresh_tokens r
    SET replaced_by = @extschema@.jwt_decode_unverified(jwt_refresh.refresh_token) ->> 'jti'
    WHERE r.jti = tok.jti AND r.replaced_by IS NULL;
    RETURN;
  EXCEPTION WHEN SQLSTATE 'JWX01' THEN
    NULL;
  END;

  IF @extschema@._jwt_family_revoke(reused, 'refresh token reused') THEN
    PERFORM @extschema@._jwt_raise('JW010', 'refresh token was already used',
      'A rotated refresh token was presented again: its whole token family is revoked.');
  END IF;
  PERFORM @extschema@._jwt_raise('JW010', 'refresh token was already used',
    'A rotated refresh token was presented again: its family is refused from now on, and its revocation is written when a background worker can run.');
END $$;

-- ----------------------------------------------------------------
-- Keys: key_ops honoured, no secrets from a published key set
-- ----------------------------------------------------------------

CREATE OR REPLACE FUNCTION @extschema@._jwt_jwk_usable(jwk jsonb)
RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT jsonb_typeof(jwk) = 'object'
     AND coalesce(jwk ->> 'use', 'sig') = 'sig'
     -- RFC 7517 §4.3: key_ops, when present, must allow signatures
     AND (NOT jwk ? 'key_ops'
          OR (jsonb_typeof(jwk -> 'key_ops') = 'array' AND jwk -> 'key_ops' ?| ARRAY['sign', 'verify']))
     AND (NOT jwk ? 'alg' OR jwk ->> 'alg' = ANY (ARRAY[
            'HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512',
            'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']))
     AND CASE jwk ->> 'kty'
           WHEN 'RSA' THEN true
           WHEN 'oct' THEN true
           WHEN 'EC' THEN jwk ->> 'crv' = ANY (ARRAY['P-256', 'P-384', 'P-521'])
           WHEN 'OKP' THEN jwk ->> 'crv' = ANY (ARRAY['Ed25519', 'Ed448'])
           ELSE false END
$$;

CREATE OR REPLACE FUNCTION @extschema@.jwt_jwks_import(jwks jsonb, issuer text)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  elem jsonb;
  jwk jsonb;
  kid text;
  n integer := 0;
BEGIN
  PERFORM @extschema@._jwt_assert_primary('the key table');
  IF issuer IS NULL OR issuer = '' THEN
    RAISE EXCEPTION 'issuer must be given'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Import your own keys with jwt_key_import.';
  END IF;
  IF jwks IS NULL OR jsonb_typeof(jwks -> 'keys') IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION 'not a JWKS: no "keys" array' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- a published key set never carries a secret: whoever can read the
  -- document could sign with it
  IF EXISTS (SELECT FROM jsonb_array_elements(jwks -> 'keys') AS e WHERE e ->> 'kty' = 'oct') THEN
    RAISE EXCEPTION 'a key set document must not hold secret (oct) keys'
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'The issuer''s keys were left as they were.',
            HINT = 'Import an issuer''s shared secret with jwt_key_import.';
  END IF;
  -- the issuer's row, locked: concurrent imports for one issuer queue here
  INSERT INTO @extschema@.jwt_issuers AS i (issuer, jwks_updated_at)
  VALUES (issuer, now())
  ON CONFLICT ON CONSTRAINT jwt_issuers_pkey DO UPDATE SET jwks_updated_at = now();
  -- revoked keys stay, so that the document cannot bring them back
  DELETE FROM @extschema@.jwt_keys AS k
  WHERE k.issuer = jwt_jwks_import.issuer AND k.state <> 'revoked';
  FOR elem IN SELECT e FROM jsonb_array_elements(jwks -> 'keys') AS e LOOP
    CONTINUE WHEN NOT @extschema@._jwt_jwk_usable(elem);
    jwk := @extschema@.jwt_jwk(elem::text);
    kid := coalesce(jwk ->> 'kid', @extschema@.jwt_jwk_thumbprint(jwk));
    IF @extschema@._jwt_key_was_revoked(jwk, kid, issuer) THEN
      RAISE WARNING 'key "%" of issuer "%" is revoked here: not imported', kid, issuer
        USING DETAIL = 'The issuer still publishes a key revoked with jwt_key_revoke.';
      CONTINUE;
    END IF;
    PERFORM @extschema@._jwt_key_insert(jwk, kid, issuer, NULL);
    n := n + 1;
  END LOOP;
  -- a document with no usable key is more likely an error page than a
  -- real rotation: keep the keys we have
  IF n = 0 THEN
    RAISE EXCEPTION 'the key set holds no usable signing key'
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'The issuer''s keys were left as they were.';
  END IF;
  RETURN n;
END $$;

CREATE OR REPLACE FUNCTION @extschema@.jwt_key_import(key text, algorithm text DEFAULT NULL,
                                           kid text DEFAULT NULL, issuer text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  doc jsonb;
  elem jsonb;
  kids text[] := '{}';
BEGIN
  IF key IS NULL THEN
    RAISE EXCEPTION 'key must not be null' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF issuer IS NOT NULL THEN
    PERFORM @extschema@._jwt_issuer_ensure(issuer);
  END IF;
  IF ltrim(key) LIKE '{%' THEN
    -- parsed in C: a jsonb cast would echo the key in its error
    doc := @extschema@._jwt_key_json(key);
  END IF;
  IF doc IS NULL OR NOT doc ? 'keys' THEN
    RETURN @extschema@._jwt_key_insert(@extschema@.jwt_jwk(key, algorithm), kid, issuer, NULL);
  END IF;
  -- a key set: every key in it, each with its own kid
  IF kid IS NOT NULL THEN
    RAISE EXCEPTION 'kid cannot be given for a key set' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR elem IN SELECT e FROM jsonb_array_elements(doc -> 'keys') AS e
               WHERE @extschema@._jwt_jwk_usable(e) LOOP
    kids := kids || @extschema@._jwt_key_insert(@extschema@.jwt_jwk(elem::text, algorithm),
                                                 NULL, issuer, NULL);
  END LOOP;
  IF cardinality(kids) = 0 THEN
    RAISE EXCEPTION 'the key set holds no usable signing key' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN array_to_string(kids, ',');
END $$;

-- ----------------------------------------------------------------
-- A kid is unique within its issuer; a revoked key stays revoked
-- ----------------------------------------------------------------

-- Our own keys (issuer NULL) are one namespace and each trusted issuer
-- another: two identity providers may both call a key "1".  Every row is
-- kept: kids were unique across the table before, so they are within each
-- issuer.
ALTER TABLE @extschema@.jwt_keys DROP CONSTRAINT jwt_keys_pkey;
ALTER TABLE @extschema@.jwt_keys
  ADD CONSTRAINT jwt_keys_issuer_kid_key UNIQUE NULLS NOT DISTINCT (issuer, kid);
DROP INDEX @extschema@.jwt_keys_issuer;    -- the new index leads with issuer
-- Without a primary key (issuer is NULL for our own keys), logical
-- replication identifies a changed row by all of its columns.
ALTER TABLE @extschema@.jwt_keys REPLICA IDENTITY FULL;

-- Whether a key was revoked in its namespace: the same kid, or for a public
-- key the same RFC 7638 thumbprint under another kid.  A revocation is for
-- good: no import, and no provider still publishing the key, undoes it.
CREATE FUNCTION @extschema@._jwt_key_was_revoked(jwk jsonb, kid text, issuer text)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT EXISTS (
    SELECT FROM @extschema@.jwt_keys AS r
    WHERE (r.issuer = _jwt_key_was_revoked.issuer
           OR (r.issuer IS NULL AND _jwt_key_was_revoked.issuer IS NULL))
      AND r.state = 'revoked'
      AND (r.kid = _jwt_key_was_revoked.kid
           OR (r.jwk ->> 'kty' <> 'oct' AND _jwt_key_was_revoked.jwk ->> 'kty' <> 'oct'
               AND @extschema@.jwt_jwk_thumbprint(r.jwk)
                   = @extschema@.jwt_jwk_thumbprint(_jwt_key_was_revoked.jwk))))
$$;

CREATE OR REPLACE FUNCTION @extschema@._jwt_key_insert(jwk jsonb, kid text, issuer text,
                                            expires_at timestamptz)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  is_hmac boolean := jwk ->> 'kty' = 'oct';
  private_members text[] := ARRAY['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
  has_private boolean := jwk ?| private_members;
  namespace text := CASE WHEN issuer IS NULL THEN 'our own keys'
                         ELSE format('the keys of issuer "%s"', issuer) END;
BEGIN
  PERFORM @extschema@._jwt_assert_primary('the key table');
  kid := coalesce(kid, jwk ->> 'kid',
                  CASE WHEN is_hmac
                       THEN translate(encode(uuid_send(gen_random_uuid()), 'base64'), '+/=', '-_')
                       ELSE @extschema@.jwt_jwk_thumbprint(jwk) END);
  jwk := jwk || jsonb_build_object('kid', kid, 'use', 'sig');
  -- a trusted issuer's asymmetric keys are kept public only: they never sign
  IF issuer IS NOT NULL AND NOT is_hmac THEN
    has_private := false;
  END IF;
  IF issuer IS NULL AND is_hmac AND NOT has_private THEN
    RAISE EXCEPTION 'an HMAC key needs its secret' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF @extschema@._jwt_key_was_revoked(jwk, kid, issuer) THEN
    RAISE EXCEPTION 'key "%" was revoked', kid
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = format('A key of %s with this kid or this public key is revoked, for good.', namespace);
  END IF;
  INSERT INTO @extschema@.jwt_keys (kid, alg, jwk, private_jwk, issuer, expires_at)
  VALUES (kid, jwk ->> 'alg', jwk - private_members,
          CASE WHEN has_private THEN jwk END, issuer, expires_at);
  RETURN kid;
EXCEPTION WHEN unique_violation THEN
  RAISE EXCEPTION 'a key with kid "%" already exists among %', kid, namespace
    USING ERRCODE = 'unique_violation',
          HINT = 'Give the key another kid, or delete the existing key first.';
END $$;

-- The state of the key a kid names: within issuer (NULL: our own keys), or
-- with any_issuer wherever the kid is, provided only one issuer has it.
CREATE FUNCTION @extschema@._jwt_key_set_state(kid text, issuer text, any_issuer boolean,
                                               new_state text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r record;
  n integer := 0;
  key_issuer text;
  old_state text;
BEGIN
  PERFORM @extschema@._jwt_assert_primary('the key table');
  FOR r IN SELECT k.issuer, k.state FROM @extschema@.jwt_keys AS k
           WHERE k.kid = _jwt_key_set_state.kid
             AND (any_issuer OR k.issuer IS NOT DISTINCT FROM _jwt_key_set_state.issuer)
           FOR UPDATE LOOP
    n := n + 1;
    key_issuer := r.issuer;
    old_state := r.state;
  END LOOP;
  IF n = 0 THEN
    RAISE EXCEPTION 'key "%" does not exist%', kid,
      CASE WHEN any_issuer THEN ''
           WHEN issuer IS NULL THEN ' among our own keys'
           ELSE format(' for issuer "%s"', issuer) END
      USING ERRCODE = 'undefined_object';
  END IF;
  IF n > 1 THEN
    RAISE EXCEPTION 'key ID "%" is used by more than one issuer', kid
      USING ERRCODE = 'cardinality_violation',
            HINT = 'Name the issuer as the second argument (NULL for our own keys).';
  END IF;
  IF old_state = 'revoked' THEN
    RAISE EXCEPTION 'key "%" is revoked', kid
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = 'Revoking a key cannot be undone.';
  END IF;
  UPDATE @extschema@.jwt_keys AS k
  SET state = new_state,
      retired_at = CASE WHEN new_state = 'retired' THEN pg_catalog.now() END,
      revoked_at = CASE WHEN new_state = 'revoked' THEN pg_catalog.now() END
  WHERE k.kid = _jwt_key_set_state.kid AND k.issuer IS NOT DISTINCT FROM key_issuer;
END $$;

REVOKE ALL ON FUNCTION @extschema@._jwt_key_was_revoked(jsonb, text, text),
  @extschema@._jwt_key_set_state(text, text, boolean, text) FROM PUBLIC;

-- One argument: the key with that kid, whichever issuer's (an error when
-- several have it).  Two: the key of that issuer, NULL for our own.
CREATE OR REPLACE FUNCTION @extschema@.jwt_key_stage(kid text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT @extschema@._jwt_key_set_state(kid, NULL, true, 'staged') $$;
CREATE OR REPLACE FUNCTION @extschema@.jwt_key_activate(kid text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT @extschema@._jwt_key_set_state(kid, NULL, true, 'active') $$;
CREATE OR REPLACE FUNCTION @extschema@.jwt_key_retire(kid text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT @extschema@._jwt_key_set_state(kid, NULL, true, 'retired') $$;
CREATE OR REPLACE FUNCTION @extschema@.jwt_key_revoke(kid text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT @extschema@._jwt_key_set_state(kid, NULL, true, 'revoked') $$;

CREATE FUNCTION @extschema@.jwt_key_stage(kid text, issuer text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT @extschema@._jwt_key_set_state(kid, issuer, false, 'staged') $$;
COMMENT ON FUNCTION @extschema@.jwt_key_stage(text, text) IS
'publish a key of that issuer (NULL: our own) without signing with it yet';
CREATE FUNCTION @extschema@.jwt_key_activate(kid text, issuer text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT @extschema@._jwt_key_set_state(kid, issuer, false, 'active') $$;
COMMENT ON FUNCTION @extschema@.jwt_key_activate(text, text) IS
'sign with a staged or retired key of that issuer (NULL: our own) again';
CREATE FUNCTION @extschema@.jwt_key_retire(kid text, issuer text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT @extschema@._jwt_key_set_state(kid, issuer, false, 'retired') $$;
COMMENT ON FUNCTION @extschema@.jwt_key_retire(text, text) IS
'stop signing with a key of that issuer (NULL: our own); its tokens keep verifying until it expires';
CREATE FUNCTION @extschema@.jwt_key_revoke(kid text, issuer text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT @extschema@._jwt_key_set_state(kid, issuer, false, 'revoked') $$;
COMMENT ON FUNCTION @extschema@.jwt_key_revoke(text, text) IS
'reject every token of a key of that issuer (NULL: our own) at once (JW009); cannot be undone';

REVOKE ALL ON FUNCTION @extschema@.jwt_key_stage(text, text),
  @extschema@.jwt_key_activate(text, text),
  @extschema@.jwt_key_retire(text, text),
  @extschema@.jwt_key_revoke(text, text) FROM PUBLIC;

DROP FUNCTION @extschema@._jwt_key_set_state(text, text);

-- The caches' trigger function is internal: named as the other helpers,
-- not for PUBLIC (only the tables' triggers call it; they follow the
-- rename), and with a comment like every other function.
ALTER FUNCTION @extschema@.jwt_keys_changed() RENAME TO _jwt_keys_changed;
REVOKE ALL ON FUNCTION @extschema@._jwt_keys_changed() FROM PUBLIC;
COMMENT ON FUNCTION @extschema@._jwt_keys_changed() IS
'trigger on the key, issuer and revocation tables: tells every backend (and hot standby) to drop what it cached of them (per row with an issuer column as argument: that issuer''s entry only)';

-- Every internal function says what it is for, and none is for PUBLIC.
REVOKE ALL ON FUNCTION @extschema@._jwt_jwk_usable(jsonb) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@._jwt_key_insert(jsonb, text, text, timestamptz) IS
'internal: store one key in its namespace (refuses a revoked or taken kid)';
COMMENT ON FUNCTION @extschema@._jwt_issuer_ensure(text) IS
'internal: the trusted issuer''s row, made if missing';
COMMENT ON FUNCTION @extschema@._jwt_jwk_usable(jsonb) IS
'internal: whether a JWK of a key set is a signing key of a type and curve jwt handles';
COMMENT ON FUNCTION @extschema@._jwt_verify_refresh(text) IS
'internal: a refresh token''s claims, verified with our own keys only';
COMMENT ON FUNCTION @extschema@._jwt_verify_signature(text) IS
'internal: a token''s claims when our own key signed it, expired or not (for jwt_revoke)';
COMMENT ON FUNCTION @extschema@._jwt_family_revoke(uuid, text) IS
'internal: revoke a token family in a background worker''s own transaction';
COMMENT ON FUNCTION @extschema@._jwt_raise(text, text, text) IS
'internal: raise an error with a jwt SQLSTATE, keeping the statement out of the log';
COMMENT ON FUNCTION @extschema@._jwt_assert_primary(text) IS
'internal: refuse a write on a hot standby with a clear error';
COMMENT ON FUNCTION @extschema@._jwt_sign_own(jsonb, text, text, interval, jsonb) IS
'internal: sign with the newest active own key, filling in iat, exp, jti and iss';
COMMENT ON FUNCTION @extschema@._jwt_refresh_token(uuid, text, interval) IS
'internal: a new refresh token of a family, stored with its digest';
COMMENT ON FUNCTION @extschema@._jwt_family_pending(uuid) IS
'internal: whether a family''s revocation is recorded but not yet written';
COMMENT ON FUNCTION @extschema@._jwt_sign_private(jsonb, jsonb, text, jsonb) IS
'internal: jwt_sign with a private JWK of the key table, through no key cache';
COMMENT ON FUNCTION @extschema@._jwt_key_json(text) IS
'internal: a key argument''s JSON as jsonb, with errors that do not echo the key';
COMMENT ON FUNCTION @extschema@._jwt_key_was_revoked(jsonb, text, text) IS
'internal: whether a key (by kid or thumbprint) was revoked in its namespace';
COMMENT ON FUNCTION @extschema@._jwt_key_set_state(text, text, boolean, text) IS
'internal: the lifecycle step of the key a kid names';

COMMENT ON FUNCTION @extschema@.jwt_cache_stats() IS
'this backend''s caches: parsed key arguments (key), verified signatures (verify) and trusted issuers'' rules and keys (issuer), for sizing jwt.key_cache_size, jwt.key_cache_memory, jwt.verify_cache_size and jwt.issuer_cache_memory';

-- Backends cache each issuer apart: the key and issuer tables' triggers
-- fire per row with the issuer column, always (also when a logical
-- replication subscriber applies a change), and TRUNCATE drops everything
-- (as src/sql/20_keys.sql).
DROP TRIGGER jwt_keys_changed ON @extschema@.jwt_keys;
DROP TRIGGER jwt_issuers_changed ON @extschema@.jwt_issuers;
CREATE TRIGGER jwt_keys_changed
  AFTER INSERT OR UPDATE OR DELETE ON @extschema@.jwt_keys
  FOR EACH ROW EXECUTE FUNCTION @extschema@._jwt_keys_changed('issuer');
CREATE TRIGGER jwt_issuers_changed
  AFTER INSERT OR UPDATE OR DELETE ON @extschema@.jwt_issuers
  FOR EACH ROW EXECUTE FUNCTION @extschema@._jwt_keys_changed('issuer');
ALTER TABLE @extschema@.jwt_keys ENABLE ALWAYS TRIGGER jwt_keys_changed;
ALTER TABLE @extschema@.jwt_issuers ENABLE ALWAYS TRIGGER jwt_issuers_changed;
CREATE TRIGGER jwt_keys_truncated
  AFTER TRUNCATE ON @extschema@.jwt_keys
  FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._jwt_keys_changed();
CREATE TRIGGER jwt_issuers_truncated
  AFTER TRUNCATE ON @extschema@.jwt_issuers
  FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._jwt_keys_changed();

-- A logical replication subscriber's apply worker fires row triggers only,
-- and only those enabled for replica mode: these send the revocation
-- caches' invalidation there (they never fire in an ordinary session).
CREATE TRIGGER jwt_revoked_applied
  AFTER INSERT OR UPDATE OR DELETE ON @extschema@.jwt_revoked
  FOR EACH ROW EXECUTE FUNCTION @extschema@._jwt_keys_changed();
CREATE TRIGGER jwt_revoked_subjects_applied
  AFTER INSERT OR UPDATE OR DELETE ON @extschema@.jwt_revoked_subjects
  FOR EACH ROW EXECUTE FUNCTION @extschema@._jwt_keys_changed();
ALTER TABLE @extschema@.jwt_revoked ENABLE REPLICA TRIGGER jwt_revoked_applied;
ALTER TABLE @extschema@.jwt_revoked_subjects ENABLE REPLICA TRIGGER jwt_revoked_subjects_applied;

-- Identity providers' key sets, fetched by the database (as src/sql/60_providers.sql)

-- Where a trusted issuer's keys live: a JWKS URL, or OpenID Connect
-- discovery at the issuer's /.well-known/openid-configuration.  An issuer
-- with neither gets its keys through jwt_jwks_import only.  Only the
-- extension owner (or a superuser) sets these: a URL is a request the
-- server makes.
ALTER TABLE @extschema@.jwt_issuers
  ADD COLUMN jwks_uri text CHECK (jwks_uri OPERATOR(pg_catalog.~*) '^https://[^/\s]'),
  ADD COLUMN jwks_discovery boolean NOT NULL DEFAULT false;

-- What each fetch did.  Kept apart from jwt_issuers, whose changes drop
-- every backend's key cache: a fetch that changes no key changes nothing
-- there.  Not dumped: after a restore, the first refresh fills it again.
CREATE TABLE @extschema@.jwt_jwks_fetches (
  issuer        text PRIMARY KEY REFERENCES @extschema@.jwt_issuers ON DELETE CASCADE,
  fetched_uri   text,           -- the JWKS URL last used (discovery finds it)
  last_attempt  timestamptz,
  last_success  timestamptz,
  last_error    text,           -- of the last attempt; NULL when it succeeded
  failures      integer NOT NULL DEFAULT 0,   -- attempts failed in a row
  next_refresh  timestamptz
);

REVOKE ALL ON @extschema@.jwt_jwks_fetches FROM PUBLIC;
COMMENT ON TABLE @extschema@.jwt_jwks_fetches IS
'when each trusted issuer''s key set was fetched, and why the last attempt failed';

-- The refresh schedule is a priority queue: the JWKS worker takes the
-- rows never attempted (next_refresh NULL), then the most overdue, from
-- this index, and reads no other issuer's row to find them.
CREATE INDEX jwt_jwks_fetches_next_refresh
  ON @extschema@.jwt_jwks_fetches (next_refresh NULLS FIRST);

-- So an issuer whose keys are fetched has its row in the queue from the
-- moment it has a URL (or discovery), due at once; one that no longer has
-- either leaves it.  ALWAYS: a logical subscriber's worker fetches its
-- issuers as well.  As the extension's owner: only the owner and
-- superusers may write jwt_issuers, and either may write the schedule.
CREATE FUNCTION @extschema@._jwt_jwks_schedule()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NEW.jwks_uri IS NOT NULL OR NEW.jwks_discovery THEN
    INSERT INTO @extschema@.jwt_jwks_fetches AS s (issuer) VALUES (NEW.issuer)
    ON CONFLICT ON CONSTRAINT jwt_jwks_fetches_pkey DO UPDATE
      SET next_refresh = NULL;       -- another URL: due at once
  ELSE
    DELETE FROM @extschema@.jwt_jwks_fetches AS s WHERE s.issuer = NEW.issuer;
  END IF;
  RETURN NULL;
END $$;

REVOKE ALL ON FUNCTION @extschema@._jwt_jwks_schedule() FROM PUBLIC;
COMMENT ON FUNCTION @extschema@._jwt_jwks_schedule() IS
'internal: keep an issuer whose keys are fetched in the refresh schedule (jwt_jwks_fetches)';

-- Only for rows that concern the schedule: a trigger that runs a
-- statement for every row would also defeat the key store's coalescing of
-- a bulk insert's invalidations (one per command, src/keystore.c).
CREATE TRIGGER jwt_issuers_schedule
  AFTER INSERT ON @extschema@.jwt_issuers
  FOR EACH ROW WHEN (NEW.jwks_uri IS NOT NULL OR NEW.jwks_discovery)
  EXECUTE FUNCTION @extschema@._jwt_jwks_schedule();
CREATE TRIGGER jwt_issuers_reschedule
  AFTER UPDATE OF jwks_uri, jwks_discovery ON @extschema@.jwt_issuers
  FOR EACH ROW WHEN (OLD.jwks_uri IS DISTINCT FROM NEW.jwks_uri
                     OR OLD.jwks_discovery IS DISTINCT FROM NEW.jwks_discovery)
  EXECUTE FUNCTION @extschema@._jwt_jwks_schedule();
ALTER TABLE @extschema@.jwt_issuers ENABLE ALWAYS TRIGGER jwt_issuers_schedule;
ALTER TABLE @extschema@.jwt_issuers ENABLE ALWAYS TRIGGER jwt_issuers_reschedule;

-- One HTTPS GET (src/fetch.c): https only, also for redirects (at most 3),
-- the certificate and host name verified (against jwt.jwks_ca_file alone
-- when it is set, else the system trust store), at most 1 MB, within
-- jwt.jwks_timeout.  Only the extension owner or a superuser, whatever
-- EXECUTE was granted: the C function checks (42501).  error is a fixed
-- text per kind of failure, naming no address or port.
CREATE FUNCTION @extschema@._jwt_fetch(url text, OUT ok boolean, OUT http_status integer,
                                       OUT body text, OUT max_age integer,
                                       OUT expires timestamptz, OUT error text)
RETURNS record
AS 'MODULE_PATHNAME', 'jwt_fetch_url'
LANGUAGE C VOLATILE STRICT;

REVOKE ALL ON FUNCTION @extschema@._jwt_fetch(text) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@._jwt_fetch(text) IS
'internal: one HTTPS GET of an identity provider''s document, with the limits of jwt.jwks_*; owner only';

-- The JWKS worker (with jwt in shared_preload_libraries) reads the
-- schedule again when this transaction commits.
CREATE FUNCTION @extschema@._jwt_jwks_wake()
RETURNS void
AS 'MODULE_PATHNAME', 'jwt_jwks_wake'
LANGUAGE C VOLATILE;

REVOKE ALL ON FUNCTION @extschema@._jwt_jwks_wake() FROM PUBLIC;
COMMENT ON FUNCTION @extschema@._jwt_jwks_wake() IS
'internal: wake the JWKS worker at commit, to read the refresh schedule again';

-- Fetch an issuer's key set, by discovery when jwks_uri is NULL.  Reports
-- a failure in error (and document_error: the answer came, but was not what
-- it must be); never the body.  Raises nothing but a cancel, so that one
-- issuer's failure is recorded and cannot stop the others' refresh, and
-- 42501 for a caller who may not fetch (_jwt_fetch decides).
CREATE FUNCTION @extschema@._jwt_jwks_fetch(issuer text, jwks_uri text,
                                            OUT jwks jsonb, OUT fetched_uri text,
                                            OUT max_age integer, OUT expires timestamptz,
                                            OUT error text, OUT document_error boolean)
RETURNS record
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  f record;
  doc jsonb;
BEGIN
  document_error := false;
  fetched_uri := jwks_uri;
  IF jwks_uri IS NULL THEN
    BEGIN
      f := @extschema@._jwt_fetch(rtrim(issuer, '/') || '/.well-known/openid-configuration');
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE;
    WHEN OTHERS THEN
      -- e.g. a character the database encoding cannot hold; a cancel
      -- (QUERY_CANCELED is not among OTHERS) still ends the call
      error := 'discovery: ' || SQLERRM;
      RETURN;
    END;
    IF NOT f.ok THEN
      error := 'discovery: ' || f.error;
      RETURN;
    END IF;
    BEGIN
      doc := f.body::jsonb;
    EXCEPTION WHEN OTHERS THEN
      doc := NULL;
    END;
    document_error := true;
    IF jsonb_typeof(doc) IS DISTINCT FROM 'object' THEN
      error := 'discovery: the document is not a JSON object';
      RETURN;
    END IF;
    -- OpenID Connect Discovery 1.0, §4.3: exactly the issuer we trust
    IF doc -> 'issuer' IS DISTINCT FROM to_jsonb(issuer) THEN
      error := format('discovery: the document names issuer %s, not %s',
                      left(coalesce(doc ->> 'issuer', 'none'), 200), issuer);
      RETURN;
    END IF;
    fetched_uri := doc ->> 'jwks_uri';
    IF fetched_uri IS NULL OR fetched_uri !~* '^https://[^/\s]' THEN
      error := format('discovery: jwks_uri is %s, not an https URL',
                      left(coalesce(doc ->> 'jwks_uri', 'missing'), 200));
      fetched_uri := NULL;
      RETURN;
    END IF;
    document_error := false;
  END IF;
  BEGIN
    f := @extschema@._jwt_fetch(fetched_uri);
  EXCEPTION WHEN insufficient_privilege THEN
    RAISE;
  WHEN OTHERS THEN
    error := SQLERRM;
    document_error := true;
    RETURN;
  END;
  max_age := f.max_age;
  expires := f.expires;
  IF NOT f.ok THEN
    error := f.error;
    RETURN;
  END IF;
  BEGIN
    jwks := f.body::jsonb;
  EXCEPTION WHEN OTHERS THEN
    -- the message only: its detail would quote the document
    error := 'the document is not a JWKS: ' || SQLERRM;
    document_error := true;
    RETURN;
  END;
  IF jsonb_typeof(jwks -> 'keys') IS DISTINCT FROM 'array' THEN
    error := 'the document is not a JWKS (no "keys" array)';
    document_error := true;
    jwks := NULL;
  END IF;
END $$;

REVOKE ALL ON FUNCTION @extschema@._jwt_jwks_fetch(text, text) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@._jwt_jwks_fetch(text, text) IS
'internal: fetch a trusted issuer''s JWKS, by OpenID Connect discovery when no URL is given';

-- When to fetch again: after a success, the answer's Cache-Control max-age
-- (or Expires), within jwt.jwks_min_interval and jwt.jwks_max_interval,
-- less up to 10% of jitter; after a failure, 30 s doubled per failure in a
-- row, at most jwt.jwks_min_interval.  Counted from the end of the
-- attempt, however long it took.
CREATE FUNCTION @extschema@._jwt_jwks_next(ok boolean, failures integer, max_age integer,
                                           expires timestamptz)
RETURNS timestamptz
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT clock_timestamp() + make_interval(secs =>
    CASE WHEN ok THEN
      greatest(lo, least(hi, coalesce(max_age::double precision,
                                      extract(epoch FROM expires - now()), hi)))
      * (1 - random() / 10)
    ELSE least(lo, 30 * power(2, least(greatest(failures, 1) - 1, 20)))
    END)
  FROM (SELECT extract(epoch FROM current_setting('jwt.jwks_min_interval')::interval)::double precision AS lo,
               extract(epoch FROM current_setting('jwt.jwks_max_interval')::interval)::double precision AS hi) AS s
$$;

REVOKE ALL ON FUNCTION @extschema@._jwt_jwks_next(boolean, integer, integer, timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@._jwt_jwks_next(boolean, integer, integer, timestamptz) IS
'internal: when to fetch an issuer''s key set again';

CREATE FUNCTION @extschema@.jwt_issuer_trust(issuer text, jwks_uri text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  f record;
  n integer;
BEGIN
  -- the extension's owner or a superuser, whatever EXECUTE was granted:
  -- nobody else may make the server fetch anything
  IF NOT (SELECT r.rolsuper OR r.oid = e.extowner
          FROM pg_catalog.pg_roles AS r, pg_catalog.pg_extension AS e
          WHERE r.rolname = current_user AND e.extname = 'jwt') THEN
    RAISE EXCEPTION 'only the owner of extension jwt may %', 'set where an issuer''s keys are fetched from'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  PERFORM @extschema@._jwt_assert_primary('the key table');
  IF issuer IS NULL OR issuer = '' THEN
    RAISE EXCEPTION 'issuer must be given' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF jwks_uri IS NOT NULL AND jwks_uri !~* '^https://[^/\s]' THEN
    RAISE EXCEPTION 'the JWKS URL must be an https URL'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF jwks_uri IS NULL AND issuer !~* '^https://[^/\s]' THEN
    RAISE EXCEPTION 'issuer "%" is not an https URL: discovery needs one', issuer
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Give the JWKS URL as the second argument.';
  END IF;
  -- fetch first: an issuer whose keys cannot be had is not registered
  f := @extschema@._jwt_jwks_fetch(issuer, jwks_uri);
  IF f.error IS NOT NULL THEN
    RAISE EXCEPTION 'could not fetch the key set of issuer "%"', issuer
      USING ERRCODE = CASE WHEN f.document_error THEN 'data_exception' ELSE 'connection_exception' END,
            DETAIL = f.error;
  END IF;
  INSERT INTO @extschema@.jwt_issuers AS i (issuer, jwks_uri, jwks_discovery)
  VALUES (issuer, jwks_uri, jwks_uri IS NULL)
  ON CONFLICT ON CONSTRAINT jwt_issuers_pkey DO UPDATE
    SET jwks_uri = excluded.jwks_uri, jwks_discovery = excluded.jwks_discovery;
  n := @extschema@.jwt_jwks_import(f.jwks, issuer);
  INSERT INTO @extschema@.jwt_jwks_fetches AS s
    (issuer, fetched_uri, last_attempt, last_success, last_error, failures, next_refresh)
  VALUES (issuer, f.fetched_uri, now(), now(), NULL, 0,
          @extschema@._jwt_jwks_next(true, 0, f.max_age, f.expires))
  ON CONFLICT ON CONSTRAINT jwt_jwks_fetches_pkey DO UPDATE
    SET fetched_uri = excluded.fetched_uri, last_attempt = excluded.last_attempt,
        last_success = excluded.last_success, last_error = NULL, failures = 0,
        next_refresh = excluded.next_refresh;
  PERFORM @extschema@._jwt_jwks_wake();
  RETURN n;
END $$;

REVOKE ALL ON FUNCTION @extschema@.jwt_issuer_trust(text, text) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.jwt_issuer_trust(text, text) IS
'trust an issuer whose keys are fetched from its JWKS URL (NULL: OpenID Connect discovery); fetches them now, returns how many; owner only';

-- Fetch now.  A failure keeps the keys, is recorded in jwt_jwks_fetches
-- (see jwt_jwks_status) and logged at WARNING without the body.
CREATE FUNCTION @extschema@.jwt_jwks_refresh(issuer text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  c refcursor;
  i record;
  f record;
  err text;
  n integer := 0;
  found_one boolean := false;
BEGIN
  -- the extension's owner or a superuser, whatever EXECUTE was granted:
  -- nobody else may make the server fetch anything
  IF NOT (SELECT r.rolsuper OR r.oid = e.extowner
          FROM pg_catalog.pg_roles AS r, pg_catalog.pg_extension AS e
          WHERE r.rolname = current_user AND e.extname = 'jwt') THEN
    RAISE EXCEPTION 'only the owner of extension jwt may %', 'fetch issuers'' keys'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  PERFORM @extschema@._jwt_assert_primary('the key table');
  -- one issuer by the primary key (the worker calls this for each issuer
  -- it refreshes: one query for both would read every issuer each time)
  IF issuer IS NULL THEN
    OPEN c FOR SELECT t.issuer, t.jwks_uri, coalesce(s.failures, 0) AS failures
               FROM @extschema@.jwt_issuers AS t
               LEFT JOIN @extschema@.jwt_jwks_fetches AS s ON s.issuer = t.issuer
               WHERE t.jwks_uri IS NOT NULL OR t.jwks_discovery
               ORDER BY t.issuer;
  ELSE
    OPEN c FOR SELECT t.issuer, t.jwks_uri, coalesce(s.failures, 0) AS failures
               FROM @extschema@.jwt_issuers AS t
               LEFT JOIN @extschema@.jwt_jwks_fetches AS s ON s.issuer = t.issuer
               WHERE (t.jwks_uri IS NOT NULL OR t.jwks_discovery)
                 AND t.issuer = jwt_jwks_refresh.issuer;
  END IF;
  LOOP
    FETCH c INTO i;
    EXIT WHEN NOT FOUND;
    found_one := true;
    f := @extschema@._jwt_jwks_fetch(i.issuer, i.jwks_uri);
    err := f.error;
    IF err IS NULL THEN
      BEGIN
        n := n + @extschema@.jwt_jwks_import(f.jwks, i.issuer);
      EXCEPTION WHEN OTHERS THEN
        err := SQLERRM;
      END;
    END IF;
    INSERT INTO @extschema@.jwt_jwks_fetches AS s
      (issuer, fetched_uri, last_attempt, last_success, last_error, failures, next_refresh)
    VALUES (i.issuer, f.fetched_uri, now(), CASE WHEN err IS NULL THEN now() END, err,
            CASE WHEN err IS NULL THEN 0 ELSE i.failures + 1 END,
            @extschema@._jwt_jwks_next(err IS NULL, i.failures + 1, f.max_age, f.expires))
    ON CONFLICT ON CONSTRAINT jwt_jwks_fetches_pkey DO UPDATE
      SET fetched_uri = coalesce(excluded.fetched_uri, s.fetched_uri),
          last_attempt = excluded.last_attempt,
          last_success = coalesce(excluded.last_success, s.last_success),
          last_error = excluded.last_error, failures = excluded.failures,
          next_refresh = excluded.next_refresh;
    IF err IS NOT NULL THEN
      RAISE WARNING 'could not refresh the key set of issuer "%": its keys are kept', i.issuer
        USING DETAIL = err;
    END IF;
  END LOOP;
  CLOSE c;
  IF NOT found_one AND issuer IS NOT NULL THEN
    RAISE EXCEPTION 'issuer "%" has no key set URL', issuer
      USING ERRCODE = 'undefined_object',
            HINT = 'Register it with jwt_issuer_trust.';
  END IF;
  RETURN n;
END $$;

REVOKE ALL ON FUNCTION @extschema@.jwt_jwks_refresh(text) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.jwt_jwks_refresh(text) IS
'fetch the key sets of trusted issuers now (NULL: all), keeping the keys on failure; returns how many keys were imported; owner only';

CREATE FUNCTION @extschema@.jwt_jwks_status()
RETURNS TABLE (issuer text, jwks_uri text, last_attempt timestamptz, last_success timestamptz,
               last_error text, next_refresh timestamptz, keys integer)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT t.issuer, coalesce(s.fetched_uri, t.jwks_uri), s.last_attempt, s.last_success,
         s.last_error, s.next_refresh,
         (SELECT count(*) FROM @extschema@.jwt_keys AS k
          WHERE k.issuer = t.issuer AND k.state <> 'revoked')::integer
  FROM @extschema@.jwt_issuers AS t
  LEFT JOIN @extschema@.jwt_jwks_fetches AS s ON s.issuer = t.issuer
  WHERE t.jwks_uri IS NOT NULL OR t.jwks_discovery
  ORDER BY t.issuer
$$;

REVOKE ALL ON FUNCTION @extschema@.jwt_jwks_status() FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.jwt_jwks_status() IS
'each issuer whose keys are fetched: from where, when, the last error, the next refresh and how many keys it has; no key material';
