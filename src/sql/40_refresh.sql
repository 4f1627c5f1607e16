-- ================================================================
-- src/sql/40_refresh.sql: refresh token families, rotation, revocation
-- ================================================================

-- ----------------------------------------------------------------
-- Tables
-- ----------------------------------------------------------------

-- One family per login: the refresh tokens that descend from one
-- jwt_issue_pair, and the claims their access tokens carry.  Reusing a
-- rotated refresh token revokes the family.
CREATE TABLE @extschema@.jwt_token_families (
  family         uuid PRIMARY KEY,
  sub            text COLLATE "C",
  claims         jsonb NOT NULL,
  access_ttl     interval NOT NULL,
  refresh_ttl    interval NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
  expires_at     timestamptz NOT NULL,
  revoked_at     timestamptz,
  revoked_reason text
);
CREATE INDEX jwt_token_families_sub ON @extschema@.jwt_token_families (sub);

COMMENT ON TABLE @extschema@.jwt_token_families IS
'refresh token families: one per jwt_issue_pair; the claims of its access tokens';

-- A refresh token is bound to its row by a digest of the token, not by its
-- jti alone (token_sha256 is NULL in rows made before 0.5).
CREATE TABLE @extschema@.jwt_refresh_tokens (
  jti          text COLLATE "C" PRIMARY KEY,
  family       uuid NOT NULL REFERENCES @extschema@.jwt_token_families ON DELETE CASCADE,
  issued_at    timestamptz NOT NULL,
  expires_at   timestamptz NOT NULL,
  used_at      timestamptz,
  replaced_by  text COLLATE "C",
  token_sha256 bytea
);
CREATE INDEX jwt_refresh_tokens_family ON @extschema@.jwt_refresh_tokens (family);

COMMENT ON TABLE @extschema@.jwt_refresh_tokens IS
'refresh tokens by jti: used_at is set when jwt_refresh rotates one';

-- Verification looks a token's jti up here by primary key.
CREATE TABLE @extschema@.jwt_revoked (
  jti        text COLLATE "C" PRIMARY KEY,
  reason     text,
  revoked_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  expires_at timestamptz
);

COMMENT ON TABLE @extschema@.jwt_revoked IS
'revoked token ids: verification fails with JW010; expires_at (the token''s exp) lets jwt_purge_expired drop the row';

-- ... and its sub here: tokens issued (iat) before "before" are revoked.
CREATE TABLE @extschema@.jwt_revoked_subjects (
  sub        text COLLATE "C" PRIMARY KEY,
  before     timestamptz NOT NULL,
  reason     text,
  revoked_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

COMMENT ON TABLE @extschema@.jwt_revoked_subjects IS
'logout everywhere: tokens of the subject issued before "before" fail with JW010';

REVOKE ALL ON @extschema@.jwt_token_families, @extschema@.jwt_refresh_tokens,
  @extschema@.jwt_revoked, @extschema@.jwt_revoked_subjects FROM PUBLIC;

-- pg_dump keeps the rows: a restore must not bring revoked tokens back
SELECT pg_catalog.pg_extension_config_dump('@extschema@.jwt_token_families', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.jwt_refresh_tokens', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.jwt_revoked', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.jwt_revoked_subjects', '');

-- Backends remember that a revocation table is empty (then verification
-- skips it) until it changes: the same relcache invalidation as the keys.
CREATE TRIGGER jwt_revoked_changed
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.jwt_revoked
  FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._jwt_keys_changed();
CREATE TRIGGER jwt_revoked_subjects_changed
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.jwt_revoked_subjects
  FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._jwt_keys_changed();
-- and on a logical replication subscriber, as for the keys (20_keys.sql)
CREATE TRIGGER jwt_revoked_applied
  AFTER INSERT OR UPDATE OR DELETE ON @extschema@.jwt_revoked
  FOR EACH ROW EXECUTE FUNCTION @extschema@._jwt_keys_changed();
CREATE TRIGGER jwt_revoked_subjects_applied
  AFTER INSERT OR UPDATE OR DELETE ON @extschema@.jwt_revoked_subjects
  FOR EACH ROW EXECUTE FUNCTION @extschema@._jwt_keys_changed();
ALTER TABLE @extschema@.jwt_revoked ENABLE REPLICA TRIGGER jwt_revoked_applied;
ALTER TABLE @extschema@.jwt_revoked_subjects ENABLE REPLICA TRIGGER jwt_revoked_subjects_applied;

-- ----------------------------------------------------------------
-- Building blocks (C)
-- ----------------------------------------------------------------

-- Verify a refresh token ("typ": "refresh+jwt") against the key table,
-- including revocation; raises JW0xx.
CREATE FUNCTION @extschema@._jwt_verify_refresh(token text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'jwt_verify_refresh'
LANGUAGE C STABLE STRICT;

REVOKE ALL ON FUNCTION @extschema@._jwt_verify_refresh(text) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@._jwt_verify_refresh(text) IS
'internal: a refresh token''s claims, verified with our own keys only';

-- The claims of a token signed by a key in the table, whatever its times
-- and revocation say: what jwt_revoke needs.
CREATE FUNCTION @extschema@._jwt_verify_signature(token text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'jwt_verify_signature'
LANGUAGE C STABLE STRICT;

REVOKE ALL ON FUNCTION @extschema@._jwt_verify_signature(text) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@._jwt_verify_signature(text) IS
'internal: a token''s claims when our own key signed it, expired or not (for jwt_revoke)';

-- Mark a family revoked in a transaction of its own (a background worker),
-- so that the revocation stays when the caller's transaction then fails.
CREATE FUNCTION @extschema@._jwt_family_revoke(family uuid, reason text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'jwt_family_revoke_sql'
LANGUAGE C VOLATILE STRICT;

REVOKE ALL ON FUNCTION @extschema@._jwt_family_revoke(uuid, text) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@._jwt_family_revoke(uuid, text) IS
'internal: revoke a token family in a background worker''s own transaction';

-- Whether a family's revocation is recorded but not yet written (no
-- background worker could run): jwt_refresh refuses such a family.
CREATE FUNCTION @extschema@._jwt_family_pending(family uuid)
RETURNS boolean
AS 'MODULE_PATHNAME', 'jwt_family_pending_sql'
LANGUAGE C VOLATILE STRICT;

REVOKE ALL ON FUNCTION @extschema@._jwt_family_pending(uuid) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@._jwt_family_pending(uuid) IS
'internal: whether a family''s revocation is recorded but not yet written';

-- RAISE for functions whose arguments hold tokens: like every error the C
-- code raises, it keeps the statement (and so the token) out of the server
-- log (errhidestmt), which plpgsql's RAISE cannot.
CREATE FUNCTION @extschema@._jwt_raise(sqlstate text, message text, detail text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'jwt_raise'
LANGUAGE C VOLATILE;

REVOKE ALL ON FUNCTION @extschema@._jwt_raise(text, text, text) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@._jwt_raise(text, text, text) IS
'internal: raise an error with a jwt SQLSTATE, keeping the statement out of the log';

-- ----------------------------------------------------------------
-- Refresh tokens
-- ----------------------------------------------------------------

-- A refresh token carries only sub, jti, iat, exp (and iss): the claims of
-- the access tokens stay in the family row, out of the client's reach.
CREATE FUNCTION @extschema@._jwt_refresh_token(family uuid, sub text, ttl interval)
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

REVOKE ALL ON FUNCTION @extschema@._jwt_refresh_token(uuid, text, interval) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@._jwt_refresh_token(uuid, text, interval) IS
'internal: a new refresh token of a family, stored with its digest';

CREATE FUNCTION @extschema@.jwt_issue_pair(claims jsonb, access_ttl interval DEFAULT NULL,
                                           refresh_ttl interval DEFAULT NULL)
RETURNS TABLE(access_token text, refresh_token text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  fam uuid := gen_random_uuid();
  kept jsonb;
BEGIN
  PERFORM @extschema@._jwt_assert_primary('token families');
  IF claims IS NULL OR jsonb_typeof(claims) <> 'object' THEN
    RAISE EXCEPTION 'claims must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF claims ? 'sub' AND jsonb_typeof(claims -> 'sub') <> 'string' THEN
    RAISE EXCEPTION 'claim "sub" must be a string' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- (with missing_ok: the library, which defines the settings, may not be
  -- loaded yet in this session; a value from the configuration still counts)
  access_ttl := coalesce(access_ttl, nullif(current_setting('jwt.access_ttl', true), '')::interval, '15 minutes');
  refresh_ttl := coalesce(refresh_ttl, nullif(current_setting('jwt.refresh_ttl', true), '')::interval, '30 days');
  IF access_ttl <= '0'::interval OR refresh_ttl <= '0'::interval THEN
    RAISE EXCEPTION 'ttl must be positive' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- each access token gets its own times and jti
  kept := claims - ARRAY['iat', 'exp', 'nbf', 'jti'];

  INSERT INTO @extschema@.jwt_token_families (family, sub, claims, access_ttl, refresh_ttl, expires_at)
  VALUES (fam, claims ->> 'sub', kept, access_ttl, refresh_ttl, statement_timestamp() + refresh_ttl);
  access_token := @extschema@._jwt_sign_own(kept, NULL, NULL, access_ttl, NULL);
  refresh_token := @extschema@._jwt_refresh_token(fam, claims ->> 'sub', refresh_ttl);
  RETURN NEXT;
END $$;

REVOKE ALL ON FUNCTION @extschema@.jwt_issue_pair(jsonb, interval, interval) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.jwt_issue_pair(jsonb, interval, interval) IS
'an access token (jwt.access_ttl) and a refresh token (jwt.refresh_ttl) of a new token family';

-- Rotation.  The family row is locked NOWAIT: of two refreshes racing in
-- one family, one wins and the other fails at once (JW010) instead of
-- waiting and then looking like a replay.  A refresh token presented again
-- after it was rotated revokes its family, in a transaction of its own, so
-- that the revocation survives the error this call then raises.  A token
-- is checked against its row first: its digest, the stored expiry, and a
-- revocation of its family still waiting for a background worker.
--
-- DESIGN §2 declares RETURNS TABLE(access_token text, refresh_token text)
-- for an argument also named refresh_token, which PostgreSQL refuses (a
-- parameter name used twice).  OUT access_token with INOUT refresh_token
-- keeps the argument's name and position and the result's column names,
-- types and order; the difference is one row rather than a set of one.
CREATE FUNCTION @extschema@.jwt_refresh(OUT access_token text, INOUT refresh_token text)
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

REVOKE ALL ON FUNCTION @extschema@.jwt_refresh(text) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.jwt_refresh(text) IS
'rotate a refresh token: a new access and refresh token in the same family; reuse revokes the family (JW010)';

-- ----------------------------------------------------------------
-- Revocation
-- ----------------------------------------------------------------

CREATE FUNCTION @extschema@.jwt_revoke(token_or_jti text, reason text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_jti text := token_or_jti;
  v_exp timestamptz;
  claims jsonb;
BEGIN
  PERFORM @extschema@._jwt_assert_primary('revocations');
  IF token_or_jti IS NULL THEN
    RAISE EXCEPTION 'token_or_jti must not be null' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF strpos(token_or_jti, '.') > 0 THEN
    -- a token: ours (its signature verifies), however old or revoked
    claims := @extschema@._jwt_verify_signature(token_or_jti);
    v_jti := claims ->> 'jti';
    IF v_jti IS NULL THEN
      PERFORM @extschema@._jwt_raise('22023', 'token has no "jti" claim',
        'Tokens without a jti can only be revoked by subject: jwt_revoke_subject.');
    END IF;
    IF jsonb_typeof(claims -> 'exp') = 'number' THEN
      v_exp := to_timestamp((claims ->> 'exp')::double precision);
    END IF;
  END IF;
  -- a refresh token: its family goes with it (logout)
  UPDATE @extschema@.jwt_token_families f
  SET revoked_at = clock_timestamp(), revoked_reason = coalesce(reason, 'revoked')
  FROM @extschema@.jwt_refresh_tokens r
  WHERE r.jti = v_jti AND f.family = r.family AND f.revoked_at IS NULL;
  v_exp := coalesce(v_exp, (SELECT r.expires_at FROM @extschema@.jwt_refresh_tokens r
                            WHERE r.jti = v_jti));
  INSERT INTO @extschema@.jwt_revoked (jti, reason, expires_at)
  VALUES (v_jti, reason, v_exp)
  ON CONFLICT ON CONSTRAINT jwt_revoked_pkey DO NOTHING;
END $$;

REVOKE ALL ON FUNCTION @extschema@.jwt_revoke(text, text) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.jwt_revoke(text, text) IS
'revoke one token (or a bare jti): verification fails with JW010; a refresh token takes its family with it';

CREATE FUNCTION @extschema@.jwt_revoke_subject(sub text, before timestamptz DEFAULT now())
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM @extschema@._jwt_assert_primary('revocations');
  IF sub IS NULL OR before IS NULL THEN
    RAISE EXCEPTION 'sub and before must not be null' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  INSERT INTO @extschema@.jwt_revoked_subjects AS s (sub, before)
  VALUES (sub, before)
  ON CONFLICT ON CONSTRAINT jwt_revoked_subjects_pkey
  DO UPDATE SET before = greatest(s.before, EXCLUDED.before), revoked_at = clock_timestamp();
  UPDATE @extschema@.jwt_token_families f
  SET revoked_at = clock_timestamp(), revoked_reason = 'subject revoked'
  WHERE f.sub = jwt_revoke_subject.sub AND f.created_at < before AND f.revoked_at IS NULL;
END $$;

REVOKE ALL ON FUNCTION @extschema@.jwt_revoke_subject(text, timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.jwt_revoke_subject(text, timestamptz) IS
'logout everywhere: every token of the subject issued (iat) before "before" fails with JW010';

CREATE FUNCTION @extschema@.jwt_purge_expired()
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  n bigint;
  total bigint := 0;
  -- a token verifies until exp + leeway: keep its revocation a day longer
  margin interval := interval '1 day'
    + coalesce(nullif(current_setting('jwt.leeway', true), '')::interval, '0');
BEGIN
  PERFORM @extschema@._jwt_assert_primary('revocations and token families');
  -- a revoked token past its exp (and any leeway) fails anyway
  DELETE FROM @extschema@.jwt_revoked r WHERE r.expires_at < statement_timestamp() - margin;
  GET DIAGNOSTICS n = ROW_COUNT;
  total := total + n;
  DELETE FROM @extschema@.jwt_refresh_tokens r WHERE r.expires_at < statement_timestamp();
  GET DIAGNOSTICS n = ROW_COUNT;
  total := total + n;
  -- a family whose newest refresh token has expired can never refresh again
  DELETE FROM @extschema@.jwt_token_families f WHERE f.expires_at < statement_timestamp();
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN total + n;
END $$;

REVOKE ALL ON FUNCTION @extschema@.jwt_purge_expired() FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.jwt_purge_expired() IS
'delete revocations, refresh tokens and token families past their expiry; returns the rows deleted';
