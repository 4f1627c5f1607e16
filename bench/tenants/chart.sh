#!/usr/bin/env bash
# bench/tenants/chart.sh: chart.png from results.csv (written by
# measure.py, one run per build and label): a session's first verification
# and the first one after another tenant's rotation, by number of issuers,
# the median over the runs of each label.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
command -v gnuplot >/dev/null || { echo "gnuplot is missing (apt-get install gnuplot-nox)" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# label issuers first rotated: medians over the runs
/usr/bin/python3 - "$HERE/results.csv" "$WORK" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = line.strip().split(',')
    if len(f) == 8 and f[1].isdigit():
        rows[(f[0], int(f[1]))].append((float(f[2]), float(f[6])))
for label in sorted({k[0] for k in rows}):
    with open('%s/%s.dat' % (sys.argv[2], label), 'w') as out:
        for n in sorted(k[1] for k in rows if k[0] == label):
            v = rows[(label, n)]
            out.write('%d %.3f %.3f\n' % (n, statistics.median(x[0] for x in v),
                                          statistics.median(x[1] for x in v)))
PY

plots=()
for f in "$WORK"/*.dat; do
	l=$(basename "$f" .dat)
	plots+=("'$f' using 1:2 with linespoints title '$l: first verify'")
	plots+=("'$f' using 1:3 with linespoints dashtype 2 title '$l: after another tenant rotates'")
done
gnuplot <<EOF
set terminal pngcairo size 900,500
set output '$HERE/chart.png'
set logscale xy
set xlabel 'trusted issuers (one ES256 key each)'
set ylabel 'ms per verification'
set key top left
set grid
plot $(IFS=,; echo "${plots[*]}")
EOF
echo "wrote $HERE/chart.png"
