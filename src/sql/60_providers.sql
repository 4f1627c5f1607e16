-- ================================================================
-- src/sql/60_providers.sql: identity providers' key sets, fetched here
-- ================================================================

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
