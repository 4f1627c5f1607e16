# scripts/lib.sh: shared steps of demo.sh and test.sh (sourced, not run).
#
# On a fresh Debian 12 machine, as root: install what is missing, build and
# install the extension, and run a throwaway PostgreSQL cluster of our own
# in a temp dir (unix socket only, no TCP), stopped again on exit.

set -euo pipefail

PG_MAJOR=${PG_MAJOR:-15}
# Debian's server of that version, or JWT_PG_BIN: the assert-enabled build
# of scripts/cassert.sh
PG_BIN=${JWT_PG_BIN:-/usr/lib/postgresql/$PG_MAJOR/bin}
# that version's pg_config, psql, pg_dump... whatever else is installed
export PG_MAJOR PG_CONFIG=$PG_BIN/pg_config PATH=$PG_BIN:$PATH
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DEBIAN_FRONTEND=noninteractive

log() { printf '==> %s\n' "$*" >&2; }

# Install the Debian packages named, if any is missing.
ensure_packages() {
	local missing=()
	for p in "$@"; do
		dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		log "missing packages: ${missing[*]} (run as root to install them)"
		return 1
	fi
	log "installing ${missing[*]}"
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

BASE_PACKAGES=(make gcc libc6-dev openssl libssl-dev libcurl4-openssl-dev curl
	"postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" "postgresql-client-$PG_MAJOR")

build_and_install() {
	log "building and installing the extension"
	make -C "$REPO" -s clean >/dev/null
	make -C "$REPO" -s >/dev/null
	make -C "$REPO" -s install >/dev/null
}

# Run a command as the cluster's owner: postgres when we are root.
as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# start_cluster: sets PGHOST, PGPORT, PGUSER, PGDATABASE for what follows.
start_cluster() {
	CLUSTER_DIR=$(mktemp -d /tmp/jwt-pg.XXXXXX)
	[ "$(id -u)" -eq 0 ] && chown postgres: "$CLUSTER_DIR"
	trap stop_cluster EXIT
	log "starting a throwaway cluster in $CLUSTER_DIR"
	as_owner "$PG_BIN/initdb" -D "$CLUSTER_DIR/data" -U postgres -E UTF8 \
		--locale=C -A trust >"$CLUSTER_DIR/initdb.log" 2>&1
	# JWT_EXTRA_CONF: settings for every cluster of the run ("a = 1; b = 2");
	# JWT_POSTGRES_WRAPPER: a program that runs the server (Valgrind's)
	if [ -n "${JWT_EXTRA_CONF:-}" ]; then
		tr ';' '\n' <<<"$JWT_EXTRA_CONF" >>"$CLUSTER_DIR/data/postgresql.conf"
	fi
	local wrapper=()
	[ -n "${JWT_POSTGRES_WRAPPER:-}" ] && wrapper=(-p "$JWT_POSTGRES_WRAPPER" -t 600)
	as_owner "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/data" -l "$CLUSTER_DIR/server.log" -w \
		"${wrapper[@]}" -o "-k $CLUSTER_DIR -c listen_addresses='' -p 5432 ${CLUSTER_OPTIONS:-}" \
		start >/dev/null
	export PGHOST=$CLUSTER_DIR PGPORT=5432 PGUSER=postgres PGDATABASE=postgres
}

stop_cluster() {
	if [ -n "${CLUSTER_DIR:-}" ] && [ -d "$CLUSTER_DIR/data" ]; then
		as_owner "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
		rm -rf "$CLUSTER_DIR"
	fi
	CLUSTER_DIR=
}
