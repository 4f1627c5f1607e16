#!/usr/bin/python3
"""Device-flow login: psql logs in through libpq's own OAuth device
authorization flow (RFC 8628), PostgreSQL 18.

    /usr/bin/python3 test/login/device.py [--port N] [--keep]

PostgreSQL 18 or later only: the server of $PG_CONFIG (else of $PG_MAJOR,
else the pg_config on PATH) must be 18+, else this says so and exits 2
without running anything.  Run as root (the cluster runs as postgres; and
libpq's flow lives in Debian's package libpq-oauth, which this installs
with apt-get when libpq-oauth-<major>.so is missing) or as the cluster's
owner with libpq-oauth installed.

The identity provider is test/jwks/idp.py (HTTPS, CA test/fixtures/idp),
its device flow auto-approving and handing out ES256 tokens signed with a
key made here, whose public half the database fetches from the provider's
JWKS (jwt_issuer_trust).  The cluster (initdb in a temp dir, unix socket
there, no TCP) has shared_preload_libraries and oauth_validator_libraries =
'jwt', and

    local jwt_device dave oauth issuer="<provider>" scope="openid db" map=jwt
    pg_ident.conf:  jwt  dave@idp  dave

The login is a real psql, stdin closed:

    PGOAUTHDEBUG=UNSAFE PGOAUTHCAFILE=test/fixtures/idp/ca.pem \\
    psql "host=<sockdir> port=<port> dbname=jwt_device user=dave \\
          oauth_issuer=<provider> oauth_client_id=psql-test" -c "..."

libpq asks the server for the discovery URI and scope, fetches the
provider's discovery document, asks for a device code, prints "Visit ...
and enter the code: ..." on stderr, polls the token endpoint and connects
again with the token.  (libpq 18 reads PGOAUTHCAFILE only when PGOAUTHDEBUG
is UNSAFE; the provider's CA is not in the system store.)

Checks: the login (SYSTEM_USER oauth:<sub>, jwt_claim('sub')), the prompt,
what libpq sent the provider (client_id, the HBA line's scope, the device
grant), a login that has to poll (authorization_pending); refusals: a token
lacking the scope db, a discovery document naming another issuer, a
provider that denies the authorization; no issued token in the server log.

Prints "ok:" or "FAIL:" per check, ends with "N passed, M failed"; exits 1
when anything failed.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, '..', 'stress'))
sys.path.insert(0, os.path.join(HERE, '..', 'jwks'))
from stresslib import EXTRA_CONF, Session, quote  # noqa: E402
import idpctl  # noqa: E402
from loginlib import BaseCluster, Tally, pg_config, pg_major  # noqa: E402

DB = 'jwt_device'
USER = 'dave'
SUB = 'dave@idp'
CLIENT_ID = 'psql-test'
HBA_SCOPE = 'openid db'
LOGIN_WAIT = 15          # s: for the first login, while the snapshot catches up
PSQL_TIMEOUT = 60        # s: one psql run
DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code'



T = Tally()

# ---- libpq-oauth ------------------------------------------------------------

def oauth_module_paths(major):
    """Where libpq would find libpq-oauth-<major>.so: next to libpq (Debian:
    /usr/lib/<multiarch>/, which is also pg_config --libdir)."""
    name = 'libpq-oauth-%d.so' % major
    dirs = []
    try:
        dirs.append(pg_config('--libdir'))
    except (OSError, subprocess.CalledProcessError):
        pass
    try:
        arch = subprocess.run(['dpkg-architecture', '-qDEB_HOST_MULTIARCH'],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True).stdout.strip()
        if arch:
            dirs.append('/usr/lib/' + arch)
    except OSError:
        pass
    dirs.append('/usr/lib/x86_64-linux-gnu')
    seen = []
    for d in dirs:
        p = os.path.join(d, name)
        if p not in seen:
            seen.append(p)
    return seen


def ensure_libpq_oauth(major):
    """(ok, detail): libpq-oauth-<major>.so is there, installing the Debian
    package libpq-oauth with apt-get if it is not (root only)."""
    paths = oauth_module_paths(major)
    have = [p for p in paths if os.path.exists(p)]
    if have:
        return True, have[0]
    if os.geteuid() != 0:
        return False, ('%s is missing and we are not root, so cannot apt-get install '
                       'libpq-oauth' % paths[0])
    if not shutil.which('apt-get'):
        return False, '%s is missing and there is no apt-get to install libpq-oauth' % paths[0]
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    log = []
    for cmd in (['apt-get', 'install', '-y', '-q', 'libpq-oauth'],
                ['apt-get', 'update', '-q'],
                ['apt-get', 'install', '-y', '-q', 'libpq-oauth']):
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, env=env)
        log.append('%s: exit %d: %s' % (' '.join(cmd), p.returncode,
                                        ' / '.join(p.stdout.strip().splitlines()[-3:])))
        have = [q for q in paths if os.path.exists(q)]
        if have:
            return True, 'installed with %s: %s' % (' '.join(cmd), have[0])
    return False, 'cannot install libpq-oauth (%s missing): %s' % (paths[0], ' | '.join(log))


# ---- the cluster (as test/login/run.py's) ---------------------------------

class Cluster(BaseCluster):
    def __init__(self, port, idp):
        BaseCluster.__init__(self, port, 'jwt-device.')
        self.idp = idp

    def init(self):
        self.run([self.bindir + '/initdb', '-D', self.data, '-U', 'postgres', '-A', 'trust',
                  '-E', 'UTF8', '--locale=C'])
        conf = ("shared_preload_libraries = 'jwt'\n"
                "oauth_validator_libraries = 'jwt'\n"
                "jwt.database = '%s'\n"
                "jwt.jwks_ca_file = '%s'\n"
                "log_connections = on\n"
                "log_line_prefix = '%%m [%%p] '\n"
                "log_min_messages = warning\n" % (DB, idpctl.CA_FILE))
        if EXTRA_CONF:
            conf += EXTRA_CONF.replace(';', '\n') + '\n'
        with open(os.path.join(self.data, 'postgresql.conf'), 'a') as f:
            f.write(conf)
        hba = ('local all postgres trust\n'
               'local %s %s oauth issuer="%s" scope="%s" map=jwt\n'
               % (DB, USER, self.idp.issuer, HBA_SCOPE))
        ident = 'jwt  %s  %s\n' % (SUB, USER)
        self.write_auth(hba, ident)


# ---- a psql login through the device flow --------------------------------

class Login:
    """One psql run: rc, out (lines), err (stderr without libcurl's debug
    lines), prompt (the "Visit ... enter the code" line), requests (what the
    provider saw), log (the server log meanwhile), took (s)."""

    def __init__(self, rc, out, err, requests, log, took):
        self.rc, self.requests, self.log, self.took = rc, requests, log, took
        self.out = out.splitlines()
        lines = [l for l in err.splitlines()
                 if not l.startswith(('[libcurl]', '[libpq]'))]
        self.err = '\n'.join(lines).strip()
        self.prompt = next((l for l in lines if l.startswith('Visit ')), None)

    @property
    def ok(self):
        return self.rc == 0

    def of(self, endpoint):
        return [r for r in self.requests if r['endpoint'] == endpoint]

    def tokens(self):
        return [r['response']['access_token'] for r in self.of('token')
                if r['status'] == 200 and 'access_token' in r['response']]

    def why(self):
        return 'rc %d, stderr: %s' % (self.rc, self.err.replace('\n', ' / ')[:500])


SQL = "SELECT system_user, jwt_claim('sub')"


def device_login(c, claims, pending=0, error=None, key=None):
    """Set the provider's device flow up (token = claims signed with key),
    then log in with psql; a Login."""
    pem, kid = key or c.key
    c.idp.set_device(pem, kid, claims, pending=pending, error=error)
    conninfo = '%s oauth_issuer=%s oauth_client_id=%s' % (
        c.conninfo(DB, USER), c.idp.issuer, CLIENT_ID)
    env = {k: v for k, v in os.environ.items() if not k.startswith('PG')}
    # libpq 18 uses PGOAUTHCAFILE (the provider's CA) only in its UNSAFE
    # debug mode, which also sends libcurl's trace to stderr
    env.update(PGOAUTHCAFILE=idpctl.CA_FILE, PGOAUTHDEBUG='UNSAFE', PGCONNECT_TIMEOUT='30')
    start = c.log_size()
    t0 = time.monotonic()
    try:
        p = subprocess.run([c.bindir + '/psql', '-X', '-A', '-t', conninfo, '-c', SQL],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=env, timeout=PSQL_TIMEOUT)
        rc, out, err = p.returncode, p.stdout.decode('utf-8', 'replace'), \
            p.stderr.decode('utf-8', 'replace')
    except subprocess.TimeoutExpired as e:
        rc, out = -1, ''
        err = (e.stderr or b'').decode('utf-8', 'replace') + '\npsql timed out'
    took = time.monotonic() - t0
    # the backend writes its log lines before it answers, but give a FATAL
    # a moment to reach the file
    deadline = time.monotonic() + 2
    while True:
        seg = c.log_text(start)
        if rc == 0 or re.search(r'\] FATAL:  ', seg) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return Login(rc, out, err, c.idp.device_requests(), seg, took)


def claims(c, **kw):
    now = int(time.time())
    out = {'iss': c.idp.issuer, 'sub': SUB, 'scope': 'openid db', 'iat': now - 5,
           'exp': now + 600}
    out.update(kw)
    return {k: v for k, v in out.items() if v is not None}


def suite(c, args):
    c.init()
    if not T.check(c.start(), "the server starts with oauth_validator_libraries = 'jwt'",
                   getattr(c, 'start_error', '')):
        return
    pem, jwk = idpctl.generate_es256('device-1')
    c.key = (pem, jwk['kid'])
    c.idp.set_jwks(idpctl.jwks(jwk))

    p = Session(dbname=c.conninfo(), appname='jwt-device')
    p.query('CREATE ROLE %s LOGIN; CREATE DATABASE %s;' % (USER, DB))
    p.close()
    s = Session(dbname=c.conninfo(DB), appname='jwt-device')
    s.query('CREATE EXTENSION jwt;')
    n = s.value('SELECT jwt_issuer_trust(%s, %s);' % (quote(c.idp.issuer), quote(c.idp.jwks_url)))
    T.check(n == '1', "set-up: jwt_issuer_trust fetched the provider's one key", 'got %s' % n)
    s.close()
    issued = []

    # ---- the login (retried while the login snapshot catches up) ----
    t0 = time.monotonic()
    tries = 0
    while True:
        tries += 1
        a = device_login(c, claims(c))
        issued += a.tokens()
        if a.ok or time.monotonic() - t0 > LOGIN_WAIT:
            break
        time.sleep(0.5)
    if not T.check(a.ok, 'psql logs in through the device flow',
                   '%.2f s, %d attempt(s)' % (a.took, tries) if a.ok else a.why()):
        T.check(False, 'the remaining checks', 'not run: the login failed; server log: %s'
                % a.log[-1500:].replace('\n', ' / '))
        return
    T.check(a.out == ['oauth:%s|%s' % (SUB, SUB)],
            "psql prints system_user oauth:%s and jwt_claim('sub') %s" % (SUB, SUB),
            'got %r' % a.out)
    authz = a.of('device_authorization')
    code = authz[-1]['response'].get('user_code') if authz else None
    T.check(a.prompt is not None and code is not None and
            a.prompt == 'Visit %s/device and enter the code: %s' % (c.idp.issuer, code),
            'psql printed the "Visit ... and enter the code" prompt on stderr', repr(a.prompt))
    form = authz[-1]['form'] if authz else {}
    T.check(len(authz) == 1 and form.get('client_id') == CLIENT_ID,
            'libpq asked the device authorization endpoint once, with client_id %s' % CLIENT_ID,
            '%d request(s), form %r' % (len(authz), form))
    T.check(form.get('scope') == HBA_SCOPE,
            "libpq asked for the scope the server named (the HBA line's \"%s\")" % HBA_SCOPE,
            'scope %r' % form.get('scope'))
    toks = a.of('token')
    T.check(len(toks) == 1 and toks[0]['form'].get('grant_type') == DEVICE_GRANT
            and toks[0]['form'].get('device_code') == authz[-1]['response'].get('device_code')
            and toks[0]['status'] == 200,
            'libpq redeemed the device code at the token endpoint once (device_code grant)',
            repr([(t['form'], t['status']) for t in toks])[:400])

    # ---- a login that has to poll ----
    a = device_login(c, claims(c), pending=2)
    issued += a.tokens()
    polls = a.of('token')
    T.check(a.ok and a.out == ['oauth:%s|%s' % (SUB, SUB)],
            'a login the provider approves only at the third poll logs in',
            '%.2f s' % a.took if a.ok else a.why())
    T.check([t['status'] for t in polls] == [400, 400, 200] and a.took >= 1.9,
            '... after polling every interval (1 s): authorization_pending twice, then the token',
            'statuses %r, %.2f s' % ([t['status'] for t in polls], a.took))

    # ---- refusals ----
    a = device_login(c, claims(c, scope='openid'))
    issued += a.tokens()
    T.check(not a.ok and len(a.tokens()) == 1 and a.prompt is not None,
            'refused: the provider issues a token without the scope db: psql fails',
            a.why() if not a.ok else 'psql logged in: %r' % a.out)
    # (the validator's own lines: not PostgreSQL's, which quote the HBA line)
    own = [l for l in a.log.splitlines() if not re.search(
        r'Connection matched file|connection (received|authenticated|authorized)'
        r'|OAuth bearer authentication failed', l)]
    T.check(any(re.search(r'lacks a scope|scope "db"', l) for l in own)
            and any(c.idp.issuer in l for l in own),
            "... and the validator's log lines name the missing scope and the issuer",
            ' / '.join(own)[:600])

    c.idp.set_discovery_issuer('https://evil.example')
    try:
        a = device_login(c, claims(c))
    finally:
        c.idp.set_discovery_issuer(None)
    T.check(not a.ok and 'does not match oauth_issuer' in a.err and not a.requests,
            'refused: a discovery document naming another issuer: libpq stops before any '
            'device request', a.why() + '; %d request(s)' % len(a.requests))

    a = device_login(c, claims(c), error='access_denied')
    T.check(not a.ok and 'access_denied' in a.err and not a.tokens(),
            'refused: the provider denies the authorization (access_denied): psql fails',
            a.why())

    # ---- the issued tokens stay out of the server log ----
    text = c.log_text()
    leaked = [t for t in issued if t in text or t.split('.')[2] in text]
    T.check(issued and not leaked,
            'the server log holds none of the %d tokens the provider issued' % len(issued),
            '%d of them are in it' % len(leaked) if leaked else '')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--port', type=int, default=5720, help="the cluster's port (default 5720)")
    ap.add_argument('--keep', action='store_true', help="keep the cluster's directory")
    args = ap.parse_args()

    try:
        major = pg_major()
    except (OSError, subprocess.CalledProcessError) as e:
        print('test/login/device.py: cannot run pg_config: %s' % e, file=sys.stderr)
        return 2
    if major < 18:
        print('test/login/device.py needs PostgreSQL 18 or later (OAuth); pg_config says %d: '
              'not run' % major, file=sys.stderr)
        return 2
    os.environ['PATH'] = pg_config('--bindir') + os.pathsep + os.environ.get('PATH', '')

    ok, detail = ensure_libpq_oauth(major)
    if not T.check(ok, "libpq's device flow is installed (libpq-oauth-%d.so)" % major, detail):
        return T.finish()

    idp = c = None
    try:
        idp = idpctl.start()
        c = Cluster(args.port, idp)
        suite(c, args)
    except Exception as e:  # the script must still print its tally
        import traceback
        traceback.print_exc()
        T.check(False, 'the device-flow checks ran to the end', '%s: %s' % (type(e).__name__, e))
    finally:
        if c is not None:
            c.stop(keep=args.keep)
        if idp is not None:
            idp.stop()
    return T.finish()


if __name__ == '__main__':
    sys.exit(main())
