#!/usr/bin/python3
"""The request path behind PgBouncer: identities must not leak between the
clients that share a server connection.

    PGHOST=... PGPORT=... PGUSER=postgres /usr/bin/python3 test/pooler/run.py

Uses the cluster named by PGHOST/PGPORT (a database of its own, dropped at
the end) and starts PgBouncer (Debian's pgbouncer) twice on a unix socket of
its own, as postgres:

- transaction pooling: 32 clients over 4 server connections, each client a
  different user with a token of its own, running PostgREST's transaction
  (BEGIN; jwt_authenticate(token) with the role switch; INSERT and SELECT
  under RLS; COMMIT) a fixed number of times.  Counted: rows seen that
  belong to another user, transactions that started with an identity or a
  switched role before jwt_authenticate, rows written under the wrong owner,
  rows lost or doubled, unexpected errors: all must be 0.
- session pooling with server_reset_query = DISCARD ALL and
  jwt_authenticate(token, 'session'): the next client on the same server
  connection has no identity and the login role;
- with PgBouncer 1.21 or later (17 and 18 here), the same transaction with
  protocol-level prepared statements: pgbench -M prepared, 16 clients over 4
  server connections, 800 transactions, each check a division by zero when
  it fails; PgBouncer's counters show that every statement was bound.

POOLER_ONLY=prepared runs only the last part (for development).

Ends with "N passed, M failed".
"""

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, '..', 'stress'))
from stresslib import Session, SessionLost, Tally, as_owner, quote as q  # noqa: E402

DB = 'jwt_pooler'
CLIENTS = 32
SERVER_CONNECTIONS = 4
TRANSACTIONS = int(os.environ.get('POOLER_TRANSACTIONS', '100'))
PGBOUNCER = shutil.which('pgbouncer') or '/usr/sbin/pgbouncer'


class Bouncer:
    """One PgBouncer on a unix socket in a temp dir of its own."""

    def __init__(self, mode, port, extra=''):
        self.dir = tempfile.mkdtemp(prefix='jwt-pgbouncer.')
        if os.geteuid() == 0:
            shutil.chown(self.dir, 'postgres', 'postgres')
        self.port = port
        ini = os.path.join(self.dir, 'pgbouncer.ini')
        users = os.path.join(self.dir, 'users.txt')
        with open(users, 'w') as f:
            f.write('"authenticator" ""\n"postgres" ""\n')
        with open(ini, 'w') as f:
            f.write("""[databases]
%(db)s = host=%(host)s port=%(pgport)s dbname=%(db)s
[pgbouncer]
listen_addr =
listen_port = %(port)d
unix_socket_dir = %(dir)s
auth_type = trust
auth_file = %(users)s
pool_mode = %(mode)s
default_pool_size = %(size)d
min_pool_size = 0
max_client_conn = 200
logfile = %(dir)s/pgbouncer.log
pidfile = %(dir)s/pgbouncer.pid
admin_users = postgres
%(extra)s
""" % {'db': DB, 'host': os.environ['PGHOST'], 'pgport': os.environ.get('PGPORT', '5432'),
       'port': port, 'dir': self.dir, 'users': users, 'mode': mode,
       'size': SERVER_CONNECTIONS if mode == 'transaction' else 1, 'extra': extra})
        if os.geteuid() == 0:
            for p in (ini, users):
                shutil.chown(p, 'postgres', 'postgres')
        subprocess.run(as_owner([PGBOUNCER, '-d', ini]), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        for _ in range(50):
            if os.path.exists(os.path.join(self.dir, '.s.PGSQL.%d' % port)):
                break
            time.sleep(0.1)

    def dsn(self, user='authenticator'):
        return 'host=%s port=%d dbname=%s user=%s' % (self.dir, self.port, DB, user)

    def stop(self):
        try:
            with open(os.path.join(self.dir, 'pgbouncer.pid')) as f:
                os.kill(int(f.read().strip()), 15)
            time.sleep(0.3)
        except (OSError, ValueError):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


SETUP = """
CREATE EXTENSION jwt;
SELECT jwt_key_generate('ES256');
CREATE ROLE authenticator LOGIN NOINHERIT;
CREATE ROLE web_user NOLOGIN;
GRANT web_user TO authenticator;
ALTER ROLE authenticator IN DATABASE jwt_pooler SET jwt.role_claim = 'role';
CREATE TABLE notes (id bigserial PRIMARY KEY, owner text NOT NULL, client int NOT NULL, n int NOT NULL);
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON notes USING (owner = jwt_claim('sub')) WITH CHECK (owner = jwt_claim('sub'));
GRANT SELECT, INSERT ON notes TO web_user;
GRANT USAGE ON SEQUENCE notes_id_seq TO web_user;
"""


def client(bouncer, i, token, counts, errors, lock):
    """One user's requests: PostgREST's transaction, TRANSACTIONS times."""
    s = Session(dbname=bouncer.dsn(), appname='jwt-pooler')
    mine = {'before': 0, 'others_seen': 0, 'bad_role': 0, 'errors': 0}
    try:
        for n in range(TRANSACTIONS):
            s.query('BEGIN;')
            before = s.query("SELECT coalesce(jwt_claim('sub'), '-') || ' ' || current_user;")
            if before != ['- authenticator']:
                mine['before'] += 1
            out = s.query("SELECT jwt_authenticate(%s) ->> 'sub', current_user;" % q(token), allow_error=True)
            if out != ['user%d|web_user' % i]:
                mine['bad_role'] += 1
            out = s.query("INSERT INTO notes (owner, client, n) VALUES (jwt_claim('sub'), %d, %d);"
                          " SELECT count(*) FILTER (WHERE owner <> 'user%d') FROM notes;" % (i, n, i),
                          allow_error=True)
            if out != ['0']:
                if out and out[0].isdigit():
                    mine['others_seen'] += int(out[0])
                else:
                    mine['errors'] += 1
                    with lock:
                        errors.append('client %d: %s' % (i, out))
            s.query('COMMIT;')
    except SessionLost as e:
        mine['errors'] += 1
        with lock:
            errors.append('client %d lost: %s' % (i, e))
    finally:
        s.close()
    with lock:
        for k, v in mine.items():
            counts[k] += v


def transaction_pooling(T, su):
    b = Bouncer('transaction', 6471)
    try:
        tokens = [su.value("SELECT jwt_issue(jsonb_build_object('sub', 'user%d', 'role', 'web_user'), ttl => '1 hour');" % i)
                  for i in range(CLIENTS)]
        counts = {'before': 0, 'others_seen': 0, 'bad_role': 0, 'errors': 0}
        errors = []
        lock = threading.Lock()
        t0 = time.time()
        threads = [threading.Thread(target=client, args=(b, i, tokens[i], counts, errors, lock))
                   for i in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.time() - t0
        total = CLIENTS * TRANSACTIONS
        print('transaction pooling: %d clients over %d server connections, %d transactions in %.1f s'
              % (CLIENTS, SERVER_CONNECTIONS, total, took))
        print('  %s' % counts)
        for e in errors[:10]:
            print('  ' + e)
        servers = su.value("SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' AND usename = 'authenticator';" % DB)
        T.check(servers is not None and 0 < int(servers) <= SERVER_CONNECTIONS,
                'transaction pooling: the clients shared at most %d server connections' % SERVER_CONNECTIONS, str(servers))
        T.check(counts['others_seen'] == 0, "transaction pooling: no client saw another user's rows", str(counts))
        T.check(counts['before'] == 0, 'transaction pooling: no transaction started with an identity or a role', str(counts))
        T.check(counts['bad_role'] == 0, "transaction pooling: every jwt_authenticate gave the token's sub and role", str(counts))
        T.check(counts['errors'] == 0, 'transaction pooling: no unexpected error', str(errors[:3]))
        rows = su.rows('SELECT client, owner, count(*), count(DISTINCT n) FROM notes GROUP BY 1, 2 ORDER BY 1;')
        wrong = [r for r in rows if r[1] != 'user%s' % r[0]]
        T.check(not wrong, 'transaction pooling: every row was written under its own user', str(wrong[:3]))
        ok_counts = len(rows) == CLIENTS and all(r[2] == str(TRANSACTIONS) and r[3] == str(TRANSACTIONS) for r in rows)
        T.check(ok_counts, 'transaction pooling: %d rows per user, none lost or doubled' % TRANSACTIONS, str(rows[:3]))

        # the control: a careless client that keeps its identity for the
        # session, which transaction pooling hands to the next client; the
        # counting above must see that leak
        careless = Session(dbname=b.dsn(), appname='jwt-pooler')
        careless.query("SELECT jwt_authenticate(%s, 'session');" % q(tokens[0]))
        careless.close()
        seen = 0
        for i in range(8):
            s = Session(dbname=b.dsn(), appname='jwt-pooler')
            for _ in range(4):
                s.query('BEGIN;')
                if s.query("SELECT coalesce(jwt_claim('sub'), '-');") != ['-']:
                    seen += 1
                s.query('COMMIT;')
            s.close()
        T.check(seen > 0, 'transaction pooling: the control (a session identity left on a server connection) '
                'is seen by the next clients', '%d of 32 transactions saw it' % seen)
        print('  control: %d of 32 later transactions started with the careless client\'s identity' % seen)
    finally:
        b.stop()


def session_pooling(T, su):
    b = Bouncer('session', 6472, 'server_reset_query = DISCARD ALL\nserver_reset_query_always = 0')
    try:
        ok_identity = ok_role = 0
        rounds = 8
        for i in range(rounds):
            tok = su.value("SELECT jwt_issue(jsonb_build_object('sub', 'sess%d', 'role', 'web_user'));" % i)
            a = Session(dbname=b.dsn(), appname='jwt-pooler')
            out = a.query("SELECT jwt_authenticate(%s, 'session') ->> 'sub', current_user;" % q(tok))
            again = a.query("SELECT jwt_claim('sub'), current_user, pg_backend_pid();")
            a.close()
            time.sleep(0.05)
            c = Session(dbname=b.dsn(), appname='jwt-pooler')
            nxt = c.query("SELECT coalesce(jwt_claim('sub'), '-'), current_user, pg_backend_pid();")
            c.close()
            same_server = len(again) == 1 and len(nxt) == 1 and again[0].split('|')[2] == nxt[0].split('|')[2]
            if out == ['sess%d|web_user' % i] and again and again[0].startswith('sess%d|web_user|' % i) \
                    and same_server and nxt[0].startswith('-|'):
                ok_identity += 1
            if same_server and nxt[0].split('|')[1] == 'authenticator':
                ok_role += 1
            if not same_server:
                print('  round %d: the next client got another server connection: %s %s' % (i, again, nxt))
        T.check(ok_identity == rounds, 'session pooling: the next client on the server connection has no identity',
                '%d of %d' % (ok_identity, rounds))
        T.check(ok_role == rounds, 'session pooling: ... and the login role', '%d of %d' % (ok_role, rounds))
    finally:
        b.stop()


PGBENCH_SCRIPT = """\\set u random(0, 31)
BEGIN;
SELECT 1 / (jwt_claim('sub') IS NULL AND current_user = 'authenticator')::int AS no_identity_yet;
SELECT jwt_authenticate((SELECT token FROM pool_tokens WHERE id = :u)) IS NOT NULL;
SELECT 1 / coalesce(current_user = 'web_user' AND jwt_claim('sub') = 'user' || :u::text, false)::int AS own_identity;
INSERT INTO notes (owner, client, n) VALUES (jwt_claim('sub'), :u, -1);
SELECT 1 / (count(*) FILTER (WHERE owner <> 'user' || :u::text) = 0)::int AS no_other_rows FROM notes;
COMMIT;
"""


def bouncer_version():
    out = subprocess.run([PGBOUNCER, '--version'], stdout=subprocess.PIPE, text=True).stdout
    try:
        return tuple(int(x) for x in out.split()[1].split('.')[:2])
    except (IndexError, ValueError):
        return (0, 0)


def prepared_statements(T, su):
    """pgbench -M prepared (protocol-level prepared statements) through
    transaction pooling: PgBouncer tracks them from 1.21 on
    (max_prepared_statements); a check that fails raises a division by
    zero, which pgbench counts."""
    version = bouncer_version()
    if version < (1, 21):
        print('prepared statements: PgBouncer %d.%d tracks no protocol-level prepared statements '
              '(1.21 and later do): not run' % version)
        return
    pgbench = shutil.which('pgbench')
    su.query("CREATE TABLE pool_tokens AS SELECT g AS id, jwt_issue(jsonb_build_object("
             "'sub', 'user' || g, 'role', 'web_user'), ttl => '1 hour') AS token FROM generate_series(0, 31) g;"
             " GRANT SELECT ON pool_tokens TO authenticator, web_user;")
    b = Bouncer('transaction', 6473, 'max_prepared_statements = 100')
    script = os.path.join(b.dir, 'request.sql')
    try:
        with open(script, 'w') as f:
            f.write(PGBENCH_SCRIPT)
        before = int(su.value("SELECT count(*) FROM notes WHERE n = -1;"))
        # one thread per client: pgbench prepares a statement synchronously,
        # so with several clients on a thread, one waiting for a server
        # connection blocks the others, which hold all four in their
        # transactions: a deadlock of the benchmark, not of the server
        try:
            r = subprocess.run([pgbench, '-n', '-M', 'prepared', '-c', '16', '-j', '16', '-t', '50', '-f', script,
                                '-h', b.dir, '-p', str(b.port), '-U', 'authenticator', DB],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
        except subprocess.TimeoutExpired as e:
            r = subprocess.CompletedProcess(e.cmd, -1, (e.stdout or b'').decode() + '\n(timed out)')
        if r.returncode != 0:
            print(r.stdout[-3000:])
            with open(os.path.join(b.dir, 'pgbouncer.log'), errors='replace') as f:
                print(''.join(f.readlines()[-40:]))
        done = [l for l in r.stdout.splitlines() if 'actually processed' in l or 'failed' in l]
        print('prepared statements (PgBouncer %d.%d, pgbench -M prepared): %s' % (version + ('; '.join(done),)))
        # PgBouncer's own counters: the statements went through as
        # protocol-level prepared statements (Bind messages), re-prepared on
        # whichever server connection a transaction got
        admin = subprocess.run(['psql', '-X', '-A', '-F', '|', '-h', b.dir, '-p', str(b.port), '-U', 'postgres',
                                '-c', 'SHOW STATS', 'pgbouncer'],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout.splitlines()
        stats = {}
        if len(admin) >= 2:
            for row in admin[1:]:
                vals = dict(zip(admin[0].split('|'), row.split('|')))
                if vals.get('database') == DB:
                    stats = vals
        binds = int(stats.get('total_bind_count', '0') or 0)
        print('  PgBouncer: %s client parses, %s server parses, %d binds'
              % (stats.get('total_client_parse_count'), stats.get('total_server_parse_count'), binds))
        T.check(binds >= 800 * 7, 'prepared statements: PgBouncer bound every statement of every transaction',
                str(stats))
        after = int(su.value("SELECT count(*) FROM notes WHERE n = -1;"))
        T.check(r.returncode == 0 and 'actually processed: 800/800' in r.stdout,
                'prepared statements: 800 transactions, every check held', r.stdout[-600:])
        T.check(after - before == 800, 'prepared statements: 800 rows written, none lost or doubled',
                '%d' % (after - before))
    finally:
        b.stop()


def main():
    T = Tally()
    base = Session(dbname='dbname=postgres')
    base.query('DROP DATABASE IF EXISTS %s;' % DB)
    base.query('DROP ROLE IF EXISTS authenticator; DROP ROLE IF EXISTS web_user;')
    base.query('CREATE DATABASE %s;' % DB)
    su = Session(dbname='dbname=%s' % DB)
    su.query(SETUP)
    try:
        if os.environ.get('POOLER_ONLY') != 'prepared':
            transaction_pooling(T, su)
            session_pooling(T, su)
        prepared_statements(T, su)
    finally:
        su.close()
        base.query('DROP DATABASE IF EXISTS %s WITH (FORCE);' % DB)
        base.query('DROP ROLE IF EXISTS authenticator; DROP ROLE IF EXISTS web_user;')
        base.close()
    sys.exit(T.finish())


if __name__ == '__main__':
    main()
