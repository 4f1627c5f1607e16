#!/usr/bin/python3
"""Crash and restart: nothing acknowledged is lost, nothing is doubled.

    /usr/bin/python3 test/crash/run.py [--seed N] [--keep]

Starts a primary and a streaming hot standby of its own (initdb, then
pg_basebackup -R; unix sockets in a temp dir, no TCP), with the extension
as installed on this machine (PG_MAJOR, default 15, picks
/usr/lib/postgresql/$PG_MAJOR/bin).  Run as root (the clusters run as
postgres) or as the user that owns them.

1. A storm of jwt_refresh: 8 clients (one psql process each) refresh 4
   families each in a loop (BEGIN; jwt_refresh; COMMIT), and record every
   pair whose COMMIT they saw acknowledged.  During the storm, kill -9 of
   backends busy in jwt_refresh (found in pg_stat_activity by
   application_name): one, then two at once, then one (each a crash
   restart of the postmaster), then an immediate shutdown of the server
   and a restart.  A client that lost its connection between COMMIT and
   its answer looks the new token's jti up in the table after reconnecting
   (committed, or not).  Afterwards:
   - the storm saw no error other than lost connections;
   - every acknowledged refresh token is in the table, in its family, and
     each family is one chain (each used token replaced by the next one the
     client holds, the last one unused): pairs lost 0;
   - no family has two live (unused, unrevoked) refresh tokens, none is
     revoked, none has a token the client never saw;
   - the latest refresh token of every family refreshes;
   - a token rotated before the immediate shutdown, presented again, fails
     with JW010 (already used) and revokes its family: the family's current
     token fails with JW010;
   - the standby, after replay, has the same refresh tokens as the primary.
2. A crash right after a reuse was detected (a rotated token presented
   again, which starts the background worker that revokes the family):
   kill -9 of the backend as soon as the worker runs, kill -9 of the
   worker, kill -9 of the backend at once, an immediate shutdown while the
   worker runs, and an immediate shutdown just after the JW010 came back.
   After recovery, either the worker's revocation is in the table ("case
   A"), or the crash beat it and presenting the reused token again fails
   with JW010 and revokes the family ("case B"); in both cases the family's
   live token no longer refreshes (JW010).  When the JW010 came back saying
   the family is revoked, the revocation must be there after the crash.
3. A key rotation (stage, activate, retire), a key revocation, a jti
   revocation and a subject revocation committed just before an immediate
   shutdown of the primary, then of the standby: after both restart and
   the standby has replayed past the primary's LSN, on both nodes a token
   of the new key verifies and jwt_issue signs with it, the revoked key's
   token fails with JW009, the revoked jti's and subject's with JW010, and
   an untouched token still verifies.

Each server log is then read: no PANIC, no failed assertion, and no
process "terminated by signal" other than those this suite sent SIGKILL.

Ends with "N passed, M failed"; exits 1 when anything failed.
"""

import argparse
import base64
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, '..', 'stress'))
from stresslib import (PG_BIN, Session, SessionLost, Tally, first_error as error_of,  # noqa: E402
                       initdb, outcome_of, pg_start, pg_stop, quote as q, run)

PRIMARY_PORT = 5451
STANDBY_PORT = 5452
DB = 'jwt_crash'
KEYS_DB = 'jwt_crash_keys'
CLIENT_APP = 'jwt-crash-client'
CLIENTS = 8
FAMILIES_PER_CLIENT = 4
T = Tally()


def is_lost(lines):
    return any(re.match(r'^(?:psql:[^ ]*: )?FATAL:', l) for l in lines)


def tokens_in(lines):
    """The tokens in psql's output, without the notices around them."""
    return [l for l in lines if re.match(r'^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$', l)]


def jti_of(token):
    payload = token.split('.')[1]
    return json.loads(base64.urlsafe_b64decode(payload + '=' * (-len(payload) % 4)))['jti']


class Cluster:
    def __init__(self, top, name, port):
        self.top = top
        self.name = name
        self.port = port
        self.datadir = os.path.join(top, name)
        self.log = self.datadir + '.log'
        self.running = False
        self.killed = set()         # pids we sent SIGKILL
        self.kill_events = 0        # crash restarts we caused with SIGKILL
        self.immediate = 0          # immediate shutdowns

    def conninfo(self, db=DB):
        return 'host=%s port=%d dbname=%s user=postgres' % (self.top, self.port, db)

    def start(self):
        pg_start(self.datadir, self.top, self.port, self.log)
        self.running = True

    def stop(self, mode='fast'):
        pg_stop(self.datadir, mode)
        self.running = False

    def crash(self, signal_now=False):
        """Immediate shutdown (no checkpoint: crash recovery at the next start).

        With signal_now, SIGQUIT straight to the postmaster (what pg_ctl stop
        -m immediate sends), without the time pg_ctl takes to start."""
        self.immediate += 1
        if signal_now:
            pm = self.postmaster_pid()
            os.kill(pm, signal.SIGQUIT)
            deadline = time.time() + 60
            while os.path.exists('/proc/%d' % pm) and time.time() < deadline:
                time.sleep(0.02)
        self.stop('immediate')

    def log_text(self):
        with open(self.log, errors='replace') as f:
            return f.read()

    def kill(self, pids, timeout=5):
        """SIGKILL to pids; whether the postmaster saw one die of it (a crash restart)."""
        for pid in pids:
            self.killed.add(int(pid))
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = self.log_text()
            if any('(PID %d) was terminated by signal 9' % int(pid) in text for pid in pids):
                self.kill_events += 1
                return True
            time.sleep(0.02)
        return False

    def psql(self, sql, db=DB, timeout=30):
        """(rc, output) of psql -c, one connection."""
        try:
            p = subprocess.run(['psql', '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1',
                                '-d', self.conninfo(db), '-c', sql],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=timeout, env=dict(os.environ, PGAPPNAME='jwt-crash'))
        except subprocess.TimeoutExpired:
            return -1, 'timeout'
        return p.returncode, p.stdout.strip()

    def wait_ready(self, timeout=90, db=DB):
        """After a crash the postmaster restarts and recovers: wait until it answers."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            rc, out = self.psql('SELECT 1;', db=db, timeout=10)
            if rc == 0 and out == '1':
                return True
            time.sleep(0.1)
        return False

    def postmaster_pid(self):
        with open(os.path.join(self.datadir, 'postmaster.pid')) as f:
            return int(f.readline())

    def children(self, title):
        """pids of the postmaster's children whose process title contains title."""
        pm = self.postmaster_pid()
        out = []
        for d in os.listdir('/proc'):
            if not d.isdigit():
                continue
            try:
                with open('/proc/%s/stat' % d) as f:
                    stat = f.read()
                ppid = int(stat[stat.rindex(')') + 2:].split()[1])
                if ppid != pm:
                    continue
                with open('/proc/%s/cmdline' % d, 'rb') as f:
                    cmd = f.read().decode('utf-8', 'replace')
            except (OSError, ValueError):
                continue
            if title in cmd:
                out.append(int(d))
        return out

    def session(self, db=DB, appname='jwt-crash'):
        s = Session(dbname=self.conninfo(db), appname=appname)
        s.query('\\set VERBOSITY verbose')
        return s

    def check_log(self):
        text = self.log_text()
        bad = []
        for line in text.splitlines():
            if 'PANIC' in line or 'TRAP:' in line or 'failed Assert' in line or 'segfault' in line:
                bad.append(line)
                continue
            m = re.search(r'\(PID (\d+)\) was terminated by signal (\d+)', line)
            if m and (m.group(2) != '9' or int(m.group(1)) not in self.killed):
                bad.append(line)
            elif 'terminated by signal' in line and not m:
                bad.append(line)
        T.check(not bad, '%s log: no PANIC, assertion or signal other than our SIGKILLs' % self.name,
                '\n  ' + '\n  '.join(bad[:10]))
        return text


def outcome(s, sql):
    """'OK <value>' or 'ERROR <sqlstate>'; SessionLost if the backend died."""
    lines = s.query(sql, allow_error=True)
    if is_lost(lines):
        raise SessionLost('\n'.join(lines))
    return outcome_of(lines)


def wait_replay(p, s, timeout=60):
    lsn = p.psql('SELECT pg_current_wal_lsn();')[1]
    deadline = time.time() + timeout
    while time.time() < deadline:
        rc, out = s.psql("SELECT pg_last_wal_replay_lsn() >= '%s'::pg_lsn;" % lsn)
        if rc == 0 and out == 't':
            return True
        time.sleep(0.05)
    return False


# ----------------------------------------------------------------
# 1. the refresh storm
# ----------------------------------------------------------------

class Family:
    def __init__(self, sub, token):
        self.sub = sub
        self.history = [token]      # every refresh token we know committed, oldest first
        self.doubt = None           # a new token whose COMMIT was sent, not acknowledged
        self.at_shutdown = 0        # len(history) when the immediate shutdown began
        self.dead = False           # a refresh failed: the client leaves the family alone


class Client(threading.Thread):
    def __init__(self, cluster, families, stop):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.fams = families
        self.stop = stop
        self.acked = 0              # COMMITs we saw acknowledged
        self.unacked_committed = 0  # COMMITs whose answer was lost, found committed
        self.unacked_rolled_back = 0
        self.lost = 0               # connections lost
        self.errors = []
        self.lock = threading.Lock()

    def resolve(self, s):
        """After a lost connection: did the COMMIT in flight commit?"""
        for f in self.fams:
            if f.doubt is None:
                continue
            n = s.value("SELECT count(*) FROM jwt_refresh_tokens WHERE jti = %s;" % q(jti_of(f.doubt)))
            if n == '1':
                f.history.append(f.doubt)
                self.unacked_committed += 1
            else:
                self.unacked_rolled_back += 1
            f.doubt = None

    def run(self):
        s = None
        i = 0
        while not self.stop.is_set():
            try:
                if s is None:
                    s = self.cluster.session(appname=CLIENT_APP)
                    self.resolve(s)
                live = [f for f in self.fams if not f.dead]
                if not live:
                    break
                f = live[i % len(live)]
                i += 1
                lines = s.query("BEGIN; SELECT refresh_token FROM jwt_refresh(%s);" % q(f.history[-1]),
                                allow_error=True)
                if is_lost(lines):
                    raise SessionLost()
                err = error_of(lines)
                # (a WARNING 57P02 may come with the row: the COMMIT then finds the connection lost)
                vals = tokens_in(lines)
                if err or len(vals) != 1:
                    self.errors.append('%s: jwt_refresh: %r' % (f.sub, err or vals))
                    f.dead = True           # refreshed no more: the checks below tell the rest
                    s.query('ROLLBACK;', allow_error=True)
                    continue
                f.doubt = vals[0]
                lines = s.query('COMMIT;', allow_error=True)
                if is_lost(lines):
                    raise SessionLost()
                if error_of(lines):
                    self.errors.append('%s: COMMIT: %r' % (f.sub, error_of(lines)))
                    f.doubt = None
                    f.dead = True
                    continue
                with self.lock:
                    f.history.append(f.doubt)
                    f.doubt = None
                    self.acked += 1
            except SessionLost:
                self.lost += 1
                if s is not None:
                    s.close()
                s = None
                time.sleep(0.05)
        if s is not None:
            s.close()


def total_acked(clients):
    return sum(c.acked for c in clients)


def wait_progress(clients, n=2, timeout=20):
    """Until every client (with a family left) has n more acknowledged refreshes."""
    start = [c.acked for c in clients]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(c.acked >= a + n or not c.is_alive() for c, a in zip(clients, start)):
            return True
        time.sleep(0.05)
    return False


def busy_refreshing(p, count):
    """pids of up to count client backends inside jwt_refresh, polled a few seconds."""
    deadline = time.time() + 5
    while time.time() < deadline:
        rc, out = p.psql("SELECT pid FROM pg_stat_activity WHERE application_name = '%s' "
                         "AND state = 'active' AND query LIKE '%%jwt_refresh(%%';" % CLIENT_APP)
        pids = [int(x) for x in out.split()] if rc == 0 else []
        if len(pids) >= count:
            return random.sample(pids, count)
    return []


def storm(p, s_node):
    # 8 clients x 4 families
    rc, out = p.psql("SELECT sub, refresh_token FROM generate_series(0, %d) c, "
                     "generate_series(0, %d) f, "
                     "LATERAL (SELECT 'client' || c || '-' || f AS sub) s, "
                     "LATERAL jwt_issue_pair(jsonb_build_object('sub', sub)) ORDER BY c, f;"
                     % (CLIENTS - 1, FAMILIES_PER_CLIENT - 1))
    fams = [Family(*l.split('|')) for l in out.splitlines()]
    if not T.check(rc == 0 and len(fams) == CLIENTS * FAMILIES_PER_CLIENT, 'storm: pairs issued', out[-300:]):
        return
    stop = threading.Event()
    clients = [Client(p, fams[c * FAMILIES_PER_CLIENT:(c + 1) * FAMILIES_PER_CLIENT], stop)
               for c in range(CLIENTS)]
    for c in clients:
        c.start()
    t0 = time.time()
    try:
        T.check(wait_progress(clients, 5), 'storm: every client refreshes')
        for n in (1, 2, 1):
            pids = busy_refreshing(p, n)
            if not T.check(len(pids) == n, 'storm: %d backend(s) busy in jwt_refresh found' % n):
                continue
            before = total_acked(clients)
            T.check(p.kill(pids), 'storm: kill -9 of %d backend(s) made the postmaster restart' % n)
            print('storm: kill -9 of %s after %d acknowledged refreshes' % (
                ', '.join(map(str, pids)), before), flush=True)
            T.check(p.wait_ready(), 'storm: the server is back after kill -9 of %d backend(s)' % n)
            T.check(wait_progress(clients, 3), 'storm: every client refreshes again after the crash')
        for f in fams:
            f.at_shutdown = len(f.history)
        before = total_acked(clients)
        p.crash()
        print('storm: immediate shutdown after %d acknowledged refreshes' % before, flush=True)
        time.sleep(0.3)
        p.start()
        T.check(p.wait_ready(), 'storm: the server is back after the immediate shutdown')
        T.check(wait_progress(clients, 3), 'storm: every client refreshes again after the restart')
    finally:
        stop.set()
        for c in clients:
            c.join(60)
    T.check(not any(c.is_alive() for c in clients), 'storm: every client stopped')
    secs = time.time() - t0

    acked = total_acked(clients)
    unacked = sum(c.unacked_committed for c in clients)
    rolled = sum(c.unacked_rolled_back for c in clients)
    errors = [e for c in clients for e in c.errors]
    T.check(not errors, 'storm: no refresh failed other than by a lost connection',
            '\n  ' + '\n  '.join(errors[:10]))
    T.check(sum(c.lost for c in clients) >= CLIENTS, 'storm: the clients did lose their connections',
            str(sum(c.lost for c in clients)))

    # the tables
    rc, out = p.psql("SELECT r.jti, r.family, r.used_at IS NOT NULL, coalesce(r.replaced_by, ''), "
                     "f.revoked_at IS NOT NULL FROM jwt_refresh_tokens r JOIN jwt_token_families f "
                     "USING (family);")
    rows = {}
    per_family = {}
    for line in out.splitlines():
        jti, fam, used, repl, revoked = line.split('|')
        rows[jti] = (fam, used == 't', repl, revoked == 't')
        per_family.setdefault(fam, []).append(jti)
    lost_pairs = 0
    broken = []
    extra = []
    live2 = 0
    revoked = 0
    fam_of = {}
    for f in fams:
        jtis = [jti_of(t) for t in f.history]
        fam = rows.get(jtis[0], (None,))[0]
        fam_of[f.sub] = fam
        for k, j in enumerate(jtis):
            r = rows.get(j)
            if r is None or r[0] != fam:
                lost_pairs += 1
                continue
            last = k == len(jtis) - 1
            if r[1] == last or (not last and r[2] != jtis[k + 1]):
                broken.append('%s: token %d of %d: used=%s replaced_by=%s' % (f.sub, k, len(jtis), r[1], r[2]))
        mine = per_family.get(fam, [])
        if len(mine) != len(jtis):
            extra.append('%s: %d tokens in the table, %d known' % (f.sub, len(mine), len(jtis)))
        live = [j for j in mine if not rows[j][1] and not rows[j][3]]
        live2 += len(live) > 1
        revoked += any(rows[j][3] for j in mine)
    rc2, doubled = p.psql("SELECT count(*) FROM (SELECT r.family FROM jwt_refresh_tokens r "
                          "JOIN jwt_token_families f USING (family) WHERE r.used_at IS NULL "
                          "AND f.revoked_at IS NULL GROUP BY r.family HAVING count(*) > 1) d;")
    print('storm: %d clients, %d families, %.1f s: %d pairs acknowledged, %d committed without '
          'acknowledgement (found in the table), %d rolled back unacknowledged; pairs lost: %d; '
          'families with two live tokens: %d (table: %s)'
          % (CLIENTS, len(fams), secs, acked, unacked, rolled, lost_pairs, live2, doubled), flush=True)
    T.check(acked >= 100, 'storm: at least 100 pairs acknowledged', str(acked))
    T.check(lost_pairs == 0, 'storm: every acknowledged pair is in the table, in its family', str(lost_pairs))
    T.check(not broken, 'storm: every family is one chain of rotations', '\n  ' + '\n  '.join(broken[:10]))
    T.check(not extra, 'storm: no family has a token its client never saw', '\n  ' + '\n  '.join(extra[:10]))
    T.check(live2 == 0 and rc2 == 0 and doubled == '0', 'storm: no family has two live refresh tokens',
            '%d / %s' % (live2, doubled))
    T.check(revoked == 0, 'storm: no family was revoked', str(revoked))

    # the latest token of each family refreshes
    s = p.session()
    current = {}
    failed = []
    for f in fams:
        lines = s.query("SELECT refresh_token FROM jwt_refresh(%s);" % q(f.history[-1]), allow_error=True)
        vals = tokens_in(lines)
        if error_of(lines) or len(vals) != 1:
            failed.append('%s: %r' % (f.sub, error_of(lines) or vals))
        else:
            current[f.sub] = vals[0]
    print('storm: latest acknowledged refresh token refreshes in %d of %d families'
          % (len(current), len(fams)), flush=True)
    T.check(not failed, 'storm: the latest refresh token of every family refreshes',
            '\n  ' + '\n  '.join(failed[:10]))

    # reuse of a token rotated before the immediate shutdown
    tried = 0
    for f in [f for f in fams if f.at_shutdown >= 2 and f.sub in current][:3]:
        tried += 1
        old = f.history[f.at_shutdown - 2]
        lines = s.query("SELECT refresh_token FROM jwt_refresh(%s);" % q(old), allow_error=True)
        err = error_of(lines)
        T.check(err is not None and err[0] == 'JW010' and 'already used' in err[1],
                'storm: %s: a token rotated before the shutdown, presented again, fails with JW010' % f.sub,
                repr(err or lines))
        fam = s.value("SELECT revoked_at IS NOT NULL FROM jwt_token_families WHERE family = '%s';"
                      % fam_of[f.sub])
        T.check(fam == 't', 'storm: %s: its family is revoked' % f.sub, repr(fam))
        T.check(outcome(s, "SELECT refresh_token FROM jwt_refresh(%s);" % q(current[f.sub])) == 'ERROR JW010',
                'storm: %s: the family\'s current token no longer refreshes (JW010)' % f.sub)
    T.check(tried == 3, 'storm: 3 families had a token rotated before the shutdown', str(tried))
    s.close()

    # the standby followed all this
    T.check(wait_replay(p, s_node), 'storm: the standby replays the storm')
    sql = ("SELECT count(*) || ' ' || md5(string_agg(r.jti || coalesce(r.replaced_by, '') "
           "|| (r.used_at IS NULL)::text || (f.revoked_at IS NULL)::text, ',' ORDER BY r.jti)) "
           "FROM jwt_refresh_tokens r JOIN jwt_token_families f USING (family);")
    a, b = p.psql(sql), s_node.psql(sql)
    T.check(a[0] == 0 and a == b, 'storm: the standby has the same refresh tokens as the primary',
            '%r / %r' % (a, b))


# ----------------------------------------------------------------
# 2. a crash right after a reuse was detected
# ----------------------------------------------------------------

REUSE_TRIALS = [
    ('kill -9 of the backend while the worker runs', 'kill-backend-worker'),
    ('kill -9 of the worker', 'kill-worker'),
    ('kill -9 of the backend at once', 'kill-backend-now'),
    ('immediate shutdown while the worker runs', 'immediate-worker'),
    ('immediate shutdown after the JW010 came back', 'immediate-after'),
]
WORKER_TITLE = 'jwt family revocation'


def reuse_trial(p, label, how, cases):
    name = 'reuse, %s' % label
    s = p.session()
    t0 = s.value("SELECT refresh_token FROM jwt_issue_pair('{\"sub\": \"reuse-%s\"}');" % how)
    t1 = s.value("SELECT refresh_token FROM jwt_refresh(%s);" % q(t0))
    fam = s.value("SELECT family FROM jwt_refresh_tokens WHERE jti = %s;" % q(jti_of(t0)))
    pid = int(s.value('SELECT pg_backend_pid();'))
    answer = []

    def present():
        try:
            answer.append(s.query("SELECT refresh_token FROM jwt_refresh(%s);" % q(t0), allow_error=True))
        except SessionLost:
            answer.append(None)
    th = threading.Thread(target=present, daemon=True)
    th.start()
    crashed_at = 'before the answer'
    if how == 'immediate-after':
        crashed_at = 'after the answer'
        th.join(30)
        p.crash()
    elif how == 'kill-backend-now':
        time.sleep(0.001)
        T.check(p.kill([pid]), '%s: the postmaster restarts' % name)
    else:
        workers = []
        deadline = time.time() + 15
        while not workers and th.is_alive() and time.time() < deadline:
            workers = p.children(WORKER_TITLE)
        if not workers:
            crashed_at = 'after the answer (no worker seen)'
        if how == 'kill-backend-worker':
            T.check(p.kill([pid]), '%s: the postmaster restarts' % name)
        elif how == 'kill-worker':
            if not workers or not p.kill(workers[:1]):
                # the worker was gone by then: crash all the same
                crashed_at = 'by immediate shutdown, the worker having exited'
                p.crash()
        else:
            p.crash(signal_now=True)
    th.join(30)
    s.close()
    if not p.running:
        time.sleep(0.2)
        p.start()
    T.check(p.wait_ready(), '%s: the server is back' % name)

    ans = answer[0] if answer else None
    err = error_of(ans) if ans else None
    if err is not None and crashed_at == 'before the answer':
        crashed_at = 'after the answer'
    if how == 'immediate-after':
        T.check(err is not None and err[0] == 'JW010', '%s: the reuse fails with JW010' % name, repr(ans))
    elif err is not None:
        T.check(err[0] == 'JW010', '%s: the reuse fails with JW010' % name, repr(ans))
    said_revoked = err is not None and err[2] is not None and 'whole token family is revoked' in err[2]

    s = p.session()
    revoked = s.value("SELECT revoked_at IS NOT NULL FROM jwt_token_families WHERE family = '%s';" % fam)
    if revoked == 't':
        case = 'A'
        why = s.value("SELECT revoked_reason FROM jwt_token_families WHERE family = '%s';" % fam)
        T.check(why == 'refresh token reused', '%s: the worker\'s revocation is in the table' % name, repr(why))
    else:
        case = 'B'
        T.check(not said_revoked, '%s: a revocation the answer reported is still there after the crash' % name,
                repr(err))
        again = error_of(s.query("SELECT refresh_token FROM jwt_refresh(%s);" % q(t0), allow_error=True))
        T.check(again is not None and again[0] == 'JW010' and 'already used' in again[1],
                '%s: the reused token, presented again, fails with JW010' % name, repr(again))
        revoked = s.value("SELECT revoked_at IS NOT NULL FROM jwt_token_families WHERE family = '%s';" % fam)
        T.check(revoked == 't', '%s: and now the family is revoked' % name, repr(revoked))
    live = outcome(s, "SELECT refresh_token FROM jwt_refresh(%s);" % q(t1))
    T.check(live == 'ERROR JW010', '%s: the family\'s live token no longer refreshes (JW010)' % name, live)
    s.close()
    print('reuse: %s (crash %s): case %s, %s' % (
        label, crashed_at, case,
        'the worker\'s revocation survived' if case == 'A'
        else 'the crash beat the worker; presenting the token again revoked the family'), flush=True)
    cases[case] = cases.get(case, 0) + 1


def reuse_crashes(p):
    cases = {}
    for label, how in REUSE_TRIALS:
        reuse_trial(p, label, how, cases)
    T.check(cases.get('A', 0) >= 1, 'reuse: at least one trial kept the worker\'s revocation (case A)',
            repr(cases))
    pending = os.path.exists(os.path.join(p.datadir, 'pg_jwt_pending_revocations'))
    print('reuse: cases %s; pg_jwt_pending_revocations %s' % (
        ', '.join('%s %d' % kv for kv in sorted(cases.items())), 'present' if pending else 'absent'),
        flush=True)


# ----------------------------------------------------------------
# 3. keys and revocations committed just before an immediate shutdown
# ----------------------------------------------------------------

KEYS_SETUP = r"""
CREATE EXTENSION jwt;
SELECT jwt_key_generate('ES256', 'es-1'), jwt_key_generate('HS256', 'hs-1');
CREATE TABLE toks (name text PRIMARY KEY, token text NOT NULL);
INSERT INTO toks VALUES
  ('old-key', jwt_issue('{"sub": "key-user"}', 'ES256', 'es-1')),
  ('jti', jwt_issue('{"sub": "jti-user"}', 'HS256')),
  ('sub', jwt_issue('{"sub": "sub-user"}', 'HS256')),
  ('untouched', jwt_issue('{"sub": "untouched-user"}', 'HS256'));
"""

CHANGES = r"""
SELECT jwt_key_stage(jwt_key_generate('ES256', 'es-2'));
BEGIN;
SELECT jwt_key_activate('es-2');
SELECT jwt_key_retire('es-1');
COMMIT;
INSERT INTO toks VALUES ('new-key', jwt_issue('{"sub": "new-key-user"}', 'ES256'));
SELECT jwt_key_revoke('es-1');
SELECT jwt_revoke(token, 'crash test') FROM toks WHERE name = 'jti';
SELECT jwt_revoke_subject('sub-user', now() + interval '1 second');
"""

EXPECT = {'old-key': 'ERROR JW009', 'jti': 'ERROR JW010', 'sub': 'ERROR JW010',
          'untouched': 'OK untouched-user', 'new-key': 'OK new-key-user'}


def verify_all(node, names):
    s = node.session(KEYS_DB)
    got = {}
    for name in names:
        got[name] = outcome(s, "SELECT jwt_verify(token) ->> 'sub' FROM toks WHERE name = '%s';" % name)
    got['issue'] = outcome(s, "SELECT jwt_header(jwt_issue('{\"sub\": \"x\"}', 'ES256')) ->> 'kid';")
    s.close()
    return got


def keys_crash(p, sb):
    rc, out = p.psql('CREATE DATABASE %s;' % KEYS_DB, db='postgres')
    T.check(rc == 0, 'keys: database created', out)
    rc, out = p.psql(KEYS_SETUP, db=KEYS_DB)
    T.check(rc == 0, 'keys: set-up', out[-500:])
    T.check(wait_replay(p, sb), 'keys: the standby replays the set-up')
    before = ['old-key', 'jti', 'sub', 'untouched']
    for node in (p, sb):
        got = verify_all(node, before)
        T.check(all(got[n] == 'OK ' + n.replace('old-key', 'key') + '-user' for n in before)
                and got['issue'] == 'OK es-1',
                'keys, %s: before the changes, every token verifies and es-1 signs' % node.name, repr(got))

    rc, out = p.psql(CHANGES, db=KEYS_DB)
    T.check(rc == 0, 'keys: rotation and revocations committed', out[-500:])
    p.crash()
    sb.crash()
    print('keys: rotation, key revocation, jti and subject revocation committed; '
          'immediate shutdown of the primary, then of the standby', flush=True)
    p.start()
    sb.start()
    T.check(p.wait_ready(db=KEYS_DB) and sb.wait_ready(db=KEYS_DB), 'keys: both nodes are back')
    T.check(wait_replay(p, sb), 'keys: the standby replays past the primary\'s LSN after the restarts')
    T.check(sb.psql('SELECT pg_is_in_recovery();')[1] == 't', 'keys: the standby is still a standby')
    names = sorted(EXPECT)
    for node in (p, sb):
        got = verify_all(node, names)
        for n in names:
            T.check(got[n] == EXPECT[n], 'keys, %s, after the crash: the %s token: %s'
                    % (node.name, n, EXPECT[n]), got[n])
        T.check(got['issue'] == 'OK es-2', 'keys, %s, after the crash: jwt_issue signs with es-2' % node.name,
                got['issue'])
    print('keys: in force after the restarts on both nodes: new key verifies and signs, '
          'revoked key JW009, revoked jti and subject JW010', flush=True)


# ----------------------------------------------------------------

def setup(top):
    p = Cluster(top, 'primary', PRIMARY_PORT)
    sb = Cluster(top, 'standby', STANDBY_PORT)
    initdb(p.datadir, 'wal_level = replica\nmax_wal_senders = 4\nhot_standby = on\n'
           'max_worker_processes = 16\nrestart_after_crash = on\n'
           'wal_retrieve_retry_interval = 200ms\n')
    p.start()
    run([PG_BIN + '/pg_basebackup', '-h', top, '-p', str(PRIMARY_PORT), '-U', 'postgres',
         '-D', sb.datadir, '-R', '-X', 'stream', '--checkpoint=fast'])
    sb.start()
    rc, out = p.psql('CREATE DATABASE %s;' % DB, db='postgres')
    T.check(rc == 0, 'database created', out)
    rc, out = p.psql("CREATE EXTENSION jwt; SELECT jwt_key_generate('HS256', 'hs-storm');")
    T.check(rc == 0, 'extension created', out)
    return p, sb


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seed', type=int, default=None, help='seed of the choice of backends to kill')
    ap.add_argument('--keep', action='store_true', help='keep the clusters\' directory')
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    random.seed(seed)
    print('seed %d' % seed, flush=True)
    t0 = time.time()
    top = tempfile.mkdtemp(prefix='jwt-crash.')
    if os.geteuid() == 0:
        shutil.chown(top, 'postgres', 'postgres')
    nodes = []
    try:
        p, sb = setup(top)
        nodes = [p, sb]
        storm(p, sb)
        reuse_crashes(p)
        keys_crash(p, sb)
    except Exception as e:  # the suite must still print its tally
        T.check(False, 'the crash suite ran to the end', '%s: %s' % (type(e).__name__, e))
    finally:
        for n in reversed(nodes):
            if n.running:
                n.stop()
        for n in nodes:
            if os.path.exists(n.log):
                n.check_log()
        if nodes:
            p = nodes[0]
            text = p.log_text()
            reinit = text.count('all server processes terminated; reinitializing')
            recov = text.count('automatic recovery in progress')
            T.check(reinit == p.kill_events, 'primary log: one crash restart per kill -9 (%d)' % p.kill_events,
                    str(reinit))
            T.check(recov == p.kill_events + p.immediate,
                    'primary log: crash recovery after each kill -9 and immediate shutdown (%d)'
                    % (p.kill_events + p.immediate), str(recov))
        if args.keep:
            print('kept in %s' % top)
        else:
            shutil.rmtree(top, ignore_errors=True)
    print('%.0f s' % (time.time() - t0))
    return T.finish()


if __name__ == '__main__':
    sys.exit(main())
