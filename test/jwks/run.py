#!/usr/bin/python3
"""Identity providers' key sets, fetched by the database over HTTPS.

    /usr/bin/python3 test/jwks/run.py [--keep]

Starts a cluster of its own (initdb; unix socket in a temp dir, no TCP),
with the extension as installed on this machine and jwt.jwks_ca_file set to
the test CA of test/fixtures/idp, and a fake identity provider of its own
(test/jwks/idp.py: HTTPS on 127.0.0.1, a discovery document and a JWKS that
the suite changes while the database runs).  Run as root (the cluster runs
as postgres) or as its owner.

Checks, through jwt_issuer_trust, jwt_jwks_refresh and jwt_jwks_status:
- discovery finds the JWKS, and the provider's tokens verify; a discovery
  document naming another issuer is refused, and nothing is registered;
  a JWKS URL given directly works, with an issuer path (a tenant);
- the provider adds a key and signs with it: JW009 until a refresh, then
  it verifies in an already warm session; the provider removes a key: its
  tokens fail after the refresh;
- the provider answers 500, returns HTML, an empty key set, a 5 MB body,
  stalls past jwt.jwks_timeout, redirects to http://, or is down: each
  refresh keeps the keys (the token still verifies), warns without the
  body, and jwt_jwks_status says why, and the next attempt backs off; a
  cancel stops a stalled fetch; a redirect that stays on https is followed,
  more than 3 are not; a certificate from an unknown CA is refused;
- Cache-Control max-age and Expires set the next refresh, within
  jwt.jwks_min_interval and jwt.jwks_max_interval;
- every fetch is counted at the provider: one discovery and one JWKS
  request per refresh, none for a refused URL;
- then, on a primary with jwt in shared_preload_libraries and a hot standby
  of it: the JWKS worker refreshes on schedule by itself; the first token
  of a kid the provider just added is JW009 and asks for an early refresh,
  and the kid verifies within the cool-down; 1,000 tokens with random kids
  cost at most one fetch per cool-down; with jwt.jwks_miss_wait the first
  token waits for the keys and verifies; the standby runs no worker,
  verifies with the keys the primary fetched, and makes no request.

Ends with "N passed, M failed"; exits 1 when anything failed.
"""

import argparse
import json
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, '..', 'stress'))
sys.path.insert(0, HERE)
from stresslib import (PG_BIN, Session, Tally, first_error, initdb, outcome,  # noqa: E402
                       pg_start, pg_stop, quote as q, run)
from cluster import CONF, DB, Cluster  # noqa: E402
import hardening  # noqa: E402
import idpctl  # noqa: E402
import trust  # noqa: E402

PORT = 5481             # and 5482 for the standby; trust.py: 5488, 5489
T = Tally()


def session(conninfo):
    s = Session(dbname=conninfo, appname='jwt-jwks')
    s.query('\\set VERBOSITY verbose')
    return s


def verify_sub(s, tok):
    return outcome(s, 'SELECT jwt_verify(%s) ->> \'sub\';' % q(tok))


def status(s, issuer):
    """jwt_jwks_status's row of issuer, as a dict."""
    cols = ('jwks_uri', 'last_attempt', 'last_success', 'last_error', 'next_in', 'keys')
    rows = s.rows("SELECT jwks_uri, last_attempt, last_success, coalesce(last_error, ''), "
                  "round(extract(epoch FROM next_refresh - now())), keys "
                  "FROM jwt_jwks_status() WHERE issuer = %s;" % q(issuer))
    return dict(zip(cols, rows[0])) if rows else {}


def refresh(s, issuer):
    """(keys imported or 'ERROR x', the WARNING lines) of jwt_jwks_refresh."""
    lines = s.query('SELECT jwt_jwks_refresh(%s);' % q(issuer), allow_error=True)
    warnings = [l for l in lines if 'WARNING' in l or l.startswith('DETAIL')]
    err = first_error(lines)
    if err:
        return 'ERROR ' + err[0], warnings
    vals = [l for l in lines if re.match(r'^\d+$', l)]
    return (vals[0] if vals else '?'), warnings


def tests(c, idp):
    s0 = session(c.conninfo('postgres'))
    s0.query('CREATE DATABASE %s;' % DB)
    s0.close()
    s = session(c.conninfo())
    s.query('CREATE EXTENSION jwt;')
    issuer = idp.issuer
    k1_priv, k1 = idpctl.generate_es256('k1')
    k2_priv, k2 = idpctl.generate_es256('k2')
    idp.set_jwks(idpctl.jwks(k1))
    claims = {'iss': issuer, 'sub': 'alice', 'exp': int(time.time()) + 3600}
    t1 = idpctl.sign(k1_priv, 'k1', claims)
    t2 = idpctl.sign(k2_priv, 'k2', dict(claims, sub='bob'))

    # discovery: the issuer it states must be ours
    idp.set_discovery_issuer('https://evil.example')
    r = outcome(s, 'SELECT jwt_issuer_trust(%s);' % q(issuer))
    T.check(r == 'ERROR 22000', 'discovery naming another issuer is refused (22000)', r)
    T.check(s.value('SELECT count(*) FROM jwt_issuers;') == '0', '... and nothing is registered')
    T.check(idp.counts().get('/jwks.json', 0) == 0, '... and its jwks_uri is not fetched', str(idp.counts()))
    idp.set_discovery_issuer(None)
    idp.reset_counts()

    r = outcome(s, 'SELECT jwt_issuer_trust(%s);' % q(issuer))
    T.check(r == 'OK 1', 'jwt_issuer_trust by discovery imports the provider\'s key', r)
    n = idp.counts()
    T.check(n.get('/.well-known/openid-configuration') == 1 and n.get('/jwks.json') == 1,
            '... with one discovery and one JWKS request', str(n))
    st = status(s, issuer)
    T.check(st.get('jwks_uri') == idp.jwks_url and st.get('last_success') and st.get('last_error') == ''
            and st.get('keys') == '1', 'jwt_jwks_status shows the JWKS URL found, the success, 1 key', str(st))
    w = session(c.conninfo())      # a session whose key cache will be warm
    T.check(verify_sub(w, t1) == 'OK alice', 'a token of the provider verifies')
    T.check(verify_sub(w, t2) == 'ERROR JW009', 'a token of a key the provider does not publish yet is JW009')

    # the provider adds a key and signs with it
    idp.set_jwks(idpctl.jwks(k1, k2))
    idp.reset_counts()
    r, _ = refresh(s, issuer)
    T.check(r == '2', 'refresh after the provider added a key imports 2 keys', r)
    T.check(verify_sub(w, t2) == 'OK bob', 'warm session: a token of the new key verifies after the refresh')

    # the provider removes a key
    idp.set_jwks(idpctl.jwks(k2))
    r, _ = refresh(s, issuer)
    T.check(r == '1', 'refresh after the provider removed a key imports 1 key', r)
    T.check(verify_sub(w, t1) == 'ERROR JW009', 'warm session: a token of the removed key is JW009')
    T.check(verify_sub(w, t2) == 'OK bob', 'warm session: the remaining key still verifies')
    n = idp.counts()
    T.check(n.get('/.well-known/openid-configuration') == 2 and n.get('/jwks.json') == 2,
            'each refresh made one discovery and one JWKS request', str(n))

    # failures keep the keys, warn without the body, and say why
    failures = [
        ('500', {}, 'HTTP status 500'),
        ('html', {}, 'not a JWKS'),
        ('empty', {}, 'no usable signing key'),
        ('huge', {}, 'larger than 1024 kB'),
        ('stall', {'seconds': 4}, 'no complete answer within 2000 ms'),
        ('redirect_http', {}, 'not https'),
    ]
    for i, (mode, kw, why) in enumerate(failures):
        idp.set_mode(mode, **kw)
        t0 = time.time()
        r, warnings = refresh(s, issuer)
        took = time.time() - t0
        idp.set_mode('ok')
        st = status(s, issuer)
        T.check(r == '0' and any('its keys are kept' in l for l in warnings),
                'provider %s: the refresh warns and imports nothing' % mode, '%s %s' % (r, warnings))
        T.check(why in st.get('last_error', ''), 'provider %s: jwt_jwks_status says why' % mode, str(st))
        T.check(not any('<html' in l.lower() or 'sign in' in l.lower() for l in warnings),
                'provider %s: the warning holds no body' % mode, str(warnings))
        T.check(st.get('keys') == '1' and verify_sub(w, t2) == 'OK bob',
                'provider %s: the keys stay and verification goes on' % mode, str(st))
        # backoff: 30 s, then doubled, at most jwt.jwks_min_interval
        expect = min(300, 30 * 2 ** i)
        nxt = float(st.get('next_in') or -1)
        T.check(expect - 1 <= nxt <= expect + 1, 'provider %s: next attempt in %d s (failure %d in a row)'
                % (mode, expect, i + 1), str(st))
        if mode == 'stall':
            print('provider stalls: the refresh gave up after %.2f s (jwt.jwks_timeout = 2 s)' % took)
            T.check(took < 4, 'provider stalls: the fetch gives up at jwt.jwks_timeout', '%.1f s' % took)
    # a body that is not UTF-8, and, in a LATIN1 database, a key set with a
    # character LATIN1 cannot hold: failures like the others, not errors
    bad_utf8 = b'{"keys": [{"kty": "EC", "kid": "\xff\xfe"}]}'
    idp.set_jwks(bad_utf8)
    r, warnings = refresh(s, issuer)
    st = status(s, issuer)
    T.check(r == '0' and 'not valid UTF-8' in st.get('last_error', '') and st.get('keys') == '1'
            and verify_sub(w, t2) == 'OK bob',
            'a body that is not UTF-8: the refresh warns, the keys stay, jwt_jwks_status says why', str(st))
    # raw UTF-8, and the same as a \u escape, which jsonb cannot read there
    idp.set_jwks(json.dumps(idpctl.jwks(dict(k2, kid='k2-\u20ac')), ensure_ascii=False).encode())
    s.query("CREATE DATABASE jwt_jwks_latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;")
    l1 = session(c.conninfo('jwt_jwks_latin1'))
    l1.query('CREATE EXTENSION jwt;')
    lines = l1.query('SELECT jwt_issuer_trust(%s);' % q(issuer), allow_error=True)
    err = first_error(lines)
    T.check(err is not None and err[0] == '22000' and 'LATIN1' in ' '.join(lines),
            'LATIN1 database: a key set it cannot hold is refused (22000), not an internal error',
            repr(lines[-4:]))
    idp.set_jwks(idpctl.jwks(dict(k2, kid='k2-\u20ac')))
    lines = l1.query('SELECT jwt_issuer_trust(%s);' % q(issuer), allow_error=True)
    err = first_error(lines)
    # jsonb input says so in words that depend on the version: 15 names the
    # encoding, 17 and 18 the escape
    said = ' '.join(lines)
    T.check(err is not None and err[0] == '22000' and ('LATIN1' in said or 'Unicode escape' in said),
            'LATIN1 database: ... also written as a \\u escape (22000, and says why)', repr(lines[-4:]))
    l1.close()
    idp.set_jwks(idpctl.jwks(k2))

    # the provider is down: nothing listens where its keys were
    s.query("UPDATE jwt_issuers SET jwks_discovery = false, jwks_uri = 'https://127.0.0.1:1/jwks.json' "
            "WHERE issuer = %s;" % q(issuer))
    r, warnings = refresh(s, issuer)
    st = status(s, issuer)
    T.check(r == '0' and 'connect' in st.get('last_error', '').lower() and st.get('keys') == '1'
            and verify_sub(w, t2) == 'OK bob',
            'provider down: the refresh warns, the keys stay, jwt_jwks_status says why', str(st))
    s.query("UPDATE jwt_issuers SET jwks_discovery = true, jwks_uri = NULL WHERE issuer = %s;" % q(issuer))

    # a cancel stops a fetch at once (statement_timeout here)
    idp.set_mode('stall', seconds=4)
    t0 = time.time()
    r = outcome(s, "SET statement_timeout = '300ms'; SELECT jwt_jwks_refresh(%s);" % q(issuer))
    took = time.time() - t0
    s.query('RESET statement_timeout;')
    idp.set_mode('ok')
    T.check(r == 'ERROR 57014' and took < 1.5, 'statement_timeout cancels a stalled fetch (57014)',
            '%s after %.1f s' % (r, took))
    r, _ = refresh(s, issuer)
    st = status(s, issuer)
    T.check(r == '1' and st.get('last_error') == '', 'the provider is back: the refresh succeeds', str(st))

    idp.set_mode('redirect_https', hops=2)
    r, _ = refresh(s, issuer)
    T.check(r == '1', 'a redirect that stays on https is followed', r)
    idp.set_mode('redirect_https', hops=5)
    r, _ = refresh(s, issuer)
    T.check(r == '0' and 'more than 3 redirects' in status(s, issuer).get('last_error', ''),
            'more than 3 redirects are refused', str(status(s, issuer)))
    idp.set_mode('ok')

    # the schedule follows Cache-Control and Expires within the bounds
    s.query("SET jwt.jwks_min_interval = '60s'; SET jwt.jwks_max_interval = '1h';")
    for cc, exp, lo, hi, what in (('max-age=600', None, 540, 600, 'max-age=600'),
                                  ('max-age=5', None, 54, 60, 'max-age=5: the minimum'),
                                  ('public, max-age=86400', None, 3240, 3600, 'max-age of a day: the maximum'),
                                  (None, 1200, 1080, 1200, 'Expires in 20 minutes'),
                                  ('no-store', None, 54, 60, 'no-store: the minimum')):
        idp.set_headers(cache_control=cc, expires=exp)
        refresh(s, issuer)
        nxt = float(status(s, issuer).get('next_in') or -1)
        T.check(lo - 1 <= nxt <= hi + 1, 'next refresh after %s is in %d..%d s' % (what, lo, hi), str(nxt))
    idp.set_headers(cache_control=None, expires=None)

    # the JWKS URL given directly, for an issuer with a path
    tenant = idp.tenant_url
    r = outcome(s, 'SELECT jwt_issuer_trust(%s, %s);' % (q(tenant), q(idp.jwks_url)))
    T.check(r == 'OK 1', 'jwt_issuer_trust with a JWKS URL imports its key', r)
    r = outcome(s, 'SELECT jwt_issuer_trust(%s);' % q(tenant))
    T.check(r == 'OK 1', 'jwt_issuer_trust of an issuer with a path, by discovery', r)
    T.check(status(s, tenant).get('jwks_uri') == tenant + '/jwks.json',
            '... finds the tenant\'s JWKS', str(status(s, tenant)))
    tt = idpctl.sign(k2_priv, 'k2', dict(claims, iss=tenant, sub='carol'))
    T.check(verify_sub(w, tt) == 'OK carol', 'the tenant\'s token verifies with the tenant\'s keys')

    # a URL that is refused costs the provider nothing
    idp.reset_counts()
    r = outcome(s, 'SELECT jwt_issuer_trust(%s, %s);' % (q(issuer), q('http://127.0.0.1:%d/jwks.json' % idp.port)))
    T.check(r == 'ERROR 22023' and sum(idp.counts().values()) == 0,
            'an http:// JWKS URL is refused before any request', '%s %s' % (r, idp.counts()))
    w.close()
    s.close()


def unknown_ca(c):
    """A provider whose certificate comes from a CA we do not trust."""
    with idpctl.start(cert='other') as other:
        priv, jwk = idpctl.generate_es256('o1')
        other.set_jwks(idpctl.jwks(jwk))
        s = session(c.conninfo())
        lines = s.query('SELECT jwt_issuer_trust(%s);' % q(other.issuer), allow_error=True)
        err = first_error(lines)
        detail = next((l for l in lines if l.startswith('DETAIL')), '')
        T.check(err is not None and err[0] == '08000' and 'certificate' in detail.lower(),
                'a certificate from an unknown CA is refused (08000, the detail says certificate)',
                repr(lines[-4:]))
        T.check(sum(other.counts().values()) == 0, '... and no request reached the provider',
                str(other.counts()))
        T.check(s.value("SELECT count(*) FROM jwt_issuers WHERE issuer = %s;" % q(other.issuer)) == '0',
                '... and nothing is registered')
        s.close()


class PreloadedCluster(Cluster):
    """A primary with jwt in shared_preload_libraries (the JWKS worker runs),
    and a hot standby of it."""

    def start(self):
        super().start(CONF + "shared_preload_libraries = 'jwt'\njwt.database = '%s'\n"
                      "jwt.jwks_miss_cooldown = 3s\njwt.jwks_min_interval = 2s\njwt.jwks_max_interval = 2s\n"
                      "max_connections = 40\n"   # hardening.MAX_WAITERS is a quarter of it
                      % DB)
        self.standby = os.path.join(self.dir, 'standby')
        run([PG_BIN + '/pg_basebackup', '-h', self.dir, '-p', str(PORT), '-U', 'postgres',
             '-D', self.standby, '-R', '-X', 'stream', '--checkpoint=fast'])
        pg_start(self.standby, self.dir, PORT + 1, self.standby + '.log')

    def log_text(self):
        text = ''
        for f in (self.log, self.standby + '.log'):
            with open(f, errors='replace') as fh:
                text += fh.read()
        return text

    def stop(self, keep=False):
        pg_stop(self.standby)
        super().stop(keep)


def wait_until(fn, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if fn():
            return True
        time.sleep(0.1)
    return False


def worker_tests(c):
    """The worker: its schedule, an early refresh on an unknown kid, at most
    one per cool-down, the bounded wait, and a standby that fetches nothing."""
    s0 = session(c.conninfo('postgres'))
    s0.query('CREATE DATABASE %s;' % DB)
    s0.close()
    with idpctl.start() as idp:
        s = session(c.conninfo())
        s.query('CREATE EXTENSION jwt;')
        keys = {k: idpctl.generate_es256(k) for k in ('w1', 'w2', 'w3')}
        claims = {'iss': idp.issuer, 'sub': 'dana', 'exp': int(time.time()) + 3600}
        tok = {k: idpctl.sign(keys[k][0], k, claims) for k in keys}
        idp.set_jwks(idpctl.jwks(keys['w1'][1]))
        # (the worker started before this database existed: it waits for it,
        # and connects when started again, 10 s after it saw it)
        T.check(wait_until(lambda: s.value("SELECT count(*) FROM pg_stat_activity "
                                           "WHERE backend_type = 'jwt jwks';") == '1', 30),
                'worker: one jwt jwks worker runs on the primary')
        T.check(outcome(s, 'SELECT jwt_issuer_trust(%s);' % q(idp.issuer)) == 'OK 1',
                'worker: the issuer is registered')

        # the schedule (jwt.jwks_min/max_interval = 2 s here): the worker
        # fetches again by itself
        idp.reset_counts()
        T.check(wait_until(lambda: idp.counts().get('/jwks.json', 0) >= 2, 10),
                'worker: it refreshes on schedule, by itself (2 fetches within 10 s)', str(idp.counts()))

        # from now on nothing is due for an hour: only kid misses fetch
        s.query("ALTER SYSTEM SET jwt.jwks_min_interval = '1h'; ALTER SYSTEM SET jwt.jwks_max_interval = '1h';"
                " SELECT pg_reload_conf();")
        time.sleep(0.5)
        s.query('SELECT jwt_jwks_refresh();')
        time.sleep(3.2)     # let the last cool-down pass
        idp.reset_counts()

        # the provider rotates: the first token of the new kid asks for an
        # early refresh, and tokens with it verify within the cool-down
        idp.set_jwks(idpctl.jwks(keys['w1'][1], keys['w2'][1]))
        w = session(c.conninfo())
        T.check(verify_sub(w, tok['w1']) == 'OK dana', 'worker: a token of the known key verifies')
        t0 = time.time()
        first = verify_sub(w, tok['w2'])
        T.check(first == 'ERROR JW009', 'worker: the first token with the new kid is JW009 (no wait)', first)
        ok = wait_until(lambda: verify_sub(w, tok['w2']) == 'OK dana', 3)
        print('kid miss: the new kid verified %.2f s after its first token' % (time.time() - t0))
        T.check(ok, 'worker: a token with the new kid verifies within the cool-down (%.1f s)'
                % (time.time() - t0))
        n = idp.counts()
        T.check(n.get('/jwks.json') == 1, 'worker: the kid miss cost the provider one JWKS request', str(n))

        # a flood of unknown kids: at most one fetch per cool-down (3 s)
        time.sleep(3.2)
        idp.reset_counts()
        priv = keys['w1'][0]
        t0 = time.time()
        for batch in range(4):
            toks = [idpctl.sign(priv, 'random-%d-%d' % (batch, i), claims) for i in range(250)]
            w.query('CREATE TEMP TABLE IF NOT EXISTS flood (token text); TRUNCATE flood;')
            w.query('INSERT INTO flood VALUES %s;' % ', '.join('(%s)' % q(t) for t in toks))
            bad = w.value('SELECT count(*) FROM flood WHERE NOT jwt_is_valid(token);')
            T.check(bad == '250', 'flood batch %d: 250 tokens with random kids, all refused' % batch, bad)
            if batch < 3:
                time.sleep(2)
        took = time.time() - t0
        time.sleep(0.5)
        fetched = idp.counts().get('/jwks.json', 0)
        allowed = int(took // 3) + 1
        print('flood: 1,000 tokens with random kids over %.1f s: %d JWKS fetches (cool-down 3 s, at most %d)'
              % (took, fetched, allowed))
        T.check(1 <= fetched <= allowed, 'flood: 1,000 random kids cost at most one fetch per cool-down',
                '%d fetches in %.1f s' % (fetched, took))

        # tokens of issuers we do not trust ask for nothing
        time.sleep(3.2)
        idp.reset_counts()
        toks = [idpctl.sign(priv, 'k-%d' % i, dict(claims, iss='https://127.0.0.1:%d/x%d' % (idp.port, i)))
                for i in range(200)]
        w.query('TRUNCATE flood; INSERT INTO flood VALUES %s;' % ', '.join('(%s)' % q(t) for t in toks))
        bad = w.value('SELECT count(*) FROM flood WHERE NOT jwt_is_valid(token);')
        time.sleep(1)
        T.check(bad == '200' and sum(idp.counts().values()) == 0,
                'flood: 200 tokens of untrusted issuers are refused and cause no request',
                '%s %s' % (bad, idp.counts()))

        # the bounded wait: the first token of a new kid verifies at once
        time.sleep(3.2)
        idp.set_jwks(idpctl.jwks(keys['w1'][1], keys['w2'][1], keys['w3'][1]))
        w.query("SET jwt.jwks_miss_wait = '5s';")
        t0 = time.time()
        r = verify_sub(w, tok['w3'])
        print('kid miss with jwt.jwks_miss_wait: the first token verified after %.2f s' % (time.time() - t0))
        T.check(r == 'OK dana', 'worker: with jwt.jwks_miss_wait, the first token of a new kid verifies', r)
        w.query('RESET jwt.jwks_miss_wait;')

        # attack: the database's owner sets its search_path to a schema of
        # hers, with functions named like the ones the worker calls; the
        # worker runs as the extension's (superuser) owner, so any of them
        # that ran would make her superuser
        s.query("CREATE ROLE mallory LOGIN; ALTER DATABASE %s OWNER TO mallory;" % DB)
        m = session('host=%s port=%d dbname=%s user=mallory' % (c.dir, PORT, DB))
        m.query("CREATE SCHEMA evil; "
                "CREATE FUNCTION evil.trap() RETURNS integer LANGUAGE sql AS "
                "$$ ALTER ROLE mallory SUPERUSER; SELECT 1 $$; "
                "CREATE FUNCTION evil.jwt_jwks_refresh(text) RETURNS integer LANGUAGE sql AS $$ SELECT evil.trap() $$; "
                "CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT pg_catalog.now() + evil.trap() * interval '0' $$; "
                "CREATE FUNCTION evil.jwt_jwks_fetch(text) RETURNS integer LANGUAGE sql AS $$ SELECT evil.trap() $$; "
                "CREATE FUNCTION public.jwt_jwks_refresh(varchar) RETURNS integer LANGUAGE sql AS $$ SELECT evil.trap() $$; "
                "ALTER DATABASE %s SET search_path = evil, public;" % DB)
        m.close()
        # the setting reaches the worker when it next connects: after a
        # restart of the server, here of the worker (back after 10 s)
        old_pid = s.value("SELECT pid FROM pg_stat_activity WHERE backend_type = 'jwt jwks';")
        s.query("SELECT pg_terminate_backend(%s);" % old_pid)
        T.check(wait_until(lambda: s.value("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'jwt jwks' "
                                           "AND pid <> %s;" % old_pid) == '1', 20),
                'attack: the worker is back after being terminated')
        time.sleep(0.5)
        before = s.value("SELECT last_attempt FROM jwt_jwks_status() WHERE issuer = %s;" % q(idp.issuer))
        w2 = session(c.conninfo())     # a new session: it gets the database's search_path
        verify_sub(w2, idpctl.sign(priv, 'attack-kid', claims))   # a kid miss: a worker round
        T.check(wait_until(lambda: s.value("SELECT last_attempt FROM jwt_jwks_status() WHERE issuer = %s;"
                                           % q(idp.issuer)) != before, 10),
                'attack: the worker refreshed in the database whose owner set a hostile search_path')
        T.check(s.value("SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory';") == 'f',
                'attack: none of her functions ran as the worker: the database owner is no superuser')
        w2.close()

        hardening.worker_hardening(c, PORT, DB, idp, s, w, T, session, verify_sub, wait_until, q, keys)

        # the standby: no worker, the keys arrive by replication
        sb = session('host=%s port=%d dbname=%s user=postgres' % (c.dir, PORT + 1, DB))
        lsn = s.value('SELECT pg_current_wal_lsn();')
        T.check(wait_until(lambda: sb.value("SELECT pg_last_wal_replay_lsn() >= '%s';" % lsn) == 't', 30),
                'standby: it replays the primary')
        T.check(sb.value("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'jwt jwks';") == '0',
                'standby: no jwt jwks worker runs there')
        T.check(verify_sub(sb, tok['w3']) == 'OK dana', 'standby: verifies with the keys the primary fetched')
        idp.reset_counts()
        unknown = idpctl.sign(priv, 'standby-miss', claims)
        T.check(verify_sub(sb, unknown) == 'ERROR JW009', 'standby: an unknown kid is JW009')
        time.sleep(1)
        T.check(sum(idp.counts().values()) == 0, 'standby: ... and makes no request', str(idp.counts()))
        for x in (sb, w, s):
            x.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--keep', action='store_true', help="keep the cluster's directory")
    args = ap.parse_args()
    c = Cluster(PORT)
    try:
        c.start()
        with idpctl.start() as idp:
            tests(c, idp)
        unknown_ca(c)
        trust.checks(c, T)
        log = c.log_text()
        c.stop(keep=args.keep)
        c = PreloadedCluster(PORT)
        c.start()
        worker_tests(c)
        log += c.log_text()
        hardening.missing_database(T, initdb, pg_start, pg_stop, session, wait_until, PORT + 5)
        T.check('<html' not in log.lower() and 'sign in' not in log.lower(), 'the server log holds no body')
        bad = [l for l in log.splitlines() if re.search(r'PANIC|terminated by signal|TRAP:', l)]
        T.check(not bad, 'no crash in the server log', '\n'.join(bad[:5]))
    except Exception as e:  # the suite must still print its tally
        T.check(False, 'the JWKS suite ran to the end', '%s: %s' % (type(e).__name__, e))
    finally:
        c.stop(keep=args.keep)
    return T.finish()


if __name__ == '__main__':
    sys.exit(main())
