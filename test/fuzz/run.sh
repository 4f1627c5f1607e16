#!/bin/bash
#
# run.sh -- seed, run fuzz_jws for a while, and summarize.
#
# Called by "make run" after the build; runs from test/fuzz/.
#
# Environment:
#   FUZZ_SECONDS   how long libFuzzer runs, seeds included (default 60)
#   FUZZ_MAX_LEN   largest input libFuzzer makes (default 4096)
#   FUZZ_CORPUS    a corpus directory to grow and keep; by default a
#                  temporary one, removed afterwards
#   FUZZ_ARGS      more libFuzzer options, e.g. "-seed=1"
#
# Output ends with exactly two lines, for the CI parser:
#   fuzz: <executions> executions, <exec/s> exec/s, <seconds> s
#   N passed, M failed
# "1 passed, 0 failed" when libFuzzer exited 0 with no sanitizer report;
# otherwise "0 passed, 1 failed", after the report and the reproducer path.
# The exit status is 0 either way: the counting line carries the result.
# The full libFuzzer log is left in test/fuzz/fuzz_jws.log.

set -u

here=$(cd "$(dirname "$0")" && pwd)
cd "$here" || exit 2

secs=${FUZZ_SECONDS:-60}
maxlen=${FUZZ_MAX_LEN:-4096}
log=$here/fuzz_jws.log

work=$(mktemp -d "${TMPDIR:-/tmp}/fuzz_jws.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT
seeds=$work/seeds
corpus=${FUZZ_CORPUS:-$work/corpus}

# the two summary lines, then exit 0
finish() {
    echo "fuzz: $1 executions, $2 exec/s, $3 s"
    if [ "$4" = pass ]; then
        echo "1 passed, 0 failed"
    else
        echo "0 passed, 1 failed"
    fi
    exit 0
}

if [ ! -x ./fuzz_jws ]; then
    echo "run.sh: ./fuzz_jws is not built (use make run)"
    finish 0 0 0 fail
fi
if ! ./make_corpus.sh "$seeds"; then
    echo "run.sh: make_corpus.sh failed"
    finish 0 0 0 fail
fi
mkdir -p "$corpus"

# Leaks are reported per input (libFuzzer) and at exit (LeakSanitizer);
# UBSan stops at the first report (the build also says so).
start=$(date +%s)
# shellcheck disable=SC2086
ASAN_OPTIONS="detect_leaks=1:strict_string_checks=1:${ASAN_OPTIONS:-}" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}" \
    ./fuzz_jws -max_total_time="$secs" -max_len="$maxlen" \
    -print_final_stats=1 -detect_leaks=1 -timeout=30 \
    -artifact_prefix="$here/" ${FUZZ_ARGS:-} \
    "$corpus" "$seeds" > "$log" 2>&1
rc=$?
end=$(date +%s)

execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
execs=${execs:-0}
# libFuzzer's own count of seconds when it finished normally, else wall time
elapsed=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
elapsed=${elapsed:-$((end - start))}
if [ "$elapsed" -gt 0 ]; then
    rate=$((execs / elapsed))
else
    rate=$execs
fi

# a report can come with exit status 0 only if someone set exitcode=0 in
# *SAN_OPTIONS; look for one anyway
pattern='^==[0-9]+==ERROR|^SUMMARY: |runtime error:|^==[0-9]+== ERROR: libFuzzer|fuzz_jws: invariant violated|deadly signal'
if [ "$rc" -eq 0 ] && ! grep -Eq "$pattern" "$log"; then
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)' "$log" | tail -n 2
    echo "corpus: $(find "$seeds" -type f | wc -l) seeds, $(find "$corpus" -type f | wc -l) inputs found"
    finish "$execs" "$rate" "$elapsed" pass
fi

echo "fuzz_jws FAILED (libFuzzer exit status $rc); report:"
first=$(grep -En "$pattern" "$log" | head -n 1 | cut -d: -f1)
if [ -n "$first" ]; then
    # from the line before the first report to the end, within reason
    tail -n +"$(( first > 1 ? first - 1 : 1 ))" "$log" | head -n 200
else
    tail -n 60 "$log"
fi
repro=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
if [ -n "$repro" ]; then
    case $repro in
        */leak-*)
            # the fast unwinder stops inside libcrypto: run it again with
            # the slow one, for whole allocation stacks
            echo "--- the leak again, with full allocation stacks:"
            ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0" \
                ./fuzz_jws "$repro" 2>&1 |
                sed -n '/^Direct leak\|^Indirect leak/,/^$/p' | head -n 120
            ;;
    esac
    echo "reproducer: $repro"
    echo "reproduce:  make -C $here fuzz_jws && $here/fuzz_jws $repro"
else
    echo "reproducer: none written (see $log)"
fi
finish "$execs" "$rate" "$elapsed" fail
