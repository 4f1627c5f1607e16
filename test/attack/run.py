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
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, '..', 'stress'))
from stresslib import (Session, SessionLost, Tally, first_error, initdb,  # noqa: E402
                       pg_start, pg_stop)

PORT = 5451
DB = 'jwt_attack'


class Cluster:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix='jwt-attack.')
        if os.geteuid() == 0:
            shutil.chown(self.dir, 'postgres', 'postgres')
        self.data = os.path.join(self.dir, 'data')
        self.log = os.path.join(self.dir, 'server.log')

    def start(self, conf=''):
        # the defaults of a stock server, written out: the worker
        # exhaustion attack counts on them
        initdb(self.data, 'max_worker_processes = 8\nmax_parallel_workers = 8\n'
               'log_min_messages = warning\n' + conf)
        pg_start(self.data, self.dir, PORT, self.log)
        os.environ.update(PGHOST=self.dir, PGPORT=str(PORT), PGUSER='postgres')

    def stop(self, keep=False):
        pg_stop(self.data)
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
    err = first_error(lines)
    return err[0] if err else None


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
