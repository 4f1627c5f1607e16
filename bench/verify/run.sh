#!/usr/bin/env bash
# bench/verify/run.sh: what jwt_sign and jwt_verify cost per call, beside
# the limit (plain C on OpenSSL, c_limit.c) and the usual alternative (pgjwt
# style SQL on pgcrypto, pgjwt.sql).  See README.md beside this file.
#
#   PGHOST=... PGPORT=... PGUSER=... bash bench/verify/run.sh
#
# Runs against the server the PG* environment names, where the extension jwt
# is already installed; it installs nothing into the server.  It makes a
# database of its own (BENCH_DB, default jwt_bench_verify) and drops it at
# the end.  Settings, from the environment:
#
#   TARGET=1      seconds each in-server measurement should last: the calls
#                 per operation are calibrated to that (at most MAX_ROWS)
#   N=            instead, exactly N calls per measurement for every operation
#   ROUNDS=3      rounds; each times every operation once in the server and
#                 once with c_limit; the median over the rounds is reported
#   PROBE=200     calls per operation when calibrating and warming up
#   MAX_ROWS=2000000
#   C_BATCH=0.3   seconds per timed batch of c_limit
#   C_REPEATS=3   batches per c_limit operation and round; their median is
#                 the round's figure
#
# Writes results.csv and chart.png beside this file, and prints the table.
# A benchmark, not a test: it checks that every call succeeds, and asserts
# nothing about the figures.

set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KEYS=$(cd "$HERE/../../test/fixtures/keys" && pwd)

TARGET=${TARGET:-1}
N=${N:-0}
ROUNDS=${ROUNDS:-3}
PROBE=${PROBE:-200}
MAX_ROWS=${MAX_ROWS:-2000000}
C_BATCH=${C_BATCH:-0.3}
C_REPEATS=${C_REPEATS:-3}
DB=${BENCH_DB:-jwt_bench_verify}

# A made-up secret, longer than the hash as RFC 7518 §3.2 asks.
HS_SECRET='jwt-bench: a made-up HS256 secret of 48 bytes...'

say() { printf '%s\n' "$*" >&2; }
die() { say "run.sh: $*"; exit 1; }

# ---- tools: a compiler and OpenSSL's headers for c_limit, gnuplot for the chart
need_pkgs=()
command -v gcc >/dev/null || need_pkgs+=(gcc)
command -v make >/dev/null || need_pkgs+=(make)
[ -f /usr/include/openssl/evp.h ] || need_pkgs+=(libssl-dev)
command -v gnuplot >/dev/null || need_pkgs+=(gnuplot-nox)
if [ ${#need_pkgs[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		say "installing ${need_pkgs[*]}"
		apt-get update -qq >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
	else
		die "missing: ${need_pkgs[*]} (install them, or run as root on Debian)"
	fi
fi
command -v psql >/dev/null || die "psql not found"
make -s -C "$HERE" c_limit

# ---- the server
psql -X -q -d postgres -c 'SELECT 1' >/dev/null ||
	die "cannot connect to the server (set PGHOST, PGPORT, PGUSER)"
have=$(psql -X -At -d postgres -c \
	"SELECT count(*) FROM pg_available_extensions WHERE name IN ('jwt', 'pgcrypto')")
[ "$have" = 2 ] || die "extensions jwt and pgcrypto must be available on the server"

# The extension's library as the server sees it: when it changes during the
# run (someone reinstalled it), the rounds may have measured different builds.
jwt_so_stamp() {
	psql -X -At -d postgres -c "SELECT (pg_stat_file(setting || '/jwt.so')).modification
	                            FROM pg_config WHERE name = 'PKGLIBDIR'" 2>/dev/null || echo unknown
}
so_before=$(jwt_so_stamp)

WORK=$(mktemp -d)
cleanup() {
	dropdb --if-exists "$DB" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
dropdb --if-exists "$DB" 2>/dev/null
createdb "$DB"

psql_db() { psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

say "server: $(psql_db -At -c 'SELECT version()')"
say "jwt: $(psql_db -At -c "SELECT default_version FROM pg_available_extensions WHERE name = 'jwt'"), jwt.so of $so_before"
say "openssl: $(openssl version 2>/dev/null || echo '?'); cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"

# ---- in the server: keys, tokens, calibration (bench.sql)
psql_db \
	-v target="$TARGET" -v fixed_n="$N" -v probe="$PROBE" \
	-v max_rows="$MAX_ROWS" \
	-v k_hs_secret="$HS_SECRET" \
	-v k_rsa_priv="$(cat "$KEYS/rsa_priv_pkcs8.pem")" \
	-v k_rsa_pub="$(cat "$KEYS/rsa_pub_spki.pem")" \
	-v k_rsa_jwk_priv="$(cat "$KEYS/rsa_jwk_priv.json")" \
	-v k_rsa_jwk_pub="$(cat "$KEYS/rsa_jwk_pub.json")" \
	-v k_ec_priv="$(cat "$KEYS/ec256_priv_pkcs8.pem")" \
	-v k_ec_pub="$(cat "$KEYS/ec256_pub.pem")" \
	-v k_ec_jwk_priv="$(cat "$KEYS/ec256_jwk_priv.json")" \
	-v k_ec_jwk_pub="$(cat "$KEYS/ec256_jwk_pub.json")" \
	-v k_ed_priv="$(cat "$KEYS/ed25519_priv.pem")" \
	-v k_ed_pub="$(cat "$KEYS/ed25519_pub.pem")" \
	-v k_ed_jwk_priv="$(cat "$KEYS/ed25519_jwk_priv.json")" \
	-v k_ed_jwk_pub="$(cat "$KEYS/ed25519_jwk_pub.json")" \
	-f "$HERE/bench.sql"

# ---- the rounds: every operation in the server, then c_limit, ROUNDS times
# c_limit gets the very tokens jwt_verify verifies: each algorithm's table.
printf '%s' "$HS_SECRET" >"$WORK/hs_secret"
C_RUNS='HS256 hs256 - -
RS256 rs256 rsa_pub_spki.pem rsa_priv_pkcs8.pem
PS256 ps256 rsa_pub_spki.pem rsa_priv_pkcs8.pem
ES256 es256 ec256_pub.pem ec256_priv_pkcs8.pem
EdDSA eddsa ed25519_pub.pem ed25519_priv.pem'
while read -r alg tab pub priv; do
	psql_db -At -c "SELECT tok FROM bench.tok_$tab ORDER BY i" >"$WORK/$tab.tokens" </dev/null
done <<<"$C_RUNS"

: >"$WORK/c.txt"
for round in $(seq 1 "$ROUNDS"); do
	say "round $round of $ROUNDS: in the server"
	psql_db -c "CALL bench.measure_round($PROBE)" </dev/null
	say "round $round of $ROUNDS: the C limit"
	while read -r alg tab pub priv; do
		if [ "$alg" = HS256 ]; then
			keys=("$WORK/hs_secret")
		else
			keys=("$KEYS/$pub" "$KEYS/$priv")
		fi
		"$HERE/c_limit" -b "$C_BATCH" -r "$C_REPEATS" "$alg" "$WORK/$tab.tokens" \
			"${keys[@]}" >>"$WORK/c.txt" </dev/null
	done <<<"$C_RUNS"
done

# ---- the report: one row per operation, jwt beside its baselines
psql_db <<EOF
CREATE TABLE bench.c_result (impl text, alg text, action text, us double precision);
\\copy bench.c_result FROM '$WORK/c.txt' WITH (FORMAT text, DELIMITER ' ')
EOF

psql_db -c "COPY (
WITH c_med AS (
  SELECT alg, action, percentile_cont(0.5) WITHIN GROUP (ORDER BY us) AS us
  FROM bench.c_result GROUP BY alg, action
),
med AS (
  SELECT op, rows, (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY u)
                    FROM unnest(us) AS u) AS us
  FROM bench.op
),
line (ord, operation, jwt_op, c_alg, c_action, pg_op) AS (
  VALUES
    (1, 'HS256 verify (secret)', 'jwt HS256 verify secret', 'HS256', 'verify', 'pgcrypto HS256 verify secret'),
    (2, 'HS256 sign (secret)',   'jwt HS256 sign secret',   'HS256', 'sign',   'pgcrypto HS256 sign secret')
  UNION ALL
  SELECT 10 * a.n + o.n, a.alg || ' ' || o.label, 'jwt ' || a.alg || ' ' || o.op,
         a.alg, o.c_action, NULL
  FROM (VALUES (1, 'RS256'), (2, 'PS256'), (3, 'ES256'), (4, 'EdDSA')) AS a(n, alg),
       (VALUES (1, 'verify (PEM)',                       'verify pem', 'verify'),
               (2, 'verify (PEM; C parses it per call)', 'verify pem', 'verify-pem'),
               (3, 'verify (PEM; C prepared once)',      'verify pem', 'verify-prepared'),
               (4, 'verify (JWK)',                       'verify jwk', 'verify'),
               (5, 'sign (PEM)',                         'sign pem',   'sign'),
               (6, 'sign (JWK)',                         'sign jwk',   'sign')) AS o(n, label, op, c_action)
  -- EdDSA has no prehash: c_limit has no prepared-context figure for it
  WHERE NOT (a.alg = 'EdDSA' AND o.c_action = 'verify-prepared')
)
SELECT l.operation,
       round(j.us::numeric, 2) AS jwt_us,
       round(c.us::numeric, 2) AS c_us,
       round((j.us / c.us)::numeric, 1) AS jwt_over_c,
       round(p.us::numeric, 2) AS pgcrypto_us,
       round((p.us / j.us)::numeric, 1) AS pgcrypto_over_jwt,
       j.rows AS jwt_calls,
       p.rows AS pgcrypto_calls
FROM line AS l
JOIN med AS j ON j.op = l.jwt_op
LEFT JOIN c_med AS c ON c.alg = l.c_alg AND c.action = l.c_action
LEFT JOIN med AS p ON p.op = l.pg_op
ORDER BY l.ord
) TO STDOUT WITH (FORMAT csv, HEADER)" >"$HERE/results.csv"

scan_us=$(psql_db -At -c "SELECT round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY u)
                                        FROM unnest(us) AS u)::numeric, 3)
                          FROM bench.op WHERE impl = 'scan'")

# The table, as Markdown.  (Widths count bytes, and µ takes two: the header
# is laid out by hand.)
awk -F, -v scan="$scan_us" '
function cell(v) { return v == "" ? "-" : v }
NR == 1 {
	printf "| %-40s | %s | %s | %s | %s | %s |\n", "operation", "jwt µs/call",
		"C limit µs/call", "jwt ÷ C", "pgcrypto µs/call", "pgcrypto ÷ jwt"
	printf "|%s|%s:|%s:|%s:|%s:|%s:|\n", "------------------------------------------",
		"------------", "----------------", "--------", "-----------------", "---------------"
	next
}
{
	printf "| %-40s | %11s | %15s | %7s | %16s | %14s |\n", $1, cell($2), cell($3),
		cell($4), cell($5), cell($6)
}
END {
	printf "\nper-row overhead of the timed statement itself (no call): %s µs\n", scan
}
' "$HERE/results.csv"

# ---- the cached figure, on its own: one token verified over and over, so
# that after the first call its signature comes from the memo
# (jwt.verify_cache_size); HS256, which the memo leaves alone, beside it.
memo=$(psql_db -At <<'EOF2'
SET jit = off;
CREATE TEMP TABLE one AS
  SELECT (SELECT tok FROM bench.tok_es256 ORDER BY i LIMIT 1) AS es,
         (SELECT tok FROM bench.tok_hs256 ORDER BY i LIMIT 1) AS hs;
CREATE FUNCTION pg_temp.per_call(q text, n int) RETURNS double precision LANGUAGE plpgsql AS $f$
DECLARE
  t0 timestamptz;
  got bigint;
BEGIN
  EXECUTE format(q, 1000) INTO got;                    -- warm up
  t0 := clock_timestamp();
  EXECUTE format(q, n) INTO got;
  IF got <> n THEN
    RAISE EXCEPTION 'only % of % calls succeeded', got, n;
  END IF;
  RETURN extract(epoch FROM clock_timestamp() - t0) * 1e6 / n;
END $f$;
SELECT round(es::numeric, 2) || ' ' || round(hs::numeric, 2) || ' ' || round((es / hs)::numeric, 2)
FROM (SELECT
  pg_temp.per_call(format('SELECT count(*) FROM one, generate_series(1, %%s) AS g WHERE jwt_verify(CASE WHEN g > 0 THEN es END, %L) IS NOT NULL',
                          (SELECT k FROM bench.key WHERE name = 'ec_pub')), 50000) AS es,
  pg_temp.per_call(format('SELECT count(*) FROM one, generate_series(1, %%s) AS g WHERE jwt_verify(CASE WHEN g > 0 THEN hs END, %L) IS NOT NULL',
                          (SELECT k FROM bench.key WHERE name = 'hs_secret')), 50000) AS hs) AS m;
EOF2
)
read -r memo_es memo_hs memo_ratio <<<"$memo"
printf '\nrepeated verification of one token (verified-signature memo): ES256 %s µs/call, HS256 %s µs/call, ES256 ÷ HS256 = %s\n' \
	"$memo_es" "$memo_hs" "$memo_ratio"

# ---- the chart: µs per call, log scale, jwt beside its baselines
yrange=$(awk -F, 'NR > 1 {
	for (i = 2; i <= 5; i++)
		if (i != 4 && $i != "") {
			if (max == "" || $i + 0 > max) max = $i + 0
			if (min == "" || $i + 0 < min) min = $i + 0
		}
} END { printf "[%g:%g]", min / 2, max * 10 }' "$HERE/results.csv")
gnuplot <<EOF
set terminal pngcairo noenhanced size 1400,800 font "sans,10"
set output "$HERE/chart.png"
set datafile separator ","
set title "JWT sign and verify: microseconds per call (log scale; lower is better)"
set ylabel "µs per call"
set logscale y
set yrange $yrange
set grid ytics mytics
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set xtics rotate by 35 right scale 0 font ",9"
set key inside top left vertical opaque box
set bmargin 12
set lmargin 10
plot "$HERE/results.csv" using 2:xtic(1) title "jwt (in the server)" lc rgb "#1f77b4", \
     "" using 3 title "C limit (c_limit: OpenSSL 3, one thread)" lc rgb "#7f7f7f", \
     "" using 5 title "pgcrypto baseline (pgjwt-style SQL)" lc rgb "#d62728"
EOF

say "wrote $HERE/results.csv and $HERE/chart.png"
so_after=$(jwt_so_stamp)
if [ "$so_before" != "$so_after" ]; then
	say "WARNING: jwt.so changed during the run ($so_before, then $so_after):"
	say "         the rounds may have measured different builds; run again"
fi
