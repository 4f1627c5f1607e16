#!/usr/bin/python3
"""Login suite: logging in with a bearer token, PostgreSQL 18 (DESIGN §11).

    /usr/bin/python3 test/login/run.py [--port N] [--keep] [--client PATH]

PostgreSQL 18 or later only: the server of $PG_CONFIG (else of $PG_MAJOR,
else the pg_config on PATH) must be 18+, else this says so and exits 2
without running anything, so the caller can leave it out.  Run as root (the cluster runs as
postgres) or as the user that owns it.

Makes a cluster of its own (initdb in a temp dir, unix socket there, no
TCP: an oauth line may be "local", and libpq sends a bearer token over a
unix socket without TLS) with shared_preload_libraries and
oauth_validator_libraries = 'jwt', and pg_hba.conf lines:

    local all       postgres             trust
    local all       mallory              trust   (a plain role, for the snapshot check)
    local jwt_login alice,bob            oauth issuer=<realms/a> scope="openid db" map=jwt
    local jwt_login,jwt_other carol      oauth issuer=<jwt.issuer> scope="db" map=jwt
    local jwt_login dave,erin,root_admin oauth issuer=<realms/b> scope="db" delegate_ident_mapping=1

Keys: ES256 pairs made here with python3-cryptography, the public halves
imported with jwt_key_import(..., issuer => ...), the tokens signed here
with python3-jwt; our own issuer's tokens come from jwt_issue and
jwt_issue_pair.  The client is test/login/client.c (built here with cc and
the pg_config's libpq), which hands libpq the token through
PQsetAuthDataHook.

Checks: tokens that must log in (role, system_user, the session's claims,
row-level security on jwt_claim('sub')); tokens that must not (each: the
login fails before authentication completes, the server log names the
reason and the issuer, the log holds no part of the token); how soon a
revoked key stops logging in; the key snapshot's file mode, when a file
with "jwt" in its name shows up in the data directory.

Prints "ok:", "FAIL:" or "skipped:" per check, ends with "N passed, M
failed"; exits 1 when anything failed.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, '..', 'stress'))
sys.path.insert(0, os.path.join(HERE, '..', 'jwks'))
from stresslib import EXTRA_CONF, Session, outcome, quote  # noqa: E402
import idpctl  # noqa: E402
from loginlib import BaseCluster, Tally, pg_config, pg_major  # noqa: E402

DB = 'jwt_login'
OTHER_DB = 'jwt_other'             # carol's second database: no extension in it
OWN = 'https://db.example/'        # jwt.issuer
ISS_A = 'https://idp.example/realms/a'
ISS_B = 'https://idp.example/realms/b'
AUD_A = 'db-api'                   # jwt_issuers.audiences of realms/a
CLIENT_ID = 'jwt-login-test'
SNAPSHOT_WAIT = 10                 # s: for the first snapshot after set-up
REVOKE_WAIT = 1.5                  # s: "current within a second of a commit"
TIMING_LIMIT = 3.0                 # s: how long the timing check polls
TIMING_PASS = 1.5                  # s: "within about a second"


# ---- the tally -----------------------------------------------------------

T = Tally()


# ---- tokens --------------------------------------------------------------

def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode()


def compact(obj):
    return json.dumps(obj, separators=(',', ':'))


class Issuer:
    """An identity provider of ours: ES256 keys, tokens signed here."""

    def __init__(self, iss):
        import jwt as pyjwt  # python3-jwt
        from cryptography.hazmat.primitives.asymmetric import ec
        self.pyjwt = pyjwt
        self.ec = ec
        self.iss = iss
        self.keys = {}

    def new_key(self, kid):
        self.keys[kid] = self.ec.generate_private_key(self.ec.SECP256R1())
        return self.public_pem(kid)

    def public_pem(self, kid):
        from cryptography.hazmat.primitives import serialization
        return self.keys[kid].public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def sign(self, claims, kid='k1', key=None, headers=None):
        h = {'kid': kid}
        h.update(headers or {})
        return self.pyjwt.encode(claims, key or self.keys[kid], algorithm='ES256', headers=h)

    def claims(self, sub, **kw):
        now = int(time.time())
        c = {'iss': self.iss, 'sub': sub, 'iat': now - 10, 'exp': now + 3600,
             'jti': secrets.token_hex(8)}
        c.update(kw)
        return {k: v for k, v in c.items() if v is not None}


def unsigned(header, claims):
    return '%s.%s.' % (b64u(compact(header)), b64u(compact(claims)))


def hs256_with(secret, header, claims):
    signing = '%s.%s' % (b64u(compact(header)), b64u(compact(claims)))
    mac = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return signing + '.' + b64u(mac)


def tampered(token, **changes):
    """token with its payload changed, signature kept."""
    h, p, s = token.split('.')
    claims = json.loads(base64.urlsafe_b64decode(p + '=' * (-len(p) % 4)))
    claims.update(changes)
    return '%s.%s.%s' % (h, b64u(compact(claims)), s)


B64TOKEN = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/'


def junk(n):
    """n characters RFC 6750 allows in a bearer token (so that the server
    hands them to the validator rather than refusing them itself)."""
    return ''.join(secrets.choice(B64TOKEN) for _ in range(n))


def secret_parts(token):
    """The parts of a token that must never reach the log: all of it, its
    signature, and for a token that is not three parts a few windows of it."""
    parts = [token]
    pieces = token.split('.')
    if len(pieces) == 3 and len(pieces[2]) >= 16:
        parts.append(pieces[2])
    if len(pieces) != 3 and len(token) >= 120:
        parts += [token[i:i + 40] for i in (0, len(token) // 2, len(token) - 40)]
    return parts


# ---- the cluster ---------------------------------------------------------

LOG_RE = re.compile(r'^\S+ \S+ \S+ \[(\d+)\] ([A-Z]+):  (.*)$')
CONT_LEVELS = ('DETAIL', 'HINT', 'CONTEXT', 'STATEMENT', 'QUERY', 'LOCATION')
# PostgreSQL's own lines about a connection, which name neither a reason nor
# (but for the HBA line it quotes) an issuer of the validator's
PG_OWN_RE = re.compile(r'^(connection received|connection authenticated|connection authorized'
                       r'|OAuth bearer authentication failed for user'
                       r'|Validator failed to authorize|Connection matched file)')


class Cluster(BaseCluster):
    def __init__(self, port):
        BaseCluster.__init__(self, port, 'jwt-login.')
        self.tokdir = tempfile.mkdtemp(prefix='jwt-login-tokens.')   # ours, 0700
        self.client = None
        self.presented = []          # every token presented, for the final log check
        self.ntok = 0
        self.idp = None              # the identity provider whose keys are fetched

    def init(self):
        self.run([self.bindir + '/initdb', '-D', self.data, '-U', 'postgres', '-A', 'trust',
                  '-E', 'UTF8', '--locale=C'])
        conf = ("shared_preload_libraries = 'jwt'\n"
                "oauth_validator_libraries = 'jwt'\n"
                "jwt.issuer = '%s'\n"
                "jwt.database = '%s'\n"
                "jwt.login_claim = 'sub'\n"
                "jwt.role_claim = 'role'\n"
                "jwt.jwks_ca_file = '%s'\n"
                "jwt.jwks_miss_cooldown = 1s\n"
                "log_connections = on\n"
                "log_line_prefix = '%%m [%%p] '\n"
                "log_min_messages = warning\n" % (OWN, DB, idpctl.CA_FILE))
        if EXTRA_CONF:
            conf += EXTRA_CONF.replace(';', '\n') + '\n'
        with open(os.path.join(self.data, 'postgresql.conf'), 'a') as f:
            f.write(conf)
        hba = ('local all postgres trust\n'
               'local replication postgres trust\n'
               'local all mallory trust\n'
               'local all dbo trust\n'
               'local %(db)s alice,bob oauth issuer="%(a)s" scope="openid db" map=jwt\n'
               'local %(db)s,%(other)s carol oauth issuer="%(own)s" scope="db" map=jwt\n'
               'local %(db)s dave,erin,root_admin,bypasser oauth issuer="%(b)s" scope="db" '
               'delegate_ident_mapping=1\n'
               'local %(db)s frank oauth issuer="%(c)s" scope="" map=jwt\n'
               % {'db': DB, 'other': OTHER_DB, 'a': ISS_A, 'b': ISS_B, 'own': OWN,
                  'c': self.idp.issuer})
        ident = ('jwt  frank@c    frank\n'
                 'jwt  alice@idp  alice\n'
                 'jwt  bob@idp    bob\n'
                 'jwt  gone@idp   bob\n'
                 'jwt  carol      carol\n')
        self.write_auth(hba, ident)

    def stop(self, keep=False):
        BaseCluster.stop(self, keep)
        if keep:
            print('kept: tokens in %s' % self.tokdir, flush=True)
        else:
            shutil.rmtree(self.tokdir, ignore_errors=True)

    def session(self, db=DB):
        s = Session(dbname=self.conninfo(db), appname='jwt-login')
        s.query('\\set VERBOSITY verbose')
        return s

    def build_client(self, path=None):
        if path:
            self.client = path
            return True, ''
        self.client = os.path.join(self.tokdir, 'login_client')
        cmd = ['cc', '-O2', '-Wall', '-o', self.client, os.path.join(HERE, 'client.c'),
               '-I' + pg_config('--includedir'), '-L' + pg_config('--libdir'), '-lpq']
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return p.returncode == 0, p.stdout

    def login(self, user, token, issuer, db=DB, sql=()):
        """Present token as user; an Attempt."""
        self.ntok += 1
        path = os.path.join(self.tokdir, 'token.%d' % self.ntok)
        with open(path, 'w') as f:
            f.write(token)
        self.presented.append(token)
        # the issuer's discovery URI as oauth_issuer: libpq asks the hook for
        # the token at once and logs in with one connection (see client.c)
        conninfo = '%s oauth_issuer=%s/.well-known/openid-configuration oauth_client_id=%s' % (
            self.conninfo(db, user), issuer, CLIENT_ID)
        start = self.log_size()
        t0 = time.monotonic()
        try:
            p = subprocess.run([self.client, conninfo, path] + list(sql), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=60)
            rc, out, err = p.returncode, p.stdout.decode('utf-8', 'replace'), \
                p.stderr.decode('utf-8', 'replace')
        except subprocess.TimeoutExpired:
            rc, out, err = -1, '', 'login_client timed out'
        took = time.monotonic() - t0
        os.unlink(path)
        # the backend writes its log lines before it answers; the FATAL or
        # "connection authorized" line ends an attempt
        deadline = time.monotonic() + 2
        while True:
            seg = self.log_text(start)
            if re.search(r'\] (FATAL:  |LOG:  connection authorized)', seg) or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.05)
        return Attempt(rc, out, err, seg, took)


class Attempt:
    def __init__(self, rc, out, err, seg, took):
        self.rc = rc
        self.out = out.splitlines()
        self.err = err.strip()
        self.took = took
        # the log entries of this attempt's backends: (level, text with its
        # DETAIL/HINT lines)
        lines = seg.splitlines()
        pids = {m.group(1) for m in map(LOG_RE.match, lines)
                if m and m.group(3).startswith('connection received')}
        self.entries = []
        self.all_entries = []
        current = None
        for line in lines:
            m = LOG_RE.match(line)
            if not m:
                if current is not None:
                    current[1].append(line)
                continue
            pid, level, msg = m.groups()
            if level in CONT_LEVELS and current is not None and current[2] == pid:
                current[1].append(msg)
                continue
            current = (level, [msg], pid)
            self.all_entries.append(current)
        self.entries = [(lv, '\n'.join(parts)) for lv, parts, pid in self.all_entries
                        if pid in pids]
        self.segment = seg

    @property
    def ok(self):
        return self.rc == 0

    def authenticated(self):
        return any(t.startswith('connection authenticated') for _, t in self.entries)

    def theirs(self):
        """The entries that are not PostgreSQL's own connection lines."""
        return [(lv, t) for lv, t in self.entries if not PG_OWN_RE.match(t)]

    def show(self, own_only=True):
        ents = self.theirs() if own_only else self.entries
        return ' | '.join('%s: %s' % (lv, t.replace('\n', ' / ')) for lv, t in ents)[:900]


# ---- the checks -----------------------------------------------------------

def expect_login(c, name, user, token, issuer, checks, db=DB):
    """checks: (what, sql, expected line) each; one check per item, after
    one for the login itself."""
    a = c.login(user, token, issuer, db=db, sql=[sql for _, sql, _ in checks])
    if not T.check(a.ok, '%s: logs in' % name,
                   'rc %d, %s; log: %s' % (a.rc, a.err.replace('\n', ' / ')[:400], a.show())
                   if not a.ok else '%.2f s' % a.took):
        return False
    for i, (what, _, want) in enumerate(checks):
        got = a.out[i] if i < len(a.out) else None
        T.check(got == want, '%s: %s' % (name, what), 'got %r, want %r' % (got, want))
    return True


# where a log entry names an issuer or a role ('Issuer "https://..."', 'role
# "alice"'): taken out before the reason is looked for, so that the naming
# of the issuer is not mistaken for a reason
NAMING_RE = re.compile(r'\b(issuer|role|user)\s+"[^"]*"', re.I)
# a refusal for want of a snapshot names no reason of the token's
NO_SNAPSHOT_RE = re.compile(r'snapshot', re.I)


def reason_text(text, case):
    text = NAMING_RE.sub('', text)
    for i in (ISS_A, ISS_B, OWN):
        text = text.replace(i, '')
    if not case.get('snapshot_ok') and NO_SNAPSHOT_RE.search(text):
        return ''
    return text


def expect_refusal(c, case):
    name = case['name']
    a = c.login(case['user'], case['token'], case['hba'], db=case.get('db', DB))
    pg = case.get('pg', False)
    # the validator's refusals come before "connection authenticated"; one
    # of PostgreSQL's own (pg: 'after') after it: the validator said yes
    if pg == 'after':
        refused = a.rc == 1 and a.authenticated()
        where = ' after authentication'
    else:
        refused = a.rc == 1 and (pg or not a.authenticated())
        where = '' if pg else ' at authentication'
    T.check(refused, 'refused, %s: the login fails%s' % (name, where),
            'rc %d, authenticated %s, out %r, %s' % (a.rc, a.authenticated(), a.out,
                                                     a.err.replace('\n', ' / ')[:300])
            if not refused else '')
    # the log: an entry that names the reason (and, for the validator's
    # refusals, the issuer)
    reason = re.compile(case['reason'], re.I)
    issuers = case.get('issuers', [case['hba']])
    pool = a.entries if pg else a.theirs()
    good = [t for _, t in pool if reason.search(reason_text(t, case))
            and (pg or any(i in t for i in issuers))]
    T.check(bool(good), 'refused, %s: the log names the reason%s' % (
        name, '' if pg else ' and the issuer'),
        ('%s' % good[0].replace('\n', ' / ')[:300]) if good else
        'want /%s/%s; got: %s' % (case['reason'], '' if pg else ' and one of %s' % issuers,
                                   a.show(own_only=not pg) or '(nothing of the backend\'s)'))
    leaked = [p for p in secret_parts(case['token']) if p in a.segment]
    T.check(not leaked, 'refused, %s: the token is not in the log' % name,
            '%d part(s) of it are' % len(leaked) if leaked else '')
    return a



def provider_rotation(c, s):
    """An issuer whose keys the database fetches (jwt_issuer_trust, the test
    identity provider over HTTPS): its token logs in; after the provider
    rotates to a new key, the first login with the new kid is refused (the
    validator never fetches) and asks the JWKS worker, whose fetch lets the
    next logins in; the old key, gone from the provider's set, stops."""
    idp = c.idp
    old_pem, old_jwk = idpctl.generate_es256('c-1')
    idp.set_jwks(idpctl.jwks(old_jwk))
    n = s.value("SELECT jwt_issuer_trust(%s, %s);" % (quote(idp.issuer), quote(idp.jwks_url)))
    T.check(n == '1', 'rotation: jwt_issuer_trust fetched the provider\'s one key', 'got %s' % n)
    now = int(time.time())

    def token(pem, kid):
        return idpctl.sign(pem, kid, {'iss': idp.issuer, 'sub': 'frank@c', 'iat': now - 5,
                                      'exp': now + 3600})
    a, took = wait_login(c, 'frank', token(old_pem, 'c-1'), idp.issuer, True, SNAPSHOT_WAIT)
    T.check(a.ok, 'rotation: a token of the provider\'s key logs in (after %.2f s)' % took,
            '' if a.ok else a.show())
    # the JWKS worker started before jwt.database existed: it waits for it,
    # and a kid miss meanwhile asks no one
    t0 = time.monotonic()
    while s.value("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'jwt jwks' "
                  "AND datname IS NOT NULL;") != '1' and time.monotonic() - t0 < 60:
        time.sleep(0.2)
    new_pem, new_jwk = idpctl.generate_es256('c-2')
    idp.set_jwks(idpctl.jwks(new_jwk))
    idp.reset_counts()
    a = c.login('frank', token(new_pem, 'c-2'), idp.issuer)
    T.check(not a.ok and any("no key matches the token's key ID" in t for _, t in a.entries),
            'rotation: the first login with the new kid is refused (the validator does not fetch)',
            a.show())
    a, took = wait_login(c, 'frank', token(new_pem, 'c-2'), idp.issuer, True, 10)
    T.check(a.ok, 'rotation: once the worker fetched the new key set, the new key logs in '
            '(after %.2f s)' % took, '' if a.ok else a.show())
    fetched = idp.counts().get('/jwks.json', 0)
    T.check(fetched >= 1, 'rotation: the kid miss made the JWKS worker fetch',
            '%d fetches' % fetched)
    a = c.login('frank', token(old_pem, 'c-1'), idp.issuer)
    T.check(not a.ok, 'rotation: the key the provider dropped no longer logs in', a.show())


def login_worker_pid(sess):
    return sess.value("SELECT pid FROM pg_stat_activity WHERE backend_type = 'jwt login snapshot';")


def wait_login(c, user, token, issuer, want_ok, limit):
    """Log in until the outcome is want_ok or limit s pass; (attempt, seconds)."""
    t0 = time.monotonic()
    while True:
        a = c.login(user, token, issuer)
        took = time.monotonic() - t0
        if a.ok == want_ok or took > limit:
            return a, took
        time.sleep(0.1)


def database_owner(c, s, a_idp):
    """The owner of jwt.database, not a superuser, tries to steer the worker
    and the validator: settings that decide an identity are superuser-only,
    the key tables are not hers, and what she sets for her database (a
    search_path with her own operators first, read-only transactions, a
    1 ms statement timeout, a role) does not reach the worker that writes
    the snapshot.  After the worker reconnects under her settings, logins
    and revocations work as before."""
    p = c.session('postgres')
    p.query('ALTER DATABASE %s OWNER TO dbo;' % DB)
    p.close()
    o = Session(dbname=c.conninfo(DB, 'dbo'), appname='jwt-login')
    o.query('\\set VERBOSITY verbose')
    for name, sql, want in (
            ('set jwt.issuer for the database',
             "ALTER DATABASE %s SET jwt.issuer = %s;" % (DB, quote(ISS_A)), '42501'),
            ('set jwt.login_claim for the database',
             "ALTER DATABASE %s SET jwt.login_claim = 'role';" % DB, '55P02|42501'),
            ('set jwt.role_claim for the database',
             "ALTER DATABASE %s SET jwt.role_claim = 'sub';" % DB, '42501'),
            ('add a key to the realms/a issuer',
             "INSERT INTO jwt_keys (kid, alg, jwk, issuer) VALUES ('evil', 'HS256', "
             "'{\"kty\": \"oct\"}', %s);" % quote(ISS_A), '42501'),
            ("loosen the realms/a issuer's rules",
             "UPDATE jwt_issuers SET audiences = NULL WHERE issuer = %s;" % quote(ISS_A), '42501'),
            ('read the snapshot', "SELECT pg_read_file('pg_jwt_login_snapshot');", '42501')):
        out = outcome(o, sql)
        T.check(re.fullmatch('ERROR (%s)' % want, out) is not None,
                'database owner: %s is refused' % name, out)
    # what she may do: her database's settings, and objects of her own
    o.query("CREATE SCHEMA evil;"
            "CREATE FUNCTION evil.eq(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';"
            "CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.eq);"
            "CREATE FUNCTION evil.jsonb_build_object(VARIADIC text[]) RETURNS jsonb "
            "LANGUAGE sql AS $$SELECT '{}'::jsonb$$;"
            "ALTER DATABASE %(db)s SET search_path = evil, pg_catalog, public;"
            "ALTER DATABASE %(db)s SET default_transaction_read_only = on;"
            "ALTER DATABASE %(db)s SET statement_timeout = 1;"
            "ALTER DATABASE %(db)s SET role = dbo;" % {'db': DB})
    o.close()
    # the worker takes them up as it connects again
    p = c.session('postgres')
    old = login_worker_pid(p)
    p.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE backend_type = 'jwt login snapshot';")
    t0 = time.monotonic()
    new = old
    while (new in (None, '', old)) and time.monotonic() - t0 < 15:
        time.sleep(0.2)
        new = login_worker_pid(p)
    T.check(new not in (None, '', old), 'database owner: the login worker connected again',
            'pid %s -> %s' % (old, new))
    who = p.value("SELECT usename FROM pg_stat_activity WHERE backend_type = 'jwt login snapshot';")
    T.check(who == 'postgres', 'database owner: the login worker runs as the extension owner',
            'runs as %s' % who)
    # a new key logs in once the worker has written it, and its revocation stops it
    key = a_idp.new_key('k-owner')
    s.query('SELECT jwt_key_import(%s, %s, %s, issuer => %s);'
            % (quote(key), quote('ES256'), quote('k-owner'), quote(ISS_A)))
    tok = a_idp.sign(a_idp.claims('alice@idp', aud=AUD_A, scope='openid db'), kid='k-owner')
    a, took = wait_login(c, 'alice', tok, ISS_A, True, 5)
    T.check(a.ok, 'database owner: under her settings a new key logs in (after %.2f s)' % took,
            '' if a.ok else a.show())
    s.query("SELECT jwt_key_revoke('k-owner', %s);" % quote(ISS_A))
    a, took = wait_login(c, 'alice', tok, ISS_A, False, 5)
    T.check(not a.ok and took <= TIMING_PASS,
            'database owner: under her settings a revoked key stops logging in within %.1f s'
            % TIMING_PASS, '%s after %.2f s' % ('refused' if not a.ok else 'still logs in', took))
    p.query("ALTER DATABASE %(db)s RESET ALL; ALTER DATABASE %(db)s OWNER TO postgres;"
            % {'db': DB})
    p.close()


class Standby(Cluster):
    def __init__(self, primary, port):
        Cluster.__init__(self, port)
        self.client = primary.client
        self.primary = primary

    def init(self):
        self.run([self.bindir + '/pg_basebackup', '-D', self.data, '-R', '-X', 'stream',
                  '-h', self.primary.dir, '-p', str(self.primary.port), '-U', 'postgres'])

    def stop(self, keep=False):
        Cluster.stop(self, keep)
        self.presented = []


def standby_checks(c, s, a_idp, args):
    """On a streaming hot standby: a good token logs in with the standby's own
    snapshot, which its own worker keeps from the WAL it replays; a key
    revoked on the primary stops logging in on the standby about as soon as
    the revocation is replayed; the primary's snapshot file, copied by
    pg_basebackup, is never trusted."""
    st = Standby(c, c.port + 1)
    try:
        st.init()
        if not T.check(st.start(), 'standby: starts from pg_basebackup -R',
                       getattr(st, 'start_error', '')):
            return
        key = a_idp.new_key('k-standby')
        s.query('SELECT jwt_key_import(%s, %s, %s, issuer => %s);'
                % (quote(key), quote('ES256'), quote('k-standby'), quote(ISS_A)))
        tok = a_idp.sign(a_idp.claims('alice@idp', aud=AUD_A, scope='openid db'),
                         kid='k-standby')
        a, took = wait_login(st, 'alice', tok, ISS_A, True, SNAPSHOT_WAIT)
        T.check(a.ok, 'standby: a key imported on the primary logs in on the standby '
                '(after %.2f s)' % took, '' if a.ok else a.show())
        r = st.session(DB)
        T.check(r.value('SELECT pg_is_in_recovery();') == 't', 'standby: is in recovery')
        s.query("SELECT jwt_key_revoke('k-standby', %s);" % quote(ISS_A))
        lsn = s.value('SELECT pg_current_wal_insert_lsn();')
        t0 = time.monotonic()
        while r.value("SELECT pg_last_wal_replay_lsn() >= '%s'::pg_lsn;" % lsn) != 't' and \
                time.monotonic() - t0 < 30:
            time.sleep(0.05)
        replayed = time.monotonic() - t0
        a, took = wait_login(st, 'alice', tok, ISS_A, False, 5)
        T.check(not a.ok and took <= TIMING_PASS,
                'standby: a key revoked on the primary stops logging in on the standby within '
                '%.1f s of its replay' % TIMING_PASS,
                '%s %.2f s after replay (replay took %.2f s)'
                % ('refused' if not a.ok else 'still logs in', took, replayed))
        if not a.ok:
            T.check(any('key has been revoked' in t for _, t in a.entries),
                    'standby: the log says the key has been revoked', a.show())
        r.close()
    finally:
        st.stop(keep=args.keep)

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--port', type=int, default=5601, help='the cluster\'s port (default 5601)')
    ap.add_argument('--keep', action='store_true', help='keep the cluster\'s directory')
    ap.add_argument('--client', help='a login_client already built (default: build one)')
    args = ap.parse_args()

    try:
        major = pg_major()
    except (OSError, subprocess.CalledProcessError) as e:
        print('test/login: cannot run pg_config: %s' % e, file=sys.stderr)
        return 2
    if major < 18:
        print('test/login needs PostgreSQL 18 or later (OAuth validators); pg_config says %d: '
              'not run' % major, file=sys.stderr)
        return 2
    os.environ['PATH'] = pg_config('--bindir') + os.pathsep + os.environ.get('PATH', '')

    c = Cluster(args.port)
    try:
        suite(c, args)
    except Exception as e:  # the suite must still print its tally
        import traceback
        traceback.print_exc()
        T.check(False, 'the login suite ran to the end', '%s: %s' % (type(e).__name__, e))
    finally:
        c.stop(keep=args.keep)
        if c.idp is not None:
            c.idp.stop()
    return T.finish()


def suite(c, args):
    built, out = c.build_client(args.client)
    if not T.check(built, 'login_client builds against the libpq of pg_config', out[-800:]):
        return
    c.idp = idpctl.start()
    c.init()
    if not T.check(c.start(), 'the server starts with oauth_validator_libraries = \'jwt\'',
                   getattr(c, 'start_error', '')):
        return

    a_idp = Issuer(ISS_A)
    b_idp = Issuer(ISS_B)
    pems = {kid: a_idp.new_key(kid) for kid in ('k1', 'k-rev', 'k-time')}
    pem_b = b_idp.new_key('k1')          # the same kid as realms/a's main key

    p = c.session('postgres')
    p.query("CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN; CREATE ROLE carol LOGIN; "
            "CREATE ROLE dave LOGIN; CREATE ROLE erin LOGIN; CREATE ROLE mallory LOGIN; "
            "CREATE ROLE root_admin LOGIN SUPERUSER; CREATE ROLE bypasser LOGIN BYPASSRLS; "
            "CREATE ROLE dbo LOGIN; CREATE ROLE frank LOGIN;")

    # fail closed: no database jwt.database names, so no keys and no snapshot
    good_a = a_idp.sign(a_idp.claims('alice@idp', aud=AUD_A, scope='openid db profile'))
    expect_refusal(c, {'name': 'before any key exists (no jwt.database, no snapshot)',
                       'user': 'alice', 'hba': ISS_A, 'token': good_a,
                       'reason': r'snapshot|not trusted|no key|worker', 'snapshot_ok': True})

    p.query('CREATE DATABASE %s; CREATE DATABASE %s;' % (DB, OTHER_DB))
    p.close()
    s = c.session(DB)
    s.query("CREATE EXTENSION jwt;"
            "SELECT jwt_key_generate('ES256', 'own-1');")
    for kid, pem in pems.items():
        s.query('SELECT jwt_key_import(%s, %s, %s, issuer => %s);'
                % (quote(pem), quote('ES256'), quote(kid), quote(ISS_A)))
    s.query('SELECT jwt_key_import(%s, %s, %s, issuer => %s);'
            % (quote(pem_b), quote('ES256'), quote('k1'), quote(ISS_B)))
    s.query("UPDATE jwt_issuers SET audiences = '{%s}' WHERE issuer = %s;" % (AUD_A, quote(ISS_A)))
    s.query("CREATE TABLE docs (id int PRIMARY KEY, owner text NOT NULL, body text NOT NULL);"
            "INSERT INTO docs VALUES (1, 'alice@idp', 'a1'), (2, 'alice@idp', 'a2'), "
            "(3, 'alice@idp', 'a3'), (4, 'bob@idp', 'b1'), (5, 'bob@idp', 'b2'), "
            "(6, 'carol', 'c1'), (7, 'dave@b', 'd1'), (8, 'gone@idp', 'g1');"
            "ALTER TABLE docs ENABLE ROW LEVEL SECURITY;"
            "CREATE POLICY own ON docs USING (owner = jwt_claim('sub'));"
            "GRANT SELECT ON docs TO alice, bob, carol, dave, erin, mallory;")
    T.check(s.value("SELECT count(*) FROM jwt_keys;") == '5', 'set-up: five keys in jwt_keys')

    def own_token(claims):
        return s.value('SELECT jwt_issue(%s::jsonb);' % quote(compact(claims)))

    # wait for the snapshot to pick the keys up: a good token logs in
    t0 = time.monotonic()
    while True:
        a = c.login('alice', good_a, ISS_A)
        if a.ok or time.monotonic() - t0 > SNAPSHOT_WAIT:
            break
        time.sleep(0.2)
    waited = time.monotonic() - t0
    T.check(a.ok, 'after set-up a good token logs in within %d s' % SNAPSHOT_WAIT,
            ('%.2f s' % waited) if a.ok else 'rc %d, %s; log: %s'
            % (a.rc, a.err.replace('\n', ' / ')[:400], a.show()))

    # ---- tokens that log in ----
    who = 'SELECT current_user, system_user'
    rows = "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '-') FROM docs"
    good = [
        ('good token, scope string (alice)', 'alice', good_a, ISS_A, DB, [
            ('current_user, system_user', who, 'alice|oauth:alice@idp'),
            ("jwt_claim('sub')", "SELECT jwt_claim('sub')", 'alice@idp'),
            ("jwt_claims() ->> 'iss'", "SELECT jwt_claims() ->> 'iss'", ISS_A),
            ('RLS shows the token\'s rows only', rows, '1,2,3')]),
        ('good token (bob)', 'bob',
         a_idp.sign(a_idp.claims('bob@idp', aud=AUD_A, scope='db openid')), ISS_A, DB, [
            ('current_user, system_user', who, 'bob|oauth:bob@idp'),
            ('RLS shows the token\'s rows only', rows, '4,5')]),
        ('scp array instead of scope', 'alice',
         a_idp.sign(a_idp.claims('alice@idp', aud=AUD_A, scp=['openid', 'db', 'profile'])),
         ISS_A, DB, [
            ('current_user, system_user', who, 'alice|oauth:alice@idp'),
            ('RLS shows the token\'s rows only', rows, '1,2,3')]),
        ('aud an array holding the issuer\'s audience', 'alice',
         a_idp.sign(a_idp.claims('alice@idp', aud=['other-api', AUD_A], scope='openid db')),
         ISS_A, DB, [('current_user', 'SELECT current_user', 'alice')]),
        ('our own issuer (jwt_issue), carol', 'carol',
         own_token({'sub': 'carol', 'scope': 'db'}), OWN, DB, [
            ('current_user, system_user', who, 'carol|oauth:carol'),
            ("jwt_claim('iss')", "SELECT jwt_claim('iss')", OWN),
            ('RLS shows the token\'s rows only', rows, '6')]),
        ('our own issuer, a database without the extension', 'carol',
         own_token({'sub': 'carol', 'scope': 'db'}), OWN, OTHER_DB, [
            ('current_user, system_user', who, 'carol|oauth:carol')]),
        ('delegate_ident_mapping: role claim names the role (dave)', 'dave',
         b_idp.sign(b_idp.claims('dave@b', scope='db', role='dave')), ISS_B, DB, [
            ('current_user, system_user', who, 'dave|oauth:dave@b'),
            ('RLS shows the token\'s rows only', rows, '7')]),
    ]
    pair = s.rows("SELECT access_token, refresh_token FROM jwt_issue_pair(%s::jsonb);"
                  % quote(compact({'sub': 'carol', 'scope': 'db'})))[0]
    good.append(('our own issuer, access token of jwt_issue_pair', 'carol', pair[0], OWN, DB, [
        ('current_user', 'SELECT current_user', 'carol')]))
    for name, user, tok, iss, db, checks in good:
        expect_login(c, name, user, tok, iss, checks, db=db)

    # ---- revocations: each token logs in first, then is revoked ----
    tok_rev_key = a_idp.sign(a_idp.claims('alice@idp', aud=AUD_A, scope='openid db'), kid='k-rev')
    tok_rev_jti = a_idp.sign(a_idp.claims('alice@idp', aud=AUD_A, scope='openid db',
                                          jti='jti-revoked-1'))
    tok_rev_sub = a_idp.sign(a_idp.claims('gone@idp', aud=AUD_A, scope='openid db'))
    for what, user, tok in (('key k-rev', 'alice', tok_rev_key), ('jti', 'alice', tok_rev_jti),
                            ('subject gone@idp', 'bob', tok_rev_sub)):
        a = c.login(user, tok, ISS_A)
        T.check(a.ok, 'before revocation of its %s, the token logs in' % what,
                '' if a.ok else 'rc %d, %s; log: %s' % (a.rc, a.err[:300], a.show()))
    s.query("SELECT jwt_key_revoke('k-rev', %s);" % quote(ISS_A))
    s.query("SELECT jwt_revoke('jti-revoked-1', 'login suite');")
    s.query("SELECT jwt_revoke_subject('gone@idp');")
    time.sleep(REVOKE_WAIT)

    # ---- tokens that must not log in ----
    now = int(time.time())
    ca = a_idp.claims('alice@idp', aud=AUD_A, scope='openid db')
    pub_a = pems['k1']
    refresh_crafted = s.value(
        "SELECT jwt_sign(%s::jsonb, private_jwk::text, 'ES256', "
        "'{\"typ\": \"refresh+jwt\"}') FROM jwt_keys WHERE issuer IS NULL AND kid = 'own-1';"
        % quote(compact({'iss': OWN, 'sub': 'carol', 'scope': 'db', 'iat': now - 10,
                         'exp': now + 3600, 'jti': secrets.token_hex(8)})))
    cases = [
        dict(name='wrong issuer (realms/a\'s key, iss realms/b)', user='alice', hba=ISS_A,
             token=a_idp.sign(dict(ca, iss=ISS_B)), reason=r'issued by another issuer',
             issuers=[ISS_A, ISS_B]),
        dict(name='a realms/b token (its own key, kid k1 as realms/a\'s) on the realms/a line',
             user='alice', hba=ISS_A,
             token=b_idp.sign(b_idp.claims('alice@idp', aud=AUD_A, scope='openid db')),
             reason=r'issued by another issuer', issuers=[ISS_A, ISS_B]),
        dict(name='our own issuer\'s token on the realms/a line', user='alice', hba=ISS_A,
             token=own_token({'sub': 'alice@idp', 'scope': 'openid db', 'aud': AUD_A}),
             reason=r'issued by another issuer', issuers=[ISS_A, OWN]),
        dict(name='no iss', user='alice', hba=ISS_A,
             token=a_idp.sign({k: v for k, v in ca.items() if k != 'iss'}),
             reason=r'token has no issuer'),
        dict(name='wrong audience', user='alice', hba=ISS_A,
             token=a_idp.sign(dict(ca, aud='other-api')), reason=r'audience|\baud\b'),
        dict(name='no audience (the issuer\'s row requires one)', user='alice', hba=ISS_A,
             token=a_idp.sign({k: v for k, v in ca.items() if k != 'aud'}),
             reason=r'audience|\baud\b'),
        dict(name='missing scope (openid profile)', user='alice', hba=ISS_A,
             token=a_idp.sign(dict(ca, scope='openid profile')), reason=r'scope'),
        dict(name='scope only as a prefix (openid dbadmin)', user='alice', hba=ISS_A,
             token=a_idp.sign(dict(ca, scope='openid dbadmin')), reason=r'scope'),
        dict(name='scp array missing a scope', user='alice', hba=ISS_A,
             token=a_idp.sign(dict({k: v for k, v in ca.items() if k != 'scope'}, scp=['openid'])),
             reason=r'scope|\bscp\b'),
        dict(name='no scope at all', user='alice', hba=ISS_A,
             token=a_idp.sign({k: v for k, v in ca.items() if k != 'scope'}), reason=r'scope'),
        dict(name='alg none', user='alice', hba=ISS_A,
             token=unsigned({'alg': 'none', 'typ': 'JWT', 'kid': 'k1'}, ca),
             reason=r'\bnone\b|algorithm|\balg\b'),
        dict(name='alg "None"', user='alice', hba=ISS_A,
             token=unsigned({'alg': 'None', 'typ': 'JWT', 'kid': 'k1'}, ca),
             reason=r'\bnone\b|algorithm|\balg\b'),
        dict(name='HS256 keyed with the issuer\'s public key (key confusion)', user='alice',
             hba=ISS_A, token=hs256_with(pub_a, {'alg': 'HS256', 'typ': 'JWT', 'kid': 'k1'}, ca),
             reason=r'algorithm|\balg\b|HS256'),
        dict(name='signed by the other issuer\'s key, with a matching kid', user='alice',
             hba=ISS_A, token=a_idp.sign(ca, kid='k1', key=b_idp.keys['k1']),
             reason=r'signature'),
        dict(name='payload changed after signing', user='alice', hba=ISS_A,
             token=tampered(a_idp.sign(a_idp.claims('bob@idp', aud=AUD_A, scope='openid')),
                            sub='alice@idp', scope='openid db'),
             reason=r'signature'),
        dict(name='unknown kid', user='alice', hba=ISS_A,
             token=a_idp.sign(ca, kid='no-such-kid', key=a_idp.keys['k1']),
             reason=r'key ID|\bkid\b|no key'),
        dict(name='expired', user='alice', hba=ISS_A,
             token=a_idp.sign(dict(ca, iat=now - 7200, exp=now - 60)), reason=r'expired|\bexp\b'),
        dict(name='not yet valid (nbf in an hour)', user='alice', hba=ISS_A,
             token=a_idp.sign(dict(ca, nbf=now + 3600)), reason=r'not yet valid|\bnbf\b'),
        dict(name='revoked key (jwt_key_revoke)', user='alice', hba=ISS_A, token=tok_rev_key,
             reason=r'key has been revoked'),
        dict(name='revoked jti (jwt_revoke)', user='alice', hba=ISS_A, token=tok_rev_jti,
             reason=r'revoked|\bjti\b'),
        dict(name='revoked subject (jwt_revoke_subject)', user='bob', hba=ISS_A,
             token=tok_rev_sub, reason=r'revoked|subject'),
        dict(name='typ refresh+jwt, every other claim good (realms/a)', user='alice', hba=ISS_A,
             token=a_idp.sign(ca, headers={'typ': 'refresh+jwt'}), reason=r'refresh|\btyp\b'),
        dict(name='typ refresh+jwt of our own key, scope db', user='carol', hba=OWN,
             token=refresh_crafted, reason=r'refresh|\btyp\b'),
        dict(name='refresh token of jwt_issue_pair', user='carol', hba=OWN, token=pair[1],
             reason=r'refresh|\btyp\b'),
        dict(name='junk, 60 kB of bearer-token characters', user='alice', hba=ISS_A,
             token=junk(60 * 1024), reason=r'malformed|too long|decode|invalid|parse'),
        dict(name='junk, 1 MB (over PostgreSQL\'s limit for an auth message)', user='alice',
             hba=ISS_A, token=junk(1024 * 1024), pg=True,
             reason=r'message length|too long|too large|malformed|invalid|unexpected|EOF'),
        dict(name='delegate_ident_mapping: role claim names a superuser', user='root_admin',
             hba=ISS_B, token=b_idp.sign(b_idp.claims('dave@b', scope='db', role='root_admin')),
             reason=r'superuser'),
        dict(name='delegate_ident_mapping: role claim names a BYPASSRLS role', user='bypasser',
             hba=ISS_B, token=b_idp.sign(b_idp.claims('dave@b', scope='db', role='bypasser')),
             reason=r'bypasses row-level security'),
        dict(name='delegate_ident_mapping: role claim names another role', user='erin',
             hba=ISS_B, token=b_idp.sign(b_idp.claims('dave@b', scope='db', role='dave')),
             reason=r'role claim|role requested|requested role'),
        dict(name='delegate_ident_mapping: no role claim', user='dave', hba=ISS_B,
             token=b_idp.sign(b_idp.claims('dave@b', scope='db')),
             reason=r'role claim|no role'),
        dict(name='map=jwt: the subject maps to another role (PostgreSQL refuses)',
             user='alice', hba=ISS_A,
             token=a_idp.sign(a_idp.claims('bob@idp', aud=AUD_A, scope='openid db')), pg='after',
             reason=r'do not match|no match|map'),
    ]
    for case in cases:
        expect_refusal(c, case)

    # ---- a key revoked in jwt_keys stops logging in, and how soon ----
    tok_time = a_idp.sign(a_idp.claims('alice@idp', aud=AUD_A, scope='openid db'), kid='k-time')
    a = c.login('alice', tok_time, ISS_A)
    if T.check(a.ok, 'timing: a token of key k-time logs in before the revocation',
               '' if a.ok else 'rc %d; log: %s' % (a.rc, a.show())):
        s.query("UPDATE jwt_keys SET state = 'revoked', revoked_at = now() "
                "WHERE kid = 'k-time' AND issuer = %s;" % quote(ISS_A))
        t0 = time.monotonic()
        tries = 0
        while True:
            tries += 1
            a = c.login('alice', tok_time, ISS_A)
            elapsed = time.monotonic() - t0
            if not a.ok or elapsed > TIMING_LIMIT:
                break
            time.sleep(0.05)
        T.check(not a.ok and elapsed <= TIMING_PASS,
                'timing: UPDATE jwt_keys SET state = \'revoked\' stops the logins within %.1f s'
                % TIMING_PASS, '%s after %.2f s, %d attempt(s)'
                % ('refused' if not a.ok else 'still logging in', elapsed, tries))

    # ---- a key rotated at the provider logs in after the worker's fetch ----
    provider_rotation(c, s)

    # ---- a database owner cannot change what the validator trusts ----
    database_owner(c, s, a_idp)

    # ---- a hot standby keeps a snapshot of its own ----
    standby_checks(c, s, a_idp, args)

    # ---- the snapshot file ----
    own_d = s.value("SELECT private_jwk ->> 'd' FROM jwt_keys WHERE issuer IS NULL "
                    "AND kid = 'own-1';")
    # (its name is the validator's business: any name holding "jwt", such
    # as jwt_login.snap or pg_jwt_login_snapshot; a temporary file may come
    # and go meanwhile)
    found = {}
    for root, dirs, files in os.walk(c.data):
        for fn in files + dirs:
            if 'jwt' in fn.lower():
                path = os.path.join(root, fn)
                try:
                    found[path] = stat.S_IMODE(os.lstat(path).st_mode)
                except FileNotFoundError:
                    pass
    if not found:
        T.skip('snapshot file mode', 'no file with "jwt" in its name under the data directory')
    else:
        for path, mode in sorted(found.items()):
            rel = os.path.relpath(path, c.data)
            T.check(mode & 0o077 == 0, 'snapshot %s: no access for group or others' % rel,
                    'mode %04o' % mode)
        r = Session(dbname=c.conninfo(DB, 'mallory'), appname='jwt-login')
        for path in sorted(found):
            rel = os.path.relpath(path, c.data)
            if not os.path.isfile(path):
                continue
            lines = r.query('\\set VERBOSITY verbose\nSELECT length(pg_read_file(%s));'
                            % quote(rel), allow_error=True)
            T.check(any('42501' in l for l in lines),
                    'snapshot %s: a plain role cannot pg_read_file it' % rel,
                    ' / '.join(lines)[:300])
            # our own signing key is ES256: its private part has no business there
            try:
                with open(path, 'rb') as f:
                    body = f.read().decode('utf-8', 'replace')
            except OSError as e:
                T.skip('snapshot %s holds no private key' % rel, str(e))
                continue
            T.check(own_d not in body, 'snapshot %s: holds no private part of our ES256 key' % rel)
        r.close()

    # ---- no token anywhere in the log ----
    text = c.log_text()
    leaked = sum(1 for tok in c.presented if any(p in text for p in secret_parts(tok)))
    T.check(leaked == 0, 'the server log holds none of the %d tokens presented' % len(c.presented),
            '%d of them are in it' % leaked if leaked else '')
    s.close()


if __name__ == '__main__':
    sys.exit(main())
