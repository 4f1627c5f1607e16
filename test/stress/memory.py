#!/usr/bin/python3
"""Memory stress suite: a backend's memory, read from the kernel, over 1,000,000
jwt_verify calls per algorithm family.

    /usr/bin/python3 test/stress/memory.py [--calls N] [--warmup N] [--jobs N] [--families ...]

Connects with the usual PG* environment variables, as a superuser (or a
member of pg_read_server_files): the backend reads its own /proc/self/status
with pg_read_file().  The server must run on Linux, on this machine or not.

Families: HMAC (HS256/384/512 with a text secret, a bytea secret, an oct JWK),
RSA (RS256, PS256, RS512, PS384 with the public JWK, and the JWKS),
ECDSA (ES256 with the JWK and the JWKS), EdDSA (Ed25519 with the JWK and the
JWKS).  Each family runs in a session of its own (--jobs at a time, default
all 4 at once): WARMUP calls, then CALLS calls, all inside one plpgsql
function, i.e. one transaction.  Every 10th call fails inside a plpgsql
BEGIN ... EXCEPTION block, so the error is raised inside a subtransaction
that is rolled back: in turn a tampered signature (JW002), a key of another
family (JW003), an expired token (JW004) and a key that does not parse
(22023).  Every 20th iteration also asks jwt_is_valid() about the tampered
token, which must say false without raising.

Checks, per family: RssAnon (anonymous memory: heap and mmap; VmRSS would
also count the shared buffers this backend touches, which is not a leak)
after the CALLS calls minus RssAnon after the warm-up is under 1024 kB;
every failing call raised the SQLSTATE it raised the first time, every other
call returned the right claims, jwt_is_valid never said true.  And the
sessions survive: the same backend pid at the end, and
pg_postmaster_start_time() unchanged.

Ends with "N passed, M failed"; exits 1 when anything failed.
"""

import argparse
import os
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stresslib import HERE, Session, SessionLost, SQLError, Tally, key_variables, wait_for_server  # noqa: E402

FAMILIES = ['HMAC', 'RSA', 'ECDSA', 'EdDSA']
LIMIT_KB = 1024


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--calls', type=int, default=int(os.environ.get('JWT_STRESS_CALLS', '1000000')),
                    help='measured jwt_verify calls per family (default 1,000,000)')
    ap.add_argument('--warmup', type=int, default=int(os.environ.get('JWT_STRESS_WARMUP', '20000')),
                    help='calls before the first measurement (default 20,000)')
    ap.add_argument('--jobs', type=int, default=int(os.environ.get('JWT_STRESS_JOBS', '4')),
                    help='families run at once, one session each (default 4)')
    ap.add_argument('--families', default=','.join(FAMILIES), help='comma list of ' + ', '.join(FAMILIES))
    ap.add_argument('--keep', action='store_true', help='keep schema stress_memory')
    return ap.parse_args()


def lit(s):
    return "'" + s.replace("'", "''") + "'"


class Worker(threading.Thread):
    """Runs families, one after another, each in a session of its own."""

    COLS = ['fam', 'calls', 'ok_calls', 'failed_calls', 'isvalid_calls', 'unexpected', 'anon_start', 'anon_warm',
            'anon_end', 'rss_start', 'rss_warm', 'rss_end', 'hwm_end', 'seconds', 'cpu_seconds', 'samples', 'codes',
            'first_unexpected']

    def __init__(self, queue, lock, args, results, pst0):
        super().__init__()
        self.queue, self.lock, self.args, self.results, self.pst0 = queue, lock, args, results, pst0

    def run(self):
        while True:
            with self.lock:
                if not self.queue:
                    return
                fam = self.queue.pop(0)
            self.results[fam] = self.one(fam)

    def one(self, fam):
        out = {'fam': fam, 'error': None}
        t = time.time()
        sess = Session(appname='jwt-stress-memory-' + fam)
        try:
            pid0, pst0 = sess.rows('SELECT pg_backend_pid(), pg_postmaster_start_time();')[0]
            sample = max(1, self.args.calls // 10)
            row = sess.rows('SELECT * FROM stress_memory.run(%s, %d, %d, %d);'
                            % (lit(fam), self.args.calls, self.args.warmup, sample))[0]
            out.update(zip(self.COLS, row))
            pid1, pst1 = sess.rows('SELECT pg_backend_pid(), pg_postmaster_start_time();')[0]
            out['same_pid'] = (pid0 == pid1, '%s then %s' % (pid0, pid1))
            out['same_pst'] = (pst0 == pst1 == self.pst0, '%s then %s' % (pst0, pst1))
        except (SessionLost, SQLError) as e:
            out['error'] = '%s: %s' % (type(e).__name__, e)
        finally:
            sess.close()
        out['wall'] = time.time() - t
        with self.lock:
            print('  %-6s done in %.1f s%s' % (fam, out['wall'], '' if not out['error'] else
                                                 ': ' + out['error'].split(':')[0] + ' (see below)'), flush=True)
        return out


def main():
    args = parse_args()
    fams = [f for f in args.families.split(',') if f]
    for f in fams:
        if f not in FAMILIES:
            sys.exit('unknown family %s (have %s)' % (f, ', '.join(FAMILIES)))
    tally = Tally()
    t_start = time.time()
    print('memory suite: %d calls per family after %d warm-up calls; families %s, %d at a time; %d CPUs'
          % (args.calls, args.warmup, ', '.join(fams), args.jobs, os.cpu_count() or 0), flush=True)

    setup = Session(variables=key_variables(), appname='jwt-stress-memory')
    try:
        setup.query('SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS jwt;')
        with open(os.path.join(HERE, 'memory.sql'), encoding='ascii') as f:
            setup.query(f.read())
        pst0 = setup.value('SELECT pg_postmaster_start_time();')
        can = setup.value("SELECT stress_memory.status('RssAnon') IS NOT NULL;")
    except (SessionLost, SQLError) as e:
        tally.check(False, 'set-up', str(e))
        setup.close()
        return tally.finish()
    if can != 't':
        tally.check(False, 'reading /proc/self/status from the backend', 'no RssAnon (not Linux?)')
        setup.close()
        return tally.finish()

    # the measurement itself: a deliberate 4 MB must show
    seen = int(setup.value('SELECT stress_memory.control(4096);'))
    tally.check(seen >= 3072, 'control: RssAnon sees a deliberate 4096 kB allocation', 'it saw %d kB' % seen)
    print('control: a deliberate 4096 kB allocation shows as %+d kB of RssAnon' % seen, flush=True)

    results = {}
    queue = list(fams)
    lock = threading.Lock()
    workers = [Worker(queue, lock, args, results, pst0) for _ in range(max(1, min(args.jobs, len(fams))))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.time() - t_start

    print('\nRssAnon and VmRSS of each backend, kB (growth = after the %d calls - after the warm-up; limit %d kB)'
          % (args.calls, LIMIT_KB))
    print('%-6s %9s %9s %8s %9s %9s %8s | %8s %8s %8s | %7s %6s %6s  %s'
          % ('family', 'calls', 'anon0', 'anon_w', 'anon_end', 'growth', 'result',
             'rss_w', 'rss_end', 'rss_grow', 'fails', 'wall s', 'cpu s', 'failing calls: SQLSTATE'))
    for fam in fams:
        r = results.get(fam, {'error': 'not run'})
        if r.get('error'):
            print('%-6s  ERROR: %s' % (fam, r['error'].split(':')[0]))
            tally.check(False, '%s: the run completed' % fam, r['error'])
            continue
        growth = int(r['anon_end']) - int(r['anon_warm'])
        rss_growth = int(r['rss_end']) - int(r['rss_warm'])
        ok = growth < LIMIT_KB
        print('%-6s %9s %9s %8s %9s %+9d %8s | %8s %8s %+8d | %7s %6s %6s  %s'
              % (fam, r['calls'], r['anon_start'], r['anon_warm'], r['anon_end'], growth, 'ok' if ok else 'LEAK?',
                 r['rss_warm'], r['rss_end'], rss_growth, r['failed_calls'], r['seconds'], r['cpu_seconds'],
                 r['codes']))
        tally.check(ok, '%s: RssAnon growth %d kB under %d kB' % (fam, growth, LIMIT_KB),
                    'after warm-up %s kB, at the end %s kB; RssAnon every %d calls: %s'
                    % (r['anon_warm'], r['anon_end'], max(1, args.calls // 10), r['samples']))
        tally.check(r['unexpected'] == '0' and int(r['ok_calls']) + int(r['failed_calls']) == int(r['calls']),
                    '%s: every call ended as expected' % fam,
                    '%s unexpected; first: %s' % (r['unexpected'], r['first_unexpected']))
        tally.check(r['same_pid'][0], '%s: the backend survived (same pid)' % fam, r['same_pid'][1])
        tally.check(r['same_pst'][0], '%s: pg_postmaster_start_time() unchanged' % fam, r['same_pst'][1])
    print('\nRssAnon every %d calls after the warm-up, kB:' % max(1, args.calls // 10))
    for fam in fams:
        r = results.get(fam, {})
        if not r.get('error') and 'samples' in r:
            print('  %-6s %s' % (fam, r['samples']))
    print('\ncalls per family: %d jwt_verify (of which %s fail in a rolled-back subtransaction) + %s jwt_is_valid'
          % (args.calls, next((results[f]['failed_calls'] for f in fams if 'failed_calls' in results.get(f, {})), '?'),
             next((results[f]['isvalid_calls'] for f in fams if 'isvalid_calls' in results.get(f, {})), '?')))

    try:
        pst1 = setup.value('SELECT pg_postmaster_start_time();')
        if pst1 is None:
            raise SessionLost('no answer')
        tally.check(pst1 == pst0, 'set-up session: pg_postmaster_start_time() unchanged', '%s then %s' % (pst0, pst1))
        if not args.keep:
            setup.query('DROP SCHEMA stress_memory CASCADE;')
    except (SessionLost, SQLError) as e:
        tally.check(False, 'set-up session survived', str(e))
        try:
            s = wait_for_server(None, timeout=60)
            if not args.keep:
                s.query('DROP SCHEMA IF EXISTS stress_memory CASCADE;', allow_error=True)
            s.close()
        except Exception:
            pass
    setup.close()
    cpu = [float(results[f]['cpu_seconds']) for f in fams if 'cpu_seconds' in results.get(f, {})]
    if cpu:
        ncpu = os.cpu_count() or 1
        print('backend CPU time of the measured calls: %.1f s in all; on %d idle CPU(s) with %d job(s) the wall '
              'time would be about %.0f s' % (sum(cpu), ncpu, args.jobs,
                                              max(max(cpu), sum(cpu) / min(ncpu, max(1, args.jobs)))))
    print('total wall time %.1f s' % wall)
    return tally.finish()


if __name__ == '__main__':
    sys.exit(main())
