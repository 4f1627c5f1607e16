#!/usr/bin/env bash
# test/wycheproof/run.sh: Project Wycheproof's test vectors through src/jws.c.
#
#   bash test/wycheproof/run.sh
#
# 1. Installs what the build needs when missing (as root, from the machine's
#    own apt sources): make gcc libc6-dev libssl-dev libjansson-dev, and for
#    the sanitizer run clang libclang-rt-14-dev.
# 2. Fetches the vectors: Debian's golang-github-c2sp-wycheproof-dev, which
#    only sid has.  sid is never added to the machine's sources: one apt run
#    with a private sources list, state, cache and config (APT_CONFIG below)
#    downloads that one .deb, and dpkg -x extracts it; nothing is installed.
#    A failed download is a failure ("0 passed, 1 failed"), never a skip.
# 3. Builds test/wycheproof/wycheproof (gcc -Werror) and runs it; then runs
#    it again with --mutate (every valid signature with one bit flipped:
#    each must be counted as a failure, or the harness cannot see failures),
#    and runs the ASan+UBSan build (clang), which must report the same.
#
# Environment:
#   WYCHEPROOF_CACHE   keep the extracted vectors here and reuse them
#                      (default: a temporary folder, removed afterwards)
#   WYCHEPROOF_MIRROR  Debian mirror for sid (default: the host of this
#                      machine's own Debian source, else deb.debian.org)
#   WYCHEPROOF_ASAN    0 to skip the sanitizer run (default 1)
#
# Output ends with one line "N passed, M failed"; exit 0 only when M is 0.

set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PKG=golang-github-c2sp-wycheproof-dev
VEC_IN_DEB=usr/share/gocode/src/github.com/c2sp/wycheproof/testvectors_v1
export DEBIAN_FRONTEND=noninteractive

say() { printf '==> %s\n' "$*"; }
die() {
	echo "FAIL wycheproof: $*"
	echo "0 passed, 1 failed"
	exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/wycheproof.XXXXXX") || die "mktemp"
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

# ---- 1. build dependencies ----
ensure_packages() {
	local missing=() p
	for p in "$@"; do
		dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || die "missing packages: ${missing[*]} (run as root to install them)"
	say "installing ${missing[*]}"
	apt-get update -qq >/dev/null 2>&1 || true
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
		die "apt-get install ${missing[*]} failed"
}

asan=${WYCHEPROOF_ASAN:-1}
pkgs=(make gcc libc6-dev libssl-dev libjansson-dev)
[ "$asan" != 0 ] && pkgs+=(clang libclang-rt-14-dev)
ensure_packages "${pkgs[@]}"

# ---- 2. the vectors ----
cache=${WYCHEPROOF_CACHE:-$work/cache}
vec=$cache/testvectors_v1

fetch_vectors() {
	local mirror=${WYCHEPROOF_MIRROR:-} a=$work/apt deb
	if [ -z "$mirror" ]; then
		# the host this machine's own Debian archive source uses
		mirror=$(grep -hsE '^[[:space:]]*(URIs:|deb[[:space:]])' \
			/etc/apt/sources.list /etc/apt/sources.list.d/*.list \
			/etc/apt/sources.list.d/*.sources |
			grep -oE 'https?://[^[:space:]]+' | sed 's|/*$||' |
			grep -E '/debian$' | head -n 1)
	fi
	mirror=${mirror:-http://deb.debian.org/debian}
	say "fetching $PKG from $mirror sid (private apt state in $a)"

	mkdir -p "$a"/lists/partial "$a"/archives/partial "$a"/cache "$a"/state \
		"$a"/log "$a"/sources.list.d "$a"/preferences.d "$a"/dl || return 1
	local signed=
	[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] &&
		signed="[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
	echo "deb ${signed}$mirror sid main" >"$a/sources.list"

	# APT_CONFIG is read first, then /etc/apt/apt.conf.d (proxies and such
	# stay in force), then Dir::Etc::main: ours, which points every path
	# that apt writes at $a and drops the machine's update/dpkg hooks.
	cat >"$a/apt.conf" <<-CONF
		Dir::Etc::main "$a/main.conf";
	CONF
	{
		[ -f /etc/apt/apt.conf ] && echo '#include "/etc/apt/apt.conf";'
		cat <<-CONF
			#clear APT::Update::Pre-Invoke;
			#clear APT::Update::Post-Invoke;
			#clear APT::Update::Post-Invoke-Success;
			#clear DPkg::Pre-Invoke;
			#clear DPkg::Post-Invoke;
			Dir::Etc::SourceList "$a/sources.list";
			Dir::Etc::SourceParts "$a/sources.list.d";
			Dir::Etc::Preferences "$a/preferences";
			Dir::Etc::PreferencesParts "$a/preferences.d";
			Dir::State "$a/state";
			Dir::State::Lists "$a/lists";
			Dir::State::status "/var/lib/dpkg/status";
			Dir::Cache "$a/cache";
			Dir::Cache::Archives "$a/archives";
			Dir::Cache::pkgcache "";
			Dir::Cache::srcpkgcache "";
			Dir::Log "$a/log";
			Acquire::Languages "none";
			Acquire::Check-Valid-Until "false";
			Acquire::Retries "3";
		CONF
	} >"$a/main.conf"
	export APT_CONFIG=$a/apt.conf

	# apt downloads as the _apt user: let it into the private folders
	if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then
		chmod 755 "$work" "$a"
		chown _apt "$a/lists/partial" "$a/archives/partial" "$a/dl"
	fi

	apt-get -q update >"$a/update.log" 2>&1 || { cat "$a/update.log"; return 1; }
	(cd "$a/dl" && apt-get -q download "$PKG") >"$a/download.log" 2>&1 ||
		{ cat "$a/update.log" "$a/download.log"; return 1; }
	unset APT_CONFIG
	deb=$(ls "$a"/dl/"$PKG"_*.deb 2>/dev/null | head -n 1)
	[ -n "$deb" ] || return 1
	say "extracting $(basename "$deb")"
	dpkg -x "$deb" "$a/root" || return 1
	[ -d "$a/root/$VEC_IN_DEB" ] || { echo "no $VEC_IN_DEB in the package"; return 1; }
	mkdir -p "$cache" && rm -rf "$vec" "$cache/.complete" &&
		mv "$a/root/$VEC_IN_DEB" "$vec" &&
		basename "$deb" >"$cache/.complete"
}

if [ -f "$cache/.complete" ] && [ -d "$vec" ]; then
	say "vectors from the cache $cache ($(cat "$cache/.complete"))"
else
	fetch_vectors || die "could not fetch the vectors ($PKG from sid)"
fi
say "vectors: $(cat "$cache/.complete"), $(ls "$vec" | wc -l) files"

# ---- 3. build and run ----
make -C "$HERE" -s wycheproof >"$work/build.log" 2>&1 ||
	{ cat "$work/build.log"; die "gcc build failed"; }

"$HERE/wycheproof" "$vec" >"$work/out" 2>&1
rc=$?
grep -v -E '^[0-9]+ passed, [0-9]+ failed$' "$work/out"
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$work/out" | tail -n 1)
[ -n "$line" ] || die "the harness died (exit $rc) before counting"
passed=$(echo "$line" | cut -d' ' -f1)
failed=$(echo "$line" | cut -d' ' -f3)
[ "$rc" -eq 0 ] || [ "$failed" -gt 0 ] || failed=$((failed + 1))
echo "gcc build: $line"

# the harness can fail: with every valid signature corrupted, exactly those fail
"$HERE/wycheproof" --mutate "$vec" >"$work/mut" 2>&1
mutated=$(sed -n 's/^mutated \([0-9]*\)$/\1/p' "$work/mut")
mline=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$work/mut" | tail -n 1)
mfailed=$(echo "$mline" | cut -d' ' -f3)
# (a valid case that already failed fails mutated too: counted once)
if [ -n "$mutated" ] && [ "$mutated" -gt 0 ] && [ -n "$mfailed" ] &&
	[ "$mfailed" -ge "$mutated" ] && [ "$mfailed" -le "$((mutated + failed))" ]; then
	echo "mutation check: ok, all $mutated corrupted valid signatures counted as failures"
else
	echo "FAIL mutation check: mutated ${mutated:-?}, but the run reported: ${mline:-nothing}"
	failed=$((failed + 1))
fi

if [ "$asan" != 0 ]; then
	if ! make -C "$HERE" -s wycheproof_asan >"$work/build-asan.log" 2>&1; then
		cat "$work/build-asan.log"
		echo "FAIL clang ASan+UBSan build failed"
		failed=$((failed + 1))
	else
		ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1 \
			UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
			"$HERE/wycheproof_asan" "$vec" >"$work/asan" 2>&1
		arc=$?
		aline=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$work/asan" | tail -n 1)
		if [ "$aline" = "$line" ] && [ "$arc" = "$rc" ] &&
			! grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$work/asan"; then
			echo "ASan+UBSan build: ok, same result ($aline), no sanitizer report"
		else
			tail -n 40 "$work/asan"
			echo "FAIL ASan+UBSan run: exit $arc, ${aline:-no count} (gcc build: $line)"
			failed=$((failed + 1))
		fi
	fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
