#!/usr/bin/env bash
# test/databases/run.sh: checks that need databases of their own.
#
#   PGHOST=... PGPORT=... PGUSER=... bash test/databases/run.sh
#
# - dump and restore: pg_dump keeps the key and issuer tables (extension
#   configuration tables), so every token issued before a restore still
#   verifies after it, and the restored database goes on issuing;
# - upgrade: CREATE EXTENSION jwt VERSION '0.1' (and '0.2') then ALTER EXTENSION jwt
#   UPDATE gives the same objects as a fresh CREATE EXTENSION jwt;
# - install, key functions and the PostgREST hook under a hostile search_path
#   (SECURITY.md item 22);
# - a LATIN1 database: a token's UTF-8 text is converted to the database
#   encoding when read, and tokens are written in UTF-8.
#
# Ends with the line "N passed, M failed".

set -uo pipefail

PSQL=(psql -X -A -t -q -v ON_ERROR_STOP=1)
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
# expect NAME WANT GOT
expect() { if [ "$2" = "$3" ]; then ok; else bad "$1: expected '$2', got '$3'"; fi; }

src=jwt_dump_src
dst=jwt_dump_dst
upg=jwt_upgrade
dbs="$src $dst ${upg}_0_1 ${upg}_0_2 ${upg}_0_3 ${upg}_0_4 jwt_hostile jwt_latin1"
trap 'for d in $dbs; do dropdb --if-exists $d 2>/dev/null; done' EXIT
for d in $dbs; do dropdb --if-exists "$d"; done

# ---- dump and restore ----------------------------------------------------
createdb "$src"
"${PSQL[@]}" -d "$src" <<'SQL' >/dev/null
CREATE EXTENSION jwt;
SELECT jwt_key_generate(alg) FROM unnest(ARRAY['HS256', 'RS256', 'ES256', 'EdDSA']) alg;
SELECT jwt_key_retire(jwt_key_generate('PS256'));
SELECT jwt_jwks_import(jsonb_build_object('keys', jsonb_build_array(
         jwt_jwk_generate('ES384') - 'd' || '{"kid":"idp-1"}')), 'https://idp.example');
UPDATE jwt_issuers SET audiences = '{api}';
-- a second identity provider with the same kid (kids are per issuer)
SELECT jwt_jwks_import(jsonb_build_object('keys', jsonb_build_array(
         jwt_jwk_generate('ES256') - 'd' || '{"kid":"idp-1"}')), 'https://idp2.example');
CREATE TABLE tokens (alg text, token text);
INSERT INTO tokens
  SELECT alg, jwt_issue(jsonb_build_object('sub', alg), alg, ttl => '1 day')
  FROM unnest(ARRAY['HS256', 'RS256', 'ES256', 'EdDSA']) alg;
-- a token of the retired key, signed while it was active
UPDATE jwt_keys SET state = 'active', retired_at = NULL WHERE alg = 'PS256';
INSERT INTO tokens SELECT 'PS256', jwt_issue('{"sub":"PS256"}', 'PS256', ttl => '1 day');
SELECT jwt_key_retire(kid) FROM jwt_keys WHERE alg = 'PS256';
-- revocations, and a refresh token family, must come back too
INSERT INTO tokens SELECT 'revoked', jwt_issue('{"sub":"revoked"}', 'ES256');
SELECT jwt_revoke(token, 'test') FROM tokens WHERE alg = 'revoked';
INSERT INTO tokens SELECT 'logged-out', jwt_issue('{"sub":"logged-out"}', 'ES256');
SELECT jwt_revoke_subject('logged-out', now() + interval '1 minute');
INSERT INTO tokens SELECT 'refresh', refresh_token FROM jwt_issue_pair('{"sub":"refresher"}');
SQL
before=$("${PSQL[@]}" -d "$src" -c "SELECT count(*) FILTER (WHERE jwt_is_valid(token)) || '/' || count(*) FROM tokens WHERE alg NOT IN ('revoked', 'logged-out', 'refresh')")
expect "tokens verify before the dump" "5/5" "$before"

createdb "$dst"
if pg_dump -d "$src" | "${PSQL[@]}" -d "$dst" >/dev/null; then ok; else bad "restore of the dump"; fi
after=$("${PSQL[@]}" -d "$dst" -c "SELECT count(*) FILTER (WHERE jwt_is_valid(token)) || '/' || count(*) FROM tokens WHERE alg NOT IN ('revoked', 'logged-out', 'refresh')")
expect "tokens verify after the restore" "5/5" "$after"
revoked=$("${PSQL[@]}" -d "$dst" -c "SELECT string_agg(alg || '=' || jwt_is_valid(token), ' ' ORDER BY alg) FROM tokens WHERE alg IN ('revoked', 'logged-out')")
expect "revoked tokens stay revoked after the restore" "logged-out=false revoked=false" "$revoked"
refreshed=$("${PSQL[@]}" -d "$dst" -c "SELECT jwt_verify(access_token) ->> 'sub' FROM tokens, jwt_refresh(token) WHERE alg = 'refresh'")
expect "a refresh token issued before the dump refreshes after the restore" "refresher" "$refreshed"
rows=$("${PSQL[@]}" -d "$dst" -c "SELECT count(*) || ' keys, ' || count(*) FILTER (WHERE private_jwk IS NOT NULL) || ' private, ' || count(*) FILTER (WHERE state = 'retired') || ' retired' FROM jwt_keys")
expect "key rows restored" "7 keys, 5 private, 1 retired" "$rows"
rules=$("${PSQL[@]}" -d "$dst" -c "SELECT issuer || ' ' || audiences::text FROM jwt_issuers WHERE audiences IS NOT NULL")
expect "issuer rules restored" "https://idp.example {api}" "$rules"
src_jwks=$("${PSQL[@]}" -d "$src" -c "SELECT jwt_jwks()")
dst_jwks=$("${PSQL[@]}" -d "$dst" -c "SELECT jwt_jwks()")
expect "jwt_jwks() unchanged by the restore" "$src_jwks" "$dst_jwks"
new=$("${PSQL[@]}" -d "$dst" -c "SELECT jwt_is_valid(jwt_issue('{\"sub\":\"after\"}', 'ES256'))")
expect "the restored database issues tokens" "t" "$new"
cross=$("${PSQL[@]}" -d "$src" -c "SELECT jwt_is_valid(token) FROM tokens WHERE alg = 'RS256'")
expect "the source still verifies too" "t" "$cross"

# ---- upgrade path --------------------------------------------------------
# the catalog entries of the extension's objects, by identity
objects_sql="SELECT pg_describe_object(classid, objid, 0) || ' ' ||
  coalesce((SELECT p.provolatile::text || p.proparallel::text || p.prosecdef::text || coalesce(p.proconfig::text, '') ||
                   coalesce(p.proacl::text, '')
            FROM pg_proc p WHERE classid = 'pg_proc'::regclass AND p.oid = objid), '') ||
  coalesce((SELECT coalesce(c.relacl::text, '') || ' ' || c.relreplident::text FROM pg_class c WHERE classid = 'pg_class'::regclass AND c.oid = objid), '') ||
  ' ' || coalesce(obj_description(objid, (SELECT relname FROM pg_class WHERE oid = classid)), '(no comment)')
FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
  AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'jwt')
UNION ALL
-- the extension's tables: columns, constraints, indexes, triggers, policies
SELECT c.relname || ' column ' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) ||
       CASE WHEN a.attnotnull THEN ' not null' ELSE '' END ||
       coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '')
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
WHERE c.relnamespace = 'public'::regnamespace AND c.relname LIKE 'jwt\_%' AND c.relkind = 'r'
UNION ALL
SELECT conrelid::regclass || ' constraint ' || conname || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE conrelid::regclass::text LIKE 'jwt\_%'
UNION ALL
SELECT tablename || ' index ' || indexdef FROM pg_indexes WHERE tablename LIKE 'jwt\_%'
UNION ALL
SELECT tgrelid::regclass || ' trigger ' || pg_get_triggerdef(oid) || ' enabled ' || tgenabled::text FROM pg_trigger
WHERE NOT tgisinternal AND tgrelid::regclass::text LIKE 'jwt\_%'
UNION ALL
SELECT tablename || ' policy ' || policyname || ' ' || coalesce(qual, '') FROM pg_policies WHERE tablename LIKE 'jwt\_%'
ORDER BY 1"
current=$("${PSQL[@]}" -d "$src" -c "SELECT default_version FROM pg_available_extensions WHERE name = 'jwt'")
fresh=$("${PSQL[@]}" -d "$src" -c "$objects_sql")
for old in 0.1 0.2 0.3 0.4; do
	db="${upg}_${old//./_}"
	createdb "$db"
	"${PSQL[@]}" -d "$db" -c "CREATE EXTENSION jwt VERSION '$old'"
	v=$("${PSQL[@]}" -d "$db" -c "SELECT extversion FROM pg_extension WHERE extname = 'jwt'")
	expect "version $old installs" "$old" "$v"
	# rows made by the old version: own and identity-provider keys, a token
	# of each, and from 0.4 on a refresh token
	if [ "$old" != 0.1 ]; then
		"${PSQL[@]}" -d "$db" >/dev/null <<'SQL'
SELECT jwt_key_generate('ES256', 'own-1');
CREATE TABLE idp AS SELECT jwt_jwk_generate('ES256') || '{"kid":"idp-1"}' AS jwk;
SELECT jwt_jwks_import(jsonb_build_object('keys', jsonb_build_array(jwk - 'd')), 'https://idp.example') FROM idp;
CREATE TABLE carried AS
SELECT 'own' AS what, jwt_issue('{"sub":"own"}', kid => 'own-1') AS token
UNION ALL
SELECT 'idp', jwt_sign(jsonb_build_object('iss', 'https://idp.example', 'sub', 'idp',
                         'exp', floor(extract(epoch FROM now()))::bigint + 3600),
                       jwk::text, 'ES256', '{"kid":"idp-1"}')
FROM idp;
SQL
		keys_before=$("${PSQL[@]}" -d "$db" -c "SELECT string_agg(coalesce(issuer, '-') || ' ' || kid || ' ' || state, ', ' ORDER BY issuer NULLS FIRST, kid) FROM jwt_keys")
		if [ "$old" != 0.2 ] && [ "$old" != 0.3 ]; then
			"${PSQL[@]}" -d "$db" -c "INSERT INTO carried SELECT 'refresh', refresh_token FROM jwt_issue_pair('{\"sub\":\"refresher\"}')" >/dev/null
		fi
	fi
	"${PSQL[@]}" -d "$db" -c "ALTER EXTENSION jwt UPDATE"
	v=$("${PSQL[@]}" -d "$db" -c "SELECT extversion FROM pg_extension WHERE extname = 'jwt'")
	expect "ALTER EXTENSION UPDATE takes $old to $current" "$current" "$v"
	upgraded=$("${PSQL[@]}" -d "$db" -c "$objects_sql")
	if [ "$upgraded" = "$fresh" ] && [ -n "$fresh" ]; then ok; else
		bad "install of $current and upgrade from $old differ"
		diff <(echo "$fresh") <(echo "$upgraded") | head -n 20
	fi
	works=$("${PSQL[@]}" -d "$db" -c "SELECT jwt_is_valid(jwt_issue('{}', (SELECT 'ES256' FROM (SELECT jwt_key_generate('ES256')) s)))")
	expect "upgraded from $old, the extension issues and verifies" "t" "$works"
	if [ "$old" != 0.1 ]; then
		keys_after=$("${PSQL[@]}" -d "$db" -c "SELECT string_agg(coalesce(issuer, '-') || ' ' || kid || ' ' || state, ', ' ORDER BY issuer NULLS FIRST, kid) FROM jwt_keys WHERE kid IN ('own-1', 'idp-1')")
		expect "upgraded from $old, every key row is kept" "$keys_before" "$keys_after"
		valid=$("${PSQL[@]}" -d "$db" -c "SELECT string_agg(what || '=' || jwt_is_valid(token), ' ' ORDER BY what) FROM carried WHERE what <> 'refresh'")
		expect "upgraded from $old, tokens issued before still verify" "idp=true own=true" "$valid"
		# kids are per issuer after the upgrade: another issuer's idp-1, and ours
		same_kid=$("${PSQL[@]}" -d "$db" -c "SELECT jwt_jwks_import(jsonb_build_object('keys', jsonb_build_array(jwt_jwk_generate('ES256') - 'd' || '{\"kid\":\"idp-1\"}')), 'https://other.example') || ' ' || jwt_key_generate('ES256', 'idp-1')")
		expect "upgraded from $old, a kid is unique only within its issuer" "1 idp-1" "$same_kid"
		if [ "$old" != 0.2 ] && [ "$old" != 0.3 ]; then
			refreshed=$("${PSQL[@]}" -d "$db" -c "SELECT jwt_verify(access_token) ->> 'sub' FROM carried, jwt_refresh(token) WHERE what = 'refresh'")
			expect "upgraded from $old, a refresh token issued before refreshes" "refresher" "$refreshed"
		fi
	fi
done

# ---- a fresh session: the SQL functions read jwt.* settings before any C
# function has loaded the library that defines them -------------------------
fresh=$("${PSQL[@]}" -d "$src" -c "BEGIN; SELECT set_config('request.headers', '{}', true);
  SELECT jwt_pre_request(); SELECT 'hook ok'; COMMIT;" | tail -n 1)
expect "jwt_pre_request as the first call of a session" "hook ok" "$fresh"
fresh=$("${PSQL[@]}" -d "$src" -c "SELECT count(*) FROM jwt_issue_pair('{\"sub\":\"first\"}')")
expect "jwt_issue_pair as the first call of a session" "1" "$fresh"

# ---- hostile search_path at install (SECURITY.md item 22) ----------------
createdb jwt_hostile
"${PSQL[@]}" -d jwt_hostile <<'SQL' >/dev/null
CREATE TABLE trap_log (what text);
CREATE FUNCTION public.lower(text) RETURNS text LANGUAGE sql
  AS $$ INSERT INTO public.trap_log VALUES ('lower'); SELECT 'x' $$;
CREATE FUNCTION public.trap_eq(text, text) RETURNS boolean LANGUAGE sql
  AS $$ INSERT INTO public.trap_log VALUES ('='); SELECT true $$;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.trap_eq);
CREATE FUNCTION public.jsonb_build_object(text, text, text, text) RETURNS jsonb LANGUAGE sql
  AS $$ INSERT INTO public.trap_log VALUES ('jsonb_build_object'); SELECT '{}'::jsonb $$;
CREATE FUNCTION public.current_setting(text, boolean) RETURNS text LANGUAGE sql
  AS $$ INSERT INTO public.trap_log VALUES ('current_setting'); SELECT '{}'::text $$;
CREATE SCHEMA evil;
CREATE FUNCTION evil.jwt_authenticate(text) RETURNS jsonb LANGUAGE sql
  AS $$ INSERT INTO public.trap_log VALUES ('jwt_authenticate'); SELECT '{}'::jsonb $$;
SET search_path = evil, public, pg_catalog;
CREATE EXTENSION jwt SCHEMA public;
SELECT jwt_key_generate('ES256');
SELECT jwt_issue('{"sub":"x"}');
SELECT jwt_jwks_import(jsonb_build_object('keys', jsonb_build_array(jwt_jwk_generate('ES256') - 'd')), 'https://i.example');
SELECT jwt_jwks();
BEGIN;
SELECT set_config('request.headers', json_build_object('authorization', 'Bearer ' || jwt_issue('{"sub":"x"}'))::text, true);
SELECT jwt_pre_request();
CREATE TABLE public.hook_result AS SELECT jwt_claim('sub') AS sub;
COMMIT;
SQL
trapped=$("${PSQL[@]}" -d jwt_hostile -c "SELECT count(*) FROM trap_log")
expect "no trap fires during install, in the key functions or in the hook" "0" "$trapped"
hooked=$("${PSQL[@]}" -d jwt_hostile -c "SELECT sub FROM hook_result")
expect "the hook authenticated the request under the hostile search_path" "x" "$hooked"

# ---- a database whose encoding is not UTF-8 ------------------------------
# (psql's client encoding is UTF-8 throughout; the server converts)
export PGCLIENTENCODING=UTF8
createdb -E LATIN1 -T template0 --locale=C jwt_latin1
"${PSQL[@]}" -d jwt_latin1 -c "CREATE EXTENSION jwt"
hs="'a secret of thirty-two bytes, no less'"
zoe=$("${PSQL[@]}" -d "$src" -c "SELECT jwt_sign('{\"name\": \"Zoë\", \"sub\": \"zoë\"}', $hs)")
emoji=$("${PSQL[@]}" -d "$src" -c "SELECT jwt_sign('{\"name\": \"Zoë 🙂\"}', $hs)")
read_back=$("${PSQL[@]}" -d jwt_latin1 -c "SELECT n || ' ' || octet_length(n) FROM (SELECT jwt_verify('$zoe', $hs) ->> 'name' AS n) s")
expect "LATIN1: a token's UTF-8 claim is read in the database encoding" "Zoë 3" "$read_back"
unverified=$("${PSQL[@]}" -d jwt_latin1 -c "SELECT jwt_decode_unverified('$zoe') ->> 'name'")
expect "LATIN1: jwt_decode_unverified converts too" "Zoë" "$unverified"
claim=$("${PSQL[@]}" -d jwt_latin1 -c "SELECT jwt_key_import($hs, 'HS256', 'hs'); BEGIN; SELECT jwt_authenticate('$zoe') IS NOT NULL; SELECT jwt_claim('sub'); COMMIT;" | tail -n 1)
expect "LATIN1: jwt_claim reads the claim in the database encoding" "zoë" "$claim"
untranslatable=$("${PSQL[@]}" -d jwt_latin1 -c "SELECT jwt_is_valid('$emoji', $hs)")
expect "LATIN1: a character the encoding cannot hold is refused, not mangled" "f" "$untranslatable"
sqlstate=$("${PSQL[@]}" -d jwt_latin1 -c "DO \$\$ BEGIN PERFORM jwt_verify('$emoji', $hs); EXCEPTION WHEN OTHERS THEN RAISE NOTICE '%', SQLSTATE; END \$\$" 2>&1 | sed 's/^NOTICE: *//')
expect "LATIN1: ... with JW001" "JW001" "$sqlstate"
written=$("${PSQL[@]}" -d jwt_latin1 -c "SELECT jwt_sign('{\"name\": \"Zoë\"}', $hs)")
in_utf8=$("${PSQL[@]}" -d "$src" -c "SELECT jwt_verify('$written', $hs) ->> 'name'")
expect "LATIN1: a token signed there holds UTF-8, read back in a UTF-8 database" "Zoë" "$in_utf8"
round=$("${PSQL[@]}" -d jwt_latin1 -c "SELECT jwt_verify('$written', $hs) ->> 'name'")
expect "LATIN1: ... and there" "Zoë" "$round"
unset PGCLIENTENCODING

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
