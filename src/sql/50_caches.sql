-- ================================================================
-- src/sql/50_caches.sql: the per-backend caches
-- ================================================================

-- Each backend keeps parsed key arguments (by the digest of their text),
-- the rules and parsed keys of each issuer it verified tokens of (and our
-- own keys), and the signatures that verified.  The triggers of 20_keys.sql
-- drop an issuer's entry when its rows change, those of 40_refresh.sql the
-- revocation caches when the revocation tables change.

CREATE FUNCTION @extschema@.jwt_cache_stats(OUT cache text, OUT entries bigint,
                                            OUT capacity bigint, OUT bytes bigint,
                                            OUT hits bigint, OUT misses bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'jwt_cache_stats'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION @extschema@.jwt_cache_stats() IS
'this backend''s caches: parsed key arguments (key), verified signatures (verify) and trusted issuers'' rules and keys (issuer), for sizing jwt.key_cache_size, jwt.key_cache_memory, jwt.verify_cache_size and jwt.issuer_cache_memory';
