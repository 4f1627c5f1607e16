#!/usr/bin/python3
"""Hot standby suite: verification on a streaming replica.

    /usr/bin/python3 test/replica/run.py [--bench SECONDS] [--keep]

Starts a primary and a streaming hot standby of its own (initdb, then
pg_basebackup -R; unix sockets in a temp dir, no TCP), with the extension
as installed on this machine.  Run as root (the clusters run as postgres)
or as the user that owns them.

Checks, on the standby:
- tokens issued on the primary verify (ES256, RS256, EdDSA, HS256), and so
  do an identity provider's, once its JWKS is imported on the primary;
- jwt_authenticate switches role and an RLS-filtered query returns the
  user's rows only;
- in one standby session whose key cache is warm, each change made on the
  primary is honoured as soon as it is replayed (we wait for
  pg_last_wal_replay_lsn() to pass the primary's LSN): a rotated key (a
  token of the new key verifies, one of the retired key still does), a
  revoked key (JW009), a revoked jti and a revoked subject (JW010).  Without
  the invalidations that replay delivers, the warm cache would still answer
  as before: this is what proves them;
- the writing functions fail with 25006 and a hint; jwt_issue, which only
  reads the key table, works.

With --bench SECONDS, then runs pgbench (custom script: jwt_authenticate
of one of 1,000 ES256 tokens plus an RLS-filtered count, in a transaction)
with 1, 2 and 4 clients on the primary and on the standby, and prints the
transactions per second.

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
from stresslib import (PG_BIN, Session, Tally, first_error as error_of, initdb, outcome,  # noqa: E402
                       pg_start, pg_stop, run)

PRIMARY_PORT = 5441
STANDBY_PORT = 5442
DB = 'jwt_replica'
T = Tally()


class Clusters:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix='jwt-replica.')
        if os.geteuid() == 0:
            shutil.chown(self.dir, 'postgres', 'postgres')
        self.primary = os.path.join(self.dir, 'primary')
        self.standby = os.path.join(self.dir, 'standby')
        self.started = []

    def conninfo(self, port, db=DB, user='postgres'):
        return 'host=%s port=%d dbname=%s user=%s' % (self.dir, port, db, user)

    def start(self, datadir, port):
        pg_start(datadir, self.dir, port, datadir + '.log')
        self.started.append(datadir)

    def setup(self):
        initdb(self.primary, 'wal_level = replica\nmax_wal_senders = 4\nhot_standby = on\n'
               'max_worker_processes = 16\n')
        self.start(self.primary, PRIMARY_PORT)
        run([PG_BIN + '/pg_basebackup', '-h', self.dir, '-p', str(PRIMARY_PORT), '-U', 'postgres',
             '-D', self.standby, '-R', '-X', 'stream', '--checkpoint=fast'])
        self.start(self.standby, STANDBY_PORT)

    def stop(self, keep=False):
        for d in reversed(self.started):
            pg_stop(d)
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def session(conninfo):
    s = Session(dbname=conninfo, appname='jwt-replica')
    s.query('\\set VERBOSITY verbose')
    return s


def wait_replay(p, s, timeout=60):
    lsn = p.value('SELECT pg_current_wal_lsn();')
    deadline = time.time() + timeout
    while time.time() < deadline:
        if s.value("SELECT pg_last_wal_replay_lsn() >= '%s'::pg_lsn;" % lsn) == 't':
            return True
        time.sleep(0.05)
    return False


SETUP = r"""
CREATE EXTENSION jwt;
SELECT jwt_key_generate('ES256', 'es-1'), jwt_key_generate('RS256', 'rs-1'),
       jwt_key_generate('EdDSA', 'ed-1'), jwt_key_generate('HS256', 'hs-1'),
       jwt_key_generate('ES256', 'es-bench');
CREATE ROLE app_login LOGIN NOINHERIT;
CREATE ROLE app_user;
GRANT app_user TO app_login;
ALTER ROLE app_login SET jwt.role_claim = 'role';
CREATE TABLE docs (id int PRIMARY KEY, owner text NOT NULL, body text NOT NULL);
CREATE INDEX ON docs (owner);
INSERT INTO docs SELECT g, 'user' || (g % 1000), 'doc ' || g FROM generate_series(1, 100000) g;
ALTER TABLE docs ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON docs USING (owner = jwt_claim('sub'));
GRANT SELECT ON docs TO app_user;
CREATE TABLE toks (name text PRIMARY KEY, token text NOT NULL);
-- the test tokens of ES256 with es-1, which the tests retire and revoke
INSERT INTO toks SELECT alg, jwt_issue(jsonb_build_object('sub', 'user' || alg, 'role', 'app_user'), alg, kid)
FROM (VALUES ('ES256', 'es-1'), ('RS256', NULL), ('EdDSA', NULL), ('HS256', NULL)) v(alg, kid);
INSERT INTO toks VALUES ('alice', jwt_issue('{"sub": "user7", "role": "app_user"}', 'ES256', 'es-1'));
INSERT INTO toks SELECT 'refresh', refresh_token FROM jwt_issue_pair('{"sub": "user8"}');
CREATE TABLE bench_tokens AS
  SELECT g AS id, jwt_issue(jsonb_build_object('sub', 'user' || g, 'role', 'app_user'), 'ES256',
                            'es-bench', '1 day') AS token
  FROM generate_series(1, 1000) g;
ALTER TABLE bench_tokens ADD PRIMARY KEY (id);
GRANT SELECT ON toks, bench_tokens TO app_login;
ANALYZE;
"""


def token(s, name):
    return s.value("SELECT token FROM toks WHERE name = '%s';" % name)


def verify_sub(s, tok):
    return outcome(s, "SELECT jwt_verify('%s') ->> 'sub';" % tok)


def tests(c):
    p = session(c.conninfo(PRIMARY_PORT, 'postgres'))
    p.query('CREATE DATABASE %s;' % DB)
    p.close()
    p = session(c.conninfo(PRIMARY_PORT))
    p.query(SETUP)
    s = session(c.conninfo(STANDBY_PORT))
    T.check(wait_replay(p, s), 'the standby replays the set-up')
    T.check(s.value('SELECT pg_is_in_recovery();') == 't', 'the standby is a hot standby')

    # tokens of the primary verify on the standby
    for alg in ('ES256', 'RS256', 'EdDSA', 'HS256'):
        T.check(verify_sub(s, token(p, alg)) == 'OK user' + alg, 'standby verifies an %s token' % alg)

    # jwt_authenticate, the role switch and RLS
    a = session(c.conninfo(STANDBY_PORT, user='app_login'))
    lines = a.query("BEGIN; SELECT jwt_authenticate(token) ->> 'sub' FROM toks WHERE name = 'alice'; "
                    "SELECT current_user; SELECT count(*), min(owner), max(owner) FROM docs; COMMIT;",
                    allow_error=True)
    vals = [l for l in lines if l not in ('', 'BEGIN', 'COMMIT')]
    T.check(vals == ['user7', 'app_user', '100|user7|user7'],
            'standby: jwt_authenticate switches role and RLS shows the user\'s 100 rows', repr(vals))
    lines = a.query("BEGIN; SET LOCAL ROLE app_user; SELECT count(*) FROM docs; COMMIT;", allow_error=True)
    T.check([l for l in lines if l not in ('', 'BEGIN', 'COMMIT', 'SET')] == ['0'],
            'standby: without a token the policy shows nothing', repr(lines))
    a.close()

    # jwt_issue only reads the key table: it works on a standby too
    T.check(verify_sub(s, s.value("SELECT jwt_issue('{\"sub\": \"minted-on-standby\"}', 'ES256');"))
            == 'OK minted-on-standby', 'standby: jwt_issue signs with the replicated keys')

    # changes on the primary reach the warm cache of a standby session
    es1 = token(p, 'ES256')
    idp = p.value("SELECT jwt_jwk_generate('ES256')::text;")
    idp_tok = p.value("SELECT jwt_sign('{\"iss\": \"https://idp.example\", \"sub\": \"idp-user\", "
                      "\"exp\": 4102444800}', '%s', 'ES256', '{\"kid\": \"idp-1\"}');" % idp)
    T.check(outcome(s, "SELECT jwt_verify('%s');" % idp_tok) == 'ERROR JW009',
            'standby: a token of an issuer not yet trusted is JW009')

    p.query("SELECT jwt_jwks_import(jsonb_build_object('keys', jsonb_build_array("
            "('%s'::jsonb - 'd') || '{\"kid\": \"idp-1\"}')), 'https://idp.example');" % idp)
    T.check(wait_replay(p, s), 'replayed: JWKS import')
    T.check(verify_sub(s, idp_tok) == 'OK idp-user', 'standby, same session: the imported issuer\'s token verifies')

    p.query("SELECT jwt_key_generate('ES256', 'es-2'); SELECT jwt_key_retire('es-1');")
    es2 = p.value("SELECT jwt_issue('{\"sub\": \"after-rotation\"}', 'ES256');")
    T.check(p.value("SELECT jwt_header('%s') ->> 'kid';" % es2) == 'es-2', 'the primary signs with the new key')
    T.check(wait_replay(p, s), 'replayed: rotation')
    T.check(verify_sub(s, es2) == 'OK after-rotation', 'standby, same session: a token of the new key verifies')
    T.check(verify_sub(s, es1) == 'OK userES256', 'standby, same session: the retired key still verifies')

    p.query("SELECT jwt_key_revoke('es-1');")
    T.check(wait_replay(p, s), 'replayed: key revocation')
    T.check(outcome(s, "SELECT jwt_verify('%s');" % es1) == 'ERROR JW009',
            'standby, same session: a token of the revoked key is JW009')

    # per issuer on the standby too: another issuer's new key leaves the
    # first issuer's entry in place; its own key's revocation drops it
    def issuer_counts():
        return tuple(int(x) for x in s.rows("SELECT hits, misses FROM jwt_cache_stats() "
                                            "WHERE cache = 'issuer';")[0])
    verify_sub(s, idp_tok)
    h0, m0 = issuer_counts()
    p.query("SELECT jwt_key_import(jwt_jwk_generate('ES256')::text, 'ES256', 'idp2-1', 'https://idp2.example');")
    T.check(wait_replay(p, s), 'replayed: another issuer\'s key')
    ok = verify_sub(s, idp_tok) == 'OK idp-user'
    h1, m1 = issuer_counts()
    T.check(ok and (h1, m1) == (h0 + 1, m0),
            'standby, same session: another issuer\'s new key leaves the first issuer\'s entry (a hit, no read)',
            '%s -> %s' % ((h0, m0), (h1, m1)))
    p.query("SELECT jwt_key_revoke('idp-1', 'https://idp.example');")
    T.check(wait_replay(p, s), 'replayed: the issuer\'s key revoked')
    T.check(outcome(s, "SELECT jwt_verify('%s');" % idp_tok) == 'ERROR JW009',
            'standby, same session: the revoked issuer key\'s token is JW009 (its entry was dropped)')

    rs = token(p, 'RS256')
    p.query("SELECT jwt_revoke(token) FROM toks WHERE name = 'RS256';")
    T.check(wait_replay(p, s), 'replayed: jti revocation')
    T.check(outcome(s, "SELECT jwt_verify('%s');" % rs) == 'ERROR JW010',
            'standby, same session: a revoked jti is JW010')

    ed = token(p, 'EdDSA')
    p.query("SELECT jwt_revoke_subject('userEdDSA', now() + interval '1 second');")
    T.check(wait_replay(p, s), 'replayed: subject revocation')
    T.check(outcome(s, "SELECT jwt_verify('%s');" % ed) == 'ERROR JW010',
            'standby, same session: a revoked subject is JW010')
    T.check(verify_sub(s, token(p, 'HS256')) == 'OK userHS256', 'standby: other tokens still verify')

    # the writers fail with 25006 and a hint
    refresh = token(p, 'refresh')
    writers = {
        'jwt_key_generate': "SELECT jwt_key_generate('ES256');",
        'jwt_key_import': "SELECT jwt_key_import('a secret of at least thirty-two bytes!', 'HS256');",
        'jwt_jwks_import': "SELECT jwt_jwks_import('{\"keys\": []}', 'https://x.example');",
        'jwt_key_retire': "SELECT jwt_key_retire('es-2');",
        'jwt_key_revoke': "SELECT jwt_key_revoke('es-2');",
        'jwt_issue_pair': "SELECT jwt_issue_pair('{\"sub\": \"x\"}');",
        'jwt_refresh': "SELECT jwt_refresh('%s');" % refresh,
        'jwt_revoke': "SELECT jwt_revoke('some-jti');",
        'jwt_revoke_subject': "SELECT jwt_revoke_subject('x');",
        'jwt_purge_expired': "SELECT jwt_purge_expired();",
    }
    for name, sql in writers.items():
        err = error_of(s.query(sql, allow_error=True))
        T.check(err is not None and err[0] == '25006' and err[2] is not None and 'primary' in err[2],
                'standby: %s fails with 25006 and a hint' % name, repr(err))
    return p, s


def bench(c, seconds):
    script = os.path.join(c.dir, 'authenticate.sql')
    with open(script, 'w') as f:
        f.write('\\set n random(1, 1000)\n'
                'BEGIN;\n'
                'SELECT jwt_authenticate(token) IS NOT NULL FROM bench_tokens WHERE id = :n;\n'
                'SELECT count(*) FROM docs;\n'
                'COMMIT;\n')
    os.chmod(script, 0o644)
    print('\npgbench: jwt_authenticate (ES256, key table) + an RLS-filtered count of 100 rows,'
          ' %d s per run' % seconds)
    print('%-8s %8s %12s' % ('server', 'clients', 'tps'))
    for server, port in (('primary', PRIMARY_PORT), ('standby', STANDBY_PORT)):
        for clients in (1, 2, 4):
            out = subprocess.run([PG_BIN + '/pgbench', '-n', '-c', str(clients), '-j', str(clients),
                                  '-T', str(seconds), '-f', script, '-h', c.dir, '-p', str(port),
                                  '-U', 'app_login', DB],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            m = re.search(r'tps = ([0-9.]+) \(without initial connection time\)', out.stdout)
            failed = re.search(r'number of failed transactions: ([0-9]+)', out.stdout)
            ok = out.returncode == 0 and m is not None and (failed is None or failed.group(1) == '0')
            T.check(ok, 'pgbench on the %s with %d clients' % (server, clients), out.stdout[-500:])
            print('%-8s %8d %12s' % (server, clients, m.group(1) if m else '-'), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--bench', type=int, default=0, metavar='SECONDS',
                    help='also run pgbench, SECONDS per run')
    ap.add_argument('--keep', action='store_true', help='keep the clusters\' directory')
    args = ap.parse_args()
    c = Clusters()
    try:
        c.setup()
        p, s = tests(c)
        p.close()
        s.close()
        if args.bench:
            bench(c, args.bench)
    except Exception as e:  # the suite must still print its tally
        T.check(False, 'the replica suite ran to the end', '%s: %s' % (type(e).__name__, e))
    finally:
        c.stop(keep=args.keep)
    return T.finish()


if __name__ == '__main__':
    sys.exit(main())
