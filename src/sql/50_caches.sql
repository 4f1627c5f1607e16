-- ================================================================
-- src/sql/50_caches.sql: the per-backend caches
-- ================================================================

-- Each backend keeps parsed key arguments (by the digest of their text),
-- the parsed keys of the key table, and the signatures that verified.  The
-- statement triggers of 20_keys.sql and 40_refresh.sql drop them when the
-- key, issuer or revocation tables change.

CREATE FUNCTION @extschema@.jwt_cache_stats(OUT cache text, OUT entries bigint,
                                            OUT capacity bigint, OUT bytes bigint,
                                            OUT hits bigint, OUT misses bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'jwt_cache_stats'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION @extschema@.jwt_cache_stats() IS
'this backend''s caches: parsed key arguments (key) and verified signatures (verify), for sizing jwt.key_cache_size, jwt.key_cache_memory and jwt.verify_cache_size';
