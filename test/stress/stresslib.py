"""Shared helpers of the Python suites (stress, attack, replica, logical,
crash, pooler, concurrency).

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


# Debian's server of PG_MAJOR, or JWT_PG_BIN (the assert-enabled build of
# scripts/cassert.sh)
PG_BIN = os.environ.get('JWT_PG_BIN') or '/usr/lib/postgresql/%s/bin' % os.environ.get('PG_MAJOR', '15')

# ---- clusters of a suite's own ------------------------------------------


def as_owner(cmd):
    """cmd, run as postgres when we are root (the clusters run as postgres)."""
    return (['runuser', '-u', 'postgres', '--'] + cmd) if os.geteuid() == 0 else cmd


def run(cmd, **kw):
    """Run cmd as the clusters' owner; its output, or CalledProcessError."""
    return subprocess.run(as_owner(cmd), check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, **kw).stdout


# settings every cluster of a run gets (scripts/test.sh sets them for the
# debug_discard_caches leg), and the program that runs the server in place
# of postgres (the Valgrind leg's wrapper)
EXTRA_CONF = os.environ.get('JWT_EXTRA_CONF', '')
POSTGRES_WRAPPER = os.environ.get('JWT_POSTGRES_WRAPPER', '')


def initdb(datadir, conf=''):
    """A new cluster in datadir (trust, UTF8, C locale), conf appended."""
    run([PG_BIN + '/initdb', '-D', datadir, '-U', 'postgres', '-A', 'trust',
         '-E', 'UTF8', '--locale=C'])
    if EXTRA_CONF:
        conf = conf + '\n' + EXTRA_CONF.replace(';', '\n') + '\n'
    if conf:
        with open(os.path.join(datadir, 'postgresql.conf'), 'a') as f:
            f.write(conf)


def pg_start(datadir, sockdir, port, log):
    """Start a cluster on a unix socket in sockdir only (no TCP)."""
    wrapper = ['-p', POSTGRES_WRAPPER] if POSTGRES_WRAPPER else []
    run([PG_BIN + '/pg_ctl', '-D', datadir, '-l', log, '-w', '-t', '600' if wrapper else '120']
        + wrapper + ['-o', "-k %s -c listen_addresses='' -p %d" % (sockdir, port), 'start'])


def pg_stop(datadir, mode='fast'):
    """Stop a cluster; quietly, whatever state it is in."""
    subprocess.run(as_owner([PG_BIN + '/pg_ctl', '-D', datadir, '-m', mode, '-w', 'stop']),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# ---- reading psql's output ----------------------------------------------

NOISE_RE = re.compile(r'^(psql:[^ ]*: )?(NOTICE|WARNING|DETAIL|HINT|LOCATION|CONTEXT|QUERY):')


def quote(s):
    """s as an SQL string literal."""
    return "'" + s.replace("'", "''") + "'"


def first_error(lines):
    """(SQLSTATE, message, hint) of the first ERROR or FATAL in psql's
    output (with VERBOSITY verbose), or None."""
    for i, line in enumerate(lines):
        m = re.match(r'^(?:psql:[^ ]*: )?(?:ERROR|FATAL):\s+([0-9A-Z]{5}): (.*)$', line)
        if m:
            hint = next((l[len('HINT:  '):] for l in lines[i + 1:] if l.startswith('HINT:')), None)
            return m.group(1), m.group(2), hint
    return None


def outcome_of(lines):
    """'OK <first value>' or 'ERROR <sqlstate>' of psql's output."""
    err = first_error(lines)
    if err:
        return 'ERROR ' + err[0]
    vals = [l for l in lines if l != '' and not NOISE_RE.match(l)]
    return 'OK ' + (vals[0] if vals else '')


def outcome(s, sql):
    """'OK <first value>' or 'ERROR <sqlstate>' of sql in Session s."""
    return outcome_of(s.query(sql, allow_error=True))


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
