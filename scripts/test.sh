#!/usr/bin/env bash
# scripts/test.sh: every test suite, on every PostgreSQL version we support,
# each on a throwaway cluster of its own.
#
#   bash scripts/test.sh              15 (the machine's own) with every
#                                     suite, then 17 and 18, each in a Debian
#                                     root of its own (scripts/roots.sh), with
#                                     the suites whose behaviour depends on the
#                                     server; then pg_upgrade from 15 to 18
#                                     with the extension's data (test/upgrade)
#   bash scripts/test.sh --pg 17      one version (JWT_PG_VERSIONS="15 18"
#                                     picks several)
#   bash scripts/test.sh --here       this environment only (PG_MAJOR, default
#                                     15); --server-only for the subset
#   bash scripts/test.sh --cassert    the legs on an assert-enabled build of 15
#                                     (scripts/cassert.sh): the server-side
#                                     suites, then pg_regress and the attack
#                                     suite with debug_discard_caches = 1;
#                                     the default run has the first
#   bash scripts/test.sh --valgrind   pg_regress and the attack suite on the
#                                     assert-enabled build under Valgrind
#                                     (slow: not part of the default run)
#
# Installs what is missing (as root), builds, installs, starts a cluster,
# runs each suite and ends with one line "N passed, M failed" summing every
# suite of every version; each suite's line names its version.  Exits
# non-zero when anything failed.

HERE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE_DIR/lib.sh"
source "$HERE_DIR/cassert.sh"

mode=matrix
server_only=false
versions=${JWT_PG_VERSIONS:-15 17 18}
# the assert-enabled legs of the matrix (JWT_CASSERT_LEGS="" skips them;
# the discard leg takes more than 40 minutes: --cassert runs it)
legs=${JWT_CASSERT_LEGS-cassert}
# which suites a --here run has: all, server (--server-only), or one of
# the legs on the assert-enabled build
flavour=${JWT_FLAVOUR:-all}
while [ $# -gt 0 ]; do
	case $1 in
		--here) mode=here ;;
		--server-only) server_only=true ;;
		--pg) versions=$2; shift ;;
		--cassert) versions=; legs="cassert discard" ;;
		--valgrind) versions=; legs=valgrind ;;
		*) log "unknown argument $1"; exit 2 ;;
	esac
	shift
done
$server_only && [ "$flavour" = all ] && flavour=server

# ---- the matrix: each version in a process (and for 17, 18 a root) of its own
if [ "$mode" = matrix ]; then
	source "$HERE_DIR/roots.sh"
	trap 'unmount_root' EXIT
	lines=()
	total_pass=0
	total_fail=0
	# collect_leg LABEL SUMMARY T0: a leg's summary lines (or one failure
	# when it wrote none) and its total into lines and the totals
	collect_leg() {
		local label=$1 file=$2 took=$(( $(date +%s) - $3 )) l tp tf
		if [ -s "$file" ]; then
			while IFS= read -r l; do lines+=("$l"); done < <(grep -v '^total ' "$file")
			tp=$(grep '^total ' "$file" | cut -d' ' -f2)
			tf=$(grep '^total ' "$file" | cut -d' ' -f4)
		else
			lines+=("$(printf '%s %-20s %6d passed, %d failed' "$label" "(did not run)" 0 1)")
			tp=0
			tf=1
		fi
		lines+=("$(printf '%s %-20s %6d passed, %d failed  (%d min %02d s)' "$label" "all" "$tp" "$tf" $((took / 60)) $((took % 60)))")
		total_pass=$((total_pass + tp))
		total_fail=$((total_fail + tf))
		rm -f "$file"
	}
	for v in $versions; do
		summary=$(mktemp)
		t0=$(date +%s)
		log "PostgreSQL $v"
		if [ "$v" = 15 ]; then
			JWT_SUMMARY=$summary PG_MAJOR=15 bash "$HERE_DIR/test.sh" --here || true
		else
			in_root "$v" "$summary" /bin/bash /work/jwt/scripts/test.sh --here --server-only || true
		fi
		collect_leg "$(printf 'pg%-3s' "$v")" "$summary" "$t0"
	done
	# the same 15 on a server built with assertions, freed-memory clobbering
	# and Valgrind's client requests: each leg a process of its own
	if [ -n "$legs" ]; then
		t0=$(date +%s)
		prefix=$(ensure_cassert) || prefix=
		for leg in $legs; do
			summary=$(mktemp)
			log "PostgreSQL 15, assert-enabled: $leg"
			if [ -n "$prefix" ]; then
				case $leg in
					discard) extra="debug_discard_caches = 1" ;;
					*) extra= ;;
				esac
				wrapper=
				[ "$leg" = valgrind ] && wrapper=$(valgrind_wrapper "$prefix")
				JWT_SUMMARY=$summary PG_MAJOR=15 JWT_PG_BIN=$prefix/bin JWT_FLAVOUR=$leg \
					JWT_EXTRA_CONF=$extra JWT_POSTGRES_WRAPPER=$wrapper \
					bash "$HERE_DIR/test.sh" --here || true
			fi
			collect_leg "$(printf '15+%-8s' "$leg")" "$summary" "$t0"
			t0=$(date +%s)
		done
	fi
	# pg_upgrade from 15 to 18 with the extension's data, when both are run
	if [[ " $versions " == *" 15 "* && " $versions " == *" 18 "* ]]; then
		out=$(mktemp)
		t0=$(date +%s)
		log "suite: pg_upgrade 15 -> 18 (test/upgrade)"
		bash "$REPO/test/upgrade/run.sh" >"$out" 2>&1 || true
		grep -E '^FAIL' "$out" | head -n 40 || true
		tail -n 4 "$out"
		took=$(( $(date +%s) - t0 ))
		line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1 || true)
		tp=${line%% *}
		tf=$(echo "$line" | cut -d' ' -f3)
		[ -n "$line" ] || { tp=0; tf=1; }
		lines+=("$(printf '15→18 %-20s %6d passed, %d failed  (%d min %02d s)' "pg_upgrade" "$tp" "$tf" $((took / 60)) $((took % 60)))")
		total_pass=$((total_pass + tp))
		total_fail=$((total_fail + tf))
		rm -f "$out"
	fi
	echo
	printf '%s\n' "${lines[@]}"
	echo "$total_pass passed, $total_fail failed"
	[ "$total_fail" -eq 0 ]
	exit
fi

# ---- one version, here ------------------------------------------------------
# the suites of each flavour: a suite runs when want NAME says so
case $flavour in
	all) flavour_suites='*' ;;
	server) flavour_suites='pg_regress unit databases replica logical crash jwks login login-psql concurrency pooler attack memory hygiene server-log' ;;
	cassert) flavour_suites='pg_regress replica crash jwks concurrency attack memory server-log' ;;
	discard) flavour_suites='pg_regress attack server-log' ;;
	valgrind) flavour_suites='pg_regress attack server-log valgrind' ;;
	*) log "unknown flavour $flavour"; exit 2 ;;
esac
want() { [ "$flavour_suites" = '*' ] || [[ " $flavour_suites " == *" $1 "* ]]; }
LABEL=pg$PG_MAJOR
[ "$flavour" = all ] || [ "$flavour" = server ] || LABEL=15+$flavour

if $server_only || [ "$flavour" != all ]; then
	ensure_packages "${BASE_PACKAGES[@]}" python3-jwt python3-jwcrypto python3-cryptography pgbouncer util-linux mount
else
	ensure_packages "${BASE_PACKAGES[@]}" clang libclang-rt-14-dev \
		python3-jwt python3-jwcrypto python3-cryptography pgbouncer util-linux mount
fi
log "PostgreSQL $("$PG_CONFIG" --version)"
build_and_install
# every suite runs with statements logged and pg_stat_statements loaded, so
# the hygiene suite can show that none of the extension's secrets end up there
CLUSTER_OPTIONS="-c shared_preload_libraries=pg_stat_statements -c log_statement=all \
 -c log_min_error_statement=error -c log_error_verbosity=verbose"
start_cluster

total_pass=0
total_fail=0
summary=()

# record SUITE PASSED FAILED
record() {
	local took=
	[ -n "${SUITE_T0:-}" ] && took=$(printf '  (%d s)' $(( $(date +%s) - SUITE_T0 )))
	SUITE_T0=
	summary+=("$(printf '%-11s %-20s %6d passed, %d failed%s' "$LABEL" "$1" "$2" "$3" "$took")")
	total_pass=$((total_pass + $2))
	total_fail=$((total_fail + $3))
}

# count a runner's "N passed, M failed" closing line from its output file
record_from_line() {
	local suite=$1 out=$2 line
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1 || true)
	if [ -z "$line" ]; then
		record "$suite" 0 1		# the runner died before reporting
	else
		record "$suite" "$(echo "$line" | cut -d' ' -f1)" "$(echo "$line" | cut -d' ' -f3)"
	fi
}

out=$(mktemp)
if want pg_regress; then
	log "suite: pg_regress"
	SUITE_T0=$(date +%s)
	make -C "$REPO" installcheck PG_CONFIG="$PG_CONFIG" >"$out" 2>&1 || true
	cat "$out"
	# "test x ... ok" up to 15, "ok 1 - x" (TAP) from 16 on
	regress_ok=$(grep -cE '\.\.\. ok|^ok [0-9]+ ' "$out" || true)
	regress_failed=$(grep -cE '\.\.\. FAILED|^not ok [0-9]+ ' "$out" || true)
	[ "$regress_ok" -gt 0 ] || regress_failed=$((regress_failed + 1))	# did not run
	record pg_regress "$regress_ok" "$regress_failed"
	if [ "$regress_failed" -gt 0 ] && [ -f "$REPO/regression.diffs" ]; then
		head -n 200 "$REPO/regression.diffs"
	fi
fi

# suite NAME TAIL TITLE COMMAND...: run a suite whose output ends with
# "N passed, M failed"; show its FAIL lines and last TAIL lines; count it
run_suite() {
	local name=$1 tail=$2 title=$3
	shift 3
	log "suite: $title"
	SUITE_T0=$(date +%s)
	"$@" >"$out" 2>&1 || true
	grep -E '^FAIL' "$out" | head -n 40 || true
	tail -n "$tail" "$out"
	record_from_line "$name" "$out"
}

# suite: only on 15 (the machine's own version); server_suite: on every
# version, for what depends on the server; either only when the flavour
# wants it
server_suite() { if want "$1"; then run_suite "$@"; fi; }
suite() { if ! $server_only && want "$1"; then run_suite "$@"; fi; }

server_suite unit 20 "unit (gcc)" make -C "$REPO/test/unit" -s check
suite unit-asan 20 "unit (clang, ASan + UBSan)" make -C "$REPO/test/unit" -s check-asan
suite fuzz 2 "fuzz (libFuzzer, ${FUZZ_SECONDS:-60} s)" \
	make -C "$REPO/test/fuzz" -s run FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
suite interop 1 "interop (PyJWT, jwcrypto)" /usr/bin/python3 "$REPO/test/interop/interop.py"

if [ "$flavour" = all ]; then
	if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
		ensure_packages nodejs npm
	fi
	npm ci --prefix "$REPO/test/interop/node" --no-audit --no-fund >/dev/null 2>&1 ||
		log "npm ci failed: the jose suite will report it"
fi
suite interop-jose 1 "interop (node jose)" node "$REPO/test/interop/node/interop_jose.mjs"

suite docs 1 "docs (README examples are the tested ones)" /usr/bin/python3 "$REPO/test/docs/run.py"
server_suite databases 1 "databases (dump and restore, upgrade, hostile search_path)" \
	bash "$REPO/test/databases/run.sh"
server_suite replica 10 "replica (a primary and a hot standby of its own; pgbench smoke)" \
	/usr/bin/python3 "$REPO/test/replica/run.py" --bench 2
server_suite logical 4 "logical replication (a publisher and a subscriber of its own)" \
	/usr/bin/python3 "$REPO/test/logical/run.py"
server_suite crash 6 "crash (kill -9 and immediate shutdown during refresh storms, reuse, rotation)" \
	/usr/bin/python3 "$REPO/test/crash/run.py"
server_suite jwks 4 "JWKS fetch (an HTTPS identity provider of its own; discovery, failures, schedule)" \
	/usr/bin/python3 "$REPO/test/jwks/run.py"
# logging in with a token needs PostgreSQL 18's OAuth validators
if [ "$PG_MAJOR" -ge 18 ]; then
	server_suite login 3 "login (OAuth validator: tokens that log in and tokens that must not)" \
		/usr/bin/python3 "$REPO/test/login/run.py"
	server_suite login-psql 3 "login with psql (libpq's device flow against the test identity provider)" \
		/usr/bin/python3 "$REPO/test/login/device.py"
fi
server_suite concurrency 1 "concurrency (8 clients refresh one token at once)" \
	/usr/bin/python3 "$REPO/test/concurrency/refresh_race.py"
server_suite pooler 6 "pooler (PgBouncer: 32 clients over 4 server connections; session pooling; prepared statements on 1.21+)" \
	/usr/bin/python3 "$REPO/test/pooler/run.py"
suite mutation 3 "mutation (>= 100,000 mutated tokens through jwt_verify)" \
	/usr/bin/python3 "$REPO/test/stress/mutation.py"
suite json-diff 3 "JSON differential (strict parser vs an oracle and jsonb_in)" \
	/usr/bin/python3 "$REPO/test/stress/json_diff.py"
server_suite attack 3 "attack (what an ordinary SQL login can make jwt do)" \
	/usr/bin/python3 "$REPO/test/attack/run.py"
suite wycheproof 4 "Wycheproof (ECDSA, RSA, RSA-PSS, EdDSA, HMAC via jws_verify)" \
	bash "$REPO/test/wycheproof/run.sh"
server_suite memory 12 "memory (1,000,000 jwt_verify per family, RssAnon growth < 1 MB)" \
	/usr/bin/python3 "$REPO/test/stress/memory.py"
server_suite hygiene 1 "secret hygiene" \
	/usr/bin/python3 "$REPO/test/hygiene/run.py" "$CLUSTER_DIR/server.log"

# the RLS benchmark, small: it must run and find the right rows in every
# variant (its timings are printed, never judged)
if [ "$flavour" = all ]; then
	log "suite: bench/rls smoke (100,000 rows)"
	if ROWS=100000 ROUNDS=3 bash "$REPO/bench/rls/run.sh" --here >"$out" 2>&1; then
		tail -n 8 "$out"
		record bench-rls 1 0
	else
		tail -n 20 "$out"
		record bench-rls 0 1
	fi
fi

# no input may crash a backend: the server log must show no process that
# died by a signal, and no restart after a crash
log "suite: server log"
if grep -E 'terminated by signal|was terminated|all server processes terminated|TRAP:' \
	"$CLUSTER_DIR/server.log"; then
	record server-log 0 1
else
	record server-log 1 0
fi
# under Valgrind: every error it reported, in any server process
if want valgrind; then
	log "suite: valgrind (errors reported in any server process)"
	valgrind_report "$(dirname "$JWT_POSTGRES_WRAPPER")/logs"
fi

rm -f "$out"
stop_cluster

echo
printf '%s\n' "${summary[@]}"
echo "$total_pass passed, $total_fail failed"
if [ -n "${JWT_SUMMARY:-}" ]; then
	{ printf '%s\n' "${summary[@]}"; echo "total $total_pass passed, $total_fail failed"; } >"$JWT_SUMMARY"
fi
[ "$total_fail" -eq 0 ]
