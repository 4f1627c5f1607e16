#!/usr/bin/env bash
# scripts/test.sh: every test suite, on a throwaway cluster of its own.
#
#   bash scripts/test.sh
#
# Installs what is missing (as root), builds, installs, starts a cluster,
# runs each suite and ends with one line "N passed, M failed" summing them
# all; exits non-zero when anything failed.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_packages "${BASE_PACKAGES[@]}" clang libclang-rt-14-dev \
	python3-jwt python3-jwcrypto python3-cryptography
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
	summary+=("$(printf '%-22s %4d passed, %d failed' "$1" "$2" "$3")")
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
record pg_regress "$(grep -cE '\.\.\. ok' "$out" || true)" "$(grep -cE '\.\.\. FAILED' "$out" || true)"
if grep -qE '\.\.\. FAILED' "$out" && [ -f "$REPO/regression.diffs" ]; then
	head -n 200 "$REPO/regression.diffs"
fi

# suite NAME TAIL TITLE COMMAND...: run a suite whose output ends with
# "N passed, M failed"; show its FAIL lines and last TAIL lines; count it
suite() {
	local name=$1 tail=$2 title=$3
	shift 3
	log "suite: $title"
	"$@" >"$out" 2>&1 || true
	grep -E '^FAIL' "$out" | head -n 40 || true
	tail -n "$tail" "$out"
	record_from_line "$name" "$out"
}

suite unit 20 "unit (gcc)" make -C "$REPO/test/unit" -s check
suite unit-asan 20 "unit (clang, ASan + UBSan)" make -C "$REPO/test/unit" -s check-asan
suite fuzz 2 "fuzz (libFuzzer, ${FUZZ_SECONDS:-60} s)" \
	make -C "$REPO/test/fuzz" -s run FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
suite interop 1 "interop (PyJWT, jwcrypto)" /usr/bin/python3 "$REPO/test/interop/interop.py"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	ensure_packages nodejs npm
fi
npm ci --prefix "$REPO/test/interop/node" --no-audit --no-fund >/dev/null 2>&1 ||
	log "npm ci failed: the jose suite will report it"
suite interop-jose 1 "interop (node jose)" node "$REPO/test/interop/node/interop_jose.mjs"

suite docs 1 "docs (README examples are the tested ones)" /usr/bin/python3 "$REPO/test/docs/run.py"
suite databases 1 "databases (dump and restore, upgrade, hostile search_path)" \
	bash "$REPO/test/databases/run.sh"
suite replica 10 "replica (a primary and a hot standby of its own; pgbench smoke)" \
	/usr/bin/python3 "$REPO/test/replica/run.py" --bench 2
suite concurrency 1 "concurrency (8 clients refresh one token at once)" \
	/usr/bin/python3 "$REPO/test/concurrency/refresh_race.py"
suite mutation 3 "mutation (>= 100,000 mutated tokens through jwt_verify)" \
	/usr/bin/python3 "$REPO/test/stress/mutation.py"
suite json-diff 3 "JSON differential (strict parser vs an oracle and jsonb_in)" \
	/usr/bin/python3 "$REPO/test/stress/json_diff.py"
suite attack 3 "attack (what an ordinary SQL login can make jwt do)" \
	/usr/bin/python3 "$REPO/test/attack/run.py"
suite wycheproof 4 "Wycheproof (ECDSA, RSA, RSA-PSS, EdDSA, HMAC via jws_verify)" \
	bash "$REPO/test/wycheproof/run.sh"
suite memory 12 "memory (1,000,000 jwt_verify per family, RssAnon growth < 1 MB)" \
	/usr/bin/python3 "$REPO/test/stress/memory.py"
suite hygiene 1 "secret hygiene" \
	/usr/bin/python3 "$REPO/test/hygiene/run.py" "$CLUSTER_DIR/server.log"

# the RLS benchmark, small: it must run and find the right rows in every
# variant (its timings are printed, never judged)
log "suite: bench/rls smoke (100,000 rows)"
if ROWS=100000 ROUNDS=3 bash "$REPO/bench/rls/run.sh" --here >"$out" 2>&1; then
	tail -n 8 "$out"
	record bench-rls 1 0
else
	tail -n 20 "$out"
	record bench-rls 0 1
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
[ "$total_fail" -eq 0 ]
