--
-- The per-backend cache of the key table, one entry per issuer: only the
-- token's issuer is read (by index), and a change to one issuer's rows
-- drops that issuer's entry only, in every backend, at commit.  Counted by
-- jwt_cache_stats()'s "issuer" row: a hit is a verification served from
-- the cache, a miss one that read the tables.
-- (Under debug_discard_caches every call reads the tables again:
-- expected/issuers_1.out has those counts.)
--
\set VERBOSITY default
SET client_min_messages = warning;
DELETE FROM jwt_keys;
DELETE FROM jwt_issuers;

CREATE TABLE tenant AS
  SELECT i, format('https://tenant%s.example', i) AS iss, jwt_jwk_generate('ES256') AS jwk
  FROM generate_series(1, 40) i;
SELECT count(jwt_key_import(jwk::text, 'ES256', 'k1', iss)) AS imported FROM tenant;
-- and one own key
SELECT jwt_key_generate('ES256', 'own-1') AS own_key;

CREATE TABLE ttok AS
  SELECT i, jwt_sign(jsonb_build_object('iss', iss, 'sub', 'user' || i,
                                        'exp', floor(extract(epoch FROM now()))::bigint + 3600),
                     jwk::text, 'ES256', '{"kid":"k1"}') AS t
  FROM tenant;
INSERT INTO ttok VALUES (0, jwt_issue('{"sub":"own"}'));

-- the verification of tenant n's token (0: our own): OK or the SQLSTATE
CREATE FUNCTION tv(n int) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM jwt_verify((SELECT t FROM ttok WHERE i = n));
  RETURN 'OK';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;

-- jwt_verify with no key: OK or the SQLSTATE and message
CREATE FUNCTION tvt(token text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM jwt_verify(token);
  RETURN 'OK';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ' ' || SQLERRM;
END $$;

-- the issuer cache's counters, as changes since the last call
CREATE TABLE last_stats (entries bigint, hits bigint, misses bigint);
INSERT INTO last_stats VALUES (0, 0, 0);
CREATE FUNCTION delta(OUT entries bigint, OUT hits bigint, OUT misses bigint)
LANGUAGE plpgsql AS $$
DECLARE
  s record;
BEGIN
  SELECT c.entries, c.hits, c.misses INTO s FROM jwt_cache_stats() c WHERE c.cache = 'issuer';
  SELECT s.entries, s.hits - l.hits, s.misses - l.misses INTO entries, hits, misses FROM last_stats l;
  UPDATE last_stats SET entries = s.entries, hits = s.hits, misses = s.misses;
END $$;
SELECT 1 FROM delta();

-- the first token of each of two tenants reads its issuer; the next ones not
SELECT tv(1), tv(2);
SELECT * FROM delta();
SELECT tv(1), tv(2), tv(1), tv(2);
SELECT * FROM delta();
-- a token whose issuer is not trusted is refused, and nothing is kept for it
SELECT tvt(jwt_sign('{"iss":"https://nobody.example"}', (SELECT jwk::text FROM tenant WHERE i = 1),
                              'ES256', '{"kid":"k1"}')) AS untrusted;
SELECT * FROM delta();
-- one tenant's key never verifies another's token
SELECT tvt(jwt_sign(jsonb_build_object('iss', (SELECT iss FROM tenant WHERE i = 2)),
                              (SELECT jwk::text FROM tenant WHERE i = 1), 'ES256', '{"kid":"k1"}')) AS other_tenants_key;

------------------------------------------------------------------------
-- Another backend changes one issuer: only that issuer is read again
------------------------------------------------------------------------
CREATE EXTENSION dblink;
SELECT dblink_connect('other', format('host=%s port=%s dbname=%s user=%s',
         split_part(current_setting('unix_socket_directories'), ',', 1),
         current_setting('port'), current_database(), current_user));
SELECT tv(0) AS own, tv(1), tv(2);
SELECT * FROM delta();

-- tenant 1's rules
SELECT * FROM dblink('other', $$UPDATE jwt_issuers SET leeway = '1 minute'
                                WHERE issuer = 'https://tenant1.example'$$) AS r(x text);
SELECT tv(2) AS untouched, tv(0) AS own;
SELECT * FROM delta();
SELECT tv(1) AS changed;
SELECT * FROM delta();

-- tenant 1's keys: a second key, then its first key revoked
SELECT * FROM dblink('other', $$SELECT jwt_key_import(jwt_jwk_generate('ES256')::text, 'ES256', 'k2',
                                                      'https://tenant1.example')$$) AS r(kid text);
SELECT tv(2) AS untouched, tv(0) AS own;
SELECT * FROM delta();
SELECT tv(1) AS changed;
SELECT * FROM delta();
SELECT * FROM dblink('other', $$SELECT jwt_key_revoke('k1', 'https://tenant1.example')::text$$) AS r(x text);
SELECT tv(1) AS revoked, tv(2) AS untouched;
SELECT * FROM delta();

-- inside an open transaction, as before: the next call sees the commit
BEGIN;
SELECT tv(3) AS before_revocation;
SELECT * FROM dblink('other', $$SELECT jwt_key_revoke('k1', 'https://tenant3.example')::text$$) AS r(x text);
SELECT tv(3) AS after_revocation, tv(2) AS untouched;
COMMIT;
SELECT * FROM delta();

-- our own keys: a new own key drops our own entry, not the tenants'
SELECT * FROM dblink('other', $$SELECT jwt_key_generate('ES256', 'own-2')$$) AS r(kid text);
SELECT tv(2) AS tenant, tv(0) AS own;
SELECT * FROM delta();

-- a change rolled back sends nothing
SELECT * FROM dblink('other', $$BEGIN;
  UPDATE jwt_issuers SET leeway = '2 minutes' WHERE issuer = 'https://tenant2.example';
  ROLLBACK$$) AS r(x text);
SELECT tv(2) AS rolled_back;
SELECT * FROM delta();

-- a few issuers in one statement are dropped one by one
SELECT * FROM dblink('other', $$INSERT INTO jwt_issuers (issuer)
                                SELECT format('https://new%s.example', g) FROM generate_series(1, 10) g$$) AS r(x text);
SELECT tv(2) AS untouched;
SELECT * FROM delta();
-- hundreds in one statement drop everything at once (one message)
SELECT * FROM dblink('other', $$INSERT INTO jwt_issuers (issuer)
                                SELECT format('https://bulk%s.example', g) FROM generate_series(1, 300) g$$) AS r(x text);
SELECT tv(2) AS all_dropped;
SELECT * FROM delta();
-- and so does TRUNCATE of the key table
SELECT tv(4), tv(5);
SELECT 1 FROM delta();
SELECT * FROM dblink('other', $$BEGIN; CREATE TEMP TABLE keep AS SELECT * FROM jwt_keys;
                                TRUNCATE jwt_keys; INSERT INTO jwt_keys SELECT * FROM keep; COMMIT$$) AS r(x text);
SELECT tv(4), tv(5);
SELECT * FROM delta();
SELECT dblink_disconnect('other');
DROP EXTENSION dblink;

------------------------------------------------------------------------
-- Bounded in bytes: jwt.issuer_cache_memory
------------------------------------------------------------------------
SET jwt.issuer_cache_memory = '64kB';
SELECT count(*) FILTER (WHERE tv(i) = 'OK') AS verified FROM ttok WHERE i > 3;
SELECT entries < 37 AS evicted, bytes <= 64 * 1024 + 16384 AS within_bound
FROM jwt_cache_stats() WHERE cache = 'issuer';
-- evicted issuers are read again and still verify
SELECT count(*) FILTER (WHERE tv(i) = 'OK') AS verified_again FROM ttok WHERE i > 3;
RESET jwt.issuer_cache_memory;
SELECT count(*) FILTER (WHERE tv(i) = 'OK') AS verified FROM ttok WHERE i > 3;
SELECT entries >= 37 AS all_kept FROM jwt_cache_stats() WHERE cache = 'issuer';
-- an ordinary role cannot change the bound
CREATE ROLE jwt_cache_user;
SET ROLE jwt_cache_user;
SELECT outcome($$SET jwt.issuer_cache_memory = '1GB'$$) AS set_by_user;
RESET ROLE;
DROP ROLE jwt_cache_user;

DROP FUNCTION tv(int), tvt(text), delta();
DROP TABLE tenant, ttok, last_stats;
DELETE FROM jwt_keys;
DELETE FROM jwt_issuers;
