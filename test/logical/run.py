#!/usr/bin/python3
"""Logical replication of the key, issuer and revocation tables.

    /usr/bin/python3 test/logical/run.py [--keep]

Starts two clusters of its own (initdb; unix sockets in a temp dir, no TCP),
with the extension as installed on this machine: a publisher (wal_level =
logical) and a subscriber.  Both have the extension; the publisher publishes
jwt_keys, jwt_issuers, jwt_revoked and jwt_revoked_subjects, the subscriber
subscribes.  Run as root (the clusters run as postgres) or as their owner.

Checks, on the subscriber:
- the initial copy brings the keys: tokens issued on the publisher verify;
- in one subscriber session whose caches are warm (its key cache holds the
  keys, and it knows that both revocation tables are empty), each change
  made on the publisher is honoured once the subscriber has applied it (we
  wait until another subscriber session sees the row): a key generated and
  one rotated (the new key verifies and signs, the retired one still
  verifies), a key revoked (JW009), an identity provider's JWKS imported
  (its token verifies), a jti revoked and a subject revoked (JW010), and the
  key table truncated (JW009).  The apply worker fires no statement
  trigger, so without the extension's replica triggers the warm session
  answers as before;
- the refresh-token tables are not published, and jwt_refresh works on the
  publisher only in this topology (checked: a pair issued on the publisher
  does not exist on the subscriber).

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
from stresslib import Session, Tally, initdb, outcome, pg_start, pg_stop, quote as q  # noqa: E402

PUB_PORT = 5461
SUB_PORT = 5462
DB = 'jwt_logical'
TABLES = ('jwt_keys', 'jwt_issuers', 'jwt_revoked', 'jwt_revoked_subjects')
T = Tally()


class Clusters:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix='jwt-logical.')
        if os.geteuid() == 0:
            shutil.chown(self.dir, 'postgres', 'postgres')
        self.started = []

    def conninfo(self, port, db=DB):
        return 'host=%s port=%d dbname=%s user=postgres' % (self.dir, port, db)

    def make(self, name, port, conf):
        datadir = os.path.join(self.dir, name)
        initdb(datadir, conf)
        pg_start(datadir, self.dir, port, datadir + '.log')
        self.started.append(datadir)

    def setup(self):
        self.make('publisher', PUB_PORT, 'wal_level = logical\nmax_wal_senders = 4\n'
                  'max_replication_slots = 4\n')
        self.make('subscriber', SUB_PORT, 'max_worker_processes = 16\n')

    def logs(self):
        out = ''
        for d in self.started:
            with open(d + '.log', errors='replace') as f:
                out += f.read()
        return out

    def stop(self, keep=False):
        for d in reversed(self.started):
            pg_stop(d)
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def session(conninfo):
    s = Session(dbname=conninfo, appname='jwt-logical')
    s.query('\\set VERBOSITY verbose')
    return s


def wait_for(s, sql, timeout=60):
    """Poll sql in session s until it returns 't'."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if s.value(sql) == 't':
            return True
        time.sleep(0.05)
    return False


def verify_sub(s, tok):
    return outcome(s, "SELECT jwt_verify(%s) ->> 'sub';" % q(tok))


SETUP = """
CREATE EXTENSION jwt;
SELECT jwt_key_generate('ES256', 'es-1'), jwt_key_generate('HS256', 'hs-1'),
       jwt_key_generate('EdDSA', 'ed-1');
CREATE PUBLICATION jwt_pub FOR TABLE %s;
""" % ', '.join(TABLES)


def tests(c):
    for port in (PUB_PORT, SUB_PORT):
        s = session(c.conninfo(port, 'postgres'))
        s.query('CREATE DATABASE %s;' % DB)
        s.close()
    p = session(c.conninfo(PUB_PORT))
    p.query(SETUP)
    sub = session(c.conninfo(SUB_PORT))     # the subscriber's observer
    sub.query('CREATE EXTENSION jwt;')
    sub.query("CREATE SUBSCRIPTION jwt_sub CONNECTION %s PUBLICATION jwt_pub;"
              % q(c.conninfo(PUB_PORT)))
    T.check(wait_for(sub, "SELECT count(*) = %d AND bool_and(srsubstate = 'r') FROM pg_subscription_rel;"
                     % len(TABLES)),
            'the subscriber copies the four tables')
    T.check(sub.value('SELECT count(*) FROM jwt_keys;') == '3', 'the initial copy brings the three keys')

    def applied(sql, what):
        """Wait until the subscriber's observer session sees the change."""
        T.check(wait_for(sub, sql), 'applied on the subscriber: ' + what)

    # the warm session: its key cache and its "revocation tables are empty"
    # flags are filled before the publisher changes anything
    es1 = p.value("SELECT jwt_issue('{\"sub\": \"es-user\"}', 'ES256');")
    hs1 = p.value("SELECT jwt_issue('{\"sub\": \"hs-user\"}', 'HS256');")
    ed1 = p.value("SELECT jwt_issue('{\"sub\": \"ed-user\"}', 'EdDSA');")
    w = session(c.conninfo(SUB_PORT))
    T.check(verify_sub(w, es1) == 'OK es-user', 'subscriber verifies an ES256 token of the publisher')
    T.check(verify_sub(w, hs1) == 'OK hs-user', 'subscriber verifies an HS256 token of the publisher')
    T.check(verify_sub(w, ed1) == 'OK ed-user', 'subscriber verifies an EdDSA token of the publisher')

    # a key generated on the publisher
    p.query("SELECT jwt_key_generate('ES256', 'es-2'); SELECT jwt_key_stage('es-2');")
    p.query("SELECT jwt_key_activate('es-2'); SELECT jwt_key_retire('es-1');")
    es2 = p.value("SELECT jwt_issue('{\"sub\": \"after-rotation\"}', 'ES256');")
    T.check(p.value("SELECT jwt_header(%s) ->> 'kid';" % q(es2)) == 'es-2',
            'the publisher signs with the new key')
    applied("SELECT EXISTS (SELECT FROM jwt_keys WHERE kid = 'es-1' AND state = 'retired');",
            'rotation')
    T.check(verify_sub(w, es2) == 'OK after-rotation',
            'subscriber, warm session: a token of the key generated on the publisher verifies')
    T.check(verify_sub(w, es1) == 'OK es-user', 'subscriber, warm session: the retired key still verifies')
    minted = w.value("SELECT jwt_header(jwt_issue('{\"sub\": \"minted\"}', 'ES256')) ->> 'kid';")
    T.check(minted == 'es-2', 'subscriber, warm session: jwt_issue signs with the new key', repr(minted))

    # a key revoked
    p.query("SELECT jwt_key_revoke('es-1');")
    applied("SELECT EXISTS (SELECT FROM jwt_keys WHERE kid = 'es-1' AND state = 'revoked');",
            'key revocation')
    T.check(outcome(w, "SELECT jwt_verify(%s);" % q(es1)) == 'ERROR JW009',
            'subscriber, warm session: a token of the key revoked on the publisher is JW009')

    # an identity provider's JWKS
    idp = p.value("SELECT jwt_jwk_generate('ES256')::text;")
    idp_tok = p.value("SELECT jwt_sign('{\"iss\": \"https://idp.example\", \"sub\": \"idp-user\", "
                      "\"exp\": 4102444800}', %s, 'ES256', '{\"kid\": \"idp-1\"}');" % q(idp))
    T.check(outcome(w, "SELECT jwt_verify(%s);" % q(idp_tok)) == 'ERROR JW009',
            'subscriber: a token of an issuer not yet trusted is JW009')
    p.query("SELECT jwt_jwks_import(jsonb_build_object('keys', jsonb_build_array("
            "(%s::jsonb - 'd') || '{\"kid\": \"idp-1\"}')), 'https://idp.example');" % q(idp))
    applied("SELECT EXISTS (SELECT FROM jwt_keys WHERE kid = 'idp-1');", 'JWKS import')
    T.check(verify_sub(w, idp_tok) == 'OK idp-user',
            'subscriber, warm session: the token of an issuer trusted on the publisher verifies')

    # a jti revoked: the warm session knew the table was empty
    jti_tok = p.value("SELECT jwt_issue('{\"sub\": \"jti-user\", \"jti\": \"jti-1\"}', 'HS256');")
    T.check(verify_sub(w, jti_tok) == 'OK jti-user', 'subscriber: the jti token verifies before')
    p.query("SELECT jwt_revoke(%s);" % q(jti_tok))
    applied("SELECT EXISTS (SELECT FROM jwt_revoked);", 'jti revocation')
    T.check(outcome(w, "SELECT jwt_verify(%s);" % q(jti_tok)) == 'ERROR JW010',
            'subscriber, warm session: a jti revoked on the publisher is JW010')

    # a subject revoked: likewise
    p.query("SELECT jwt_revoke_subject('ed-user', now() + interval '1 second');")
    applied("SELECT EXISTS (SELECT FROM jwt_revoked_subjects);", 'subject revocation')
    T.check(outcome(w, "SELECT jwt_verify(%s);" % q(ed1)) == 'ERROR JW010',
            'subscriber, warm session: a subject revoked on the publisher is JW010')
    T.check(verify_sub(w, hs1) == 'OK hs-user', 'subscriber: other tokens still verify')

    # the refresh-token tables stay where jwt_refresh runs
    p.query("SELECT jwt_issue_pair('{\"sub\": \"pair-user\"}');")
    T.check(p.value('SELECT count(*) FROM jwt_token_families;') == '1'
            and sub.value('SELECT count(*) FROM jwt_token_families;') == '0',
            'refresh-token families are not published')

    # TRUNCATE replicates as a statement: the key table emptied on the publisher
    p.query('TRUNCATE jwt_keys;')
    applied('SELECT NOT EXISTS (SELECT FROM jwt_keys);', 'TRUNCATE of the key table')
    T.check(outcome(w, "SELECT jwt_verify(%s);" % q(hs1)) == 'ERROR JW009',
            'subscriber, warm session: after TRUNCATE on the publisher, a token is JW009')

    # the publisher's own sessions are unaffected by the replica triggers
    T.check(outcome(p, "SELECT jwt_verify(%s);" % q(hs1)) == 'ERROR JW009',
            'publisher: after TRUNCATE, a token is JW009')
    for s in (p, sub, w):
        s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--keep', action='store_true', help="keep the clusters' directory")
    args = ap.parse_args()
    c = Clusters()
    try:
        c.setup()
        tests(c)
        bad = [l for l in c.logs().splitlines()
               if re.search(r'PANIC|terminated by signal|TRAP:', l)]
        T.check(not bad, 'no crash in either server log', '\n'.join(bad[:5]))
    except Exception as e:  # the suite must still print its tally
        T.check(False, 'the logical replication suite ran to the end', '%s: %s' % (type(e).__name__, e))
    finally:
        c.stop(keep=args.keep)
    return T.finish()


if __name__ == '__main__':
    sys.exit(main())
