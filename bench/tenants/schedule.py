#!/usr/bin/python3
"""bench/tenants/schedule.py: what one JWKS worker round costs to choose its
issuers, as the number of fetched issuers grows.

    PGHOST=... PGPORT=... PGUSER=... /usr/bin/python3 bench/tenants/schedule.py [SIZES]

Runs against the server the PG* environment names, with jwt 0.5 installed
there.  Makes database jwt_bench_schedule and drops it at the end.  For each
size (default 10,1000,10000,100000 issuers, every one with a JWKS URL and a
row in jwt_jwks_fetches, 5 of them due, one asked for by a kid miss) it
times, as medians of 25 runs in one session (psql's \\timing), the statements a round runs
besides the fetches themselves:

- before:  0.5's first worker: every fetched issuer joined with its row,
           the one asked for found by the SHA-256 of each name, then the
           time to the next refresh by min(next_refresh);
- after:   the queue: the issuer asked for by primary key, the due ones from
           the index on next_refresh, the next refresh from the index.

Both are the worker's own SQL (src/jwksworker.c at b8ff584 and now), run on
the same tables in the same session, so the ratio is within one run.  The
HTTPS fetch of each refreshed issuer costs the same at any size and is left
out.  Appends "issuers,before_ms,after_ms" lines to
bench/tenants/schedule.csv and prints them.  A benchmark: it checks that
both choose the same issuers and asserts nothing about the figures.
"""

import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DB = 'jwt_bench_schedule'
RUNS = 25
BATCH = 32

BEFORE = """
PREPARE pick(bytea[], boolean) AS
SELECT c.issuer, c.asked FROM (
  SELECT t.issuer, pg_catalog.sha256(pg_catalog.convert_to(t.issuer, pg_catalog.getdatabaseencoding()))
         OPERATOR(pg_catalog.=) ANY ($1) AS asked, s.next_refresh
  FROM public.jwt_issuers AS t
  LEFT JOIN public.jwt_jwks_fetches AS s ON s.issuer OPERATOR(pg_catalog.=) t.issuer
  WHERE (t.jwks_uri IS NOT NULL OR t.jwks_discovery)) AS c
WHERE c.asked OR $2 OR c.next_refresh IS NULL OR c.next_refresh OPERATOR(pg_catalog.<=) pg_catalog.now()
ORDER BY c.asked DESC, c.next_refresh NULLS FIRST, c.issuer;
PREPARE wake AS
SELECT pg_catalog.ceil(pg_catalog.date_part('epoch',
       pg_catalog.min(s.next_refresh) OPERATOR(pg_catalog.-) pg_catalog.clock_timestamp())
       OPERATOR(pg_catalog.*) 1000)::pg_catalog.int8 FROM public.jwt_jwks_fetches AS s;
"""

AFTER = """
PREPARE pick2(text[], bytea[], boolean, integer) AS
SELECT t.issuer, true FROM public.jwt_issuers AS t
WHERE t.issuer OPERATOR(pg_catalog.=) ANY ($1) AND (t.jwks_uri IS NOT NULL OR t.jwks_discovery)
UNION ALL
SELECT t.issuer, true FROM public.jwt_issuers AS t
WHERE pg_catalog.cardinality($2) OPERATOR(pg_catalog.>) 0
  AND pg_catalog.octet_length(t.issuer) OPERATOR(pg_catalog.>=) 256 AND (t.jwks_uri IS NOT NULL OR t.jwks_discovery)
  AND pg_catalog.sha256(pg_catalog.convert_to(t.issuer, pg_catalog.getdatabaseencoding())) OPERATOR(pg_catalog.=) ANY ($2)
UNION ALL
(SELECT t.issuer, false FROM public.jwt_issuers AS t WHERE $3 AND (t.jwks_uri IS NOT NULL OR t.jwks_discovery)
   AND t.issuer OPERATOR(pg_catalog.<>) ALL ($1) ORDER BY t.issuer)
UNION ALL
(SELECT s.issuer, false FROM public.jwt_jwks_fetches AS s
   JOIN public.jwt_issuers AS t ON t.issuer OPERATOR(pg_catalog.=) s.issuer
   WHERE NOT $3 AND s.next_refresh IS NULL AND (t.jwks_uri IS NOT NULL OR t.jwks_discovery)
   AND s.issuer OPERATOR(pg_catalog.<>) ALL ($1) ORDER BY s.next_refresh NULLS FIRST LIMIT $4)
UNION ALL
(SELECT s.issuer, false FROM public.jwt_jwks_fetches AS s
   JOIN public.jwt_issuers AS t ON t.issuer OPERATOR(pg_catalog.=) s.issuer
   WHERE NOT $3 AND s.next_refresh OPERATOR(pg_catalog.<=) pg_catalog.now() AND (t.jwks_uri IS NOT NULL OR t.jwks_discovery)
   AND s.issuer OPERATOR(pg_catalog.<>) ALL ($1) ORDER BY s.next_refresh NULLS FIRST LIMIT $4);
PREPARE wake2 AS
SELECT CASE WHEN EXISTS (SELECT FROM public.jwt_jwks_fetches AS s WHERE s.next_refresh IS NULL)
       THEN 0::pg_catalog.int8 ELSE
       pg_catalog.ceil(pg_catalog.date_part('epoch',
       (SELECT pg_catalog.min(s.next_refresh) FROM public.jwt_jwks_fetches AS s)
       OPERATOR(pg_catalog.-) pg_catalog.clock_timestamp()) OPERATOR(pg_catalog.*) 1000)::pg_catalog.int8 END;
"""


def psql(sql, db=DB):
    r = subprocess.run(['psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-d', db],
                       input=sql, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip()[:2000])
    return r.stdout.strip()


def measure(n):
    psql('DROP DATABASE IF EXISTS %s;' % DB, db='postgres')
    psql('CREATE DATABASE %s;' % DB, db='postgres')
    psql("""
SET max_parallel_workers_per_gather = 0;
CREATE EXTENSION jwt;
INSERT INTO jwt_issuers (issuer, jwks_uri)
SELECT format('https://tenant-%%s.example', g), format('https://tenant-%%s.example/jwks', g)
FROM generate_series(1, %d) g;
-- fetched a while ago, next due within the day; 5 due now
UPDATE jwt_jwks_fetches SET last_attempt = now() - interval '1 hour', last_success = now() - interval '1 hour',
       next_refresh = now() + (random() * interval '1 day') + interval '1 minute';
UPDATE jwt_jwks_fetches SET next_refresh = now() - interval '1 second'
WHERE issuer IN (SELECT format('https://tenant-%%s.example', g) FROM generate_series(2, 6) g);
VACUUM ANALYZE jwt_issuers; VACUUM ANALYZE jwt_jwks_fetches;
""" % n)
    asked = 'https://tenant-%d.example' % n     # not among the due
    setup = BEFORE + AFTER
    digest = "ARRAY[sha256(convert_to('%s', 'UTF8'))]" % asked
    # psql's \timing, in one session, the two alternating
    script = [setup, 'SET max_parallel_workers_per_gather = 0;', '\\timing on']
    for _ in range(RUNS):
        script.append("EXECUTE pick(%s, false) \\g /dev/null" % digest)
        script.append("EXECUTE wake \\g /dev/null")
        script.append("EXECUTE pick2(ARRAY['%s'], '{}'::bytea[], false, %d) \\g /dev/null" % (asked, BATCH + 1))
        script.append("EXECUTE wake2 \\g /dev/null")
    out = psql('\n'.join(script))
    times = [float(line.split()[1]) for line in out.splitlines() if line.startswith('Time: ')]
    if len(times) != 4 * RUNS:
        raise RuntimeError('expected %d timings, got %d' % (4 * RUNS, len(times)))
    before = [times[i] + times[i + 1] for i in range(0, len(times), 4)]
    after = [times[i + 2] + times[i + 3] for i in range(0, len(times), 4)]
    chosen_before = psql(BEFORE + "EXECUTE pick(%s, false);" % digest).splitlines()
    chosen_after = psql(AFTER + "EXECUTE pick2(ARRAY['%s'], '{}'::bytea[], false, %d);"
                        % (asked, BATCH + 1)).splitlines()
    if sorted(chosen_before) != sorted(chosen_after) or len(chosen_after) != 6:
        raise RuntimeError('the two choose differently: %s / %s' % (chosen_before, chosen_after))
    psql('DROP DATABASE %s;' % DB, db='postgres')
    return statistics.median(before), statistics.median(after)


def main():
    sizes = [int(x) for x in (sys.argv[1] if len(sys.argv) > 1 else '10,1000,10000,100000').split(',')]
    path = os.path.join(HERE, 'schedule.csv')
    new = not os.path.exists(path)
    with open(path, 'a') as f:
        if new:
            f.write('issuers,before_ms,after_ms\n')
        for n in sizes:
            b, a = measure(n)
            line = '%d,%.3f,%.3f' % (n, b, a)
            print(line, flush=True)
            f.write(line + '\n')


if __name__ == '__main__':
    main()
