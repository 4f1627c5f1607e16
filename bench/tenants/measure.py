#!/usr/bin/python3
"""bench/tenants/measure.py: what verification costs as jwt_issuers grows.

    PGHOST=... PGPORT=... PGUSER=... /usr/bin/python3 bench/tenants/measure.py LABEL [SIZES]

Runs against the server the PG* environment names, with the extension jwt
installed there (whatever build is installed: run it once per build, with
a LABEL of its own).  Makes database jwt_bench_tenants and drops it at the
end.  For each size (default 10,1000,10000,100000 issuers, one ES256 key
each, rows added in bulk as the owner), measures, as medians:

- first:    a new session's first jwt_verify (a token of one tenant), ms;
- warm:     a verification in a session that has verified tokens of the
            same 20 tenants before (every token distinct: no signature is
            remembered), ms;
- rss:      that backend's RssAnon after 1,000 such verifications, kB;
- single:   one such verification timed alone (as the next are), ms;
- rotated:  the first verification in that warm session after another
            session rotated a key of a tenant it does not use, ms;
- import:   jwt_key_import of one more issuer's key, ms (200 of them).

Appends "label,issuers,first_ms,warm_ms,rss_kb,single_ms,rotated_ms,import_ms" lines
to bench/tenants/results.csv and prints them.  A benchmark: it checks that
every verification succeeds and asserts nothing about the figures.
"""

import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DB = os.environ.get('BENCH_DB', 'jwt_bench_tenants')
SAMPLE = 20          # tenants a warm session serves
WARM_CALLS = 1000
ROTATIONS = 15
IMPORTS = 200
FIRST_SESSIONS = 7


def psql(sql, db=DB):
    r = subprocess.run(['psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-d', db],
                       input=sql, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip()[:2000])
    return r.stdout.strip()


class Session:
    """One backend, kept open: statements in, one line of answer out."""

    def __init__(self):
        self.p = subprocess.Popen(['psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-d', DB],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def value(self, sql):
        self.p.stdin.write(sql + '\n\\echo __end\n')
        self.p.stdin.flush()
        out = []
        while True:
            line = self.p.stdout.readline()
            if line == '':
                raise RuntimeError('session lost at: ' + sql)
            line = line.rstrip('\n')
            if line == '__end':
                return '\n'.join(out)
            out.append(line)

    def close(self):
        self.p.stdin.close()
        self.p.wait()


SETUP = r"""
CREATE EXTENSION jwt;
CREATE TABLE tenant (i int PRIMARY KEY, iss text NOT NULL, jwk jsonb NOT NULL);
CREATE TABLE tok (n serial PRIMARY KEY, i int NOT NULL, t text NOT NULL);
-- ms of one jwt_verify of token n (which must verify)
CREATE FUNCTION verify_ms(k int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
  tk text := (SELECT t FROM tok WHERE n = k);
  t0 timestamptz;
BEGIN
  t0 := clock_timestamp();
  PERFORM jwt_verify(tk);
  RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;
-- ms per jwt_verify over tokens a..b
CREATE FUNCTION verify_range_ms(a int, b int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
  toks text[] := ARRAY(SELECT t FROM tok WHERE n BETWEEN a AND b ORDER BY n);
  t0 timestamptz;
  x text;
BEGIN
  t0 := clock_timestamp();
  FOREACH x IN ARRAY toks LOOP
    PERFORM jwt_verify(x);
  END LOOP;
  RETURN extract(epoch FROM clock_timestamp() - t0) * 1000 / cardinality(toks);
END $$;
"""


def grow(to):
    """Tenants 1..to, each with its issuer row and one ES256 key."""
    have = int(psql('SELECT coalesce(max(i), 0) FROM tenant'))
    if have >= to:
        return
    psql("""
INSERT INTO tenant SELECT g, format('https://tenant%%s.example', g), jwt_jwk_generate('ES256')
FROM generate_series(%d, %d) g;
INSERT INTO jwt_issuers (issuer) SELECT iss FROM tenant WHERE i > %d;
INSERT INTO jwt_keys (kid, alg, jwk, issuer)
SELECT 'k1', 'ES256', (jwk - 'd') || '{"kid":"k1","use":"sig"}', iss FROM tenant WHERE i > %d;
ANALYZE jwt_issuers; ANALYZE jwt_keys;
""" % (have + 1, to, have, have))


def make_tokens(size):
    """Distinct tokens of SAMPLE tenants spread over 1..size"""
    psql("TRUNCATE tok; ALTER SEQUENCE tok_n_seq RESTART;")
    # the sample: tenants spread over 1..size-1 (tenant size is the one
    # that rotates)
    n_s = min(SAMPLE, size - 1)
    step = max((size - 1) // n_s, 1)
    psql("""
INSERT INTO tok (i, t)
SELECT s.i, jwt_sign(jsonb_build_object('iss', s.iss, 'sub', 'u' || g,
                                        'exp', floor(extract(epoch FROM now()))::bigint + 7200),
                     s.jwk::text, 'ES256', '{"kid":"k1"}')
FROM generate_series(1, %d) g
JOIN LATERAL (SELECT * FROM tenant WHERE i = 1 + ((g %% %d) * %d) %% %d) s ON true
ORDER BY g;
""" % (WARM_CALLS * 2 + 200, n_s, step, size - 1))


def rss_kb(pid):
    with open('/proc/%s/status' % pid) as f:
        for line in f:
            if line.startswith('RssAnon:'):
                return int(line.split()[1])
    return 0


def measure(label, size):
    grow(size)
    make_tokens(size)
    ntok = int(psql('SELECT count(*) FROM tok'))
    # a session's first verification
    firsts = []
    for k in range(FIRST_SESSIONS):
        s = Session()
        firsts.append(float(s.value('SELECT verify_ms(%d);' % (k + 1))))
        s.close()
    # warm: the sample's tenants verified before
    s = Session()
    pid = s.value('SELECT pg_backend_pid();')
    s.value('SELECT verify_range_ms(1, 200);')
    warm = statistics.median(float(s.value('SELECT verify_range_ms(%d, %d);' % (a, a + 199)))
                             for a in range(201, 201 + WARM_CALLS, 200))
    rss = rss_kb(pid)
    # one call at a time, as the rotated ones below are timed
    nxt = 201 + WARM_CALLS
    single = []
    for r in range(ROTATIONS):
        time.sleep(0.05)
        single.append(float(s.value('SELECT verify_ms(%d);' % (nxt % ntok + 1))))
        nxt += 1
    # another tenant rotates (not one of the sample's)
    # (from a session of its own, and a moment before the timed call, so
    # that the timing is of the warm session's work, not of a backend
    # starting or exiting beside it)
    rotated = []
    other = size
    rot = Session()
    for r in range(ROTATIONS):
        rot.value("SELECT jwt_jwks_import(jsonb_build_object('keys', jsonb_build_array("
                  "(jwt_jwk_generate('ES256') - 'd') || jsonb_build_object('kid', 'r%d'))), iss) "
                  "FROM tenant WHERE i = %d;" % (r, other))
        time.sleep(0.05)
        rotated.append(float(s.value('SELECT verify_ms(%d);' % (nxt % ntok + 1))))
        nxt += 1
    rot.close()
    failures = s.value("SELECT count(*) FROM tok WHERE NOT jwt_is_valid(t);")
    s.close()
    if failures != '0':
        raise RuntimeError('%s tokens did not verify' % failures)
    # importing one more issuer's key, IMPORTS times
    t0 = time.time()
    psql("""
SELECT count(jwt_key_import((jwt_jwk_generate('ES256') - 'd')::text, 'ES256', 'k1',
                            format('https://extra%%s-%%s.example', %d, g)))
FROM generate_series(1, %d) g;
""" % (size, IMPORTS))
    imp = (time.time() - t0) * 1000 / IMPORTS
    psql("DELETE FROM jwt_issuers WHERE issuer LIKE 'https://extra%%';")
    row = '%s,%d,%.3f,%.4f,%d,%.4f,%.4f,%.3f' % (label, size, statistics.median(firsts), warm, rss,
                                                statistics.median(single), statistics.median(rotated), imp)
    print(row, flush=True)
    return row


def main():
    label = sys.argv[1] if len(sys.argv) > 1 else 'current'
    sizes = [int(x) for x in (sys.argv[2] if len(sys.argv) > 2 else '10,1000,10000,100000').split(',')]
    psql('DROP DATABASE IF EXISTS %s;' % DB, db='postgres')
    psql('CREATE DATABASE %s;' % DB, db='postgres')
    try:
        psql(SETUP)
        rows = [measure(label, n) for n in sorted(sizes)]
    finally:
        psql('DROP DATABASE IF EXISTS %s;' % DB, db='postgres')
    with open(os.path.join(HERE, 'results.csv'), 'a') as f:
        for r in rows:
            f.write(r + '\n')


if __name__ == '__main__':
    main()
