"""loginlib.py -- what the login suites share (test/login/run.py and
test/login/device.py): the PostgreSQL that pg_config names, the tally of
checks (one line each, ending with "N passed, M failed") and the basics of
a cluster of their own.  The caller puts test/stress on sys.path."""

import os
import re
import shutil
import subprocess
import tempfile

from stresslib import as_owner


def pg_config_path():
    """$PG_CONFIG; else that of $PG_MAJOR (as the other suites' PG_BIN);
    else the pg_config on PATH."""
    if os.environ.get('PG_CONFIG'):
        return os.environ['PG_CONFIG']
    major = os.environ.get('PG_MAJOR')
    if major and os.path.exists('/usr/lib/postgresql/%s/bin/pg_config' % major):
        return '/usr/lib/postgresql/%s/bin/pg_config' % major
    return 'pg_config'


def pg_config(flag):
    return subprocess.run([pg_config_path(), flag], check=True,
                          stdout=subprocess.PIPE, text=True).stdout.strip()


def pg_major():
    m = re.match(r'PostgreSQL (\d+)', pg_config('--version'))
    return int(m.group(1)) if m else 0


class Tally:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0

    def check(self, ok, name, detail=''):
        if ok:
            self.passed += 1
            print('ok: %s%s' % (name, (' (%s)' % detail) if detail else ''), flush=True)
        else:
            self.failed += 1
            print('FAIL: %s%s' % (name, (': ' + detail) if detail else ''), flush=True)
        return ok

    def skip(self, name, why):
        self.skipped += 1
        print('skipped: %s: %s' % (name, why), flush=True)

    def finish(self):
        print('%d passed, %d failed' % (self.passed, self.failed), flush=True)
        return 1 if self.failed else 0


class BaseCluster:
    """A cluster of the login suites: initdb'd in a temp dir of its own,
    unix socket there, no TCP; as postgres when we are root.  Subclasses
    write its configuration (init)."""

    def __init__(self, port, prefix):
        self.port = port
        self.bindir = pg_config('--bindir')
        self.dir = tempfile.mkdtemp(prefix=prefix)
        if os.geteuid() == 0:
            shutil.chown(self.dir, 'postgres', 'postgres')
        self.data = os.path.join(self.dir, 'data')
        self.log = os.path.join(self.dir, 'server.log')
        self.started = False

    def run(self, cmd):
        return subprocess.run(as_owner(cmd), check=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True).stdout

    def write_auth(self, hba, ident):
        """pg_hba.conf and pg_ident.conf"""
        for name, text in (('pg_hba.conf', hba), ('pg_ident.conf', ident)):
            path = os.path.join(self.data, name)
            with open(path, 'w') as f:
                f.write(text)
            if os.geteuid() == 0:
                shutil.chown(path, 'postgres', 'postgres')

    def start(self):
        """True when the server started; else the tail of its log in self.start_error."""
        try:
            self.run([self.bindir + '/pg_ctl', '-D', self.data, '-l', self.log, '-w', '-t', '120',
                      '-o', "-k %s -c listen_addresses='' -p %d" % (self.dir, self.port), 'start'])
        except subprocess.CalledProcessError:
            self.start_error = self.log_text()[-3000:]
            return False
        self.started = True
        return True

    def stop(self, keep=False):
        if self.started:
            subprocess.run(as_owner([self.bindir + '/pg_ctl', '-D', self.data, '-m', 'fast', '-w',
                                     'stop']), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if keep:
            print('kept: %s' % self.dir, flush=True)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def conninfo(self, db='postgres', user='postgres'):
        return 'host=%s port=%d dbname=%s user=%s' % (self.dir, self.port, db, user)

    def log_size(self):
        try:
            return os.path.getsize(self.log)
        except OSError:
            return 0

    def log_text(self, start=0):
        try:
            with open(self.log, 'rb') as f:
                f.seek(start)
                return f.read().decode('utf-8', 'replace')
        except OSError:
            return ''
