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
#
# Installs what is missing (as root), builds, installs, starts a cluster,
# runs each suite and ends with one line "N passed, M failed" summing every
# suite of every version; each suite's line names its version.  Exits
# non-zero when anything failed.

HERE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE_DIR/lib.sh"

mode=matrix
server_only=false
versions=${JWT_PG_VERSIONS:-15 17 18}
while [ $# -gt 0 ]; do
	case $1 in
		--here) mode=here ;;
		--server-only) server_only=true ;;
		--pg) versions=$2; shift ;;
		*) log "unknown argument $1"; exit 2 ;;
	esac
	shift
done

# ---- the matrix: each version in a process (and for 17, 18 a root) of its own
if [ "$mode" = matrix ]; then
	source "$HERE_DIR/roots.sh"
	trap 'unmount_root' EXIT
	lines=()
	total_pass=0
	total_fail=0
	for v in $versions; do
		summary=$(mktemp)
		t0=$(date +%s)
		log "PostgreSQL $v"
		if [ "$v" = 15 ]; then
			JWT_SUMMARY=$summary PG_MAJOR=15 bash "$HERE_DIR/test.sh" --here || true
		else
			in_root "$v" "$summary" /bin/bash /work/jwt/scripts/test.sh --here --server-only || true
		fi
		took=$(( $(date +%s) - t0 ))
		if [ -s "$summary" ]; then
			while IFS= read -r l; do lines+=("$l"); done < <(grep -v '^total ' "$summary")
			tp=$(grep '^total ' "$summary" | cut -d' ' -f2)
			tf=$(grep '^total ' "$summary" | cut -d' ' -f4)
		else
			lines+=("$(printf 'pg%-3s %-20s %6d passed, %d failed' "$v" "(did not run)" 0 1)")
			tp=0
			tf=1
		fi
		lines+=("$(printf 'pg%-3s %-20s %6d passed, %d failed  (%d min %02d s)' "$v" "all" "$tp" "$tf" $((took / 60)) $((took % 60)))")
		total_pass=$((total_pass + tp))
		total_fail=$((total_fail + tf))
		rm -f "$summary"
	done
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
if $server_only; then
	ensure_packages "${BASE_PACKAGES[@]}" python3-jwt python3-jwcrypto python3-cryptography pgbouncer
else
	ensure_packages "${BASE_PACKAGES[@]}" clang libclang-rt-14-dev \
		python3-jwt python3-jwcrypto python3-cryptography pgbouncer
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
	summary+=("$(printf 'pg%-3s %-20s %6d passed, %d failed' "$PG_MAJOR" "$1" "$2" "$3")")
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

log "suite: pg_regress"
out=$(mktemp)
make -C "$REPO" installcheck >"$out" 2>&1 || true
cat "$out"
# "test x ... ok" up to 15, "ok 1 - x" (TAP) from 16 on
regress_ok=$(grep -cE '\.\.\. ok|^ok [0-9]+ ' "$out" || true)
regress_failed=$(grep -cE '\.\.\. FAILED|^not ok [0-9]+ ' "$out" || true)
[ "$regress_ok" -gt 0 ] || regress_failed=$((regress_failed + 1))	# did not run
record pg_regress "$regress_ok" "$regress_failed"
if [ "$regress_failed" -gt 0 ] && [ -f "$REPO/regression.diffs" ]; then
	head -n 200 "$REPO/regression.diffs"
fi

# suite NAME TAIL TITLE COMMAND...: run a suite whose output ends with
# "N passed, M failed"; show its FAIL lines and last TAIL lines; count it
run_suite() {
	local name=$1 tail=$2 title=$3
	shift 3
	log "suite: $title"
	"$@" >"$out" 2>&1 || true
	grep -E '^FAIL' "$out" | head -n 40 || true
	tail -n "$tail" "$out"
	record_from_line "$name" "$out"
}

# suite: only on 15 (the machine's own version); server_suite: on every
# version, for what depends on the server
server_suite() { run_suite "$@"; }
suite() { $server_only || run_suite "$@"; }

server_suite unit 20 "unit (gcc)" make -C "$REPO/test/unit" -s check
suite unit-asan 20 "unit (clang, ASan + UBSan)" make -C "$REPO/test/unit" -s check-asan
suite fuzz 2 "fuzz (libFuzzer, ${FUZZ_SECONDS:-60} s)" \
	make -C "$REPO/test/fuzz" -s run FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
suite interop 1 "interop (PyJWT, jwcrypto)" /usr/bin/python3 "$REPO/test/interop/interop.py"

if ! $server_only; then
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
if ! $server_only; then
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
if grep -E 'terminated by signal|was terminated|all server processes terminated' \
	"$CLUSTER_DIR/server.log"; then
	record server-log 0 1
else
	record server-log 1 0
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
