# scripts/roots.sh: PostgreSQL versions other than the machine's own, each in
# a Debian root file system of its own (sourced by test.sh, not run).
#
# Debian 12 packages PostgreSQL 15.  Suite trixie has 17 and sid has 18; they
# are never added to the machine's apt sources (mixing suites breaks the
# host).  Instead mmdebstrap makes a minimal root per version, cached in
# $JWT_ROOTS (default /var/cache/jwt-roots) and made again when missing or
# when the package list below changes.  A run clones the repository into
# the root (never a copy of a work tree: objects built for 15 would be
# reused), mounts /proc, /dev and /dev/shm, and unmounts them on every exit
# path.

JWT_ROOTS=${JWT_ROOTS:-/var/cache/jwt-roots}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

# the Debian suite that packages a PostgreSQL major version
root_suite() {
	case $1 in
		17) echo trixie ;;
		18) echo sid ;;
		*) return 1 ;;
	esac
}

# what the server-dependent suites need in a root
root_packages() {
	local v=$1
	echo "postgresql-$v,postgresql-server-dev-$v,postgresql-client-$v,make,gcc,libc6-dev,libssl-dev,libcurl4-openssl-dev,curl,openssl,git,ca-certificates,python3,python3-cryptography,python3-jwt,python3-jwcrypto,pgbouncer,procps,util-linux,mount"
}

# ensure_root V: a root for PostgreSQL V, made if missing; prints its path
ensure_root() {
	local v=$1 suite dir stamp want
	suite=$(root_suite "$v") || { log "no Debian suite packages PostgreSQL $v"; return 1; }
	dir=$JWT_ROOTS/pg$v
	want="$suite $(root_packages "$v")"
	stamp=$dir/.jwt-root
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$dir/usr/lib/postgresql/$v/bin/postgres" ]; then
		echo "$dir"
		return 0
	fi
	ensure_packages mmdebstrap >&2
	# never rm -rf through a mount (a run killed before it unmounted
	# leaves /dev bound inside)
	if awk -v d="$dir" '$2 == d || index($2, d "/") == 1 || index($2, d ".tmp") == 1 { f = 1 } END { exit !f }' /proc/mounts; then
		log "$dir (or $dir.tmp) still has file systems mounted: unmount them first (grep $dir /proc/mounts)"
		return 1
	fi
	log "making a $suite root for PostgreSQL $v in $dir (cached for later runs)"
	rm -rf "$dir" "$dir.tmp"
	mkdir -p "$JWT_ROOTS"
	# sid's Release file here is past its Valid-Until date
	if ! mmdebstrap --quiet --variant=apt \
		--aptopt='Acquire::Check-Valid-Until "false"' \
		--include="$(root_packages "$v")" \
		"$suite" "$dir.tmp" "$DEBIAN_MIRROR" >"$JWT_ROOTS/pg$v.log" 2>&1; then
		tail -n 20 "$JWT_ROOTS/pg$v.log" >&2
		rm -rf "$dir.tmp"
		return 1
	fi
	echo "$want" >"$dir.tmp/.jwt-root"
	mv "$dir.tmp" "$dir"
	echo "$dir"
}

# the mounts of one run, unmounted by unmount_root (also from traps)
ROOT_MOUNTED=()

# mount_root DIR: the root, then /proc, /dev and /dev/shm inside it; a mount that
# cannot be made stops the run (suites without /proc fail in ways that
# hide the cause), after undoing the mounts already made
mount_root() {
	local dir=$1
	# the root itself first, as a private mount of its own: inside, / is
	# then a mount point, so unshare(1) can make a private mount namespace
	# there (the CA-pinning test), and nothing mounted inside reaches the
	# machine's namespace
	if ! { mount --bind "$dir" "$dir" && ROOT_MOUNTED+=("$dir") &&
		mount --make-rprivate "$dir" &&
		mount -t proc proc "$dir/proc" && ROOT_MOUNTED+=("$dir/proc") &&
		mount --bind /dev "$dir/dev" && ROOT_MOUNTED+=("$dir/dev") &&
		mount -t tmpfs -o mode=1777 shm "$dir/dev/shm" && ROOT_MOUNTED+=("$dir/dev/shm"); }; then
		log "cannot mount /proc, /dev or /dev/shm in $dir (is the mount command installed, and are we root?)"
		unmount_root
		return 1
	fi
	# anything inside that speaks HTTPS uses the machine's trust store
	mkdir -p "$dir/etc/ssl/certs"
	cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/" 2>/dev/null || true
	[ -f /etc/npmrc ] && cp /etc/npmrc "$dir/etc/npmrc"
	return 0
}

unmount_root() {
	local i
	for ((i = ${#ROOT_MOUNTED[@]} - 1; i >= 0; i--)); do
		umount "${ROOT_MOUNTED[$i]}" 2>/dev/null || umount -l "${ROOT_MOUNTED[$i]}" 2>/dev/null || true
	done
	ROOT_MOUNTED=()
}

# in_root V SUMMARY COMMAND...: run COMMAND (a path inside the clone) in
# the root of PostgreSQL V on a fresh clone of the work tree's state
# (committed or not: git stash create makes a commit of the changes);
# the suites' summary lines are copied to SUMMARY
in_root() {
	local v=$1 summary=$2 dir rev rc
	shift 2
	dir=$(ensure_root "$v") || return 1
	rev=$(git -C "$REPO" stash create 2>/dev/null || true)
	rev=${rev:-$(git -C "$REPO" rev-parse HEAD)}
	rm -rf "$dir/work"
	mkdir -p "$dir/work"
	git clone -q "$REPO" "$dir/work/jwt"
	# a stash commit is not on any branch: fetch it by its hash
	git -C "$dir/work/jwt" fetch -q "$REPO" "$rev" 2>/dev/null || true
	git -C "$dir/work/jwt" checkout -q "$rev"
	mount_root "$dir" || return 1	# unmounted below, or by the caller's EXIT trap
	rc=0
	chroot "$dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
		PG_MAJOR="$v" JWT_SUMMARY=/work/summary CI="${CI:-}" \
		"$@" || rc=$?
	cp "$dir/work/summary" "$summary" 2>/dev/null || true
	unmount_root
	return $rc
}
