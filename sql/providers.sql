-- Identity providers' key sets fetched by the database: what is refused
-- before any request is made, and the refresh schedule.  (The fetching
-- itself, against an HTTPS server of the test suite's own, is test/jwks.)
\set SHOW_CONTEXT never
LOAD 'jwt';

CREATE ROLE jwt_providers_nobody;

-- not for PUBLIC
SET ROLE jwt_providers_nobody;
SELECT jwt_issuer_trust('https://idp.example');
SELECT jwt_jwks_refresh();
SELECT * FROM jwt_jwks_status();
SELECT * FROM _jwt_fetch('https://idp.example/');
RESET ROLE;

-- and not for someone granted EXECUTE either: only the extension owner
GRANT EXECUTE ON FUNCTION jwt_issuer_trust(text, text), jwt_jwks_refresh(text) TO jwt_providers_nobody;
SET ROLE jwt_providers_nobody;
SELECT jwt_issuer_trust('https://idp.example');
SELECT jwt_jwks_refresh();
-- nor may it choose the CA file or the timeout
SET jwt.jwks_ca_file = '/tmp/evil-ca.pem';
SET jwt.jwks_timeout = '120s';
RESET ROLE;
SHOW jwt.jwks_ca_file;
REVOKE EXECUTE ON FUNCTION jwt_issuer_trust(text, text), jwt_jwks_refresh(text) FROM jwt_providers_nobody;

-- nor through _jwt_fetch, or the function that calls it: _jwt_fetch checks
-- in C, whatever was granted (42501 before any request: no port scan)
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO jwt_providers_nobody;
SET ROLE jwt_providers_nobody;
\set VERBOSITY sqlstate
SELECT * FROM _jwt_fetch('https://127.0.0.1:1/');
SELECT * FROM _jwt_fetch('http://127.0.0.1:1/');
SELECT * FROM _jwt_jwks_fetch('https://127.0.0.1:1', NULL);
SELECT * FROM _jwt_jwks_fetch('https://127.0.0.1:1', 'https://127.0.0.1:1/jwks.json');
\set VERBOSITY default
SELECT * FROM _jwt_fetch('https://127.0.0.1:1/');
RESET ROLE;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM jwt_providers_nobody;

-- https only, for the issuer (discovery) and for the JWKS URL
SELECT jwt_issuer_trust('https://idp.example', 'http://idp.example/jwks.json');
SELECT jwt_issuer_trust('https://idp.example', 'file:///etc/passwd');
SELECT jwt_issuer_trust('http://idp.example');
SELECT jwt_issuer_trust('idp.example');
SELECT jwt_issuer_trust('');
SELECT ok, http_status, body, error FROM _jwt_fetch('http://127.0.0.1:1/');
SELECT ok, error FROM _jwt_fetch('ftp://127.0.0.1/');
SELECT ok, error FROM _jwt_fetch('https://');
-- a failure is named, without the address or port libcurl tried
SELECT ok, http_status, body, max_age, expires, error FROM _jwt_fetch('https://127.0.0.1:1/jwks.json');
-- the table holds nothing else, whoever writes it
INSERT INTO jwt_issuers (issuer, jwks_uri) VALUES ('https://x.example', 'http://x.example/jwks');

-- nothing answers: an error, and nothing registered
SET jwt.jwks_timeout = '3s';
\set VERBOSITY sqlstate
SELECT jwt_issuer_trust('https://127.0.0.1:1', 'https://127.0.0.1:1/jwks.json');
SELECT jwt_issuer_trust('https://127.0.0.1:1');
\set VERBOSITY default
SELECT jwt_issuer_trust('https://127.0.0.1:1', 'https://127.0.0.1:1/jwks.json');
SELECT count(*) AS issuers FROM jwt_issuers WHERE issuer LIKE 'https://127.0.0.1%';
SELECT count(*) AS fetched FROM jwt_jwks_status();
SELECT jwt_jwks_refresh('https://nobody.example');
RESET jwt.jwks_timeout;

-- the schedule: max-age or Expires within the bounds, less up to 10%
-- jitter; after failures, 30 s doubled each time, at most the minimum
SET jwt.jwks_min_interval = '5min';
SET jwt.jwks_max_interval = '1d';
-- (measured from the clock as the function returns: on a slow server, as
-- with debug_discard_caches, the statement's start is seconds earlier)
SELECT name, round(extract(epoch FROM _jwt_jwks_next(ok, failures, max_age, expires) - clock_timestamp()))
             BETWEEN lo - 1 AND hi AS within
FROM (VALUES ('max-age 600', true, 0, 600, NULL::timestamptz, 540, 600),
             ('max-age 60: the minimum', true, 0, 60, NULL, 270, 300),
             ('max-age 0 (no-cache): the minimum', true, 0, 0, NULL, 270, 300),
             ('max-age of a week: the maximum', true, 0, 604800, NULL, 77760, 86400),
             ('Expires in an hour', true, 0, NULL, now() + interval '1 hour', 3240, 3600),
             ('Expires in the past: the minimum', true, 0, NULL, now() - interval '1 hour', 270, 300),
             ('neither: the maximum', true, 0, NULL, NULL, 77760, 86400),
             ('first failure', false, 1, NULL, NULL, 30, 30),
             ('third failure', false, 3, NULL, NULL, 120, 120),
             ('tenth failure: the minimum', false, 10, NULL, NULL, 300, 300))
     AS t(name, ok, failures, max_age, expires, lo, hi);
RESET jwt.jwks_min_interval;
RESET jwt.jwks_max_interval;

-- the schedule is a queue with a row for each issuer whose keys are
-- fetched: made due at once (NULL) with a URL or discovery, due at once
-- again when the URL changes, and gone when it has neither; an issuer
-- without either, or with only a rule changed, is not touched
INSERT INTO jwt_issuers (issuer, jwks_uri) VALUES ('https://queue-a.example', 'https://queue-a.example/jwks');
INSERT INTO jwt_issuers (issuer, jwks_discovery) VALUES ('https://queue-b.example', true);
INSERT INTO jwt_issuers (issuer) VALUES ('https://queue-c.example');
SELECT issuer, next_refresh FROM jwt_jwks_fetches WHERE issuer LIKE 'https://queue-%' ORDER BY issuer;
UPDATE jwt_jwks_fetches SET next_refresh = now() + interval '1 hour' WHERE issuer LIKE 'https://queue-%';
UPDATE jwt_issuers SET leeway = '1 minute' WHERE issuer LIKE 'https://queue-%';
SELECT issuer, next_refresh > now() AS later FROM jwt_jwks_fetches WHERE issuer LIKE 'https://queue-%' ORDER BY issuer;
UPDATE jwt_issuers SET jwks_uri = 'https://queue-a.example/keys' WHERE issuer = 'https://queue-a.example';
UPDATE jwt_issuers SET jwks_discovery = false WHERE issuer = 'https://queue-b.example';
UPDATE jwt_issuers SET jwks_discovery = true WHERE issuer = 'https://queue-c.example';
SELECT issuer, next_refresh FROM jwt_jwks_fetches WHERE issuer LIKE 'https://queue-%' ORDER BY issuer;
-- the worker reads the queue through its index
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT issuer FROM jwt_jwks_fetches WHERE next_refresh <= now() ORDER BY next_refresh NULLS FIRST LIMIT 33;
RESET enable_seqscan;
DELETE FROM jwt_issuers WHERE issuer LIKE 'https://queue-%';
SELECT count(*) AS left_behind FROM jwt_jwks_fetches WHERE issuer LIKE 'https://queue-%';

DROP ROLE jwt_providers_nobody;
