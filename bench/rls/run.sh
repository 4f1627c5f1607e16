#!/usr/bin/env bash
# bench/rls/run.sh: what a row-level security policy on jwt_claim() costs.
#
#   bash bench/rls/run.sh            # own throwaway cluster (root: installs packages)
#   PGHOST=... bash bench/rls/run.sh --here   # an existing cluster, extension installed
#
# One table of 1,000,000 rows, 1,000 of them the user's, read by a role
# subject to RLS.  The same count(*) runs under policies that differ only in
# where the user comes from; each is timed ROUNDS times inside one
# transaction and the median taken.  The baseline is the same policy with
# the literal value.  Parallel query is off, so the figure is the per-row
# cost of the policy, not how the rows were split among workers.
#
# A benchmark, not a test: it prints figures and ratios and asserts nothing.

set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROWS=${ROWS:-1000000}
ROUNDS=${ROUNDS:-9}

if [ "${1:-}" != "--here" ]; then
	# shellcheck source=../../scripts/lib.sh
	source "$HERE/../../scripts/lib.sh"
	ensure_packages "${BASE_PACKAGES[@]}"
	build_and_install
	start_cluster
fi

DB=jwt_bench_rls
cleanup() {
	dropdb --if-exists "$DB" 2>/dev/null || true
	psql -X -q -d postgres -c 'DROP ROLE IF EXISTS bench_user' 2>/dev/null || true
}
cleanup
createdb "$DB"
trap 'cleanup; if declare -F stop_cluster >/dev/null; then stop_cluster; fi' EXIT

psql -X -q -v ON_ERROR_STOP=1 -v rows="$ROWS" -v rounds="$ROUNDS" -d "$DB" -f "$HERE/rls.sql"
