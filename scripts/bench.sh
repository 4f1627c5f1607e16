#!/usr/bin/env bash
# scripts/bench.sh: the benchmarks, on a throwaway cluster of their own.
#
#   bash scripts/bench.sh
#
# Installs what is missing (as root), builds and installs the extension,
# starts a cluster, and runs:
#   bench/verify/run.sh   jwt_sign / jwt_verify per call, beside plain C on
#                         OpenSSL and a pgjwt-style pgcrypto baseline; table,
#                         results.csv and chart.png
#   bench/rls/run.sh      an RLS policy on jwt_claim() against a literal
#   bench/request/run.sh  PostgREST's request path under pgbench, directly and
#                         through PgBouncer: jwt_authenticate against trusted
#                         request.jwt.claims and no authentication; table,
#                         results.csv and chart.png
# The replica benchmark (pgbench on a primary and a standby) needs clusters of
# its own: /usr/bin/python3 test/replica/run.py --bench 10
# Takes about ten minutes; prints figures and asserts nothing about them.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_packages "${BASE_PACKAGES[@]}" gnuplot-nox pgbouncer
build_and_install
start_cluster

log "bench: sign and verify"
bash "$REPO/bench/verify/run.sh"
log "bench: RLS policy"
bash "$REPO/bench/rls/run.sh" --here
log "bench: the request path (pgbench, PgBouncer)"
bash "$REPO/bench/request/run.sh"
stop_cluster
