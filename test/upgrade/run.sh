#!/bin/bash
# test/upgrade/run.sh: pg_upgrade from PostgreSQL 15 to 18 with the jwt
# extension and its data, then check that every token issued before still
# verifies, that revocations (a jti, a subject, a key) hold, and that
# refresh rotation goes on in the same family.  Run as root on the host:
#
#   bash test/upgrade/run.sh
#
# Ends with one line "N passed, M failed"; exits non-zero on any failure.
#
# Both servers run in one Debian sid root (sid packages only 18; bookworm,
# the host's suite, only 15).  The root is made with mmdebstrap and cached
# in $JWT_UPGRADE_ROOT (default /var/cache/jwt-roots/upgrade).  Bookworm's
# postgresql-15, postgresql-client-15 and postgresql-server-dev-15, and the
# bookworm libraries they need that sid lacks (ICU 72, OpenLDAP 2.5,
# libxml2.so.2), are fetched with the host's own `apt-get download` and
# unpacked with `dpkg -x` under /opt/pg15 in the root (never dpkg -i).  The
# 15 binaries find their share and lib directories relative to themselves,
# and those libraries through LD_LIBRARY_PATH (their sonames are not in sid,
# so the 18 binaries are unaffected); JIT is off, its libLLVM 14 is not
# unpacked.  Nothing is installed on the host but mmdebstrap when missing.
# Which 15 (15.18 here, not the host's 15.20): see choose_old_version.
# Settings: JWT_UPGRADE_ROOT, JWT_UPGRADE_FROM, JWT_UPGRADE_STRIP_ATTVER,
# JWT_UPGRADE_REV (default HEAD: only committed work is tested).

set -u

OLD=15
NEW=18
ROOT=${JWT_UPGRADE_ROOT:-/var/cache/jwt-roots/upgrade}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SID_PACKAGES="postgresql-$NEW,postgresql-client-$NEW,postgresql-server-dev-$NEW,make,gcc,libc6-dev,libssl-dev,libcurl4-openssl-dev,libsasl2-2,libgnutls30t64,procps,util-linux"
STRIP_ATTVER=${JWT_UPGRADE_STRIP_ATTVER:-0}
OLD_DEBS="postgresql-$OLD postgresql-client-$OLD postgresql-server-dev-$OLD libicu72 libldap-2.5-0 libxml2"
OLD_PREFIX=/opt/pg$OLD
OLD_BIN=$OLD_PREFIX/usr/lib/postgresql/$OLD/bin
OLD_LIBS=$OLD_PREFIX/usr/lib/x86_64-linux-gnu
NEW_BIN=/usr/lib/postgresql/$NEW/bin

# =====================================================================
# inside the root: build, initdb 15, data, pg_upgrade, start 18, checks
# =====================================================================
inside() {
	RES=/work/results LOGS=/work/logs
	local OLDPORT=54315 NEWPORT=54318
	: >"$RES"
	mkdir -p "$LOGS"
	export LANG=C.UTF-8 TZ=UTC

	pass() { echo "PASS $*" >>"$RES"; echo "ok    $*"; }
	fail() { echo "FAIL $*" >>"$RES"; echo "FAIL  $*"; }
	# check DESCRIPTION EXPECTED GOT
	check() { if [ "$2" = "$3" ]; then pass "$1"; else fail "$1 (expected '$2', got '$3')"; fi; }
	step() { echo "--- $*"; }
	# must DESCRIPTION LOG COMMAND...: a step the rest depends on
	must() {
		local what=$1 log=$2
		shift 2
		if "$@" >"$log" 2>&1; then
			pass "$what"
		else
			fail "$what (log below)"
			tail -n 30 "$log" | sed 's/^/      /'
			exit 1
		fi
	}

	T=$(mktemp -d /tmp/jwt-upgrade.XXXXXX)
	SOCK=$T/sock
	mkdir -p "$SOCK"
	chown -R postgres:postgres "$T"
	chmod 755 "$T"

	as_pg() { runuser -u postgres -- env LD_LIBRARY_PATH="$OLD_LIBS" TZ=UTC LANG=C.UTF-8 "$@"; }
	stop_all() {
		trap '' INT TERM	# a second signal must not cut the clean-up short
		[ -f "$T/old/postmaster.pid" ] && as_pg "$OLD_BIN/pg_ctl" -D "$T/old" -m immediate -w stop >/dev/null 2>&1
		[ -f "$T/new/postmaster.pid" ] && as_pg "$NEW_BIN/pg_ctl" -D "$T/new" -m immediate -w stop >/dev/null 2>&1
		cp "$T"/*.log "$LOGS/" 2>/dev/null
		cp -r "$T"/new/pg_upgrade_output.d "$LOGS/" 2>/dev/null
		rm -rf "$T"
	}
	trap stop_all EXIT
	trap 'exit 130' INT TERM

	# 18's psql talks to both servers: sql PORT DB SQL (unaligned rows)
	sql() {
		runuser -u postgres -- "$NEW_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 \
			-h "$SOCK" -p "$1" -d "$2" -c "$3"
	}
	# the extension's tables and the test's own, each: name|rows|md5 of the rows
	snapshot() {
		local t q=""
		for t in jwt_keys jwt_issuers jwt_revoked jwt_revoked_subjects jwt_token_families jwt_refresh_tokens upg_tokens; do
			q="$q${q:+ UNION ALL }SELECT '$t', count(*), md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) FROM $t x"
		done
		sql "$1" jwtdb "$q"
	}
	# the tokens against what each should give
	check_tokens() {
		local port=$1 ver=$2 name expect got
		while IFS='|' read -r name expect got; do
			check "$ver: $name: $expect" "$expect" "$got"
		done < <(sql "$port" jwtdb "SELECT name, expect, upg_verify(token) FROM upg_tokens ORDER BY name")
	}

	step "libraries of the $OLD binaries"
	local missing f
	missing=$(for f in "$OLD_BIN"/postgres "$OLD_BIN"/pg_ctl "$OLD_BIN"/initdb "$OLD_BIN"/pg_controldata "$OLD_BIN"/pg_config; do
		LD_LIBRARY_PATH=$OLD_LIBS ldd "$f" | grep 'not found'
	done | sort -u | tr -s '\t\n' '  ')
	check "every library of the $OLD binaries is found" "" "$missing"
	check "pg_config $OLD --pkglibdir is under $OLD_PREFIX" "$OLD_PREFIX/usr/lib/postgresql/$OLD/lib" \
		"$(LD_LIBRARY_PATH=$OLD_LIBS "$OLD_BIN/pg_config" --pkglibdir)"

	step "build and install jwt for $OLD and $NEW"
	cd /work/jwt || exit 1
	# what an earlier run installed in the cached root goes first: a stale
	# jwt--V.sql would be taken over the upgrade chain by CREATE EXTENSION
	local pgc
	for pgc in "$OLD_BIN/pg_config" "$NEW_BIN/pg_config"; do
		rm -f "$(LD_LIBRARY_PATH=$OLD_LIBS "$pgc" --sharedir)"/extension/jwt[.-]* \
			"$(LD_LIBRARY_PATH=$OLD_LIBS "$pgc" --pkglibdir)"/jwt.so
		rm -rf "$(LD_LIBRARY_PATH=$OLD_LIBS "$pgc" --pkglibdir)"/bitcode/jwt*
	done
	# with_llvm=no: no bitcode (there is no clang in the root)
	must "jwt builds and installs for PostgreSQL $OLD" "$LOGS/build-$OLD.log" \
		env LD_LIBRARY_PATH="$OLD_LIBS" make -j2 PG_CONFIG="$OLD_BIN/pg_config" with_llvm=no install
	make -s clean PG_CONFIG="$OLD_BIN/pg_config" >/dev/null 2>&1
	must "jwt builds and installs for PostgreSQL $NEW" "$LOGS/build-$NEW.log" \
		make -j2 PG_CONFIG="$NEW_BIN/pg_config" with_llvm=no install
	cd "$T" || exit 1

	step "PostgreSQL $OLD: a cluster with jwt and its data"
	must "initdb $OLD" "$LOGS/initdb-$OLD.log" \
		as_pg "$OLD_BIN/initdb" -D "$T/old" -U postgres -A trust --locale=C -E UTF8
	{
		echo "listen_addresses = ''"
		echo "unix_socket_directories = '$SOCK'"
		echo "jit = off"	# llvmjit.so needs libLLVM 14, not unpacked
	} >>"$T/old/postgresql.conf"
	must "PostgreSQL $OLD starts" "$LOGS/start-$OLD.log" \
		as_pg "$OLD_BIN/pg_ctl" -D "$T/old" -o "-p $OLDPORT" -l "$T/server-$OLD.log" -w start
	check "the old server is $OLD" "$OLD" "$(sql $OLDPORT postgres 'SHOW server_version_num' | cut -c1-2)"
	echo "      $(sql $OLDPORT postgres 'SELECT version()')"

	must "database jwtdb made" "$LOGS/createdb.log" sql $OLDPORT postgres "CREATE DATABASE jwtdb"
	must "jwt.issuer set on it" "$LOGS/alterdb.log" sql $OLDPORT postgres \
		"ALTER DATABASE jwtdb SET jwt.issuer = 'https://api.example'"
	# (a database setting: pg_upgrade carries those, not postgresql.conf)
	must "data made through the extension's API on $OLD" "$LOGS/data.log" \
		runuser -u postgres -- "$NEW_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p $OLDPORT -d jwtdb -f /work/data.sql

	local before_ext before_snap before_jwks before_family
	before_ext=$(sql $OLDPORT jwtdb "SELECT extversion FROM pg_extension WHERE extname = 'jwt'")
	check "extension version on $OLD" "$(sed -n "s/^default_version = '\(.*\)'/\1/p" /work/jwt/jwt.control)" "$before_ext"
	check_tokens $OLDPORT "$OLD"
	before_family=$(sql $OLDPORT jwtdb "SELECT value FROM upg_state WHERE name = 'family'")
	before_snap=$(snapshot $OLDPORT)
	before_jwks=$(sql $OLDPORT jwtdb "SELECT md5(jwt_jwks()::text)")
	echo "$before_snap" | sed 's/^/      /'
	if [ "$STRIP_ATTVER" = 1 ]; then
		# opt-in workaround for a 15 newer than the 18 (see the header):
		# drop the attribute versions the 18 cannot restore, in every database
		local db
		for db in $(sql $OLDPORT postgres "SELECT datname FROM pg_database WHERE datallowconn"); do
			sql $OLDPORT "$db" "UPDATE pg_catalog.pg_attribute a
				SET attoptions = NULLIF(ARRAY(SELECT o FROM unnest(a.attoptions) o WHERE o NOT LIKE 'pg_attver=%'), '{}')
				WHERE a.attrelid >= 16384 AND a.attoptions::text LIKE '%pg_attver=%'" >/dev/null
		done
		check "no attribute versions (pg_attver) left in jwtdb" 0 \
			"$(sql $OLDPORT jwtdb "SELECT count(*) FROM pg_attribute WHERE attoptions::text LIKE '%pg_attver=%' AND attrelid >= 16384")"
		check_tokens $OLDPORT "$OLD, attribute versions dropped"
	fi
	must "PostgreSQL $OLD stops" "$LOGS/stop-$OLD.log" as_pg "$OLD_BIN/pg_ctl" -D "$T/old" -m fast -w stop

	step "pg_upgrade $OLD -> $NEW"
	# 18 initdb turns data checksums on by default; the 15 cluster has none
	must "initdb $NEW" "$LOGS/initdb-$NEW.log" \
		as_pg "$NEW_BIN/initdb" -D "$T/new" -U postgres -A trust --locale=C -E UTF8 --no-data-checksums
	{
		echo "listen_addresses = ''"
		echo "unix_socket_directories = '$SOCK'"
	} >>"$T/new/postgresql.conf"
	local up=(as_pg "$NEW_BIN/pg_upgrade" -b "$OLD_BIN" -B "$NEW_BIN" -d "$T/old" -D "$T/new"
		-s "$SOCK" -p "$OLDPORT" -P "$NEWPORT" -U postgres)
	must "pg_upgrade --check" "$LOGS/pg_upgrade-check.log" "${up[@]}" --check
	if ! "${up[@]}" >"$LOGS/pg_upgrade.log" 2>&1; then
		fail "pg_upgrade (log below)"
		tail -n 12 "$LOGS/pg_upgrade.log" | sed 's/^/      /'
		grep -h -B1 -A3 'ERROR' "$T"/new/pg_upgrade_output.d/*/log/*.log 2>/dev/null | head -n 12 | sed 's/^/      /'
		if grep -qs 'unrecognized parameter "pg_attver"' "$T"/new/pg_upgrade_output.d/*/log/*.log; then
			echo "      (this $OLD keeps attribute versions that this $NEW cannot restore; see the header of test/upgrade/run.sh)"
		fi
		exit 1
	fi
	pass "pg_upgrade"
	must "PostgreSQL $NEW starts on the upgraded cluster" "$LOGS/start-$NEW.log" \
		as_pg "$NEW_BIN/pg_ctl" -D "$T/new" -o "-p $NEWPORT" -l "$T/server-$NEW.log" -w start

	step "PostgreSQL $NEW: the same data, the same answers"
	check "the new server is $NEW" "$NEW" "$(sql $NEWPORT postgres 'SHOW server_version_num' | cut -c1-2)"
	echo "      $(sql $NEWPORT postgres 'SELECT version()')"
	local ext def
	ext=$(sql $NEWPORT jwtdb "SELECT extversion FROM pg_extension WHERE extname = 'jwt'")
	def=$(sql $NEWPORT jwtdb "SELECT default_version FROM pg_available_extensions WHERE name = 'jwt'")
	check "extension version unchanged by pg_upgrade" "$before_ext" "$ext"
	if [ "$ext" != "$def" ]; then
		echo "      ALTER EXTENSION jwt UPDATE ($ext -> $def)"
		sql $NEWPORT jwtdb "ALTER EXTENSION jwt UPDATE" >/dev/null
	fi
	check "no ALTER EXTENSION UPDATE needed (installed = default version)" "$def" "$ext"
	check "jwt.issuer kept on the database" "https://api.example" "$(sql $NEWPORT jwtdb 'SHOW jwt.issuer')"
	local after_snap line t
	after_snap=$(snapshot $NEWPORT)
	while IFS='|' read -r t line; do
		check "$t: rows and contents unchanged" "$(echo "$before_snap" | grep "^$t|" | cut -d'|' -f2-)" "$line"
	done <<<"$after_snap"
	check "jwt_jwks() unchanged" "$before_jwks" "$(sql $NEWPORT jwtdb "SELECT md5(jwt_jwks()::text)")"
	check_tokens $NEWPORT "$NEW"
	check "$NEW: a token issued after the upgrade verifies" "valid" \
		"$(sql $NEWPORT jwtdb "SELECT upg_verify(jwt_issue('{\"sub\":\"new\"}', 'ES256'))")"

	step "PostgreSQL $NEW: refresh rotation in the family made on $OLD"
	local state a2 r2 fam rows i revoked
	rows=$(sql $NEWPORT jwtdb "SELECT state, access_token, refresh_token FROM upg_refresh((SELECT value FROM upg_state WHERE name = 'refresh1'))")
	IFS='|' read -r state a2 r2 <<<"$rows"
	check "the refresh token rotated on $OLD refreshes on $NEW" "refreshed" "$state"
	check "its new access token verifies" "valid" "$(sql $NEWPORT jwtdb "SELECT upg_verify('$a2')")"
	fam=$(sql $NEWPORT jwtdb "SELECT family FROM jwt_refresh_tokens WHERE jti = jwt_decode_unverified('$r2') ->> 'jti'")
	check "the new refresh token is in the family made on $OLD" "$before_family" "$fam"
	check "the refresh token used up on $OLD, presented again: JW010" "JW010" \
		"$(sql $NEWPORT jwtdb "SELECT state FROM upg_refresh((SELECT value FROM upg_state WHERE name = 'refresh0'))")"
	revoked=f
	for i in $(seq 1 50); do
		revoked=$(sql $NEWPORT jwtdb "SELECT revoked_at IS NOT NULL FROM jwt_token_families WHERE family = '$before_family'")
		[ "$revoked" = t ] && break
		sleep 0.1
	done
	check "the reuse revoked the family (revoked_at set by the worker)" "t" "$revoked"
	check "the family's newest refresh token now fails: JW010" "JW010" \
		"$(sql $NEWPORT jwtdb "SELECT state FROM upg_refresh('$r2')")"
	check "no revocation left pending in the data directory" "absent" \
		"$([ -s "$T/new/pg_jwt_pending_revocations" ] && echo present || echo absent)"
	must "PostgreSQL $NEW stops" "$LOGS/stop-$NEW.log" as_pg "$NEW_BIN/pg_ctl" -D "$T/new" -m fast -w stop
}

# the data made on 15, through the extension's own API (run as the superuser)
data_sql() {
	cat <<'EOF'
CREATE EXTENSION jwt;
CREATE TABLE upg_tokens (name text PRIMARY KEY, token text NOT NULL, expect text NOT NULL);
CREATE TABLE upg_state (name text PRIMARY KEY, value text NOT NULL);

-- 'valid', or the SQLSTATE of the failure (jwt_is_valid must agree)
CREATE FUNCTION upg_verify(tok text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM jwt_verify(tok);
  RETURN CASE WHEN jwt_is_valid(tok) THEN 'valid' ELSE 'verifies, but jwt_is_valid is false' END;
EXCEPTION WHEN OTHERS THEN
  RETURN CASE WHEN jwt_is_valid(tok) THEN 'jwt_is_valid is true, but raises ' ELSE '' END || SQLSTATE;
END $$;

-- a refresh: its pair and 'refreshed', or the SQLSTATE of the failure
CREATE FUNCTION upg_refresh(tok text, OUT state text, OUT access_token text, OUT refresh_token text)
LANGUAGE plpgsql AS $$
BEGIN
  SELECT r.access_token, r.refresh_token INTO access_token, refresh_token FROM jwt_refresh(tok) r;
  state := 'refreshed';
EXCEPTION WHEN OTHERS THEN
  state := SQLSTATE;
END $$;

SELECT jwt_key_generate('ES256');
SELECT jwt_key_generate('RS256');
SELECT jwt_key_generate('HS256');

-- a trusted issuer; its private JWK is kept to sign tokens as the IdP
INSERT INTO upg_state VALUES ('idp_jwk', (jwt_jwk_generate('ES256') || '{"kid":"idp-1"}')::text);
SELECT jwt_jwks_import(jsonb_build_object('keys', jsonb_build_array(value::jsonb - 'd')), 'https://idp.example')
  FROM upg_state WHERE name = 'idp_jwk';
CREATE FUNCTION upg_idp_token(sub text) RETURNS text LANGUAGE sql AS $$
  SELECT jwt_sign(jsonb_build_object('sub', sub, 'iss', 'https://idp.example',
                    'iat', floor(extract(epoch FROM now()))::bigint,
                    'exp', floor(extract(epoch FROM now() + interval '1 day'))::bigint),
                  (SELECT value FROM upg_state WHERE name = 'idp_jwk'), 'ES256', '{"kid":"idp-1"}')
$$;

INSERT INTO upg_tokens VALUES
  ('ES256 token', jwt_issue('{"sub":"alice"}', 'ES256', ttl => '1 day'), 'valid'),
  ('RS256 token', jwt_issue('{"sub":"bob"}', 'RS256', ttl => '1 day'), 'valid'),
  ('HS256 token', jwt_issue('{"sub":"carol"}', 'HS256', ttl => '1 day'), 'valid'),
  ('IdP token', upg_idp_token('dave'), 'valid');

-- a revoked jti
INSERT INTO upg_tokens VALUES ('revoked jti', jwt_issue('{"sub":"erin"}', 'ES256', ttl => '1 day'), 'JW010');
SELECT jwt_revoke(token, 'upgrade test') FROM upg_tokens WHERE name = 'revoked jti';

-- a revoked subject: an own token and an IdP token of it
INSERT INTO upg_tokens VALUES
  ('revoked subject', jwt_issue('{"sub":"gone"}', 'RS256', ttl => '1 day'), 'JW010'),
  ('revoked subject, IdP token', upg_idp_token('gone'), 'JW010');
SELECT jwt_revoke_subject('gone', now() + interval '1 minute');

-- a revoked key, and a token it signed before
SELECT jwt_key_generate('ES384', 'doomed-es384');
INSERT INTO upg_tokens VALUES
  ('token of a revoked key', jwt_issue('{"sub":"frank"}', 'ES384', ttl => '1 day'), 'JW009');
SELECT jwt_key_revoke('doomed-es384');

-- a refresh family, rotated once: refresh0 is used up, refresh1 current
INSERT INTO upg_state SELECT 'pair', jsonb_build_object('a', access_token, 'r', refresh_token)::text
  FROM jwt_issue_pair('{"sub":"refresher"}');
INSERT INTO upg_tokens SELECT 'access token of the pair', value::jsonb ->> 'a', 'valid'
  FROM upg_state WHERE name = 'pair';
INSERT INTO upg_state SELECT 'refresh0', value::jsonb ->> 'r' FROM upg_state WHERE name = 'pair';
INSERT INTO upg_state SELECT 'rotated', jsonb_build_object('a', r.access_token, 'r', r.refresh_token)::text
  FROM upg_state s, jwt_refresh(s.value) r WHERE s.name = 'refresh0';
INSERT INTO upg_tokens SELECT 'access token of the first refresh', value::jsonb ->> 'a', 'valid'
  FROM upg_state WHERE name = 'rotated';
INSERT INTO upg_state SELECT 'refresh1', value::jsonb ->> 'r' FROM upg_state WHERE name = 'rotated';
INSERT INTO upg_state SELECT 'family', t.family::text
  FROM upg_state s JOIN jwt_refresh_tokens t ON t.jti = jwt_decode_unverified(s.value) ->> 'jti'
  WHERE s.name = 'refresh0';
EOF
}

# =====================================================================
# on the host: the root, the bookworm packages, the mounts
# =====================================================================
P=0
F=0
host_pass() { P=$((P + 1)); echo "ok    $*"; }
host_fail() { F=$((F + 1)); echo "FAIL  $*"; }
log() { echo "--- $*"; }

MOUNTED=()
unmount_all() {
	local i
	for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
		umount "${MOUNTED[$i]}" 2>/dev/null || umount -l "${MOUNTED[$i]}" 2>/dev/null || true
	done
	MOUNTED=()
}
# mounts left under the root by a run that was killed: ours, unmount them
unmount_stale() {
	local m
	for m in $(awk -v r="$ROOT/" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m"
	done
	! awk -v r="$ROOT/" 'index($2, r) == 1 { found = 1 } END { exit !found }' /proc/mounts
}

# processes left in the root (ours: the root is locked by this run)
root_pids() {
	local p
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ] && echo "${p#/proc/}"
	done
}

# the run inside the root: stopped (it stops its servers) before unmounting
CHILD=
stop_child() {
	local i pids
	if [ -n "$CHILD" ]; then
		kill -TERM "$CHILD" 2>/dev/null
		wait "$CHILD" 2>/dev/null
		CHILD=
	fi
	for i in 1 2 3 4 5 6 7 8 9 10; do
		pids=$(root_pids)
		[ -z "$pids" ] && return 0
		# shellcheck disable=SC2086
		[ "$i" = 1 ] && kill -TERM $pids 2>/dev/null
		sleep 0.5
	done
	# shellcheck disable=SC2046
	kill -KILL $(root_pids) 2>/dev/null
	sleep 0.5
}

COUNTED=
count_results() {
	[ -z "$COUNTED" ] && [ -f "$ROOT/work/results" ] || return 0
	P=$((P + $(grep -c '^PASS' "$ROOT/work/results")))
	F=$((F + $(grep -c '^FAIL' "$ROOT/work/results")))
	COUNTED=1
}

finish() {
	local rc=$?
	trap '' INT TERM
	stop_child
	unmount_all
	count_results
	[ "$rc" -ne 0 ] && [ "$F" -eq 0 ] && host_fail "the run stopped early (status $rc)"
	echo "$P passed, $F failed"
	[ "$F" -eq 0 ] && [ "$P" -gt 0 ]
	exit $?
}

ensure_sid_root() {
	local want="sid $SID_PACKAGES"
	if [ -f "$ROOT/.jwt-upgrade-root" ] && [ "$(cat "$ROOT/.jwt-upgrade-root")" = "$want" ] &&
		[ -x "$ROOT$NEW_BIN/postgres" ]; then
		host_pass "sid root with PostgreSQL $NEW cached in $ROOT"
		return 0
	fi
	command -v mmdebstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q mmdebstrap >/dev/null ||
		{ host_fail "mmdebstrap installs on the host"; return 1; }
	log "making a sid root with PostgreSQL $NEW in $ROOT (cached for later runs)"
	rm -rf --one-file-system "$ROOT" "$ROOT.tmp"
	# sid's Release file here is past its Valid-Until date
	if ! mmdebstrap --quiet --variant=apt \
		--aptopt='Acquire::Check-Valid-Until "false"' \
		--include="$SID_PACKAGES" \
		sid "$ROOT.tmp" "$MIRROR" >"$ROOT.log" 2>&1; then
		tail -n 20 "$ROOT.log"
		rm -rf --one-file-system "$ROOT.tmp"
		host_fail "mmdebstrap makes a sid root (log: $ROOT.log)"
		return 1
	fi
	echo "$want" >"$ROOT.tmp/.jwt-upgrade-root"
	mv "$ROOT.tmp" "$ROOT"
	host_pass "sid root with PostgreSQL $NEW made in $ROOT"
}

# choose_old_version: which bookworm PostgreSQL 15 to upgrade from.
# Bookworm-security's 15.20 (November 2026) stores an attribute version ("pg_attver=...") in
# pg_attribute.attoptions of every table column, and its pg_dump knows to
# carry them; sid's 18.6 (August 2026) predates that change, so its pg_dump
# copies them as ordinary column options and its server refuses them
# (ERROR: unrecognized parameter "pg_attver"): pg_upgrade fails for any
# table, with or without jwt.  Unless told otherwise, the test therefore
# upgrades from the newest 15 that apt knows whose catalogs the 18 can
# restore (bookworm's 15.18 here); JWT_UPGRADE_FROM=VERSION picks one, and
# JWT_UPGRADE_STRIP_ATTVER=1 takes the newest and drops the attribute
# versions in the old cluster just before pg_upgrade instead.
DEBS=$ROOT/var/cache/jwt-upgrade-debs

# download PKG=VERSION... into $DEBS (kept for later runs)
fetch_debs() {
	local p todo=()
	mkdir -p "$DEBS"
	for p in "$@"; do
		ls "$DEBS/${p%%=*}_${p#*=}_"*.deb >/dev/null 2>&1 ||
			ls "$DEBS/${p%%=*}_$(echo "${p#*=}" | sed 's/^[0-9]*://')_"*.deb >/dev/null 2>&1 || todo+=("$p")
	done
	[ ${#todo[@]} -eq 0 ] && return 0
	chown _apt "$DEBS" 2>/dev/null || chmod 777 "$DEBS"
	(cd "$DEBS" && apt-get download -q "${todo[@]}") >"$DEBS/download.log" 2>&1 ||
		{ tail -n 20 "$DEBS/download.log" >&2; return 1; }
}

# has_attver VERSION: does that postgresql-15 keep attribute versions? (cached)
has_attver() {
	local v=$1 f=$DEBS/attver-$1 x
	if [ ! -f "$f" ]; then
		fetch_debs "postgresql-$OLD=$v" || return 2
		x=$(mktemp -d)
		dpkg -x "$DEBS/postgresql-${OLD}_${v}_"*.deb "$x" || { rm -rf "$x"; return 2; }
		if grep -q pg_attver "$x/usr/lib/postgresql/$OLD/bin/postgres"; then echo yes; else echo no; fi >"$f"
		rm -rf "$x"
	fi
	[ "$(cat "$f")" = yes ]
}

choose_old_version() {
	local versions v new_attver=no
	versions=$(apt-cache madison "postgresql-$OLD" 2>/dev/null | awk '!seen[$3]++ { print $3 }')
	[ -n "$versions" ] || { apt-get update -qq >/dev/null 2>&1; versions=$(apt-cache madison "postgresql-$OLD" | awk '!seen[$3]++ { print $3 }'); }
	[ -n "$versions" ] || return 1
	if [ -n "${JWT_UPGRADE_FROM:-}" ]; then
		echo "$JWT_UPGRADE_FROM"
		return 0
	fi
	grep -q pg_attver "$ROOT$NEW_BIN/postgres" && new_attver=yes
	if [ $new_attver = yes ] || [ "$STRIP_ATTVER" = 1 ]; then
		echo "$versions" | head -n 1
		return 0
	fi
	for v in $versions; do
		has_attver "$v"
		case $? in
			0) echo "note: postgresql-$OLD $v keeps attribute versions (pg_attver) that PostgreSQL $NEW_VERSION cannot restore: skipped" >&2 ;;
			1) echo "$v"; return 0 ;;
			*) return 1 ;;
		esac
	done
	echo "no postgresql-$OLD that PostgreSQL $NEW_VERSION can upgrade from; try JWT_UPGRADE_STRIP_ATTVER=1" >&2
	return 1
}

ensure_old_layer() {
	local v want p lib stamp=$ROOT$OLD_PREFIX/.jwt-debs
	NEW_VERSION=$(chroot "$ROOT" dpkg-query -W -f '${Version}' "postgresql-$NEW" 2>/dev/null)
	v=$(choose_old_version) || { host_fail "a bookworm postgresql-$OLD to upgrade from"; return 1; }
	want=""
	for p in $OLD_DEBS; do
		case $p in
			*-$OLD) want="$want $p=$v" ;;
			*)
				lib=$(apt-cache show --no-all-versions "$p" 2>/dev/null | sed -n 's/^Version: //p' | head -n 1)
				[ -n "$lib" ] || { host_fail "the host's apt knows $p"; return 1; }
				want="$want $p=$lib"
				;;
		esac
	done
	want=${want# }
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$ROOT$OLD_BIN/postgres" ]; then
		host_pass "bookworm PostgreSQL $OLD ($v) cached in $ROOT$OLD_PREFIX"
		return 0
	fi
	log "fetching bookworm's PostgreSQL $OLD: $want"
	# shellcheck disable=SC2086
	fetch_debs $want || { host_fail "apt-get download of bookworm's PostgreSQL $OLD"; return 1; }
	rm -rf "$ROOT$OLD_PREFIX"
	mkdir -p "$ROOT$OLD_PREFIX"
	for p in $want; do
		dpkg -x "$DEBS/${p%%=*}_$(echo "${p#*=}" | sed 's/^[0-9]*://')_"*.deb "$ROOT$OLD_PREFIX" ||
			{ host_fail "dpkg -x $p"; return 1; }
	done
	echo "$want" >"$stamp"
	host_pass "bookworm PostgreSQL $OLD ($v) unpacked in $ROOT$OLD_PREFIX"
}

main() {
	local repo rev rc t0=$SECONDS
	repo=$(cd "$(dirname "$0")/../.." && pwd)
	[ "$(id -u)" = 0 ] || { host_fail "run as root (chroot, mounts)"; finish; }
	mkdir -p "$(dirname "$ROOT")"
	exec 9>"$ROOT.lock"
	flock 9
	trap finish EXIT
	trap 'host_fail "interrupted"; exit 130' INT TERM
	unmount_stale || { host_fail "stale mounts under $ROOT could not be unmounted"; exit 1; }

	ensure_sid_root || exit 1
	ensure_old_layer || exit 1

	# a fresh clone of the committed HEAD (JWT_UPGRADE_REV: another commit),
	# never a copy of the work tree, which holds objects built for the host
	rm -rf --one-file-system "$ROOT/work" "$ROOT"/tmp/jwt-upgrade.*
	mkdir -p "$ROOT/work"
	rev=$(git -C "$repo" rev-parse "${JWT_UPGRADE_REV:-HEAD}") &&
		git clone -q "$repo" "$ROOT/work/jwt" &&
		git -C "$ROOT/work/jwt" checkout -q "$rev" ||
		{ host_fail "git clone of $repo into the root"; exit 1; }
	echo "--- testing $(git -C "$ROOT/work/jwt" log -1 --format='%h %s' | cut -c1-72)"
	cp "$0" "$ROOT/work/run.sh"
	data_sql >"$ROOT/work/data.sql"

	mount -t proc proc "$ROOT/proc" && MOUNTED+=("$ROOT/proc")
	mount --bind /dev "$ROOT/dev" && MOUNTED+=("$ROOT/dev")
	mount -t tmpfs -o mode=1777 shm "$ROOT/dev/shm" && MOUNTED+=("$ROOT/dev/shm")
	[ ${#MOUNTED[@]} -eq 3 ] || { host_fail "mounts of /proc, /dev, /dev/shm in the root"; exit 1; }

	rc=0
	chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
		JWT_UPGRADE_STRIP_ATTVER="$STRIP_ATTVER" /bin/bash /work/run.sh --inside &
	CHILD=$!
	wait "$CHILD" || rc=$?
	CHILD=
	stop_child
	unmount_all

	count_results
	if [ $rc -ne 0 ] && ! grep -qs '^FAIL' "$ROOT/work/results"; then
		host_fail "the run inside the root stopped with status $rc"
	fi
	[ "$F" -eq 0 ] || echo "logs: $ROOT/work/logs"
	echo "time: $((SECONDS - t0)) s"
	exit 0
}

if [ "${1:-}" = --inside ]; then
	inside
else
	main "$@"
fi
