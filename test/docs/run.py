#!/usr/bin/python3
"""The README's examples are the tested ones.

    /usr/bin/python3 test/docs/run.py

A block of a pg_regress file between "-- README: NAME (begin)" and
"-- README: NAME (end)" must appear in README.md verbatim, so an example
cannot drift from the test that runs it.  Ends with "N passed, M failed".
"""

import glob
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
BLOCK = re.compile(r'^-- README: (.+?) \(begin\)\n(.*?)^-- README: \1 \(end\)\n', re.M | re.S)

with open(os.path.join(ROOT, 'README.md')) as f:
    readme = f.read()

passed = failed = 0
for path in sorted(glob.glob(os.path.join(ROOT, 'sql', '*.sql'))):
    with open(path) as f:
        for name, body in BLOCK.findall(f.read()):
            if body.strip() and body in readme:
                passed += 1
            else:
                failed += 1
                print('FAIL: README.md lacks the block "%s" of %s' % (name, os.path.basename(path)))
if passed + failed == 0:
    failed += 1
    print('FAIL: no README blocks found in sql/*.sql')
print('%d passed, %d failed' % (passed, failed))
sys.exit(1 if failed else 0)
