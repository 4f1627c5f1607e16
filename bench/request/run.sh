#!/usr/bin/env bash
# bench/request/run.sh: what verifying the token in the database costs on
# PostgREST's request path, directly and through PgBouncer.  See README.md
# beside this file.
#
#   PGHOST=/socket/dir PGPORT=... PGUSER=postgres bash bench/request/run.sh
#
# pgbench runs one transaction per request, three ways, with 1,000 users
# (each transaction one of them at random, their tokens reused):
#   a_es256, a_hs256  BEGIN; jwt_authenticate(the user's token) with the role
#                     switch; a query under RLS on jwt_claim('sub'); COMMIT
#   b_guc             BEGIN; set_config of role and request.jwt.claims (the
#                     application verified the token); a query under RLS on
#                     request.jwt.claims; COMMIT
#   c_none            BEGIN; the same row lookup; the query, no policy; COMMIT
# each straight to the server and through a PgBouncer (transaction pooling)
# that the script starts on a unix socket of its own.
#
# Runs against the server the PG* environment names (a unix socket: PGHOST a
# directory), as a superuser, where the extension jwt is already installed;
# it installs nothing into the server.  It makes a database of its own
# (BENCH_DB, default jwt_bench_request) and the roles jwt_bench_login and
# jwt_bench_user, and drops them at the end.  PgBouncer logs in as
# jwt_bench_login without a password: the server must trust local
# connections.  Settings, from the environment:
#
#   DURATION=5    seconds per pgbench run
#   WARMUP=2      seconds at the start of each run left out of the figures
#   ROUNDS=6      rounds; each runs the four variants back to back on one
#                 path, then on the other, in an order that turns from round
#                 to round; tps and latencies are medians over the rounds,
#                 ratios medians of each round's ratios
#   CLIENTS=8     pgbench clients, on either path
#   THREADS=2     pgbench threads
#   POOL_SIZE=4   PgBouncer's server connections (default_pool_size)
#   USERS=1000    users, each with an ES256 and an HS256 token
#   ROWS=20       rows per user, which each request reads
#   WARM=1        each backend verifies all the tokens once, on the first
#                 transaction it serves (in the WARMUP), so that its caches
#                 are a long-lived connection's; WARM=0 leaves them cold
#   ISSUERS=0     trusted issuers put in the key table beside our own keys,
#                 each with its row and one ES256 key (the tenants of a B2B
#                 product); the requests' tokens are our own, so this shows
#                 what a large key table costs a request
#   VERIFY_CACHE_SIZE=   jwt.verify_cache_size for the login role (empty:
#                 the server's setting, by default 1024)
#   PGBENCH=pgbench  PGBOUNCER=pgbouncer   the programs
#
# Writes results.csv and chart.png beside this file (with ISSUERS, results-issuersN.csv
# and chart-issuersN.png), and prints the table.
# A benchmark, not a test: it checks that every transaction succeeded and
# saw exactly its user's rows (a failed check is a division by zero, which
# stops pgbench), and asserts nothing about the figures.

set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

DURATION=${DURATION:-5}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-6}
CLIENTS=${CLIENTS:-8}
THREADS=${THREADS:-2}
POOL_SIZE=${POOL_SIZE:-4}
USERS=${USERS:-1000}
ROWS=${ROWS:-20}
ISSUERS=${ISSUERS:-0}
# a run with issuers writes results-issuersN.csv and chart-issuersN.png
SUFFIX=
[ "$ISSUERS" -gt 0 ] && SUFFIX=-issuers$ISSUERS
WARM=${WARM:-1}
VERIFY_CACHE_SIZE=${VERIFY_CACHE_SIZE:-}
DB=${BENCH_DB:-jwt_bench_request}
LOGIN=jwt_bench_login           # the pgbench scripts name both roles
WEB_USER=jwt_bench_user
BOUNCER_PORT=6432               # on a socket in a directory of our own

VARIANTS=(a_es256 a_hs256 b_guc c_none)
PATHS=(direct pgbouncer)

say() { printf '%s\n' "$*" >&2; }
die() { say "run.sh: $*"; exit 1; }

# ---- tools: pgbench, PgBouncer, gnuplot for the chart
need_pkgs=()
PGBENCH=${PGBENCH:-$(command -v pgbench || true)}
PGBOUNCER=${PGBOUNCER:-$(command -v pgbouncer || echo /usr/sbin/pgbouncer)}
[ -n "$PGBENCH" ] || die "pgbench not found (put the server's bin directory on PATH, or set PGBENCH)"
[ -x "$PGBOUNCER" ] || need_pkgs+=(pgbouncer)
command -v gnuplot >/dev/null || need_pkgs+=(gnuplot-nox)
if [ ${#need_pkgs[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		say "installing ${need_pkgs[*]}"
		apt-get update -qq >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			"${need_pkgs[@]}" >/dev/null
		PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
	else
		die "missing: ${need_pkgs[*]} (install them, or run as root on Debian)"
	fi
fi
command -v psql >/dev/null || die "psql not found"

# ---- the server: a unix socket, a superuser, the extension available
SOCK=${PGHOST:-/var/run/postgresql}
PORT=${PGPORT:-5432}
case $SOCK in
/*) ;;
*) die "PGHOST must be a unix socket directory (PgBouncer and pgbench use unix sockets only)" ;;
esac
export PGHOST=$SOCK PGPORT=$PORT
psql -X -q -d postgres -c 'SELECT 1' >/dev/null ||
	die "cannot connect to the server (set PGHOST, PGPORT, PGUSER)"
[ "$(psql -X -At -d postgres -c 'SELECT rolsuper FROM pg_roles WHERE rolname = current_user')" = t ] ||
	die "PGUSER must be a superuser (the script makes roles and sets jwt.role_claim)"
[ "$(psql -X -At -d postgres -c "SELECT count(*) FROM pg_available_extensions WHERE name = 'jwt'")" = 1 ] ||
	die "the extension jwt must be installed on the server"

# The extension's library as the server sees it: when it changes during the
# run (someone reinstalled it), the rounds may have measured different builds.
jwt_so_stamp() {
	psql -X -At -d postgres -c "SELECT (pg_stat_file(setting || '/jwt.so')).modification
	                            FROM pg_config WHERE name = 'PKGLIBDIR'" 2>/dev/null || echo unknown
}
so_before=$(jwt_so_stamp)

# ---- clean-up on every way out: PgBouncer, the database, the roles, files
WORK=$(mktemp -d /tmp/jwt-bench-request.XXXXXX)
BDIR=
drop_all() {
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" 2>/dev/null || true
	psql -X -q -d postgres -c "DROP ROLE IF EXISTS $LOGIN" -c "DROP ROLE IF EXISTS $WEB_USER" \
		2>/dev/null || true
}
stop_bouncer() {
	[ -n "$BDIR" ] || return 0
	local pid
	pid=$(cat "$BDIR/pgbouncer.pid" 2>/dev/null || true)
	if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
	rm -rf "$BDIR"
	BDIR=
}
cleanup() {
	if [ -n "${PGBENCH_PID:-}" ]; then
		kill "$PGBENCH_PID" 2>/dev/null || true
		wait "$PGBENCH_PID" 2>/dev/null || true
	fi
	stop_bouncer
	drop_all
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

drop_all
createdb "$DB"
psql_db() { psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

say "server: $(psql_db -At -c 'SELECT version()')"
say "jwt: $(psql_db -At -c "SELECT default_version FROM pg_available_extensions WHERE name = 'jwt'"), jwt.so of $so_before"
say "pgbench: $("$PGBENCH" --version); pgbouncer: $("$PGBOUNCER" --version | head -1)"
say "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- the database: keys, roles, users and their tokens, documents, policies
say "setting up $USERS users, $ROWS rows each"
psql_db -v users="$USERS" -v rows="$ROWS" -v login="$LOGIN" -v web_user="$WEB_USER" \
	-v db="$DB" -f "$HERE/setup.sql" >"$WORK/setup.out"
if [ -n "$VERIFY_CACHE_SIZE" ]; then
	psql_db -c "ALTER ROLE $LOGIN IN DATABASE $DB SET jwt.verify_cache_size = $VERIFY_CACHE_SIZE"
fi
if [ "$ISSUERS" -gt 0 ]; then
	say "adding $ISSUERS trusted issuers, one ES256 key each"
	psql_db -q <<EOF
INSERT INTO jwt_issuers (issuer)
SELECT format('https://tenant%s.example', g) FROM generate_series(1, $ISSUERS) g;
INSERT INTO jwt_keys (kid, alg, jwk, issuer)
SELECT 'k1', 'ES256', (jwt_jwk_generate('ES256') - 'd') || '{"kid": "k1", "use": "sig"}',
       format('https://tenant%s.example', g)
FROM generate_series(1, $ISSUERS) g;
ANALYZE jwt_issuers; ANALYZE jwt_keys;
EOF
	say "key table: $(psql_db -At -c 'SELECT count(*) FROM jwt_issuers') issuers, $(psql_db -At -c 'SELECT count(*) FROM jwt_keys') keys"
fi
psql_db <<'EOF'
CREATE SCHEMA bench;
CREATE TABLE bench.run (id int PRIMARY KEY, round int, path text, variant text,
                        started double precision, processed bigint, pgbench_tps double precision,
                        cpu_from double precision, cpu_to double precision, cpu_s double precision,
                        all_cpu_s double precision);
CREATE TABLE bench.tx (run int, client int, txno bigint, lat_us bigint, done double precision);
EOF

# ---- PgBouncer: transaction pooling, CLIENTS over POOL_SIZE server connections
BDIR=$(mktemp -d /tmp/jwt-bench-pgbouncer.XXXXXX)
cat >"$BDIR/pgbouncer.ini" <<EOF
[databases]
$DB = host=$SOCK port=$PORT dbname=$DB
[pgbouncer]
listen_addr =
listen_port = $BOUNCER_PORT
unix_socket_dir = $BDIR
auth_type = trust
auth_file = $BDIR/users.txt
pool_mode = transaction
default_pool_size = $POOL_SIZE
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = $((CLIENTS + 20))
logfile = $BDIR/pgbouncer.log
pidfile = $BDIR/pgbouncer.pid
EOF
printf '"%s" ""\n' "$LOGIN" >"$BDIR/users.txt"
if [ "$(id -u)" = 0 ]; then
	chown -R postgres: "$BDIR"
	runuser -u postgres -- "$PGBOUNCER" -d "$BDIR/pgbouncer.ini" >/dev/null 2>&1 ||
		die "PgBouncer did not start: $(tail -5 "$BDIR/pgbouncer.log" 2>/dev/null)"
else
	"$PGBOUNCER" -d "$BDIR/pgbouncer.ini" >/dev/null 2>&1 ||
		die "PgBouncer did not start: $(tail -5 "$BDIR/pgbouncer.log" 2>/dev/null)"
fi
for _ in $(seq 50); do
	[ -S "$BDIR/.s.PGSQL.$BOUNCER_PORT" ] && break
	sleep 0.1
done
[ -S "$BDIR/.s.PGSQL.$BOUNCER_PORT" ] || die "PgBouncer's socket did not appear"
psql -X -At -h "$BDIR" -p "$BOUNCER_PORT" -U "$LOGIN" -d "$DB" -c 'SELECT 1' >/dev/null ||
	die "cannot connect through PgBouncer: $(tail -5 "$BDIR/pgbouncer.log")"

# ---- one pgbench run: the per-transaction log into bench.tx
#
# Besides the log, CPU time as the scheduler counts it (/proc/PID/schedstat),
# sampled when the WARMUP ends and CPU_TAIL seconds before the run does, over
# the transactions completed in between: figures that other work on the
# machine disturbs less than throughput.  Two sums: the server's backends of
# the login role (CLIENTS of them direct, POOL_SIZE through PgBouncer), and
# everything the request path runs on (those backends, PgBouncer on its
# path, and pgbench's threads).  NULL where /proc does not show the
# backends (another machine, or another user's processes when we are not root).
CPU_TAIL=0.3
PGBENCH_PID=
path_cpu() { # "backend|other ns_on_cpu", one line per process or thread
	local pid task
	for pid in $(psql -X -At -d postgres -c "SELECT pid FROM pg_stat_activity
	                 WHERE datname = '$DB' AND usename = '$LOGIN' AND backend_type = 'client backend'"); do
		awk -v p="$pid" '{ print "b" p, $1 }' "/proc/$pid/schedstat" 2>/dev/null || true
	done
	for task in /proc/"$PGBENCH_PID"/task/*; do
		awk -v t="${task##*/}" '{ print "c" t, $1 }' "$task/schedstat" 2>/dev/null || true
	done
	if [ "$1" = pgbouncer ]; then
		awk '{ print "p", $1 }' "/proc/$(cat "$BDIR/pgbouncer.pid")/schedstat" 2>/dev/null || true
	fi
}
sleep_until() { # epoch seconds
	local d
	d=$(awk -v t="$1" -v now="$(date +%s.%N)" 'BEGIN { d = t - now; print (d > 0 ? d : 0) }')
	sleep "$d"
}
run_id=0
run_one() {
	local round=$1 path=$2 variant=$3 host port tag started processed failed lines tps
	local t1 t2 cpu_s all_cpu_s
	run_id=$((run_id + 1))
	tag="$WORK/log/$run_id"
	mkdir -p "$WORK/log"
	if [ "$path" = direct ]; then
		host=$SOCK port=$PORT
	else
		host=$BDIR port=$BOUNCER_PORT
	fi
	started=$(date +%s.%N)
	"$PGBENCH" -n -M simple -c "$CLIENTS" -j "$THREADS" -T "$DURATION" \
		-D warm=$((WARM == 1 ? 0 : 1)) -D users="$USERS" -D rows="$ROWS" \
		-f "$HERE/$variant.sql" --log --log-prefix="$tag" \
		-h "$host" -p "$port" -U "$LOGIN" "$DB" >"$WORK/pgbench.out" 2>&1 </dev/null &
	PGBENCH_PID=$!
	sleep_until "$(awk -v s="$started" -v w="$WARMUP" 'BEGIN { printf "%.6f", s + w }')"
	path_cpu "$path" >"$WORK/cpu1"
	t1=$(date +%s.%N)
	sleep_until "$(awk -v s="$started" -v d="$DURATION" -v e="$CPU_TAIL" 'BEGIN { printf "%.6f", s + d - e }')"
	path_cpu "$path" >"$WORK/cpu2"
	t2=$(date +%s.%N)
	if ! wait "$PGBENCH_PID"; then
		PGBENCH_PID=
		cat "$WORK/pgbench.out" >&2
		die "pgbench failed: round $round, $path, $variant"
	fi
	PGBENCH_PID=
	# the CPU seconds of what was alive at both samples (on the direct path
	# PgBouncer's idle server connections are among the backends, adding
	# nothing).  A run where fewer backends than pgbench's clients worked
	# between the samples (the first sample came before they connected)
	# has no CPU figure, rather than a wrong one: the ratios skip it.
	read -r cpu_s all_cpu_s < <(awk -v clients="$CLIENTS" -v path="$path" '
		NR == FNR { a[$1] = $2; next }
		($1 in a) { d = $2 - a[$1]; all += d; if ($1 ~ /^b/) { be += d; if (d > 0) busy++ } }
		END {
			need = (path == "pgbouncer") ? 1 : clients
			if (busy >= need && be > 0) printf "%.6f %.6f\n", be / 1e9, all / 1e9; else print "NULL NULL"
		}' \
		"$WORK/cpu1" "$WORK/cpu2")
	processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$WORK/pgbench.out")
	failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$WORK/pgbench.out")
	tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$WORK/pgbench.out")
	lines=$(cat "$tag".* | wc -l)
	if [ -z "$processed" ] || [ "${failed:-0}" != 0 ] || [ "$lines" != "$processed" ]; then
		cat "$WORK/pgbench.out" >&2
		die "round $round, $path, $variant: $processed transactions, ${failed:-?} failed, $lines logged"
	fi
	psql_db -c "INSERT INTO bench.run VALUES ($run_id, $round, '$path', '$variant', $started,
	                                          $processed, $tps, $t1, $t2, $cpu_s, $all_cpu_s)"
	# the log: client transaction latency_us script epoch_s epoch_us
	cat "$tag".* | awk -v r="$run_id" '{ printf "%d\t%d\t%d\t%d\t%d.%06d\n", r, $1, $2, $3, $5, $6 }' |
		psql_db -c "COPY bench.tx FROM STDIN"
	rm -f "$tag".*
	say "  $(printf '%-9s %-8s' "$path" "$variant") $processed transactions, pgbench's tps $tps; CPU: backends ${cpu_s} s, all ${all_cpu_s} s"
}

# ---- the rounds: every variant on both paths, the order turning each round
say "$ROUNDS rounds of ${#VARIANTS[@]} variants x ${#PATHS[@]} paths, ${DURATION} s each" \
	"($CLIENTS clients; PgBouncer: $POOL_SIZE server connections)"
t_start=$(date +%s)
for round in $(seq 1 "$ROUNDS"); do
	say "round $round of $ROUNDS"
	if [ $((round % 2)) = 1 ]; then
		order=(direct pgbouncer)
	else
		order=(pgbouncer direct)
	fi
	n=${#VARIANTS[@]}
	for path in "${order[@]}"; do
		for i in $(seq 0 $((n - 1))); do
			run_one "$round" "$path" "${VARIANTS[$(((i + round - 1) % n))]}"
		done
	done
done
t_rounds=$(($(date +%s) - t_start))

# ---- the verified-signature memo with USERS tokens taken at random, in one
# backend after a first pass over them all: the share of ES256 requests
# whose signature it answers in the steady state of the runs above.
memo=$(psql_db -At -F ' ' <<EOF
${VERIFY_CACHE_SIZE:+SET jwt.verify_cache_size = $VERIFY_CACHE_SIZE;}
SELECT count(*) FROM bench_users WHERE jwt_verify(es256) IS NOT NULL \\gset warm_
SELECT hits, misses FROM jwt_cache_stats() WHERE cache = 'verify' \\gset b_
SELECT count(jwt_verify(u.es256)) AS n
FROM (SELECT 1 + floor(random() * $USERS)::int AS id FROM generate_series(1, 20000) OFFSET 0) AS r
JOIN bench_users AS u USING (id) \\gset
SELECT round(100.0 * (hits - :b_hits) / nullif(hits - :b_hits + misses - :b_misses, 0), 1), capacity
FROM jwt_cache_stats() WHERE cache = 'verify';
EOF
)
read -r memo_hit memo_cap <<<"$memo"

# ---- the figures: each run's window after WARMUP; medians over the rounds
psql_db -c "COPY (
WITH per_run AS (
  SELECT r.id, r.round, r.path, r.variant,
         count(*) / (max(t.done) - (r.started + $WARMUP)) AS tps,
         percentile_disc(0.5) WITHIN GROUP (ORDER BY t.lat_us) / 1000.0 AS p50_ms,
         percentile_disc(0.99) WITHIN GROUP (ORDER BY t.lat_us) / 1000.0 AS p99_ms,
         r.cpu_s * 1e6 / nullif(count(*) FILTER (WHERE t.done BETWEEN r.cpu_from AND r.cpu_to), 0) AS cpu_us,
         r.all_cpu_s * 1e6 / nullif(count(*) FILTER (WHERE t.done BETWEEN r.cpu_from AND r.cpu_to), 0) AS all_cpu_us
  FROM bench.run AS r
  JOIN bench.tx AS t ON t.run = r.id AND t.done >= r.started + $WARMUP
  GROUP BY r.id
),
med AS (
  SELECT path, variant,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY tps) AS tps,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY p50_ms) AS p50_ms,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY p99_ms) AS p99_ms,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY cpu_us) AS cpu_us,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY all_cpu_us) AS all_cpu_us,
         min(tps) AS tps_min, max(tps) AS tps_max, count(*) AS rounds
  FROM per_run GROUP BY path, variant
),
-- each round's ratios: the variants of a round and path ran back to back
ratio AS (
  SELECT x.path, x.variant,
         -- (a run without a figure, or with 0, is left out, never divided by)
         percentile_cont(0.5) WITHIN GROUP (ORDER BY x.tps / nullif(b.tps, 0)) AS over_guc,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY x.tps / nullif(c.tps, 0)) AS over_none,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY b.all_cpu_us / nullif(x.all_cpu_us, 0)) AS cpu_over_guc,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY c.all_cpu_us / nullif(x.all_cpu_us, 0)) AS cpu_over_none
  FROM per_run AS x
  JOIN per_run AS b ON (b.round, b.path, b.variant) = (x.round, x.path, 'b_guc')
  JOIN per_run AS c ON (c.round, c.path, c.variant) = (x.round, x.path, 'c_none')
  GROUP BY x.path, x.variant
),
label (variant, ord, label) AS (
  VALUES ('a_es256', 1, '(a) jwt_authenticate ES256'),
         ('a_hs256', 2, '(a) jwt_authenticate HS256'),
         ('b_guc',   3, '(b) trusted request.jwt.claims'),
         ('c_none',  4, '(c) no authentication')
)
SELECT m.path, m.variant, l.label,
       round(m.tps::numeric) AS tps,
       round(m.p50_ms::numeric, 3) AS p50_ms,
       round(m.p99_ms::numeric, 3) AS p99_ms,
       round(m.tps_min::numeric) AS tps_min,
       round(m.tps_max::numeric) AS tps_max,
       m.rounds,
       CASE WHEN m.variant LIKE 'a_%' THEN round(r.over_guc::numeric, 3) END AS tps_over_guc,
       CASE WHEN m.variant <> 'c_none' THEN round(r.over_none::numeric, 3) END AS tps_over_none,
       round(m.cpu_us::numeric, 1) AS backend_cpu_us,
       round(m.all_cpu_us::numeric, 1) AS all_cpu_us,
       CASE WHEN m.variant LIKE 'a_%' THEN round(r.cpu_over_guc::numeric, 3) END AS cpu_tps_over_guc,
       CASE WHEN m.variant <> 'c_none' THEN round(r.cpu_over_none::numeric, 3) END AS cpu_tps_over_none
FROM med AS m
JOIN label AS l USING (variant)
JOIN ratio AS r USING (path, variant)
ORDER BY m.path, l.ord
) TO STDOUT WITH (FORMAT csv, HEADER)" >"$HERE/results$SUFFIX.csv"

# the warm passes (each client's first transaction) must end within WARMUP
late=$(psql_db -At -c "
SELECT round(max(first_done - r.started)::numeric, 2)
FROM bench.run AS r,
     LATERAL (SELECT max(done) AS first_done
              FROM (SELECT DISTINCT ON (client) done FROM bench.tx
                    WHERE run = r.id ORDER BY client, txno) AS f) AS w")
say "the clients' first transactions (warm passes) ended at most $late s into their run (WARMUP $WARMUP s)"
if awk -v l="$late" -v w="$WARMUP" 'BEGIN { exit !(l + 0 > w + 0) }'; then
	say "WARNING: a warm pass ran past WARMUP: that run's first figures include it (raise WARMUP)"
fi

# each round's throughput ratios, to show their spread
say "tps of (a) over (b) and over (c), round by round:"
psql_db -At -F ' ' -c "
WITH per_run AS (
  SELECT r.round, r.path, r.variant, count(*) / (max(t.done) - (r.started + $WARMUP)) AS tps
  FROM bench.run AS r
  JOIN bench.tx AS t ON t.run = r.id AND t.done >= r.started + $WARMUP
  GROUP BY r.id
)
SELECT format('  %-9s %-7s ÷ (b): %s;  ÷ (c): %s', a.path, a.variant,
              string_agg(round((a.tps / b.tps)::numeric, 2)::text, ' ' ORDER BY a.round),
              string_agg(round((a.tps / c.tps)::numeric, 2)::text, ' ' ORDER BY a.round))
FROM per_run AS a
JOIN per_run AS b ON (b.round, b.path, b.variant) = (a.round, a.path, 'b_guc')
JOIN per_run AS c ON (c.round, c.path, c.variant) = (a.round, a.path, 'c_none')
WHERE a.variant LIKE 'a_%'
GROUP BY a.path, a.variant
ORDER BY a.path, a.variant" >&2

# ---- the table, as Markdown
printf '\npgbench, %s clients (PgBouncer: %s server connections, transaction pooling), -M simple,\n' \
	"$CLIENTS" "$POOL_SIZE"
printf '%s s runs less the first %s s, median of %s rounds; latencies per transaction\n\n' \
	"$DURATION" "$WARMUP" "$ROUNDS"
awk -F, '
NR == 1 {
	# (÷ and µ take two bytes: the header is laid out by hand)
	print "|           |                                |        |          |          |  tps ÷  |  tps ÷  | backends | all CPU | all CPU ratio | all CPU ratio |"
	print "| path      | variant                        |    tps |   p50 ms |   p99 ms |     (b) |     (c) | µs/tx    | µs/tx   | (b) ÷ this    | (c) ÷ this    |"
	print "|-----------|--------------------------------|-------:|---------:|---------:|--------:|--------:|---------:|--------:|--------------:|--------------:|"
	next
}
function c(v) { return v == "" ? "-" : v }
{
	printf "| %-9s | %-30s | %6s | %8s | %8s | %7s | %7s | %8s | %7s | %13s | %13s |\n", $1, $3, $4, $5, $6,
		c($10), c($11), c($12), c($13), c($14), c($15)
}' "$HERE/results$SUFFIX.csv"
printf '\nES256 memo (jwt.verify_cache_size = %s): %s%% of random requests over %s tokens answered from it\n' \
	"$memo_cap" "$memo_hit" "$USERS"
say "the rounds took $t_rounds s; load average now: $(cut -d" " -f1-3 /proc/loadavg)"

# ---- the chart: tps per variant, direct beside PgBouncer; beside it the
# backends' CPU per transaction
awk -F, 'NR > 1 {
	key = $2; label[key] = $3; tps[key, $1] = $4; lo[key, $1] = $7; hi[key, $1] = $8
	cpu[key, $1] = ($12 == "" ? "NaN" : $12)
	if (!(key in seen)) { seen[key] = 1; order[++n] = key }
} END {
	for (i = 1; i <= n; i++) {
		k = order[i]
		printf "\"%s\",%s,%s,%s,%s,%s,%s,%s,%s\n", label[k],
			tps[k, "direct"], lo[k, "direct"], hi[k, "direct"],
			tps[k, "pgbouncer"], lo[k, "pgbouncer"], hi[k, "pgbouncer"],
			cpu[k, "direct"], cpu[k, "pgbouncer"]
	}
}' "$HERE/results$SUFFIX.csv" >"$WORK/chart.csv"
ymax=$(awk -F, '{ for (i = 2; i <= 7; i++) if ($i + 0 > m) m = $i + 0 } END { print m * 1.15 }' "$WORK/chart.csv")
cmax=$(awk -F, '{ for (i = 8; i <= 9; i++) if ($i + 0 > m) m = $i + 0 } END { print (m > 0 ? m * 1.25 : 1) }' "$WORK/chart.csv")
gnuplot <<EOF
set terminal pngcairo noenhanced size 1500,650 font "sans,11"
set output "$HERE/chart$SUFFIX.png"
set datafile separator ","
set datafile missing "NaN"
set multiplot layout 1,2 title "The request path, $CLIENTS pgbench clients (PgBouncer: $POOL_SIZE server connections), median of $ROUNDS rounds"
set grid ytics
set style data histograms
set style fill solid 0.85 border -1
set boxwidth 0.9
set xtics scale 0 font ",9" rotate by 15 right
set key inside top left vertical opaque box font ",9"
set title "transactions per second (higher is better); whiskers: slowest and fastest round"
set ylabel "transactions per second"
set yrange [0:$ymax]
set style histogram errorbars gap 1 lw 1
plot "$WORK/chart.csv" using 2:3:4:xtic(1) title "direct to PostgreSQL" lc rgb "#1f77b4", \\
     "" using 5:6:7 title "through PgBouncer" lc rgb "#ff7f0e", \\
     "" using (\$0 - 1.0/6):(0):(sprintf("%d", \$2)) with labels offset 0,1 font ",9" notitle, \\
     "" using (\$0 + 1.0/6):(0):(sprintf("%d", \$5)) with labels offset 0,1 font ",9" notitle
set title "CPU of the server's backends per transaction, µs (lower is better)"
set ylabel "µs per transaction"
set yrange [0:$cmax]
set style histogram clustered gap 1
plot "$WORK/chart.csv" using 8:xtic(1) title "direct to PostgreSQL" lc rgb "#1f77b4", \\
     "" using 9 title "through PgBouncer" lc rgb "#ff7f0e", \\
     "" using (\$0 - 1.0/6):8:(sprintf("%.0f", \$8)) with labels offset 0,0.7 font ",9" notitle, \\
     "" using (\$0 + 1.0/6):9:(sprintf("%.0f", \$9)) with labels offset 0,0.7 font ",9" notitle
unset multiplot
EOF

say "wrote $HERE/results.csv and $HERE/chart.png"
so_after=$(jwt_so_stamp)
if [ "$so_before" != "$so_after" ]; then
	say "WARNING: jwt.so changed during the run ($so_before, then $so_after):"
	say "         the rounds may have measured different builds; run again"
fi
