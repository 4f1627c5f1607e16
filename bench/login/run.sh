#!/usr/bin/env bash
# bench/login/run.sh: logins per second with a bearer token (the jwt OAuth
# validator, PostgreSQL 18) beside logins with a password (SCRAM), and
# whether 10,000 more trusted issuers in jwt_issuers slow the logins down.
# See README.md beside this file.
#
#   bash bench/login/run.sh
#
# PostgreSQL 18 or later only: the server of $PG_CONFIG (default: that of
# /usr/lib/postgresql/18, else the pg_config on PATH).  The extension must
# be installed there (make install).  Run as root (the cluster then runs as
# postgres) or as any other user (the cluster runs as that user).
#
# Makes a throwaway cluster of its own: initdb in a temp dir, a unix socket
# there, no TCP, with shared_preload_libraries and oauth_validator_libraries
# = 'jwt', password_encryption = scram-sha-256, and pg_hba.conf lines
#
#   local all         postgres    trust
#   local jwt_bench_login bench_oauth oauth issuer="https://idp.example/realms/bench"
#                                       scope="openid db" map=jwt
#   local jwt_bench_login bench_scram scram-sha-256
#
# The extension in the database jwt.database names, one ES256 key of the
# issuer imported with jwt_key_import, and one token of that key valid for
# an hour, signed here with python3-cryptography.  Then, for each number of
# clients in CLIENTS, ROUNDS rounds of
#
#   phase 1  oauth logins, scram logins          (the order turns each round)
#   -- 10,000 more trusted issuers, each with one ES256 key, in jwt_issuers
#      (none of them named by pg_hba.conf), by one statement --
#   phase 2  oauth logins, scram logins again
#
# each LOGINS logins by loginbench.c: a connection, one query
# (SELECT current_user, jwt_claim('sub'), checked), PQfinish.  The RSS of
# the "jwt login snapshot" worker and of the postmaster is read from
# /proc/PID/status before phase 1, between the phases and after phase 2.
#
# Settings, from the environment:
#
#   LOGINS=2000      logins per measurement
#   ROUNDS=3         rounds per phase; figures are medians over the rounds,
#                    oauth ÷ scram the median of each round's ratio
#   CLIENTS="1 8"    concurrent clients (processes, each its own connections)
#   WARMUP=20        logins per client before each measurement, not counted
#   EXTRA_ISSUERS=10000
#   PORT=5700        the cluster's port (on its unix socket only)
#   PG_CONFIG=       as above
#
# Writes results.csv beside this file and prints the table.  A benchmark,
# not a test: it exits non-zero when a login fails (or its query returns
# another identity), and asserts nothing about the figures.

set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

LOGINS=${LOGINS:-2000}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-"1 8"}
WARMUP=${WARMUP:-20}
EXTRA_ISSUERS=${EXTRA_ISSUERS:-10000}
PORT=${PORT:-5700}
PYTHON=/usr/bin/python3

DB=jwt_bench_login
ISS=https://idp.example/realms/bench
AUD=db-api
SUB=bench@idp
OAUTH_ROLE=bench_oauth
SCRAM_ROLE=bench_scram
CLIENT_ID=jwt-loginbench
SQL="SELECT current_user, jwt_claim('sub')"

say() { printf '%s\n' "$*" >&2; }
die() { say "run.sh: $*"; exit 1; }

# ---- PostgreSQL 18
if [ -z "${PG_CONFIG:-}" ]; then
	if [ -x /usr/lib/postgresql/18/bin/pg_config ]; then
		PG_CONFIG=/usr/lib/postgresql/18/bin/pg_config
	else
		PG_CONFIG=$(command -v pg_config || true)
	fi
fi
[ -n "$PG_CONFIG" ] && [ -x "$PG_CONFIG" ] || die "no pg_config (set PG_CONFIG)"
MAJOR=$("$PG_CONFIG" --version | sed -n 's/^PostgreSQL \([0-9][0-9]*\).*/\1/p')
[ "${MAJOR:-0}" -ge 18 ] || die "needs PostgreSQL 18 or later (OAuth validators); $PG_CONFIG is ${MAJOR:-unknown}"
BINDIR=$("$PG_CONFIG" --bindir)
[ -f "$("$PG_CONFIG" --pkglibdir)/jwt.so" ] ||
	die "jwt.so is not installed in $("$PG_CONFIG" --pkglibdir) (make install PG_CONFIG=$PG_CONFIG)"
"$PYTHON" -c 'import cryptography' 2>/dev/null ||
	die "$PYTHON cannot import cryptography (Debian: apt-get install python3-cryptography)"
command -v cc >/dev/null || die "no C compiler (cc)"
for n in $CLIENTS; do
	case $n in '' | *[!0-9]*) die "CLIENTS must be numbers: $CLIENTS" ;; esac
done

# ---- the work directory and the clean-up on every way out
WORK=$(mktemp -d /tmp/jwt-bench-login.XXXXXX)
chmod 755 "$WORK"
DATA=$WORK/data
LOG=$WORK/server.log
STARTED=
if [ "$(id -u)" = 0 ]; then
	chown postgres: "$WORK"
	as_owner() { runuser -u postgres -- "$@"; }
else
	as_owner() { "$@"; }
fi
cleanup() {
	local rc=$?
	if [ -n "$STARTED" ]; then
		as_owner "$BINDIR/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null 2>&1 || true
	fi
	if [ $rc -ne 0 ] && [ -f "$LOG" ]; then
		say "run.sh: failed; the end of the server log:"
		tail -n 30 "$LOG" >&2 || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# ---- the client
cc -O2 -Wall -o "$WORK/loginbench" "$HERE/loginbench.c" -I"$("$PG_CONFIG" --includedir)" \
	-L"$("$PG_CONFIG" --libdir)" -lpq || die "loginbench does not build"

# ---- keys, the token, the extra issuers (python3-cryptography)
PASSWORD=$("$PYTHON" -c 'import secrets; print(secrets.token_hex(16))')
mkdir "$WORK/keys"
"$PYTHON" - "$WORK/keys" "$ISS" "$AUD" "$SUB" "$EXTRA_ISSUERS" <<'EOF'
import base64, json, os, secrets, sys, time
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

out, iss, aud, sub, extra = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])

def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b'=').decode()

def pem(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()

key = ec.generate_private_key(ec.SECP256R1())
with open(os.path.join(out, 'issuer.pem'), 'w') as f:
    f.write(pem(key))
now = int(time.time())
header = {'alg': 'ES256', 'typ': 'JWT', 'kid': 'k1'}
claims = {'iss': iss, 'sub': sub, 'aud': aud, 'scope': 'openid db', 'iat': now - 10,
          'exp': now + 3600, 'jti': secrets.token_hex(8)}
signing = '%s.%s' % (b64u(json.dumps(header, separators=(',', ':')).encode()),
                     b64u(json.dumps(claims, separators=(',', ':')).encode()))
r, s = utils.decode_dss_signature(key.sign(signing.encode(), ec.ECDSA(hashes.SHA256())))
with open(os.path.join(out, 'token'), 'w') as f:
    f.write(signing + '.' + b64u(r.to_bytes(32, 'big') + s.to_bytes(32, 'big')))
# COPY text format: issuer TAB pem, the PEM's newlines as \n
with open(os.path.join(out, 'extra.tsv'), 'w') as f:
    for i in range(1, extra + 1):
        k = ec.generate_private_key(ec.SECP256R1())
        f.write('https://idp.example/extra/%05d\t%s\n' % (i, pem(k).replace('\n', '\\n')))
EOF
chmod 644 "$WORK/keys/"*

# ---- the cluster
as_owner "$BINDIR/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --locale=C >/dev/null ||
	die "initdb failed"
cat >>"$DATA/postgresql.conf" <<EOF
shared_preload_libraries = 'jwt'
oauth_validator_libraries = 'jwt'
jwt.database = '$DB'
jwt.login_claim = 'sub'
password_encryption = 'scram-sha-256'
listen_addresses = ''
unix_socket_directories = '$WORK'
port = $PORT
log_min_messages = warning
EOF
cat >"$DATA/pg_hba.conf" <<EOF
local all postgres trust
local $DB $OAUTH_ROLE oauth issuer="$ISS" scope="openid db" map=jwt
local $DB $SCRAM_ROLE scram-sha-256
EOF
printf 'jwt  %s  %s\n' "$SUB" "$OAUTH_ROLE" >"$DATA/pg_ident.conf"
if [ "$(id -u)" = 0 ]; then
	chown postgres: "$DATA/postgresql.conf" "$DATA/pg_hba.conf" "$DATA/pg_ident.conf"
fi
as_owner "$BINDIR/pg_ctl" -D "$DATA" -l "$LOG" -w -t 120 start >/dev/null || die "the server does not start"
STARTED=1

psql_su() { "$BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$WORK" -p "$PORT" -U postgres "$@"; }
psql_su -d postgres -c "CREATE ROLE $OAUTH_ROLE LOGIN" \
	-c "CREATE ROLE $SCRAM_ROLE LOGIN PASSWORD '$PASSWORD'" -c "CREATE DATABASE $DB"
[ "$(psql_su -d postgres -c "SELECT rolpassword LIKE 'SCRAM-SHA-256\$%' FROM pg_authid WHERE rolname = '$SCRAM_ROLE'")" = t ] ||
	die "the password of $SCRAM_ROLE is not a SCRAM verifier"
psql_su -d "$DB" -c "CREATE EXTENSION jwt" >/dev/null
psql_su -d "$DB" -v pem="$(cat "$WORK/keys/issuer.pem")" -v iss="$ISS" -v aud="{$AUD}" >/dev/null <<'EOF'
SELECT jwt_key_import(:'pem', 'ES256', 'k1', issuer => :'iss');
UPDATE jwt_issuers SET audiences = :'aud' WHERE issuer = :'iss';
EOF

CONN_BASE="host=$WORK port=$PORT dbname=$DB"
CONN_OAUTH="$CONN_BASE user=$OAUTH_ROLE require_auth=oauth oauth_issuer=$ISS/.well-known/openid-configuration oauth_client_id=$CLIENT_ID"
CONN_SCRAM="$CONN_BASE user=$SCRAM_ROLE require_auth=scram-sha-256 password=$PASSWORD"
WANT_OAUTH="$OAUTH_ROLE|$SUB"
WANT_SCRAM="$SCRAM_ROLE|\\N"

bench() { # KIND CLIENTS LOGINS WARMUP: one loginbench line
	local kind=$1 c=$2 n=$3 w=$4
	case $kind in
	oauth) "$WORK/loginbench" -l oauth -n "$n" -c "$c" -w "$w" -t "$WORK/keys/token" \
		-q "$SQL" -e "$WANT_OAUTH" "$CONN_OAUTH" ;;
	scram) "$WORK/loginbench" -l scram -n "$n" -c "$c" -w "$w" \
		-q "$SQL" -e "$WANT_SCRAM" "$CONN_SCRAM" ;;
	esac
}

# the snapshot worker picks the key up within a fraction of a second
waited=0
until bench oauth 1 1 0 >/dev/null 2>"$WORK/first.err"; do
	waited=$((waited + 1))
	[ $waited -le 100 ] || die "no oauth login after 20 s: $(cat "$WORK/first.err")"
	sleep 0.2
done
bench scram 1 1 0 >/dev/null || die "the scram login fails"

# ---- RSS of the snapshot worker and of the postmaster
POSTMASTER_PID=$(head -n 1 "$DATA/postmaster.pid")
worker_pid() {
	psql_su -d postgres -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'jwt login snapshot'"
}
status_kb() { # PID FIELD
	awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || true
}
CSV=$WORK/results.csv
echo 'series,clients,round,metric,value' >"$CSV"
rss() { # WHEN
	local w
	w=$(worker_pid)
	[ -n "$w" ] || die "no 'jwt login snapshot' worker in pg_stat_activity"
	printf 'rss worker,,%s,pid,%s\n' "$1" "$w" >>"$CSV"
	printf 'rss worker,,%s,VmRSS_kB,%s\n' "$1" "$(status_kb "$w" VmRSS)" >>"$CSV"
	printf 'rss worker,,%s,RssAnon_kB,%s\n' "$1" "$(status_kb "$w" RssAnon)" >>"$CSV"
	printf 'rss worker,,%s,RssShmem_kB,%s\n' "$1" "$(status_kb "$w" RssShmem)" >>"$CSV"
	printf 'rss postmaster,,%s,pid,%s\n' "$1" "$POSTMASTER_PID" >>"$CSV"
	printf 'rss postmaster,,%s,VmRSS_kB,%s\n' "$1" "$(status_kb "$POSTMASTER_PID" VmRSS)" >>"$CSV"
	printf 'rss postmaster,,%s,RssAnon_kB,%s\n' "$1" "$(status_kb "$POSTMASTER_PID" RssAnon)" >>"$CSV"
	printf 'snapshot,,%s,bytes,%s\n' "$1" "$(stat -c %s "$DATA/pg_jwt_login_snapshot" 2>/dev/null || echo)" >>"$CSV"
	printf 'issuers,,%s,count,%s\n' "$1" "$(psql_su -d "$DB" -c 'SELECT count(*) FROM jwt_issuers')" >>"$CSV"
}

# ---- the measurements
measure() { # PHASE ROUND C KIND
	local line
	line=$(bench "$4" "$3" "$LOGINS" "$WARMUP") || die "$1 $4, $3 client(s), round $2: a login failed"
	say "  $1 round $2: $line"
	# "kind clients=C logins=N seconds=S logins_per_s=R median_ms=M p95_ms=P ..."
	echo "$line" | tr ' ' '\n' | sed -n 's/^\([a-z_0-9]*\)=\(.*\)$/\1 \2/p' |
		while read -r k v; do
			case $k in clients | failed) continue ;; esac
			printf '%s,%s,%s,%s,%s\n' "$1 $4" "$3" "$2" "$k" "$v" >>"$CSV"
		done
}
phase() { # PHASE
	local r c
	for r in $(seq "$ROUNDS"); do
		for c in $CLIENTS; do
			if [ $((r % 2)) = 1 ]; then
				measure "$1" "$r" "$c" oauth
				measure "$1" "$r" "$c" scram
			else
				measure "$1" "$r" "$c" scram
				measure "$1" "$r" "$c" oauth
			fi
		done
	done
}

say "run.sh: PostgreSQL $("$BINDIR/postgres" --version | awk '{print $3}'), LOGINS=$LOGINS ROUNDS=$ROUNDS CLIENTS=\"$CLIENTS\" WARMUP=$WARMUP"
rss before
LOG_FROM=$(stat -c %s "$LOG")
say "phase 1: one trusted issuer"
phase base
rss 'after phase 1'

say "adding $EXTRA_ISSUERS trusted issuers, each with one ES256 key"
t0=$(date +%s.%N)
psql_su -d "$DB" -c 'CREATE TEMP TABLE bench_extra (issuer text, pem text)' \
	-c "\\copy bench_extra FROM '$WORK/keys/extra.tsv'" \
	-c "SELECT count(jwt_key_import(pem, 'ES256', 'k1', issuer => issuer)) FROM bench_extra" >/dev/null
t1=$(date +%s.%N)
ADD_SECONDS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
printf 'add issuers,,,seconds,%s\n' "$ADD_SECONDS" >>"$CSV"
n=$(psql_su -d "$DB" -c 'SELECT count(*) FROM jwt_issuers')
[ "$n" = $((EXTRA_ISSUERS + 1)) ] || die "jwt_issuers has $n rows, want $((EXTRA_ISSUERS + 1))"
say "  $EXTRA_ISSUERS issuers added in $ADD_SECONDS s; jwt_issuers has $n rows"
# the worker rewrites the snapshot within a poll (100 ms) of the commit
sleep 1
bench oauth 1 1 0 >/dev/null || die "no oauth login after adding the issuers"
rss 'after adding issuers'
say "phase 2: $EXTRA_ISSUERS more trusted issuers"
phase extra
rss 'after phase 2'

# ---- medians, ratios, the table
awk -F, -v medf="$WORK/medians.csv" -v clients="$CLIENTS" -v rounds="$ROUNDS" -v extra="$EXTRA_ISSUERS" '
function median(key,    n, i, j, t, a) {
	n = 0
	for (i = 1; i <= rounds; i++) if ((key, i) in v) a[++n] = v[key, i]
	for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	if (n == 0) return ""
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
NR > 1 && $3 ~ /^[0-9]+$/ { v[$1 SUBSEP $2 SUBSEP $4, $3] = $5 }
NR > 1 && $1 ~ /^(rss|snapshot|issuers)/ { m[$1, $3, $4] = $5 }
NR > 1 && $1 == "add issuers" { addsec = $5 }
END {
	nc = split(clients, cs, " ")
	for (k = 1; k <= nc; k++) {
		c = cs[k]
		for (r = 1; r <= rounds; r++) {
			ra[r] = v["base oauth", c, "logins_per_s", r] / v["base scram", c, "logins_per_s", r]
			rb[r] = v["extra oauth", c, "logins_per_s", r] / v["extra scram", c, "logins_per_s", r]
			v["ratio base", c, "x", r] = ra[r]; v["ratio extra", c, "x", r] = rb[r]
		}
		split("base oauth|base scram|extra oauth|extra scram", series, "|")
		for (s = 1; s <= 4; s++)
			foreach_metric(series[s], c)
		R1[c] = median("ratio base" SUBSEP c SUBSEP "x")
		R2[c] = median("ratio extra" SUBSEP c SUBSEP "x")
		lo1[c] = hi1[c] = ra[1]; lo2[c] = hi2[c] = rb[1]
		for (r = 2; r <= rounds; r++) {
			if (ra[r] < lo1[c]) lo1[c] = ra[r]; if (ra[r] > hi1[c]) hi1[c] = ra[r]
			if (rb[r] < lo2[c]) lo2[c] = rb[r]; if (rb[r] > hi2[c]) hi2[c] = rb[r]
		}
		printf "base oauth/scram,%s,median,ratio,%.3f\n", c, R1[c] > medf
		printf "extra oauth/scram,%s,median,ratio,%.3f\n", c, R2[c] > medf
		printf "extra oauth/base oauth,%s,median,ratio,%.3f\n", c, M["extra oauth", c, "logins_per_s"] / M["base oauth", c, "logins_per_s"] > medf
	}
	printf "\nlogins/s, medians of %d rounds; oauth ÷ scram: the median of the rounds\x27 ratios (their range)\n\n", rounds
	printf "| clients | phase 1: oauth | scram | oauth ÷ scram | phase 2 (+%d issuers): oauth | scram | oauth ÷ scram | oauth, phase 2 ÷ phase 1 |\n", extra
	printf "|---:|---:|---:|---:|---:|---:|---:|---:|\n"
	for (k = 1; k <= nc; k++) {
		c = cs[k]
		printf "| %s | %.1f | %.1f | %.2f (%.2f–%.2f) | %.1f | %.1f | %.2f (%.2f–%.2f) | %.2f |\n", c,
			M["base oauth", c, "logins_per_s"], M["base scram", c, "logins_per_s"], R1[c], lo1[c], hi1[c],
			M["extra oauth", c, "logins_per_s"], M["extra scram", c, "logins_per_s"], R2[c], lo2[c], hi2[c],
			M["extra oauth", c, "logins_per_s"] / M["base oauth", c, "logins_per_s"]
	}
	printf "\nper-login latency, ms, median / p95 (medians of the rounds)\n\n"
	printf "| clients | phase 1: oauth | scram | phase 2 (+%d issuers): oauth | scram |\n|---:|---:|---:|---:|---:|\n", extra
	for (k = 1; k <= nc; k++) {
		c = cs[k]
		printf "| %s", c
		for (s = 1; s <= 4; s++)
			printf " | %.2f / %.2f", M[series[s], c, "median_ms"], M[series[s], c, "p95_ms"]
		printf " |\n"
	}
	printf "\n%d issuers added in %s s (one statement)\n\n", extra, addsec
	printf "| | before | after phase 1 | after adding issuers | after phase 2 |\n|---|---:|---:|---:|---:|\n"
	split("before|after phase 1|after adding issuers|after phase 2", when, "|")
	row("rss worker", "pid", "jwt login snapshot: pid")
	row("rss worker", "VmRSS_kB", "jwt login snapshot: VmRSS kB")
	row("rss worker", "RssAnon_kB", "jwt login snapshot: RssAnon kB (private)")
	row("rss worker", "RssShmem_kB", "jwt login snapshot: RssShmem kB (shared memory touched)")
	row("rss postmaster", "VmRSS_kB", "postmaster: VmRSS kB")
	row("rss postmaster", "RssAnon_kB", "postmaster: RssAnon kB (private)")
	row("snapshot", "bytes", "snapshot file, bytes")
	row("issuers", "count", "rows in jwt_issuers")
}
function foreach_metric(s, c,    mm, i, name) {
	split("logins_per_s median_ms p95_ms seconds", mm, " ")
	for (i = 1; i <= 4; i++) {
		name = mm[i]
		M[s, c, name] = median(s SUBSEP c SUBSEP name)
		printf "%s,%s,median,%s,%s\n", s, c, name, M[s, c, name] > medf
	}
}
function row(s, metric, label,    i) {
	printf "| %s", label
	for (i = 1; i <= 4; i++) printf " | %s", m[s, when[i], metric]
	printf " |\n"
}
' "$CSV" >"$WORK/table.md"
cat "$WORK/medians.csv" >>"$CSV"
# the server's complaints from phase 1 on (a refused login is logged as
# FATAL; the refusals while the first snapshot was being written are not
# counted)
tail -c +$((LOG_FROM + 1)) "$LOG" >"$WORK/measured.log"
complaints=$(grep -cE '(WARNING|ERROR|FATAL|PANIC):' "$WORK/measured.log" || true)
printf 'server log,,,warnings_or_worse,%s\n' "$complaints" >>"$CSV"
printf '\nserver log from phase 1 on: %s line(s) of WARNING or worse\n' "$complaints" >>"$WORK/table.md"
if [ "$complaints" != 0 ]; then
	grep -E '(WARNING|ERROR|FATAL|PANIC):' "$WORK/measured.log" | head -n 5 >>"$WORK/table.md"
fi
cp "$CSV" "$HERE/results.csv"
echo
cat "$WORK/table.md"
echo
say "run.sh: wrote $HERE/results.csv"
