"""Shared helpers of the stress suites (test/stress/mutation.py, memory.py).

Standard library only.  A Session is one psql process, so one backend, kept
open for the whole suite: SQL goes in on stdin, and each call reads psql's
output up to a marker line echoed after it.  psql flushes its output after
every query, so this works through pipes.  If the backend dies, psql exits
(a script never reconnects), and the next call raises SessionLost.
"""

import os
import re
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
KEYS_DIR = os.path.join(REPO, 'test', 'fixtures', 'keys')

ERROR_RE = re.compile(r'^(psql:[^ ]*: )?(ERROR|FATAL|PANIC):')
LOST_RE = re.compile(r'^(psql:[^ ]*: )?(no connection to the server|connection to server was lost'
                     r'|server closed the connection unexpectedly)')


class SessionLost(Exception):
    """psql went away: the backend crashed, or the connection failed."""


class SQLError(Exception):
    """A statement failed (psql printed ERROR)."""


def key_variables():
    """psql variables k_<name> = the text of test/fixtures/keys/<name>.<ext>."""
    out = {}
    for fn in sorted(os.listdir(KEYS_DIR)):
        stem, ext = os.path.splitext(fn)
        if ext in ('.pem', '.json'):
            with open(os.path.join(KEYS_DIR, fn), encoding='ascii') as f:
                out['k_' + re.sub(r'\W', '_', stem)] = f.read()
    return out


class Session:
    def __init__(self, dbname=None, variables=None, appname='jwt-stress'):
        cmd = ['psql', '-X', '-A', '-t', '-q', '-P', 'pager=off', '-v', 'ON_ERROR_STOP=0']
        for k, v in (variables or {}).items():
            cmd += ['-v', '%s=%s' % (k, v)]
        if dbname:
            cmd += ['-d', dbname]
        env = dict(os.environ, PGCLIENTENCODING='UTF8', PGAPPNAME=appname)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env)
        self.count = 0
        self.tail = []

    def query(self, sql, allow_error=False):
        """Run sql (one or more statements); return psql's output lines."""
        self.count += 1
        marker = '__jwt_stress_end_%d__' % self.count
        try:
            self.proc.stdin.write((sql.rstrip() + '\n\\echo ' + marker + '\n').encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise SessionLost(self._lost())
        lines = []
        while True:
            raw = self.proc.stdout.readline()
            if not raw:
                self.tail = lines[-20:]
                raise SessionLost(self._lost())
            line = raw.decode('utf-8', 'backslashreplace').rstrip('\n')
            if line == marker:
                break
            lines.append(line)
        if any(LOST_RE.search(l) for l in lines):
            self.tail = lines[-20:]
            raise SessionLost(self._lost())
        if not allow_error and any(ERROR_RE.match(l) for l in lines):
            raise SQLError('\n'.join(lines[-30:]))
        return lines

    def rows(self, sql):
        """Rows of a query's unaligned output, split on '|'."""
        return [l.split('|') for l in self.query(sql) if l != '']

    def value(self, sql):
        rows = self.rows(sql)
        return rows[0][0] if rows else None

    def _lost(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            rc = None
        return 'psql exited with status %s; its last output:\n%s' % (rc, '\n'.join(self.tail))

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_for_server(dbname=None, timeout=120):
    """After a crash the server restarts and recovers: wait until it answers."""
    deadline = time.time() + timeout
    while True:
        s = Session(dbname=dbname)
        try:
            if s.value('SELECT 1;') == '1':
                return s
        except (SessionLost, SQLError):
            pass
        s.close()
        if time.time() > deadline:
            return None
        time.sleep(1)


class Tally:
    """The suite's checks; ends the output with 'N passed, M failed'."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, name, detail=''):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print('FAIL: %s%s' % (name, (': ' + detail) if detail else ''), flush=True)
        return ok

    def add(self, passed, failed):
        self.passed += passed
        self.failed += failed

    def finish(self):
        print('%d passed, %d failed' % (self.passed, self.failed), flush=True)
        return 1 if self.failed else 0
