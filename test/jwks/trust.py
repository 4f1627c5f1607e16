"""trust.py -- the JWKS suite's checks of whom a fetch trusts, who may make
one, what its errors tell, and how long an answer is kept.

test/jwks/run.py calls checks(c, T) with its cluster (extension installed
in database jwt_jwks, jwt.jwks_ca_file = the test CA) and its tally.  Alone,

    /usr/bin/python3 test/jwks/trust.py

runs the same checks with a cluster of its own.  As root (the clusters run
as postgres); the CA pinning check needs root and is skipped otherwise.

- jwt.jwks_ca_file pins trust: a provider whose certificate comes from a CA
  of the system store, but not of that file, is refused.  The system store
  is not touched: a cluster of this module's own runs in a private mount
  namespace (unshare), where a copy of /etc/ssl/certs plus the fixtures'
  other-ca.pem (as <subject hash>.N) is bind-mounted over /etc/ssl/certs.
  There, with jwt.jwks_ca_file empty, the same provider is accepted: the
  check can fail.
- _jwt_fetch is the owner's: a role granted EXECUTE on every function of
  the schema is refused (42501) before any request, also through
  _jwt_jwks_fetch; a failed connect names no address or port, neither in
  the error of jwt_issuer_trust nor in jwt_jwks_status().last_error (the
  server log keeps libcurl's words).
- Cache-Control no-store and no-cache win over max-age, in either order.
- Expires counts from the provider's Date, not from our clock: a provider
  whose clock is two hours off still gets the lifetime it meant.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, '..', 'stress'))
sys.path.insert(0, HERE)
from stresslib import (PG_BIN, Session, Tally, first_error, initdb, outcome,  # noqa: E402
                       pg_stop, quote as q)
from cluster import CONF, DB, Cluster  # noqa: E402
import idpctl  # noqa: E402

NS_PORT = 5489          # the namespace's cluster (test/jwks/run.py: 5481, 5482)
SOLO_PORT = 5488        # the cluster of a run of this module alone
SYSTEM_CERTS = '/etc/ssl/certs'


def session(conninfo):
    s = Session(dbname=conninfo, appname='jwt-jwks-trust')
    s.query('\\set VERBOSITY verbose')
    return s


def last_error(s, issuer):
    return s.value("SELECT coalesce(last_error, '') FROM jwt_jwks_status() WHERE issuer = %s;" % q(issuer))


def next_in(s, issuer):
    v = s.value("SELECT round(extract(epoch FROM next_refresh - now())) FROM jwt_jwks_status() "
                "WHERE issuer = %s;" % q(issuer))
    return float(v) if v not in (None, '') else -1.0


def closed_port():
    """A port on 127.0.0.1 where nothing listens (just freed)."""
    with socket.socket() as so:
        so.bind(('127.0.0.1', 0))
        return so.getsockname()[1]


def names_address(text, port):
    return '127.0.0.1' in text or re.search(r'(?<!\d)%d(?!\d)' % port, text) is not None \
        or re.search(r'\bport\b', text, re.I) is not None


# ---- Cache-Control and Expires ------------------------------------------

def caching(c, T):
    s = session(c.conninfo())
    s.query("SET jwt.jwks_min_interval = '60s'; SET jwt.jwks_max_interval = '1h';")
    with idpctl.start() as idp:
        _, k = idpctl.generate_es256('c1')
        idp.set_jwks(idpctl.jwks(k))
        r = outcome(s, 'SELECT jwt_issuer_trust(%s);' % q(idp.issuer))
        T.check(r == 'OK 1', 'caching: the provider is registered', r)
        for cc, what in (('no-store, max-age=600', 'no-store before max-age=600'),
                         ('max-age=600, no-store', 'no-store after max-age=600'),
                         ('no-cache, max-age=86400', 'no-cache before max-age=86400'),
                         ('public, max-age=86400, no-cache', 'no-cache after max-age=86400')):
            idp.set_headers(cache_control=cc)
            ma = s.value('SELECT max_age FROM _jwt_fetch(%s);' % q(idp.jwks_url))
            s.query('SELECT jwt_jwks_refresh(%s);' % q(idp.issuer))
            nxt = next_in(s, idp.issuer)
            T.check(ma == '0' and 53 <= nxt <= 61,
                    'caching: %s: not kept (max_age 0, next refresh at the minimum, 54..60 s)' % what,
                    'max_age %s, next in %s s' % (ma, nxt))
        # the provider's clock is 2 h ahead of ours, then 2 h behind; its
        # answers expire 20 minutes after their Date
        for skew in (7200, -7200):
            idp.set_headers(expires=1200)
            idp.set_clock_skew(skew)
            left = s.value('SELECT round(extract(epoch FROM expires - clock_timestamp())) '
                           'FROM _jwt_fetch(%s);' % q(idp.jwks_url))
            s.query('SELECT jwt_jwks_refresh(%s);' % q(idp.issuer))
            nxt = next_in(s, idp.issuer)
            T.check(left is not None and 1195 <= float(left) <= 1201 and 1079 <= nxt <= 1201,
                    'caching: Expires 20 min after a Date %+d h off our clock: kept 20 min '
                    '(Expires - Date; next refresh in 1080..1200 s)' % (skew // 3600),
                    'expires in %s s, next in %s s' % (left, nxt))
        idp.set_clock_skew(0)
        idp.set_headers()
    s.close()


# ---- who may fetch, and what a failure tells ----------------------------

def grants_and_errors(c, T):
    s = session(c.conninfo())
    port = closed_port()
    down = 'https://127.0.0.1:%d/jwks.json' % port
    with idpctl.start() as idp:
        _, k = idpctl.generate_es256('g1')
        idp.set_jwks(idpctl.jwks(k))

        # a role granted EXECUTE on everything: still no request
        s.query('CREATE ROLE jwt_trust_app; '
                'GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO jwt_trust_app;')
        idp.reset_counts()
        s.query('SET ROLE jwt_trust_app;')
        r1 = outcome(s, 'SELECT error FROM _jwt_fetch(%s);' % q(idp.jwks_url))
        r2 = outcome(s, 'SELECT error FROM _jwt_jwks_fetch(%s, NULL);' % q(idp.issuer))
        scan = s.query('SELECT error FROM _jwt_fetch(%s);' % q(down), allow_error=True)
        s.query('RESET ROLE;')
        s.query('REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM jwt_trust_app; '
                'DROP ROLE jwt_trust_app;')
        n = idp.counts()
        T.check(r1 == 'ERROR 42501' and r2 == 'ERROR 42501',
                'a role granted EXECUTE on _jwt_fetch and _jwt_jwks_fetch is refused (42501)',
                '%s %s' % (r1, r2))
        T.check(sum(n.values()) == 0, '... and no request reached the provider', str(n))
        err = first_error(scan)
        T.check(err is not None and err[0] == '42501' and not names_address(' '.join(scan), port),
                '... nor may it probe a port: 42501, nothing about the port', repr(scan[-3:]))

        # a failed connect: a fixed message
        lines = s.query('SELECT jwt_issuer_trust(%s, %s);' % (q('https://down.example'), q(down)),
                        allow_error=True)
        err = first_error(lines)
        detail = next((l for l in lines if l.startswith('DETAIL')), '')
        T.check(err is not None and err[0] == '08000' and 'could not connect' in detail
                and not names_address(' '.join(lines), port),
                'nothing listens: jwt_issuer_trust says "could not connect", no address or port',
                repr(lines[-4:]))
        r = outcome(s, 'SELECT jwt_issuer_trust(%s);' % q(idp.issuer))
        T.check(r == 'OK 1', 'errors: the provider is registered', r)
        s.query('UPDATE jwt_issuers SET jwks_discovery = false, jwks_uri = %s WHERE issuer = %s;'
                % (q(down), q(idp.issuer)))
        lines = s.query('SELECT jwt_jwks_refresh(%s);' % q(idp.issuer), allow_error=True)
        le = last_error(s, idp.issuer)
        T.check(le == 'could not connect' and not names_address(le, port),
                'nothing listens: jwt_jwks_status().last_error is "could not connect", no address or port',
                repr(le))
        # (the warning names the issuer, whose URL is the provider's)
        warned = [l.replace(idp.issuer, '<issuer>') for l in lines if l.startswith(('WARNING', 'DETAIL'))]
        T.check(warned and not names_address(' '.join(warned), port),
                '... and the warning of jwt_jwks_refresh names neither', repr(warned))
        s.query('DELETE FROM jwt_issuers WHERE issuer = %s;' % q(idp.issuer))
    s.close()
    time.sleep(0.2)
    T.check(re.search(r'libcurl error 7: .*\b%d\b' % port, c.log_text()) is not None,
            "... the server log keeps libcurl's words (address and port)")


# ---- jwt.jwks_ca_file pins trust ----------------------------------------

class NamespacedCluster:
    """A cluster whose server runs in a private mount namespace, where
    /etc/ssl/certs is a copy of ours plus extra CA certificates."""

    def __init__(self, extra_cas):
        self.dir = tempfile.mkdtemp(prefix='jwt-jwks-trust.')
        shutil.chown(self.dir, 'postgres', 'postgres')
        self.data = os.path.join(self.dir, 'data')
        self.log = os.path.join(self.dir, 'server.log')
        self.certs = os.path.join(self.dir, 'certs')
        shutil.copytree(SYSTEM_CERTS, self.certs, symlinks=True)
        self.added = []
        for ca in extra_cas:
            h = subprocess.run(['openssl', 'x509', '-subject_hash', '-noout', '-in', ca], check=True,
                               stdout=subprocess.PIPE, text=True).stdout.strip()
            i = 0
            while os.path.lexists(os.path.join(self.certs, '%s.%d' % (h, i))):
                i += 1
            name = '%s.%d' % (h, i)
            shutil.copyfile(ca, os.path.join(self.certs, name))
            os.chmod(os.path.join(self.certs, name), 0o644)
            self.added.append(name)

    def start(self):
        initdb(self.data, CONF)
        opts = "-k %s -c listen_addresses='' -p %d" % (self.dir, NS_PORT)
        # the postmaster, started from inside, stays in the namespace (and
        # so do its children); the namespace ends with the last of them
        subprocess.run(['unshare', '--mount', '--propagation', 'private', '--',
                        'sh', '-ec', 'mount --bind "$1" "$2"; '
                        'exec runuser -u postgres -- "$3/pg_ctl" -D "$4" -l "$5" -w -t 120 -o "$6" start',
                        'sh', self.certs, SYSTEM_CERTS, PG_BIN, self.data, self.log, opts],
                       check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def postmaster_pid(self):
        with open(os.path.join(self.data, 'postmaster.pid')) as f:
            return int(f.readline())

    def conninfo(self, db='postgres'):
        return 'host=%s port=%d dbname=%s user=postgres' % (self.dir, NS_PORT, db)

    def stop(self):
        pg_stop(self.data)
        shutil.rmtree(self.dir, ignore_errors=True)


def pinned_ca(T):
    if os.geteuid() != 0:
        print('SKIP: jwt.jwks_ca_file pinning needs root (a private mount namespace)')
        return
    c = NamespacedCluster([idpctl.OTHER_CA_FILE])
    try:
        c.start()
        pid = c.postmaster_pid()
        T.check(os.readlink('/proc/%d/ns/mnt' % pid) != os.readlink('/proc/self/ns/mnt'),
                'CA pinning: the server runs in a mount namespace of its own')
        T.check(not os.path.lexists(os.path.join(SYSTEM_CERTS, c.added[0])),
                '... and the machine\'s trust store is untouched', c.added[0])
        s = session(c.conninfo())
        seen = s.value("SELECT pg_read_file(%s) LIKE '%%BEGIN CERTIFICATE%%';"
                       % q(os.path.join(SYSTEM_CERTS, c.added[0])))
        T.check(seen == 't', '... where %s/%s is the second CA (fixtures other-ca.pem)'
                % (SYSTEM_CERTS, c.added[0]), str(seen))
        s.query('CREATE EXTENSION jwt;')
        with idpctl.start() as good, idpctl.start(cert='other') as other:
            _, k = idpctl.generate_es256('p1')
            for idp in (good, other):
                idp.set_jwks(idpctl.jwks(k))
            r = outcome(s, 'SELECT jwt_issuer_trust(%s);' % q(good.issuer))
            T.check(r == 'OK 1', 'CA pinning: jwt.jwks_ca_file set, its CA\'s provider is accepted', r)
            lines = s.query('SELECT jwt_issuer_trust(%s);' % q(other.issuer), allow_error=True)
            err = first_error(lines)
            detail = next((l for l in lines if l.startswith('DETAIL')), '')
            T.check(err is not None and err[0] == '08000' and 'certificate verification failed' in detail,
                    'CA pinning: jwt.jwks_ca_file set, a provider of a CA that only the system store '
                    'holds is refused (08000, certificate verification failed)', repr(lines[-4:]))
            T.check(sum(other.counts().values()) == 0, '... and no request reached it', str(other.counts()))
            # the other side: the system store is what accepts it
            s.query("SET jwt.jwks_ca_file = '';")
            r = outcome(s, 'SELECT jwt_issuer_trust(%s);' % q(other.issuer))
            T.check(r == 'OK 1', 'CA pinning: jwt.jwks_ca_file empty, the system store\'s CA is accepted '
                    '(so the check above can fail)', r)
            lines = s.query('SELECT jwt_jwks_refresh(%s);' % q(good.issuer), allow_error=True)
            T.check('certificate verification failed' in (last_error(s, good.issuer) or ''),
                    '... and the test CA, not in the system store, is not', repr(lines[-3:]))
        s.close()
    finally:
        c.stop()


def checks(c, T):
    """All of this module's checks; c: test/jwks/run.py's cluster."""
    caching(c, T)
    grants_and_errors(c, T)
    pinned_ca(T)


class SoloCluster(Cluster):
    """For a run of this module alone: test/jwks/run.py's cluster, with the
    extension installed in DB."""

    def __init__(self):
        super().__init__(SOLO_PORT, prefix='jwt-jwks-trust-solo.')

    def start(self):
        super().start()
        s = session(self.conninfo('postgres'))
        s.query('CREATE DATABASE %s;' % DB)
        s.close()
        s = session(self.conninfo())
        s.query('CREATE EXTENSION jwt;')
        s.close()


def main():
    T = Tally()
    c = SoloCluster()
    try:
        c.start()
        checks(c, T)
    except Exception as e:  # the tally is still printed
        T.check(False, 'the trust checks ran to the end', '%s: %s' % (type(e).__name__, e))
    finally:
        c.stop()
    return T.finish()


if __name__ == '__main__':
    sys.exit(main())
