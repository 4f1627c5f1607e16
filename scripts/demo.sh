#!/usr/bin/env bash
# scripts/demo.sh: a guided tour of the jwt extension on a throwaway cluster.
#
#   bash scripts/demo.sh
#
# Installs what is missing (as root), builds, installs, starts a cluster,
# makes demo keys with the openssl CLI and runs scripts/demo.sql. The errors
# in the tour are shown on purpose and do not fail the script; a failure to
# connect or to create the extension does.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_packages "${BASE_PACKAGES[@]}"
build_and_install
start_cluster

# Demo keys: private keys as PKCS#8 PEM, public keys as SPKI PEM.
log "generating demo keys (RSA 2048, EC P-256, Ed25519) in $CLUSTER_DIR"
KEYS=$CLUSTER_DIR/keys
mkdir -m 700 "$KEYS"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$KEYS/rsa.pem" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$KEYS/ec.pem"
openssl genpkey -algorithm Ed25519 -out "$KEYS/ed.pem"
for k in rsa ec ed; do
	openssl pkey -in "$KEYS/$k.pem" -pubout -out "$KEYS/$k.pub.pem"
done

log "running scripts/demo.sql"
echo
# ON_ERROR_STOP=0: the tour shows errors on purpose. demo.sql turns it on
# around CREATE EXTENSION, so psql exits non-zero (3) if that fails, and 2
# if it cannot connect; set -e then fails the script. stderr is merged so
# each error appears right after its statement.
rc=0
psql -X -q -v ON_ERROR_STOP=0 -v VERBOSITY=verbose \
	-v rsa_priv="$(cat "$KEYS/rsa.pem")" -v rsa_pub="$(cat "$KEYS/rsa.pub.pem")" \
	-v ec_priv="$(cat "$KEYS/ec.pem")" -v ec_pub="$(cat "$KEYS/ec.pub.pem")" \
	-v ed_priv="$(cat "$KEYS/ed.pem")" -v ed_pub="$(cat "$KEYS/ed.pub.pem")" \
	-f "$REPO/scripts/demo.sql" 2>&1 || rc=$?
echo
if [ "$rc" -ne 0 ]; then
	log "demo failed: psql exited with status $rc"
	exit "$rc"
fi
log "demo done"
