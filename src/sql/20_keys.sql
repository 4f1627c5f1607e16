-- ================================================================
-- src/sql/20_keys.sql: the key and issuer tables, JWKs, the key
-- lifecycle, issuing with our own keys
-- ================================================================

-- ----------------------------------------------------------------
-- Building blocks (C)
-- ----------------------------------------------------------------

-- On a hot standby, the functions that write fail with 25006 and say where
-- to go instead (PostgreSQL's own read-only error has no hint).
CREATE FUNCTION @extschema@._jwt_assert_primary(what text)
RETURNS void
AS 'MODULE_PATHNAME', 'jwt_assert_primary'
LANGUAGE C STABLE STRICT;

REVOKE ALL ON FUNCTION @extschema@._jwt_assert_primary(text) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@._jwt_assert_primary(text) IS
'internal: refuse a write on a hot standby with a clear error';

-- a key argument's JSON as jsonb, with errors that do not echo the key
CREATE FUNCTION @extschema@._jwt_key_json(key text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'jwt_key_json'
LANGUAGE C IMMUTABLE STRICT;

REVOKE ALL ON FUNCTION @extschema@._jwt_key_json(text) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@._jwt_key_json(text) IS
'internal: a key argument''s JSON as jsonb, with errors that do not echo the key';

-- jwt_sign with a private JWK of the key table, through none of the
-- per-backend key caches
CREATE FUNCTION @extschema@._jwt_sign_private(claims jsonb, jwk jsonb, algorithm text,
                                              header jsonb DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'jwt_sign_private'
LANGUAGE C VOLATILE;

REVOKE ALL ON FUNCTION @extschema@._jwt_sign_private(jsonb, jsonb, text, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@._jwt_sign_private(jsonb, jsonb, text, jsonb) IS
'internal: jwt_sign with a private JWK of the key table, through no key cache';

-- ----------------------------------------------------------------
-- Tables
-- ----------------------------------------------------------------

-- Identity providers whose tokens we accept, and the rules for them.
-- NULL in a rule column means: what the caller of jwt_verify passes, else
-- the GUC default.
CREATE TABLE @extschema@.jwt_issuers (
  issuer          text PRIMARY KEY CHECK (issuer OPERATOR(pg_catalog.<>) ''),
  algorithms      text[],                    -- allowed algorithms; NULL: what the keys are for
  audiences       text[],                    -- accepted "aud" values; NULL: jwt.audience
  leeway          interval CHECK (leeway OPERATOR(pg_catalog.>=) '0'::interval
                                  AND leeway OPERATOR(pg_catalog.<=) '1 day'::interval),
  required_claims text[] NOT NULL DEFAULT '{}',
  jwks_updated_at timestamptz                -- last jwt_jwks_import
);

COMMENT ON TABLE @extschema@.jwt_issuers IS
'trusted token issuers: only their own keys verify their tokens';

-- One row per key: our own (issuer NULL) and those of trusted issuers.
-- Our own keys are one namespace and each trusted issuer another: two
-- identity providers may both call a key "1".  The unique index leads with
-- issuer, so it also serves the lookups by issuer.
CREATE TABLE @extschema@.jwt_keys (
  kid         text NOT NULL CHECK (kid OPERATOR(pg_catalog.<>) ''),
  alg         text NOT NULL CHECK (alg OPERATOR(pg_catalog.=) ANY (ARRAY[
                'HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512',
                'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'])),
  jwk         jsonb NOT NULL,                -- public JWK (an HMAC key's: kty, kid, alg)
  private_jwk jsonb,                         -- NULL for a public key
  issuer      text REFERENCES @extschema@.jwt_issuers ON DELETE CASCADE,
  state       text NOT NULL DEFAULT 'active'
              CHECK (state OPERATOR(pg_catalog.=) ANY (ARRAY['staged', 'active', 'retired', 'revoked'])),
  created_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
  not_before  timestamptz,
  expires_at  timestamptz,
  retired_at  timestamptz,
  revoked_at  timestamptz,
  CHECK ((state OPERATOR(pg_catalog.=) 'revoked') = (revoked_at IS NOT NULL)),
  CONSTRAINT jwt_keys_issuer_kid_key UNIQUE NULLS NOT DISTINCT (issuer, kid)
);

-- Without a primary key (issuer is NULL for our own keys), logical
-- replication identifies a changed row by all of its columns.
ALTER TABLE @extschema@.jwt_keys REPLICA IDENTITY FULL;

COMMENT ON TABLE @extschema@.jwt_keys IS
'signing and verification keys; private parts readable only by the owner';

-- Nothing for PUBLIC: private keys are read only through the functions below.
REVOKE ALL ON @extschema@.jwt_keys, @extschema@.jwt_issuers FROM PUBLIC;

-- pg_dump keeps every row: a restored database keeps its tokens valid.
SELECT pg_catalog.pg_extension_config_dump('@extschema@.jwt_issuers', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.jwt_keys', '');

-- Backends cache each issuer's rules and keys (and our own keys) apart: a
-- changed row drops its issuer's entry in every backend, also on hot
-- standbys, which replay the invalidation with the commit.  The row
-- triggers name the issuer column; they fire always, so also when a logical
-- replication subscriber applies a change.  TRUNCATE drops every entry.
-- The revocation tables (40_refresh.sql) have statement triggers of the
-- same function, without an argument: any change drops their caches whole.
CREATE FUNCTION @extschema@._jwt_keys_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', 'jwt_keys_changed'
LANGUAGE C;

REVOKE ALL ON FUNCTION @extschema@._jwt_keys_changed() FROM PUBLIC;
COMMENT ON FUNCTION @extschema@._jwt_keys_changed() IS
'trigger on the key, issuer and revocation tables: tells every backend (and hot standby) to drop what it cached of them (per row with an issuer column as argument: that issuer''s entry only)';

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

-- ----------------------------------------------------------------
-- JWK building blocks (C)
-- ----------------------------------------------------------------

CREATE FUNCTION @extschema@.jwt_jwk(key text, algorithm text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'jwt_jwk'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.jwt_jwk(text, text) IS
'one key (PEM, JWK or HMAC secret) as a JWK with its algorithm; private members kept if present';

CREATE FUNCTION @extschema@.jwt_jwk_thumbprint(jwk jsonb)
RETURNS text
AS 'MODULE_PATHNAME', 'jwt_jwk_thumbprint'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.jwt_jwk_thumbprint(jsonb) IS
'RFC 7638 JWK thumbprint (SHA-256, base64url)';

CREATE FUNCTION @extschema@.jwt_jwk_generate(algorithm text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'jwt_jwk_generate'
LANGUAGE C VOLATILE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.jwt_jwk_generate(text) IS
'a new private JWK for the algorithm (RSA size: jwt.rsa_bits)';

-- ----------------------------------------------------------------
-- Key table functions (SECURITY DEFINER: EXECUTE is the permission)
-- ----------------------------------------------------------------

-- Whether a key was revoked in its namespace: the same kid, or for a public
-- key the same RFC 7638 thumbprint under another kid.  A revocation is for
-- good: no import, and no provider still publishing the key, undoes it.
CREATE FUNCTION @extschema@._jwt_key_was_revoked(jwk jsonb, kid text, issuer text)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  -- by the (issuer, kid) index: IS NOT DISTINCT FROM would read every row
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

REVOKE ALL ON FUNCTION @extschema@._jwt_key_was_revoked(jsonb, text, text) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@._jwt_key_was_revoked(jsonb, text, text) IS
'internal: whether a key (by kid or thumbprint) was revoked in its namespace';

-- A key row from a JWK: the public part split off, kid filled in.  The kid
-- of an HMAC key is random, never its thumbprint, which would publish a
-- hash of the secret in every token header.
CREATE FUNCTION @extschema@._jwt_key_insert(jwk jsonb, kid text, issuer text,
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

REVOKE ALL ON FUNCTION @extschema@._jwt_key_insert(jsonb, text, text, timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@._jwt_key_insert(jsonb, text, text, timestamptz) IS
'internal: store one key in its namespace (refuses a revoked or taken kid)';

CREATE FUNCTION @extschema@.jwt_key_generate(algorithm text, kid text DEFAULT NULL,
                                             expires_at timestamptz DEFAULT NULL)
RETURNS text
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT @extschema@._jwt_key_insert(@extschema@.jwt_jwk_generate(algorithm), kid, NULL, expires_at)
$$;

REVOKE ALL ON FUNCTION @extschema@.jwt_key_generate(text, text, timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.jwt_key_generate(text, text, timestamptz) IS
'make a new own key for the algorithm, active at once; returns its kid (RFC 7638 thumbprint by default)';

-- A trusted issuer's row, made if it is missing
CREATE FUNCTION @extschema@._jwt_issuer_ensure(issuer text)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT @extschema@._jwt_assert_primary('the key table');
  INSERT INTO @extschema@.jwt_issuers (issuer) VALUES (issuer) ON CONFLICT DO NOTHING
$$;

REVOKE ALL ON FUNCTION @extschema@._jwt_issuer_ensure(text) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@._jwt_issuer_ensure(text) IS
'internal: the trusted issuer''s row, made if missing';

-- Is this JWK one we can use?  Unknown types, curves, uses and algorithms
-- are skipped in a key set (RFC 7517 §5), not errors.
CREATE FUNCTION @extschema@._jwt_jwk_usable(jwk jsonb)
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

REVOKE ALL ON FUNCTION @extschema@._jwt_jwk_usable(jsonb) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@._jwt_jwk_usable(jsonb) IS
'internal: whether a JWK of a key set is a signing key of a type and curve jwt handles';

CREATE FUNCTION @extschema@.jwt_key_import(key text, algorithm text DEFAULT NULL,
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

REVOKE ALL ON FUNCTION @extschema@.jwt_key_import(text, text, text, text) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.jwt_key_import(text, text, text, text) IS
'import a key (PEM, JWK, JWKS or HMAC secret), own or of a trusted issuer; returns its kid (a key set: the kids, comma-separated)';

CREATE FUNCTION @extschema@.jwt_jwks_import(jwks jsonb, issuer text)
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

REVOKE ALL ON FUNCTION @extschema@.jwt_jwks_import(jsonb, text) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.jwt_jwks_import(jsonb, text) IS
'replace a trusted issuer''s keys with those of its JWKS document, atomically; returns how many';

CREATE FUNCTION @extschema@.jwt_jwks()
RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT jsonb_build_object('keys', coalesce(jsonb_agg(
           k.jwk - ARRAY['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']
           ORDER BY k.created_at DESC, k.kid), '[]'))
  FROM @extschema@.jwt_keys AS k
  WHERE k.issuer IS NULL
    AND k.state = ANY (ARRAY['staged', 'active', 'retired'])
    AND k.jwk ->> 'kty' <> 'oct'
    AND (k.expires_at IS NULL OR k.expires_at > now())
$$;

COMMENT ON FUNCTION @extschema@.jwt_jwks() IS
'our public keys (staged, active, retired) as a JWKS, for /.well-known/jwks.json';

-- ----------------------------------------------------------------
-- Key lifecycle
-- ----------------------------------------------------------------

-- Lifecycle: staged -> active -> retired, any of them -> revoked (final).
-- Each change is one call and can be undone until the key is revoked.
--
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

REVOKE ALL ON FUNCTION @extschema@._jwt_key_set_state(text, text, boolean, text) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@._jwt_key_set_state(text, text, boolean, text) IS
'internal: the lifecycle step of the key a kid names';

-- One argument: the key with that kid, whichever issuer's (an error when
-- several have it).  Two: the key of that issuer, NULL for our own.
CREATE FUNCTION @extschema@.jwt_key_stage(kid text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT @extschema@._jwt_key_set_state(kid, NULL, true, 'staged') $$;
COMMENT ON FUNCTION @extschema@.jwt_key_stage(text) IS
'publish a key in jwt_jwks() without signing with it yet';

CREATE FUNCTION @extschema@.jwt_key_activate(kid text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT @extschema@._jwt_key_set_state(kid, NULL, true, 'active') $$;
COMMENT ON FUNCTION @extschema@.jwt_key_activate(text) IS
'sign with a staged or retired key again';

CREATE FUNCTION @extschema@.jwt_key_retire(kid text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT @extschema@._jwt_key_set_state(kid, NULL, true, 'retired') $$;
COMMENT ON FUNCTION @extschema@.jwt_key_retire(text) IS
'stop signing with a key; its tokens keep verifying until the key expires';

CREATE FUNCTION @extschema@.jwt_key_revoke(kid text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT @extschema@._jwt_key_set_state(kid, NULL, true, 'revoked') $$;
COMMENT ON FUNCTION @extschema@.jwt_key_revoke(text) IS
'reject every token of a key at once (JW009); cannot be undone';

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

REVOKE ALL ON FUNCTION
  @extschema@.jwt_key_stage(text),
  @extschema@.jwt_key_activate(text),
  @extschema@.jwt_key_retire(text),
  @extschema@.jwt_key_revoke(text),
  @extschema@.jwt_key_stage(text, text),
  @extschema@.jwt_key_activate(text, text),
  @extschema@.jwt_key_retire(text, text),
  @extschema@.jwt_key_revoke(text, text)
FROM PUBLIC;

-- ----------------------------------------------------------------
-- Issuing with our own keys
-- ----------------------------------------------------------------

CREATE FUNCTION @extschema@._jwt_sign_own(claims jsonb, algorithm text, kid text,
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

REVOKE ALL ON FUNCTION @extschema@._jwt_sign_own(jsonb, text, text, interval, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@._jwt_sign_own(jsonb, text, text, interval, jsonb) IS
'internal: sign with the newest active own key, filling in iat, exp, jti and iss';

CREATE FUNCTION @extschema@.jwt_issue(claims jsonb, algorithm text DEFAULT NULL,
                                      kid text DEFAULT NULL, ttl interval DEFAULT NULL)
RETURNS text
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT @extschema@._jwt_sign_own(claims, algorithm, kid, ttl, NULL) $$;

REVOKE ALL ON FUNCTION @extschema@.jwt_issue(jsonb, text, text, interval) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.jwt_issue(jsonb, text, text, interval) IS
'sign claims with the newest active own key, adding iat, exp, jti and iss where missing';
