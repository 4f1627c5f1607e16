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
# Both servers live in one Debian sid root (sid packages only 18; bookworm,
# the host's suite, only 15).  The root is made with mmdebstrap and cached
# in $JWT_UPGRADE_ROOT (default /var/cache/jwt-roots/upgrade); bookworm's
# postgresql-15, postgresql-client-15 and postgresql-server-dev-15 and the
# bookworm libraries they need that sid lacks (ICU 72, OpenLDAP 2.5,
# libxml2.so.2) are fetched with the host's apt-get download and unpacked
# with dpkg -x under /opt/pg15 in the root.  The 15 binaries find their
# share and lib directories relative to themselves and their libraries
# through LD_LIBRARY_PATH; JIT is off (its libLLVM 14 is not unpacked).
# Nothing is installed on the host but mmdebstrap, when missing.

set -u

OLD=15
NEW=18
ROOT=${JWT_UPGRADE_ROOT:-/var/cache/jwt-roots/upgrade}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SID_PACKAGES="postgresql-$NEW,postgresql-client-$NEW,postgresql-server-dev-$NEW,make,gcc,libc6-dev,libssl-dev,libsasl2-2,libgnutls30t64,procps,util-linux"
OLD_DEBS="postgresql-$OLD postgresql-client-$OLD postgresql-server-dev-$OLD libicu72 libldap-2.5-0 libxml2"
OLD_PREFIX=/opt/pg$OLD
OLD_BIN=$OLD_PREFIX/usr/lib/postgresql/$OLD/bin
OLD_LIBS=$OLD_PREFIX/usr/lib/x86_64-linux-gnu
NEW_BIN=/usr/lib/postgresql/$NEW/bin

# ---------------------------------------------------------------------
# inside the root: build, initdb 15, data, pg_upgrade, checks
# ---------------------------------------------------------------------
inside() {
	local W=/work RES=/work/results LOGS=/work/logs
	local T SOCK OLDPORT=54315 NEWPORT=54318
	: >"$RES"
	mkdir -p "$LOGS"

	pass() { echo "PASS $*" >>"$RES"; echo "ok     $*"; }
	fail() { echo "FAIL $*" >>"$RES"; echo "FAIL   $*"; }
	# check DESCRIPTION EXPECTED GOT
	check() { if [ "$2" = "$3" ]; then pass "$1"; else fail "$1 (expected '$2', got '$3')"; fi; }
	step() { echo "--- $*"; }
	# must DESCRIPTION LOG COMMAND...: a step that the rest depends on
	must() {
		local what=$1 log=$2
		shift 2
		if "$@" >"$log" 2>&1; then
			pass "$what"
		else
			fail "$what (see below)"
			tail -n 30 "$log" | sed 's/^/    /'
			exit 1
		fi
	}

	T=$(mktemp -d /tmp/jwt-upgrade.XXXXXX)
	SOCK=$T/sock
	mkdir -p "$SOCK"
	chown -R postgres:postgres "$T"
	export LANG=C.UTF-8 TZ=UTC

	as_pg() { runuser -u postgres -- env LD_LIBRARY_PATH="$OLD_LIBS" TZ=UTC LANG=C.UTF-8 "$@"; }
	stop_all() {
		[ -f "$T/old/postmaster.pid" ] && as_pg "$OLD_BIN/pg_ctl" -D "$T/old" -m immediate stop >/dev/null 2>&1
		[ -f "$T/new/postmaster.pid" ] && as_pg "$NEW_BIN/pg_ctl" -D "$T/new" -m immediate stop >/dev/null 2>&1
		cp "$T"/*.log "$T"/new/pg_upgrade_output.d/*/log/*.log "$LOGS/" 2>/dev/null
		rm -rf "$T"
	}
	trap stop_all EXIT

	# psql of 18 for both servers; PORT picks the server
	sql() { # PORT DB SQL -> rows, unaligned
		runuser -u postgres -- "$NEW_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 \
			-h "$SOCK" -p "$1" -d "$2" -c "$3"
	}

	step "libraries of the $OLD binaries"
	local missing
	missing=$(for f in "$OLD_BIN"/postgres "$OLD_BIN"/pg_ctl "$OLD_BIN"/initdb "$OLD_BIN"/pg_controldata "$OLD_BIN"/pg_config; do
		LD_LIBRARY_PATH=$OLD_LIBS ldd "$f" | grep 'not found'
	done | sort -u)
	check "every library of the $OLD binaries is found" "" "$missing"
	check "pg_config $OLD --pkglibdir is under $OLD_PREFIX" "$OLD_PREFIX/usr/lib/postgresql/$OLD/lib" \
		"$(LD_LIBRARY_PATH=$OLD_LIBS "$OLD_BIN/pg_config" --pkglibdir)"

	step "build and install jwt for $OLD and $NEW"
	cd "$W/jwt" || exit 1
	# with_llvm=no: no bitcode (no clang in the root)
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
		echo "jit = off"  # llvmjit needs libLLVM 14, not unpacked
		echo "max_worker_processes = 8"
	} >>"$T/old/postgresql.conf"
	must "PostgreSQL $OLD starts" "$LOGS/start-$OLD.log" \
		as_pg "$OLD_BIN/pg_ctl" -D "$T/old" -o "-p $OLDPORT" -l "$T/server-$OLD.log" -w start
	check "the old server is $OLD" "$OLD" "$(sql $OLDPORT postgres 'SHOW server_version_num' | cut -c1-2)"

	sql $OLDPORT postgres "CREATE DATABASE jwtdb" >/dev/null
	# a database setting: pg_upgrade carries these (postgresql.conf it does not)
	sql $OLDPORT postgres "ALTER DATABASE jwtdb SET jwt.issuer = 'https://api.example'" >/dev/null

	if ! runuser -u postgres -- "$NEW_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p $OLDPORT -d jwtdb \
		>"$LOGS/data.log" 2>&1 <<'EOF'; then
CREATE EXTENSION jwt;
CREATE TABLE upg_tokens (name text PRIMARY KEY, token text NOT NULL, expect text NOT NULL);
CREATE TABLE upg_state (name text PRIMARY KEY, value text NOT NULL);
-- 'valid', or the SQLSTATE of the failure
CREATE FUNCTION upg_verify(tok text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM jwt_verify(tok);
  RETURN CASE WHEN jwt_is_valid(tok) THEN 'valid' ELSE 'verifies but not valid' END;
EXCEPTION WHEN OTHERS THEN
  RETURN CASE WHEN jwt_is_valid(tok) THEN 'valid but raises ' ELSE '' END || SQLSTATE;
END $$;
-- the new refresh token, or the SQLSTATE of the failure
CREATE FUNCTION upg_refresh(tok text, OUT access_token text, OUT refresh_token text, OUT state text)
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

-- a trusted issuer, its private JWK kept to sign a token as the IdP
DO $$
DECLARE
  idp jsonb := jwt_jwk_generate('ES256') || '{"kid":"idp-1"}';
BEGIN
  PERFORM jwt_jwks_import(jsonb_build_object('keys', jsonb_build_array(idp - 'd')), 'https://idp.example');
  INSERT INTO upg_state VALUES ('idp_jwk', idp::text);
END $$;

CREATE FUNCTION upg_idp_token(sub text) RETURNS text LANGUAGE sql AS $$
  SELECT jwt_sign(jsonb_build_object('sub', sub, 'iss', 'https://idp.example',
                    'iat', extract(epoch FROM now())::bigint,
                    'exp', extract(epoch FROM now() + interval '1 day')::bigint),
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

-- a revoked subject, with an own token and an IdP token of it
INSERT INTO upg_tokens VALUES
  ('revoked subject', jwt_issue('{"sub":"gone"}', 'RS256', ttl => '1 day'), 'JW010'),
  ('revoked subject, IdP token', upg_idp_token('gone'), 'JW010');
SELECT jwt_revoke_subject('gone', now() + interval '1 minute');

-- a revoked key and a token it signed before
SELECT jwt_key_generate('ES384', 'doomed-es384');
INSERT INTO upg_tokens VALUES ('token of a revoked key', jwt_issue('{"sub":"frank"}', 'ES384', ttl => '1 day'), 'JW009');
SELECT jwt_key_revoke('doomed-es384');

-- a refresh family, rotated once
INSERT INTO upg_state SELECT 'pair', row(p.access_token, p.refresh_token)::text
  FROM jwt_issue_pair('{"sub":"refresher"}') p;
INSERT INTO upg_tokens SELECT 'access token of the pair', (value::record_pair).a, 'valid'
  FROM upg_state, LATERAL (SELECT 1) x WHERE false;  -- placeholder, replaced below
EOF
		fail "data made on $OLD (see below)"
		tail -n 30 "$LOGS/data.log" | sed 's/^/    /'
		exit 1
	fi
	pass "data made on $OLD"
}

inside "$@"
