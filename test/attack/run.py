#!/usr/bin/python3
"""The attacker's suite: what an ordinary SQL login can make jwt do.

    /usr/bin/python3 test/attack/run.py [--keep] [-k NAME]

Starts a throwaway cluster of its own (unix socket in a temp dir, no TCP),
with the extension as installed on this machine, and plays each attack in
test/attack/attacks.py from the other side of the trust boundary: an
unprivileged login, a database owner, a role granted only jwt_refresh.
Each attack asserts that it fails, the way the fix says it must, and that
the server is still up afterwards: the postmaster was not restarted (no
backend crashed) and answers.  Run as root (the cluster runs as postgres)
or as the user that owns it.

Ends with "N passed, M failed"; exits 1 when anything failed.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, '..', 'stress'))
from stresslib import Session, SessionLost, Tally  # noqa: E402

PG_BIN = '/usr/lib/postgresql/%s/bin' % os.environ.get('PG_MAJOR', '15')
PORT = 5451
DB = 'jwt_attack'


def as_owner(cmd):
    return (['runuser', '-u', 'postgres', '--'] + cmd) if os.geteuid() == 0 else cmd


def run(cmd):
    return subprocess.run(as_owner(cmd), check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True).stdout


class Cluster:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix='jwt-attack.')
        if os.geteuid() == 0:
            shutil.chown(self.dir, 'postgres', 'postgres')
        self.data = os.path.join(self.dir, 'data')
        self.log = os.path.join(self.dir, 'server.log')

    def start(self, conf=''):
        run([PG_BIN + '/initdb', '-D', self.data, '-U', 'postgres', '-A', 'trust',
             '-E', 'UTF8', '--locale=C'])
        with open(os.path.join(self.data, 'postgresql.conf'), 'a') as f:
            # the defaults of a stock server, written out: the worker
            # exhaustion attack counts on them
            f.write('max_worker_processes = 8\nmax_parallel_workers = 8\n'
                    'log_min_messages = warning\n' + conf)
        run([PG_BIN + '/pg_ctl', '-D', self.data, '-l', self.log, '-w',
             '-o', "-k %s -c listen_addresses='' -p %d" % (self.dir, PORT), 'start'])
        os.environ.update(PGHOST=self.dir, PGPORT=str(PORT), PGUSER='postgres')

    def stop(self, keep=False):
        subprocess.run(as_owner([PG_BIN + '/pg_ctl', '-D', self.data, '-m', 'fast', '-w', 'stop']),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_text(self):
        try:
            with open(self.log, encoding='utf-8', errors='replace') as f:
                return f.read()
        except OSError:
            return ''


class Ctx:
    """What an attack gets: sessions as any role, and the tally."""

    def __init__(self, cluster, tally):
        self.cluster = cluster
        self.T = tally
        self.sessions = []

    def session(self, user='postgres', db=DB):
        s = Session(dbname='host=%s port=%d dbname=%s user=%s' % (self.cluster.dir, PORT, db, user),
                    appname='jwt-attack')
        s.query('\\set VERBOSITY verbose')
        self.sessions.append(s)
        return s

    def close(self):
        for s in self.sessions:
            s.close()
        self.sessions = []

    def check(self, ok, name, detail=''):
        return self.T.check(ok, name, detail)


def error_of(lines):
    """The SQLSTATE of the first error in psql's output, or None."""
    for line in lines:
        m = re.match(r'^(?:psql:[^ ]*: )?(?:ERROR|FATAL):\s+([0-9A-Z]{5}): ', line)
        if m:
            return m.group(1)
    return None


NOISE_RE = re.compile(r'^(psql:[^ ]*: )?(NOTICE|WARNING|DETAIL|HINT|LOCATION|CONTEXT|QUERY):')


def outcome(s, sql):
    """'OK <first value>' or 'ERROR <sqlstate>'."""
    lines = s.query(sql, allow_error=True)
    err = error_of(lines)
    if err:
        return 'ERROR ' + err
    vals = [l for l in lines if l != '' and not NOISE_RE.match(l)]
    return 'OK ' + (vals[0] if vals else '')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--keep', action='store_true', help='keep the cluster directory')
    ap.add_argument('-k', dest='only', help='run only attacks whose name contains this')
    args = ap.parse_args()

    import attacks
    T = Tally()
    cluster = Cluster()
    try:
        cluster.start(attacks.SERVER_CONF)
        su = Session(dbname='host=%s port=%d dbname=postgres user=postgres' % (cluster.dir, PORT))
        su.query('CREATE DATABASE %s;' % DB)
        su.close()
        setup = Ctx(cluster, T)
        attacks.setup(setup)
        setup.close()
        start_time = None
        for name, fn in attacks.ATTACKS:
            if args.only and args.only not in name:
                continue
            ctx = Ctx(cluster, T)
            probe = ctx.session()
            start_time = start_time or probe.value('SELECT pg_postmaster_start_time();')
            t0 = time.time()
            try:
                fn(ctx)
            except SessionLost as e:
                T.check(False, name, 'a session was lost: %s' % e)
            except Exception as e:  # an attack that breaks the harness is a failure
                T.check(False, name, 'raised %s: %s' % (type(e).__name__, e))
            ctx.close()
            # the server stays up: same postmaster start time (no crash
            # restart), and it answers
            after = Ctx(cluster, T)
            try:
                now = after.session().value('SELECT pg_postmaster_start_time();')
            except SessionLost:
                now = None
            T.check(now == start_time, name + ': server stayed up',
                    'postmaster start time %s, was %s' % (now, start_time))
            after.close()
            print('%-60s %5.1f s' % (name, time.time() - t0), flush=True)
        log = cluster.log_text()
        T.check(not re.search(r'terminated by signal|was terminated|all server processes terminated', log),
                'server log: no backend died')
    finally:
        cluster.stop(keep=args.keep)
        if args.keep:
            print('cluster kept in', cluster.dir)
    sys.exit(T.finish())


if __name__ == '__main__':
    sys.path.insert(0, HERE)
    main()
