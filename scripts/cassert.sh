# scripts/cassert.sh: an assert-enabled PostgreSQL 15 of our own (sourced by
# test.sh, not run).
#
# Debian's server leaves freed memory readable, so a pointer that outlives
# its memory context passes every test there.  A server configured with
# --enable-cassert overwrites freed chunks (CLOBBER_FREED_MEMORY), checks
# chunk boundaries (MEMORY_CONTEXT_CHECKING), asserts lock, snapshot and
# memory-context use, and honours debug_discard_caches; built with
# -DUSE_VALGRIND, Valgrind sees palloc'd chunks as it sees malloc'd ones.
#
# The source is bookworm's own postgresql-15 source package, fetched with a
# private apt configuration (a deb-src list, lists and cache of its own in
# the build directory: the machine's apt sources are never touched); its
# upstream release tarball is built, with contrib's pgcrypto, dblink and
# pg_stat_statements, which the suites load.  The installation is cached in
# $JWT_ROOTS/pg15-cassert and made again when missing or when the recipe
# below changes.

JWT_ROOTS=${JWT_ROOTS:-/var/cache/jwt-roots}
CASSERT_VERSION=${CASSERT_VERSION:-15.18-0+deb12u1}
CASSERT_CONFIGURE="--enable-cassert --enable-debug --with-openssl --without-readline --without-icu"
CASSERT_CFLAGS="-O2 -ggdb -DUSE_VALGRIND"
CASSERT_CONTRIB="pgcrypto dblink pg_stat_statements"
CASSERT_PACKAGES=(dpkg-dev bzip2 xz-utils perl zlib1g-dev libssl-dev libcurl4-openssl-dev pkg-config gcc make)

# ensure_cassert: the assert-enabled installation, built if missing; prints
# its prefix (the directory of bin/pg_config)
ensure_cassert() {
	local prefix=$JWT_ROOTS/pg15-cassert stamp want build list tarball src
	want="$CASSERT_VERSION|$CASSERT_CONFIGURE|$CASSERT_CFLAGS|$CASSERT_CONTRIB|valgrind.supp"
	stamp=$prefix/.jwt-cassert
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$prefix/bin/postgres" ]; then
		echo "$prefix"
		return 0
	fi
	ensure_packages "${CASSERT_PACKAGES[@]}" >&2 || return 1
	log "building an assert-enabled PostgreSQL $CASSERT_VERSION in $prefix (cached for later runs)"
	build=$(mktemp -d /tmp/jwt-cassert.XXXXXX)
	mkdir -p "$build/lists/partial" "$build/archives/partial" "$build/src"
	list=$build/sources.list
	echo "deb-src http://deb.debian.org/debian bookworm main" >"$list"
	local apt_opts=(-o "Dir::Etc::SourceList=$list" -o "Dir::Etc::SourceParts=/dev/null"
		-o "Dir::State::Lists=$build/lists" -o "Dir::Cache::Archives=$build/archives"
		-o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=")
	if ! apt-get "${apt_opts[@]}" -qq update >"$build/apt.log" 2>&1 ||
		! (cd "$build/src" && apt-get "${apt_opts[@]}" -qq --download-only \
			source "postgresql-15=$CASSERT_VERSION" >>"$build/apt.log" 2>&1); then
		tail -n 20 "$build/apt.log" >&2
		log "could not fetch the postgresql-15 source package"
		rm -rf "$build"
		return 1
	fi
	tarball=$(ls "$build"/src/postgresql-15_*.orig.tar.* 2>/dev/null | head -n 1)
	[ -n "$tarball" ] || { log "no upstream tarball in the source package"; rm -rf "$build"; return 1; }
	tar -C "$build" -xf "$tarball"
	src=$(ls -d "$build"/postgresql-15*/ | head -n 1)
	# installed where it runs (the stamp, written last, marks it complete)
	rm -rf "$prefix"
	mkdir -p "$JWT_ROOTS"
	if ! (
		set -e
		cd "$src"
		# shellcheck disable=SC2086
		./configure --prefix="$prefix" $CASSERT_CONFIGURE CFLAGS="$CASSERT_CFLAGS"
		make -s -j"$(nproc)"
		make -s install
		for c in $CASSERT_CONTRIB; do make -s -C "contrib/$c" install; done
		# the suppressions PostgreSQL's own Valgrind runs use
		cp src/tools/valgrind.supp "$prefix/share/valgrind.supp"
	) >"$build/build.log" 2>&1; then
		tail -n 30 "$build/build.log" >&2
		log "the assert-enabled build failed"
		rm -rf "$build" "$prefix"
		return 1
	fi
	# the server runs as postgres and must read (not write) its installation
	chmod -R go+rX "$prefix"
	echo "$want" >"$stamp"
	rm -rf "$build"
	echo "$prefix"
}

# valgrind_wrapper PREFIX: a program that runs PREFIX's postgres under
# Valgrind (pg_ctl -p), in a new directory that also receives one log per
# process (logs/); prints its path
valgrind_wrapper() {
	local prefix=$1 dir
	ensure_packages valgrind >&2 || return 1
	dir=$(mktemp -d /tmp/jwt-valgrind.XXXXXX)
	mkdir -p "$dir/logs"
	cat >"$dir/postgres" <<-EOF
		#!/bin/sh
		# PostgreSQL's own settings for Valgrind runs (src/tools/valgrind.supp);
		# leaks are palloc's business, not Valgrind's
		exec valgrind --quiet --trace-children=yes --track-origins=yes \\
		    --read-var-info=yes --num-callers=30 --leak-check=no \\
		    --suppressions=$prefix/share/valgrind.supp --gen-suppressions=all \\
		    --error-markers=VALGRINDERROR-BEGIN,VALGRINDERROR-END \\
		    --log-file=$dir/logs/%p.log $prefix/bin/postgres "\$@"
	EOF
	chmod 755 "$dir/postgres"
	[ "$(id -u)" -eq 0 ] && chown -R postgres: "$dir"
	echo "$dir/postgres"
}

# valgrind_report LOGDIR: count the errors Valgrind reported (record, from
# test.sh); show the first few
valgrind_report() {
	local logs=$1 n
	n=$(cat "$logs"/*.log 2>/dev/null | grep -c 'VALGRINDERROR-BEGIN' || true)
	log "Valgrind: $n errors in $(ls "$logs" | wc -l) process logs ($logs)"
	if [ "$n" -gt 0 ]; then
		grep -l 'VALGRINDERROR-BEGIN' "$logs"/*.log | head -n 3 | while read -r f; do
			echo "--- $f"
			sed -n '/VALGRINDERROR-BEGIN/,/VALGRINDERROR-END/p' "$f" | head -n 60
		done
		record valgrind 0 "$n"
	else
		record valgrind 1 0
	fi
}
