"""The attacks test/attack/run.py plays, one function each.

Each is named after what it tries and asserts that it fails; run.py then
checks that the server stayed up.  Roles, set up once:

  mallory    an ordinary login: may verify and authenticate, nothing else
  dbowner    owns the database, and was granted jwt_issue_pair and
             jwt_refresh (an API's login role)
  refresher  granted only jwt_refresh

Tokens are made by the superuser with the extension's own functions.
"""

import os
import time

from run import error_of, PORT, DB
from stresslib import as_owner, outcome

HERE = os.path.dirname(os.path.abspath(__file__))
KEYS = os.path.join(HERE, '..', 'fixtures', 'keys')

SERVER_CONF = ''

ATTACKS = []


def attack(fn):
    ATTACKS.append((fn.__name__, fn))
    return fn


def q(s):
    """A SQL string literal."""
    return "'" + s.replace("'", "''") + "'"


def key_text(name):
    with open(os.path.join(KEYS, name), encoding='ascii') as f:
        return f.read()


SETUP = r"""
CREATE EXTENSION jwt;
SELECT jwt_key_generate('ES256', 'es-1');
SELECT jwt_key_generate('HS256', 'hs-1');
CREATE ROLE mallory LOGIN;
CREATE ROLE dbowner LOGIN;
CREATE ROLE refresher LOGIN;
ALTER DATABASE jwt_attack OWNER TO dbowner;
GRANT EXECUTE ON FUNCTION jwt_issue_pair(jsonb, interval, interval), jwt_refresh(text) TO dbowner;
GRANT EXECUTE ON FUNCTION jwt_refresh(text) TO refresher;
"""


def setup(ctx):
    su = ctx.session()
    su.query(SETUP)


def issue(ctx, claims, ttl=None):
    su = ctx.session()
    v = su.value('SELECT jwt_issue(%s::jsonb%s);' % (q(claims), ', ttl => %s' % q(ttl) if ttl else ''))
    su.close()
    ctx.sessions.remove(su)
    return v


def pair(ctx, claims):
    su = ctx.session()
    row = su.rows('SELECT access_token, refresh_token FROM jwt_issue_pair(%s::jsonb);' % q(claims))[0]
    su.close()
    ctx.sessions.remove(su)
    return row


# ----------------------------------------------------------------
# 1. Memory held across COMMIT
# ----------------------------------------------------------------

@attack
def claim_held_across_commit(ctx):
    """jwt_claim's answer as a procedure argument, read after the procedure
    commits: it must still be the claim (it once pointed into a cache that
    COMMIT freed: other claims' bytes, or a crash at md5(v))."""
    sub = 'alice-' + 'x' * 40
    tok = issue(ctx, '{"sub": "%s", "name": "Alice", "role": "reader"}' % sub)
    m = ctx.session('mallory')
    m.query(r"""
CREATE PROCEDURE pg_temp.hold(v text, w jsonb) LANGUAGE plpgsql AS $$
BEGIN
  COMMIT;
  -- churn: the same identity read again, under other names, in the new
  -- transaction, so that freed memory is handed out again
  PERFORM jwt_claim('name'), jwt_claim('role'), jwt_claim('iat'), jwt_claim('exp'),
          jwt_claim('jti'), jwt_claims(), repeat('z', 200);
  RAISE NOTICE 'held %% %%', md5(v), md5(w::text);
  IF v IS DISTINCT FROM %s OR w ->> 'sub' IS DISTINCT FROM %s THEN
    RAISE EXCEPTION 'held value changed' USING ERRCODE = 'XX001';
  END IF;
END $$;
""" % (q(sub), q(sub)))
    m.query("SELECT jwt_authenticate(%s, 'session') IS NOT NULL;" % q(tok))
    for i in range(20):
        r = outcome(m, "CALL pg_temp.hold(jwt_claim('sub'), jwt_claims());")
        if not ctx.check(r == 'OK ', 'claim_held_across_commit: value intact after COMMIT (round %d)' % i, r):
            break


# ----------------------------------------------------------------
# 2. SQL objects on the search_path of what runs from C
# ----------------------------------------------------------------

@attack
def worker_search_path_escalation(ctx):
    """A database owner sets the database's search_path to a schema of
    theirs holding clock_timestamp() and =(uuid, uuid), then replays a
    rotated refresh token: the family-revocation worker must not run them
    (it once did, as the bootstrap superuser)."""
    o = ctx.session('dbowner')
    o.query(r"""
CREATE SCHEMA evil;
CREATE FUNCTION evil.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE 'ALTER ROLE dbowner SUPERUSER';
  RETURN pg_catalog.now();
END $$;
CREATE FUNCTION evil.uuid_eq_trap(uuid, uuid) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE 'ALTER ROLE dbowner SUPERUSER';
  RETURN $1 OPERATOR(pg_catalog.=) $2;
END $$;
CREATE OPERATOR evil.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = evil.uuid_eq_trap);
ALTER DATABASE jwt_attack SET search_path = evil, pg_catalog, public;
""")
    access, rt0 = o.rows("SELECT access_token, refresh_token FROM jwt_issue_pair('{\"sub\": \"owner\"}');")[0]
    rt1 = o.value('SELECT refresh_token FROM jwt_refresh(%s);' % q(rt0))
    ctx.check(rt1 is not None and rt1.count('.') == 2, 'worker_search_path_escalation: first refresh works')
    r = outcome(o, 'SELECT refresh_token FROM jwt_refresh(%s);' % q(rt0))
    ctx.check(r == 'ERROR JW010', 'worker_search_path_escalation: replay is JW010', r)
    su = ctx.session()
    ctx.check(su.value("SELECT rolsuper FROM pg_roles WHERE rolname = 'dbowner';") == 'f',
              'worker_search_path_escalation: dbowner is not a superuser')
    ctx.check(su.value("SELECT revoked_at IS NOT NULL FROM jwt_token_families WHERE sub = 'owner';") == 't',
              'worker_search_path_escalation: the worker revoked the family all the same')
    r = outcome(o, 'SELECT refresh_token FROM jwt_refresh(%s);' % q(rt1))
    ctx.check(r == 'ERROR JW010', 'worker_search_path_escalation: the family refreshes no more', r)
    su.query("ALTER ROLE dbowner NOSUPERUSER; ALTER DATABASE jwt_attack RESET search_path;"
             " DROP SCHEMA evil CASCADE;")


# ----------------------------------------------------------------
# 3. Settings that decide an identity
# ----------------------------------------------------------------

@attack
def presenter_sets_the_rules(ctx):
    """The token presenter may not widen leeway or pick the audience of
    jwt_authenticate, nor size the per-backend caches."""
    # set before the library is loaded: a placeholder, which PostgreSQL
    # drops when the library defines the setting as superuser-only
    early = ctx.session('mallory')
    early.query("SET jwt.leeway = '1d'; SET jwt.audience = 'billing-api';", allow_error=True)
    expired = issue(ctx, '{"sub": "mallory", "exp": %d}' % (int(time.time()) - 3600))
    r = outcome(early, 'SELECT jwt_authenticate(%s);' % q(expired))
    ctx.check(r == 'ERROR JW004', 'presenter_sets_the_rules: a leeway SET before loading is dropped', r)
    m = ctx.session('mallory')
    m.query('SELECT jwt_claims();')     # loads the library
    for stmt in ("SET jwt.leeway = '1d'", "SET jwt.audience = 'billing-api'",
                 "SELECT set_config('jwt.leeway', '1d', false)",
                 "SELECT set_config('jwt.audience', 'billing-api', true)",
                 "ALTER ROLE mallory SET jwt.leeway = '1d'",
                 "ALTER ROLE mallory SET jwt.audience = 'billing-api'",
                 "SET jwt.key_cache_size = 256", "SET jwt.verify_cache_size = 1048576",
                 "SET jwt.role_claim = 'x'", "SET jwt.trust_request_claims = on"):
        r = outcome(m, stmt + ';')
        ctx.check(r == 'ERROR 42501', 'presenter_sets_the_rules: %s refused' % stmt, r)
    r = outcome(m, 'SELECT jwt_authenticate(%s);' % q(expired))
    ctx.check(r == 'ERROR JW004', 'presenter_sets_the_rules: an old token stays expired', r)
    other_api = issue(ctx, '{"sub": "mallory", "aud": "billing-api"}')
    r = outcome(m, 'SELECT jwt_authenticate(%s);' % q(other_api))
    ctx.check(r == 'ERROR JW006', "presenter_sets_the_rules: another API's token stays refused", r)
    # the low-level function keeps the caller's own explicit checks
    r = outcome(m, "SELECT jwt_verify(%s, audience => 'billing-api') ->> 'sub';" % q(other_api))
    ctx.check(r == 'OK mallory', 'presenter_sets_the_rules: explicit jwt_verify arguments still work', r)
    r = outcome(m, "SELECT jwt_verify(%s, leeway => '2 days');" % q(expired))
    ctx.check(r == 'ERROR 22023', 'presenter_sets_the_rules: no leeway beyond a day', r)


# ----------------------------------------------------------------
# 4. A clock a long CALL freezes
# ----------------------------------------------------------------

@attack
def frozen_clock_in_procedure(ctx):
    """A procedure that sleeps past a token's exp, commits, and then
    authenticates with it: the token has expired (statement_timestamp()
    stays at the CALL's start)."""
    tok = issue(ctx, '{"sub": "refresher"}', ttl='2 seconds')
    m = ctx.session('refresher')   # a role nothing else here has set up
    m.query(r"""
CREATE PROCEDURE pg_temp.later(t text, how text) LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_sleep(3.2);
  COMMIT;
  IF how = 'authenticate' THEN
    PERFORM jwt_authenticate(t);
  ELSE
    PERFORM jwt_verify(t);
  END IF;
END $$;
""")
    r = outcome(m, "CALL pg_temp.later(%s, 'authenticate');" % q(tok))
    ctx.check(r == 'ERROR JW004', 'frozen_clock_in_procedure: jwt_authenticate after exp is JW004', r)
    tok = issue(ctx, '{"sub": "refresher"}', ttl='2 seconds')
    r = outcome(m, "CALL pg_temp.later(%s, 'verify');" % q(tok))
    ctx.check(r == 'ERROR JW004', 'frozen_clock_in_procedure: jwt_verify after exp is JW004', r)


# ----------------------------------------------------------------
# 5. Refresh tokens signed by someone else
# ----------------------------------------------------------------

@attack
def refresh_token_signed_by_idp(ctx):
    """Whoever knows a trusted identity provider's shared secret and a
    victim's refresh jti signs a refresh+jwt with the provider's key: it
    must not refresh (only our own keys verify refresh tokens)."""
    su = ctx.session()
    secret = 'idp-shared-secret-' + 'k' * 32
    su.query("SELECT jwt_key_import(%s, 'HS256', 'idp-k', issuer => 'https://idp.example');" % q(secret))
    access, rt = pair(ctx, '{"sub": "victim"}')
    jti = su.value('SELECT jwt_decode_unverified(%s) ->> \'jti\';' % q(rt))
    forged = su.value(
        "SELECT jwt_sign(jsonb_build_object('sub', 'victim', 'jti', %s::text, 'iss', 'https://idp.example',"
        " 'iat', extract(epoch FROM now())::bigint, 'exp', extract(epoch FROM now())::bigint + 600),"
        " %s, 'HS256', '{\"typ\": \"refresh+jwt\", \"kid\": \"idp-k\"}');" % (q(jti), q(secret)))
    r = outcome(ctx.session('refresher'), 'SELECT access_token FROM jwt_refresh(%s);' % q(forged))
    ctx.check(r in ('ERROR JW007', 'ERROR JW009', 'ERROR JW002'),
              'refresh_token_signed_by_idp: refused', r)
    su.query("DELETE FROM jwt_issuers WHERE issuer = 'https://idp.example';")


@attack
def refresh_token_rebound(ctx):
    """A refresh+jwt signed with our own key but not the one issued for its
    jti (another sub, other claims), or one whose stored expiry has passed
    while its exp has not: none of them refreshes."""
    su = ctx.session()
    access, rt = pair(ctx, '{"sub": "rebound"}')
    claims = su.value('SELECT jwt_decode_unverified(%s)::text;' % q(rt))
    kid = su.value('SELECT jwt_header(%s) ->> \'kid\';' % q(rt))

    def resign(change):
        return su.value("SELECT jwt_sign(%s::jsonb || %s::jsonb, k.private_jwk::text, k.alg,"
                        " jsonb_build_object('typ', 'refresh+jwt', 'kid', k.kid))"
                        " FROM jwt_keys k WHERE k.kid = %s AND k.issuer IS NULL;" % (q(claims), q(change), q(kid)))
    o = ctx.session('refresher')
    for label, change in (('another sub', '{"sub": "mallory"}'), ('another claim', '{"x": 1}'),
                          ('a later exp', '{"exp": %d}' % (int(time.time()) + 86400 * 60))):
        r = outcome(o, 'SELECT access_token FROM jwt_refresh(%s);' % q(resign(change)))
        ctx.check(r == 'ERROR JW010', 'refresh_token_rebound: our signature, %s: refused' % label, r)
    su.query("UPDATE jwt_refresh_tokens SET expires_at = now() - interval '1 second'"
             " WHERE jti = %s::jsonb ->> 'jti';" % q(claims))
    r = outcome(o, 'SELECT access_token FROM jwt_refresh(%s);' % q(rt))
    ctx.check(r == 'ERROR JW004', 'refresh_token_rebound: the stored expiry counts', r)


# ----------------------------------------------------------------
# 6. Reuse detection that fails open
# ----------------------------------------------------------------

@attack
def family_lock_hides_reuse(ctx):
    """The thief keeps a refresh of the family open (holding its row lock)
    while the rotated token is replayed: the replay must still count as a
    reuse, and the family must refresh no more, even though the worker
    cannot get the lock to write the revocation (it fails closed)."""
    o = ctx.session('dbowner')
    access, rt0 = o.rows("SELECT access_token, refresh_token FROM jwt_issue_pair('{\"sub\": \"held\"}');")[0]
    rt1 = o.value('SELECT refresh_token FROM jwt_refresh(%s);' % q(rt0))
    holder = ctx.session('dbowner')
    holder.query('BEGIN;')
    rt2 = holder.value('SELECT refresh_token FROM jwt_refresh(%s);' % q(rt1))
    r = outcome(o, 'SELECT refresh_token FROM jwt_refresh(%s);' % q(rt0))
    ctx.check(r == 'ERROR JW010', 'family_lock_hides_reuse: the replay is JW010', r)
    holder.query('COMMIT;')
    # the token the holder got is refused: the family refreshes no more
    r = outcome(o, 'SELECT refresh_token FROM jwt_refresh(%s);' % q(rt2))
    ctx.check(r == 'ERROR JW010', 'family_lock_hides_reuse: the family refreshes no more', r)
    su = ctx.session()
    ctx.check(su.value("SELECT revoked_at IS NOT NULL FROM jwt_token_families WHERE sub = 'held';") == 't',
              'family_lock_hides_reuse: the revocation is written once the lock is gone')


class WorkerSlotsHeld:
    """An ordinary login (mallory) takes every background worker slot with
    parallel workers (max_parallel_workers_per_gather is user-settable),
    each sleeping on its first row until a deadline `hold` seconds away:
    several sessions, until every slot (max_worker_processes, less the
    launcher) is taken.  A context manager; .free is the number of slots
    left (0 once they are all taken)."""

    FILL = ("SET max_parallel_workers_per_gather = 8; SET parallel_setup_cost = 0; "
            "SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0; "
            "SELECT count(*) FROM pg_catalog.pg_proc "
            "WHERE pg_sleep(greatest(0, extract(epoch FROM (%s::timestamptz - clock_timestamp()))))::text = '';")

    def __init__(self, ctx, hold=12):
        self.ctx = ctx
        self.hold = hold
        self.free = None

    def __enter__(self):
        import subprocess
        ctx = self.ctx
        su = ctx.session()
        deadline = su.value("SELECT (clock_timestamp() + interval '%d seconds')::text;" % self.hold)
        self.fillers = [subprocess.Popen(
            as_owner(['psql', '-X', '-q', '-d', 'host=%s port=%d dbname=%s user=mallory' % (ctx.cluster.dir, PORT, DB),
                      '-c', self.FILL % q(deadline)]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(3)]
        for _ in range(50):
            time.sleep(0.1)
            self.free = su.value("SELECT current_setting('max_worker_processes')::int - count(*) FROM pg_stat_activity "
                                 "WHERE backend_type IN ('parallel worker', 'logical replication launcher');")
            if self.free == '0':
                break
        return self

    def __exit__(self, *exc):
        for p in self.fillers:
            p.wait(timeout=self.hold + 30)
        return False


@attack
def worker_exhaustion_fails_open(ctx):
    """An ordinary login fills every background worker slot with parallel
    workers (max_parallel_workers_per_gather is user-settable), then the
    thief's rotated refresh token is replayed: no worker can write the
    family's revocation, and the family must still refresh no more."""
    o = ctx.session('dbowner')
    access, rt0 = o.rows("SELECT access_token, refresh_token FROM jwt_issue_pair('{\"sub\": \"exhausted\"}');")[0]
    rt1 = o.value('SELECT refresh_token FROM jwt_refresh(%s);' % q(rt0))    # the thief's
    su = ctx.session()
    with WorkerSlotsHeld(ctx) as held:
        ctx.check(held.free == '0', 'worker_exhaustion_fails_open: every worker slot taken by mallory', held.free)
        r = outcome(o, 'SELECT refresh_token FROM jwt_refresh(%s);' % q(rt0))
        ctx.check(r == 'ERROR JW010', 'worker_exhaustion_fails_open: the replay is JW010', r)
        # the thief's branch: refused though its revocation is not yet written
        r = outcome(o, 'SELECT refresh_token FROM jwt_refresh(%s);' % q(rt1))
        ctx.check(r == 'ERROR JW010', 'worker_exhaustion_fails_open: the family refreshes no more', r)
        written = su.value("SELECT revoked_at IS NOT NULL FROM jwt_token_families WHERE sub = 'exhausted';")
        path = os.path.join(ctx.cluster.data, 'pg_jwt_pending_revocations')
        pending = os.path.getsize(path) if os.path.exists(path) else 0
        ctx.check(written == 'f' and pending > 0,
                  'worker_exhaustion_fails_open: no worker ran, the family is recorded as pending',
                  'revoked_at written: %s, pending file %d bytes' % (written, pending))
    # once a slot is free, the next presentation writes the revocation
    r = outcome(o, 'SELECT refresh_token FROM jwt_refresh(%s);' % q(rt1))
    ctx.check(r == 'ERROR JW010', 'worker_exhaustion_fails_open: still refused after the slots free up', r)
    ctx.check(su.value("SELECT revoked_at IS NOT NULL FROM jwt_token_families WHERE sub = 'exhausted';") == 't',
              'worker_exhaustion_fails_open: the revocation is written by the next worker')


# ----------------------------------------------------------------
# 6b. The store of pending revocations (src/pending.c)
#
# The store is a file of the data directory, so these attacks write it
# themselves, as a crash loop or a long outage of the workers would have
# left it, in the format of src/pending.c or in the first one (20-byte
# entries, appended, by the first builds of 0.5), and then let a worker run.
# ----------------------------------------------------------------

PENDING_FILE = 'pg_jwt_pending_revocations'
PENDING_FAMILY, PENDING_DATABASE = 1, 0


def pending_path(ctx):
    return os.path.join(ctx.cluster.data, PENDING_FILE)


def pending_write(ctx, entries, legacy=False):
    """Write the store: entries are (dboid, kind, 16-byte family, stamp),
    in src/pending.c's format (sorted, checksummed), or with legacy set as
    the first builds of 0.5 appended them (families only, in the order
    given)."""
    import struct
    import zlib
    if legacy:
        data = b''.join(struct.pack('=I', d) + f for d, k, f, st in entries)
    else:
        body = b''.join(struct.pack('=II16sq', d, k, f, st) for d, k, f, st in sorted(set(entries)))
        count = len(body) // 32
        head = b'JWTPEND\0' + struct.pack('=IIIII', 1, count, 0, 32, zlib.crc32(body))
        data = head + struct.pack('=I', zlib.crc32(head)) + body
    path = pending_path(ctx)
    with open(path + '.attack', 'wb') as f:
        f.write(data)
    if os.geteuid() == 0:
        import shutil
        shutil.chown(path + '.attack', 'postgres', 'postgres')
    os.chmod(path + '.attack', 0o600)
    os.rename(path + '.attack', path)


def pending_read(ctx):
    """The store's entries as (dboid, kind, family, stamp); [] without a
    file; None when it is in neither src/pending.c's format nor the first
    builds' (bare 20-byte entries, read as families of stamp 0)."""
    import struct
    try:
        with open(pending_path(ctx), 'rb') as f:
            data = f.read()
    except FileNotFoundError:
        return []
    if data[:8] != b'JWTPEND\0':
        if len(data) % 20:
            return None
        return [struct.unpack('=I16s', data[20 * i:20 * i + 20])[:1] + (PENDING_FAMILY,)
                + struct.unpack('=I16s', data[20 * i:20 * i + 20])[1:] + (0,)
                for i in range(len(data) // 20)]
    count = struct.unpack('=I', data[12:16])[0]
    return [struct.unpack('=II16sq', data[32 + 32 * i:64 + 32 * i]) for i in range(count)]


def make_families(su, prefix, n):
    """n families (rows only, no tokens), subjects prefix-1..n: their uuids."""
    import uuid
    rows = su.rows("INSERT INTO jwt_token_families (family, sub, claims, access_ttl, refresh_ttl, expires_at) "
                   "SELECT gen_random_uuid(), %s || i, '{}', '5 min', '1 day', now() + interval '1 day' "
                   "FROM generate_series(1, %d) i RETURNING family;" % (q(prefix + '-'), n))
    return [uuid.UUID(r[0]).bytes for r in rows]


def slow_server(su):
    """Whether the server runs with debug_discard_caches or under Valgrind
    (JWT_POSTGRES_WRAPPER, scripts/cassert.sh), where work the production
    server does in seconds takes minutes."""
    return su.value('SHOW debug_discard_caches;') != '0' or bool(os.environ.get('JWT_POSTGRES_WRAPPER'))


def revoked_count(su, prefix):
    return int(su.value("SELECT count(*) FROM jwt_token_families WHERE sub LIKE %s AND revoked_at IS NOT NULL;"
                        % q(prefix + '-%')))


@attack
def pending_file_crash_loop(ctx):
    """A store of pending families of this database (600 and 7,000 in the
    first format, then 20,000 in the current one; 600 and 1,000 under
    debug_discard_caches or Valgrind), then a rotated
    refresh token is replayed, so a worker applies them all: the first
    builds of 0.5 read their list of applied families after SPI_finish()
    had freed it and died with SIGSEGV (the postmaster restarted every
    backend, and every refresh of a pending family did it again).  No
    backend may die, the families must be revoked, and the store must keep
    none of them but keep another database's entries."""
    su = ctx.session()
    o = ctx.session('dbowner')
    dboid = int(su.value('SELECT oid FROM pg_database WHERE datname = current_database();'))
    other = int(su.value("SELECT oid FROM pg_database WHERE datname = 'template1';"))
    # 600 first-format entries: the freed list (12 kB, a block of its own)
    # stays mapped, so Debian's server read it back intact and the old
    # worker passed; an assert-enabled server clobbers freed memory, and
    # the old worker then removed nothing it had applied
    sizes = ((600, True), (7000, True), (20000, False))
    # with debug_discard_caches every row the worker revokes rebuilds the
    # caches its triggers use, and under Valgrind every instruction costs
    # some 30: 7,000 take longer than jwt_refresh waits for the worker.
    # 600 first-format entries are what the old worker failed on an
    # assert-enabled server, and they stay
    if slow_server(su):
        sizes = ((600, True), (1000, False))
    for n, legacy in sizes:
        what = '%d %s entries' % (n, 'first-format' if legacy else 'current')
        prefix = 'crashloop%d' % n
        fams = make_families(su, prefix, n)
        elsewhere = [(other, PENDING_FAMILY, os.urandom(16), 0) for _ in range(3)]
        pending_write(ctx, [(dboid, PENDING_FAMILY, f, 0) for f in fams] + elsewhere, legacy=legacy)
        access, rt0 = o.rows("SELECT access_token, refresh_token FROM jwt_issue_pair('{\"sub\": \"%s:replayed\"}');"
                             % prefix)[0]
        o.value('SELECT refresh_token FROM jwt_refresh(%s);' % q(rt0))
        t0 = time.time()
        r = outcome(o, 'SELECT refresh_token FROM jwt_refresh(%s);' % q(rt0))
        took = time.time() - t0
        ctx.check(r == 'ERROR JW010', 'pending_file_crash_loop (%s): the replay is JW010' % what, r)
        ctx.check(su.value("SELECT revoked_at IS NOT NULL FROM jwt_token_families WHERE sub = '%s:replayed';"
                           % prefix) == 't',
                  'pending_file_crash_loop (%s): the worker revoked the replayed family' % what)
        got = revoked_count(su, prefix)
        ctx.check(got == n, 'pending_file_crash_loop (%s): every pending family is revoked' % what,
                  '%d of %d' % (got, n))
        left = pending_read(ctx)
        ctx.check(left is not None and sorted(left) == sorted(elsewhere),
                  "pending_file_crash_loop (%s): the store keeps only the other database's entries" % what,
                  'the store holds %s entries' % ('unreadable' if left is None else len(left)))
        print('  pending_file_crash_loop: %s applied in %.1f s' % (what, took), flush=True)
    os.unlink(pending_path(ctx))


@attack
def pending_file_past_cap(ctx):
    """A store past the first builds' read cap of 100,000 entries (as they
    appended them: duplicates, and a family recorded at the very end): that
    family must still be refused, and a worker must apply what lies past
    the cap and keep what it did not apply, where those builds missed the tail
    (the family refreshed again) and rewrote the store from its truncated
    read (the revocations past the cap were lost)."""
    su = ctx.session()
    o = ctx.session('dbowner')
    dboid = int(su.value('SELECT oid FROM pg_database WHERE datname = current_database();'))
    other = int(su.value("SELECT oid FROM pg_database WHERE datname = 'template1';"))
    access, rt0 = o.rows("SELECT access_token, refresh_token FROM jwt_issue_pair('{\"sub\": \"pastcap-last\"}');")[0]
    rt1 = o.value('SELECT refresh_token FROM jwt_refresh(%s);' % q(rt0))
    import uuid
    last = uuid.UUID(su.value("SELECT family FROM jwt_token_families WHERE sub = 'pastcap-last';")).bytes
    tail = make_families(su, 'pastcap', 2000)
    filler = [(dboid, PENDING_FAMILY, os.urandom(16), 0) for _ in range(60000)]
    elsewhere = [(other, PENDING_FAMILY, os.urandom(16), 0) for _ in range(500)]
    # 120,000 filler entries (each twice, as failed attempts appended them),
    # then real families, another database's, and the family last
    entries = (filler + filler + [(dboid, PENDING_FAMILY, f, 0) for f in tail] + elsewhere
               + [(dboid, PENDING_FAMILY, last, 0)])
    pending_write(ctx, entries, legacy=True)
    r = su.value('SELECT _jwt_family_pending(%s::uuid);' % q(str(uuid.UUID(bytes=last))))
    ctx.check(r == 't', 'pending_file_past_cap: the family recorded last is pending', r)
    # its refresh is refused, and starts a worker that applies the store
    r = outcome(o, 'SELECT refresh_token FROM jwt_refresh(%s);' % q(rt1))
    ctx.check(r == 'ERROR JW010', 'pending_file_past_cap: the family recorded last refreshes no more', r)
    ctx.check(su.value("SELECT revoked_at IS NOT NULL FROM jwt_token_families WHERE sub = 'pastcap-last';") == 't',
              'pending_file_past_cap: its revocation is written')
    got = revoked_count(su, 'pastcap')
    ctx.check(got == len(tail) + 1, 'pending_file_past_cap: the families past the cap are revoked',
              '%d of %d' % (got, len(tail) + 1))
    left = pending_read(ctx)
    ctx.check(left is not None and sorted(left) == sorted(elsewhere),
              "pending_file_past_cap: the other database's entries past the cap are kept, and only they",
              'the store holds %s entries' % ('unreadable' if left is None else len(left)))
    os.unlink(pending_path(ctx))


@attack
def pending_file_damaged_fails_closed(ctx):
    """A store cut short (a torn copy, a full disk in an old version):
    jwt_refresh must refuse rather than read what it can, and nothing may
    rewrite the file from it."""
    su = ctx.session()
    o = ctx.session('dbowner')
    dboid = int(su.value('SELECT oid FROM pg_database WHERE datname = current_database();'))
    access, rt0 = o.rows("SELECT access_token, refresh_token FROM jwt_issue_pair('{\"sub\": \"damaged\"}');")[0]
    import uuid
    fam = uuid.UUID(su.value("SELECT family FROM jwt_token_families WHERE sub = 'damaged';")).bytes
    pending_write(ctx, [(dboid, PENDING_FAMILY, os.urandom(16), 0) for _ in range(999)]
                  + [(dboid, PENDING_FAMILY, fam, 0)])
    with open(pending_path(ctx), 'rb') as f:
        whole = f.read()
    with open(pending_path(ctx), 'r+b') as f:
        f.truncate(len(whole) - 32)
    r = outcome(o, 'SELECT refresh_token FROM jwt_refresh(%s);' % q(rt0))
    ctx.check(r == 'ERROR XX001', 'pending_file_damaged_fails_closed: the refresh is refused (data corrupted)', r)
    with open(pending_path(ctx), 'rb') as f:
        ctx.check(f.read() == whole[:-32], 'pending_file_damaged_fails_closed: the file is left as it was')
    os.unlink(pending_path(ctx))
    r = outcome(o, 'SELECT refresh_token IS NOT NULL FROM jwt_refresh(%s);' % q(rt0))
    ctx.check(r == 'OK t', 'pending_file_damaged_fails_closed: without the file the family refreshes', r)


@attack
def pending_store_full_fails_closed(ctx):
    """The store full (1,000,000 families) and every worker slot taken, a
    rotated refresh token is replayed: its family cannot be recorded, so
    its database is, and every family of it must be refused until a
    worker has revoked every family created up to then; a family made
    after that refreshes."""
    su = ctx.session()
    o = ctx.session('dbowner')
    dboid = int(su.value('SELECT oid FROM pg_database WHERE datname = current_database();'))
    access, rt0 = o.rows("SELECT access_token, refresh_token FROM jwt_issue_pair('{\"sub\": \"full-thief\"}');")[0]
    rt1 = o.value('SELECT refresh_token FROM jwt_refresh(%s);' % q(rt0))
    access, bystander = o.rows("SELECT access_token, refresh_token FROM jwt_issue_pair('{\"sub\": \"full-bystander\"}');")[0]
    other = int(su.value("SELECT oid FROM pg_database WHERE datname = 'template1';"))
    pending_write(ctx, [(other, PENDING_FAMILY, os.urandom(16), 0) for _ in range(1000000)])
    with WorkerSlotsHeld(ctx, hold=20) as held:
        ctx.check(held.free == '0', 'pending_store_full_fails_closed: every worker slot taken by mallory', held.free)
        lines = o.query('SELECT refresh_token FROM jwt_refresh(%s);' % q(rt0), allow_error=True)
        ctx.check(error_of(lines) == 'JW010', 'pending_store_full_fails_closed: the replay is JW010',
                  '\n'.join(lines[-5:]))
        ctx.check(any('are full' in l for l in lines),
                  'pending_store_full_fails_closed: the warning says the database is refused', '\n'.join(lines[-8:]))
        left = pending_read(ctx) or []
        markers = [e for e in left if e[0] == dboid and e[1] == PENDING_DATABASE]
        ctx.check(len(markers) == 1 and len(left) == 1000001,
                  "pending_store_full_fails_closed: the store holds the database's marker",
                  '%d entries, %d markers' % (len(left), len(markers)))
        # a family no reuse was seen in is refused too, while no worker runs
        r = outcome(o, 'SELECT refresh_token FROM jwt_refresh(%s);' % q(rt1))
        ctx.check(r == 'ERROR JW010', "pending_store_full_fails_closed: the thief's branch is refused", r)
        r = outcome(o, 'SELECT refresh_token FROM jwt_refresh(%s);' % q(bystander))
        ctx.check(r == 'ERROR JW010', 'pending_store_full_fails_closed: every family of the database is refused', r)
    access, after = o.rows("SELECT access_token, refresh_token FROM jwt_issue_pair('{\"sub\": \"full-after\"}');")[0]
    r = outcome(o, 'SELECT refresh_token FROM jwt_refresh(%s);' % q(rt1))
    ctx.check(r == 'ERROR JW010', 'pending_store_full_fails_closed: still refused once a worker runs', r)
    r = su.value("SELECT count(*) FILTER (WHERE revoked_at IS NULL) FROM jwt_token_families "
                 "WHERE created_at < (SELECT created_at FROM jwt_token_families WHERE sub = 'full-after');")
    ctx.check(r == '0', 'pending_store_full_fails_closed: the worker revoked every family made before', r)
    left = pending_read(ctx) or []
    ctx.check(len(left) == 1000000 and all(e[0] == other for e in left),
              "pending_store_full_fails_closed: the marker is applied and removed, the rest kept", '%d' % len(left))
    r = outcome(o, 'SELECT refresh_token IS NOT NULL FROM jwt_refresh(%s);' % q(after))
    ctx.check(r == 'OK t', 'pending_store_full_fails_closed: a family made after the worker ran refreshes', r)
    os.unlink(pending_path(ctx))


# ----------------------------------------------------------------
# 8. Private keys in the caches
# ----------------------------------------------------------------

@attack
def issue_caches_no_private_key(ctx):
    """jwt_issue signs with the table's private keys: none of them may stay
    in the per-backend key cache afterwards."""
    su = ctx.session()
    su.query("SELECT jwt_issue('{\"sub\": \"x\"}', 'ES256'); SELECT jwt_issue('{\"sub\": \"x\"}', 'HS256');")
    n = su.value("SELECT entries FROM jwt_cache_stats() WHERE cache = 'key';")
    ctx.check(n == '0', 'issue_caches_no_private_key: key cache empty after jwt_issue', n)


@attack
def key_cache_flood(ctx):
    """Key arguments are the caller's to choose: large key sets, many of
    them, must not pin memory in the backend after their statements (a 3 MB
    JWKS took 27 MB, 100 of them 2.6 GB).  The cache stays within
    jwt.key_cache_memory, which the caller cannot raise."""
    m = ctx.session('mallory')
    m.query('SELECT jwt_claims();')     # loads the library
    r = outcome(m, "SET jwt.key_cache_memory = '1GB';")
    ctx.check(r == 'ERROR 42501', 'key_cache_flood: jwt.key_cache_memory is not for mallory', r)
    su = ctx.session()
    tok = su.value("SELECT jwt_issue('{\"sub\": \"flood\"}', 'ES256');")
    # n filler keys and then our own public keys: each set verifies the token
    sets = ("SELECT count(*) FILTER (WHERE jwt_is_valid(%s, jwks)) FROM ("
            " SELECT g, jsonb_build_object('keys', (SELECT jsonb_agg(jsonb_build_object("
            "   'kty', 'EC', 'crv', 'P-256', 'kid', g || '-' || i,"
            "   'x', 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU',"
            "   'y', 'x_FEzRjmyR-wYGyXJ3O__7ZuM1T_s-rnCxj3nxwB_G0'))"
            "   FROM generate_series(1, %d) i) || (jwt_jwks() -> 'keys'))::text AS jwks"
            " FROM generate_series(1, %d) g) s;")
    sizes = (('3 MB', 20000, 12), ('600 kB', 4000, 30))
    # under Valgrind 240,000 keys take hours: 3 sets of 6,000 (some 12 MB
    # parsed) still hold more than the cache may
    if slow_server(su):
        sizes = (('900 kB', 6000, 3),)
    for label, nkeys, nsets in sizes:
        r = outcome(m, sets % (q(tok), nkeys, nsets))
        ctx.check(r == 'OK %d' % nsets, 'key_cache_flood: %d sets of %s verify' % (nsets, label), r)
        row = m.rows("SELECT entries, bytes FROM jwt_cache_stats() WHERE cache = 'key';")[0]
        ctx.check(int(row[1]) <= 4096 * 1024,
                  'key_cache_flood: after %d sets of %s the cache holds at most 4 MB' % (nsets, label),
                  '%s entries, %s bytes' % tuple(row))


# ----------------------------------------------------------------
# Secrets left in a backend's freed memory (issue 18, item 6)
# ----------------------------------------------------------------

def private_memory(pid):
    """The backend's private writable memory (heap and anonymous maps; not
    shared memory), read through /proc as root."""
    chunks = []
    with open('/proc/%d/maps' % pid) as maps, open('/proc/%d/mem' % pid, 'rb', 0) as mem:
        for line in maps:
            f = line.split()
            # writable private maps (Valgrind's client heap is rwx)
            if not (f[1].startswith('rw') and f[1].endswith('p')) or \
                    (len(f) > 5 and f[5] not in ('[heap]',)):
                continue
            lo, hi = (int(x, 16) for x in f[0].split('-'))
            try:
                mem.seek(lo)
                chunks.append(mem.read(hi - lo))
            except OSError:
                pass
    return b''.join(chunks)


@attack
def secrets_left_in_freed_memory(ctx):
    """Key material a backend decoded or copied must not stay behind in its
    freed memory: the private members of an RSA JWK decoded before a later
    member fails to parse, a member that fails halfway, and the SPI copy
    of an HMAC key row the key store read (small rows have 1-byte varlena
    headers, which the wipe skipped)."""
    import base64
    import json
    from cryptography.hazmat.primitives.asymmetric import rsa
    if os.geteuid() != 0:
        ctx.check(False, 'secrets_left_in_freed_memory: needs root to read /proc/<pid>/mem')
        return

    def b64(n):
        raw = n.to_bytes((n.bit_length() + 7) // 8, 'big')
        return raw, base64.urlsafe_b64encode(raw).rstrip(b'=').decode()

    m = ctx.session('mallory')
    pid = int(m.value('SELECT pg_backend_pid();'))
    tok = ctx.session().value("SELECT jwt_sign('{}', 'any secret of thirty-two bytes!!');")
    for case in ('a later member is malformed', 'the member itself is malformed'):
        priv = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_numbers()
        raws = {}
        jwk = {'kty': 'RSA'}
        for name, val in (('n', priv.public_numbers.n), ('e', priv.public_numbers.e), ('d', priv.d),
                          ('p', priv.p), ('q', priv.q), ('dp', priv.dmp1), ('dq', priv.dmq1),
                          ('qi', priv.iqmp)):
            raws[name], jwk[name] = b64(val)
        if case.startswith('a later'):
            jwk['dq'] = jwk['dq'][:-4] + '!!!!'
            secret = [raws[x] for x in ('d', 'p', 'q', 'dp')]
        else:
            jwk['d'] = jwk['d'][:-2] + '!!'
            secret = [raws['d'][:64]]
        r = outcome(m, 'SELECT jwt_verify(%s, %s);' % (q(tok), q(json.dumps(jwk))))
        ctx.check(r == 'ERROR 22023', 'secrets_left_in_freed_memory: refused (%s)' % case, r)
        heap = private_memory(pid)
        left = [i for i, s in enumerate(secret) if heap.find(s) >= 0]
        ctx.check(heap and not left, 'secrets_left_in_freed_memory: no decoded private member is left (%s)' % case,
                  'members found: %s' % left)

    # the key store reads an HMAC key row through SPI: one copy (the
    # cache's) may stay, the SPI one must be wiped
    su = ctx.session()
    su.query("SELECT jwt_key_generate('HS256', 'hs-memory');")
    k = su.value("SELECT private_jwk ->> 'k' FROM jwt_keys WHERE kid = 'hs-memory';").encode()
    htok = su.value("SELECT jwt_issue('{\"sub\": \"mem\"}', kid => 'hs-memory');")
    r = outcome(m, "SELECT jwt_verify(%s) ->> 'sub';" % q(htok))
    ctx.check(r == 'OK mem', 'secrets_left_in_freed_memory: the key store verifies the HMAC token', r)
    n = private_memory(pid).count(k)
    ctx.check(n == 1, 'secrets_left_in_freed_memory: the key row is held once, by the cache', '%d copies' % n)
    su.query("DELETE FROM jwt_keys WHERE kid = 'hs-memory';")


# ----------------------------------------------------------------
# 10-12. Keys that must not verify
# ----------------------------------------------------------------

@attack
def keys_that_must_not_verify(ctx):
    """A JWK whose key_ops forbid signatures, a key set mixing a secret with
    public keys, a published key set carrying a secret, an RSA key with the
    ROCA fingerprint: none of them may verify or be imported."""
    import json
    m = ctx.session('mallory')
    su = ctx.session()
    priv = key_text('rsa_priv_pkcs8.pem')
    jwk = json.loads(key_text('rsa_jwk_pub.json'))
    jwk.pop('use', None)
    jwk['key_ops'] = ['encrypt']
    tok = su.value("SELECT jwt_sign('{\"sub\": \"ops\"}', %s, 'RS256');" % q(priv))
    r = outcome(m, 'SELECT jwt_verify(%s, %s);' % (q(tok), q(json.dumps(jwk))))
    ctx.check(r.startswith('ERROR'), 'keys_that_must_not_verify: key_ops ["encrypt"] does not verify', r)
    r = outcome(m, 'SELECT jwt_verify(%s, %s);' % (q(tok), q(json.dumps({'keys': [jwk]}))))
    ctx.check(r.startswith('ERROR'), 'keys_that_must_not_verify: ... nor in a key set', r)
    r = outcome(su, 'SELECT jwt_key_import(%s);' % q(json.dumps(jwk)))
    ctx.check(r == 'ERROR 22023', 'keys_that_must_not_verify: ... nor is it imported', r)
    r = outcome(su, "SELECT jwt_jwks_import(%s::jsonb, 'https://ops.example');" % q(json.dumps({'keys': [jwk]})))
    ctx.check(r == 'ERROR 22023', 'keys_that_must_not_verify: ... nor through jwt_jwks_import', r)

    oct = json.loads(key_text('oct_jwk.json'))
    pub = json.loads(key_text('rsa_jwk_pub.json'))
    htok = su.value("SELECT jwt_sign('{\"sub\": \"mix\"}', %s, 'HS256');" % q(json.dumps(oct)))
    r = outcome(m, 'SELECT jwt_verify(%s, %s);' % (q(htok), q(json.dumps({'keys': [oct, pub]}))))
    ctx.check(r == 'ERROR 22023', 'keys_that_must_not_verify: a key set mixing oct and RSA is refused', r)
    r = outcome(su, "SELECT jwt_jwks_import(%s::jsonb, 'https://mix.example');" % q(json.dumps({'keys': [oct, pub]})))
    ctx.check(r == 'ERROR 22023', 'keys_that_must_not_verify: jwt_jwks_import takes no secret', r)
    ctx.check(su.value("SELECT count(*) FROM jwt_keys WHERE issuer = 'https://mix.example';") == '0',
              'keys_that_must_not_verify: ... and keeps none of the set')

    roca = key_text('rsa_roca_pub.pem')
    r = outcome(su, 'SELECT jwt_key_import(%s);' % q(roca))
    ctx.check(r == 'ERROR 22023', 'keys_that_must_not_verify: a ROCA key is not imported', r)
    r = outcome(m, 'SELECT jwt_verify(%s, %s);' % (q(tok), q(roca)))
    ctx.check(r.startswith('ERROR JW'), 'keys_that_must_not_verify: a ROCA key verifies nothing', r)


# ----------------------------------------------------------------
# 7. Work that cannot be cancelled
# ----------------------------------------------------------------

@attack
def rsa_keygen_cancellable(ctx):
    """A 4096-bit RSA key generation (seconds of prime search) must stop
    when the statement is cancelled, not run on to the end.  A search that
    happens to end within the timeout proves nothing either way, but most
    of the tries must be cancelled."""
    m = ctx.session('mallory')
    m.query("SET jwt.rsa_bits = 4096; SET statement_timeout = '30ms';")
    cancelled = 0
    # Valgrind runs OpenSSL's prime search tens of times slower, and takes
    # the timer's signal later: "at once" is then ten times as long, still
    # far below the seconds of a search run to its end there
    slow = 10 if slow_server(ctx.session()) else 1
    for i in range(6):
        t0 = time.time()
        r = outcome(m, "SELECT length(jwt_jwk_generate('RS256')::text) > 0;")
        took = time.time() - t0
        # a search that found its primes before the timeout passes too
        ctx.check((r == 'ERROR 57014' and took < 1.0 * slow) or (r == 'OK t' and took < 0.5 * slow),
                  'rsa_keygen_cancellable: cancelled at once (try %d)' % i, '%s after %.2f s' % (r, took))
        cancelled += r == 'ERROR 57014'
    ctx.check(cancelled >= 3, 'rsa_keygen_cancellable: most tries were cancelled', '%d of 6' % cancelled)


# ----------------------------------------------------------------
# Revocations that must hold (issue 18)
# ----------------------------------------------------------------

@attack
def numeric_jti_and_sub_revoked(ctx):
    """Our own tokens may carry a numeric jti or sub (the caller's claims
    win over jwt_issue's defaults): revoking them must hold.  A jti or sub
    that is neither string nor number cannot be revoked by any row, and is
    refused."""
    su = ctx.session()
    m = ctx.session('mallory')
    for jti in ('42', '4.20', '-7', '1e3'):
        tok = su.value("SELECT jwt_issue('{\"sub\": \"n\", \"jti\": %s}');" % jti)
        ok = outcome(m, "SELECT jwt_verify(%s) ->> 'jti';" % q(tok))
        su.query('SELECT jwt_revoke(%s);' % q(tok))
        r = outcome(m, "SELECT jwt_verify(%s) ->> 'jti';" % q(tok))
        ctx.check(ok.startswith('OK ') and r == 'ERROR JW010',
                  'numeric_jti_and_sub_revoked: jti %s revoked by jwt_revoke(token)' % jti,
                  'before %s, after %s' % (ok, r))
    tok = su.value("SELECT jwt_issue('{\"jti\": 43}');")
    su.query("SELECT jwt_revoke('43');")
    r = outcome(m, 'SELECT jwt_verify(%s);' % q(tok))
    ctx.check(r == 'ERROR JW010', "numeric_jti_and_sub_revoked: jti 43 revoked by jwt_revoke('43')", r)
    tok = su.value("SELECT jwt_issue('{\"sub\": 1001}');")
    ok = outcome(m, "SELECT jwt_authenticate(%s) ->> 'sub';" % q(tok))
    su.query("SELECT jwt_revoke_subject('1001', now() + interval '1 second');")
    r = outcome(m, "SELECT jwt_authenticate(%s);" % q(tok))
    ctx.check(ok == 'OK 1001' and r == 'ERROR JW010',
              "numeric_jti_and_sub_revoked: sub 1001 revoked by jwt_revoke_subject('1001')",
              'before %s, after %s' % (ok, r))
    for claims in ('{"jti": {"a": 1}}', '{"jti": [1]}', '{"sub": true}', '{"sub": ["x"]}'):
        tok = su.value("SELECT jwt_issue(%s);" % q(claims))
        r = outcome(m, 'SELECT jwt_verify(%s);' % q(tok))
        ctx.check(r == 'ERROR JW001', 'numeric_jti_and_sub_revoked: %s is refused' % claims, r)
    su.query("DELETE FROM jwt_revoked; DELETE FROM jwt_revoked_subjects;")


@attack
def role_claim_shadowed_by_flat_claim(ctx):
    """jwt.role_claim names the nested app_metadata.role; a token also
    carrying a top-level claim spelled "app_metadata.role" (a custom claim
    an identity provider may let its users set) must not pick the role."""
    su = ctx.session()
    su.query("CREATE ROLE role_user NOLOGIN; CREATE ROLE role_admin NOLOGIN;"
             " GRANT role_user, role_admin TO mallory;"
             " ALTER ROLE mallory SET jwt.role_claim = 'app_metadata.role';")
    both = issue(ctx, '{"sub": "m", "app_metadata.role": "role_admin", "app_metadata": {"role": "role_user"}}')
    flat = issue(ctx, '{"sub": "m", "app_metadata.role": "role_admin"}')
    m = ctx.session('mallory')
    m.query('BEGIN;')
    r = outcome(m, "SELECT jwt_authenticate(%s) IS NOT NULL, current_user;" % q(both))
    ctx.check(r == 'OK t|role_user', 'role_claim_shadowed_by_flat_claim: the nested claim decides', r)
    m.query('ROLLBACK;')
    r = outcome(m, "SELECT jwt_authenticate(%s);" % q(flat))
    ctx.check(r == 'ERROR 28000', 'role_claim_shadowed_by_flat_claim: the flat claim alone is no role claim', r)
    m.close()
    ctx.sessions.remove(m)
    su.query("ALTER ROLE mallory RESET jwt.role_claim; DROP ROLE role_user; DROP ROLE role_admin;")


@attack
def role_granted_without_set(ctx):
    """From PostgreSQL 16 a role can be granted WITH SET FALSE: membership
    without the right to SET ROLE.  A token naming such a role must be
    refused by jwt's own check, as SET ROLE refuses it.  (15 has no such
    grant: nothing to try there.)"""
    su = ctx.session()
    if int(su.value("SELECT current_setting('server_version_num');")) < 160000:
        return
    su.query("CREATE ROLE role_noset NOLOGIN; GRANT role_noset TO mallory WITH SET FALSE;"
             " ALTER ROLE mallory SET jwt.role_claim = 'role';")
    tok = issue(ctx, '{"sub": "m", "role": "role_noset"}')
    m = ctx.session('mallory')
    lines = m.query('SELECT jwt_authenticate(%s);' % q(tok), allow_error=True)
    ctx.check(error_of(lines) == '42501' and any('may not SET ROLE' in l for l in lines),
              'role_granted_without_set: refused by jwt\'s pre-check (42501)', '\n'.join(lines))
    m.close()
    ctx.sessions.remove(m)
    su.query("ALTER ROLE mallory RESET jwt.role_claim; DROP ROLE role_noset;")


# what a database owner may put in pg_db_role_setting, and what each did to
# the family-revocation worker before it pinned them: it ran as her (and
# could not write), or its writes could not commit, or were not durable
# when it reported them done
HOSTILE_DATABASE_SETTINGS = [
    "role = 'dbowner'",
    "session_authorization = 'dbowner'",
    "default_transaction_read_only = on",
    "statement_timeout = '1ms'",
    "lock_timeout = '1ms'",
    "idle_in_transaction_session_timeout = '1ms'",
    "synchronous_commit = off",
    "default_transaction_isolation = 'serializable'",
    "plpgsql.extra_errors = 'all'",
    "standard_conforming_strings = off",
    "transform_null_equals = on",
]


@attack
def database_settings_steer_revocation_worker(ctx):
    """The database owner sets, for her database, a role, a session
    authorization, read-only transactions, tiny timeouts and more: the
    family-revocation worker, which connects to that database, must still
    write each revocation to the table as the extension's owner."""
    name = 'database_settings_steer_revocation_worker'
    # both sessions connect before any setting is made: only the worker,
    # which connects afresh each time, gets them
    su = ctx.session()
    o = ctx.session('dbowner')
    o.query('DO $$ BEGIN END $$;')     # plpgsql loaded: its settings are known
    log_start = len(ctx.cluster.log_text())
    for i, setting in enumerate(HOSTILE_DATABASE_SETTINGS):
        r = outcome(o, 'ALTER DATABASE jwt_attack SET %s;' % setting)
        ctx.check(r.startswith('OK'), '%s: the owner may set %s' % (name, setting), r)
        sub = 'steer-%d' % i
        rt0 = su.rows("SELECT refresh_token FROM jwt_issue_pair('{\"sub\": \"%s\"}');" % sub)[0][0]
        rt1 = outcome(su, 'SELECT refresh_token FROM jwt_refresh(%s);' % q(rt0))
        r = outcome(su, 'SELECT refresh_token FROM jwt_refresh(%s);' % q(rt0))
        ctx.check(rt1.startswith('OK ') and r == 'ERROR JW010',
                  '%s: %s: the replay is JW010' % (name, setting), '%s / %s' % (rt1, r))
        written = su.value("SELECT revoked_at IS NOT NULL FROM jwt_token_families WHERE sub = %s;" % q(sub))
        ctx.check(written == 't', '%s: %s: the worker wrote the revocation' % (name, setting), written)
        su.query('ALTER DATABASE jwt_attack RESET ALL;')
    log = ctx.cluster.log_text()[log_start:]
    ctx.check('could not revoke a token family in a background worker' not in log,
              '%s: no revocation fell back to the pending file' % name)


def family_scans(su):
    """(seq_scan, idx_scan) of jwt_token_families, as reported so far."""
    su.query('SELECT pg_stat_clear_snapshot();')
    return tuple(int(x) for x in su.rows(
        "SELECT seq_scan, coalesce(idx_scan, 0) FROM pg_stat_user_tables "
        "WHERE relid = 'jwt_token_families'::regclass;")[0])


@attack
def database_planner_settings_steer_revocation_worker(ctx):
    """Settings nobody listed: the database owner turns off index scans for
    her database (and shrinks work_mem), which would make the revocation
    worker scan the whole family table for every revocation.  The worker
    must put back every user setting the database changed, so that it
    finds the family through the index as any session of the server's
    configuration does (pg_stat_user_tables tells which scan it made)."""
    name = 'database_planner_settings_steer_revocation_worker'
    su = ctx.session()
    o = ctx.session('dbowner')
    make_families(su, 'planner', 3000)
    su.query('ANALYZE jwt_token_families;')
    rt0 = su.rows("SELECT refresh_token FROM jwt_issue_pair('{\"sub\": \"planner-replayed\"}');")[0][0]
    rt1 = outcome(su, 'SELECT refresh_token FROM jwt_refresh(%s);' % q(rt0))
    ctx.check(rt1.startswith('OK '), '%s: the first refresh' % name, rt1)
    settings = ('enable_indexscan = off', 'enable_bitmapscan = off', 'enable_indexonlyscan = off',
                'enable_tidscan = off', "work_mem = '64kB'")
    for setting in settings:
        r = outcome(o, 'ALTER DATABASE jwt_attack SET %s;' % setting)
        ctx.check(r.startswith('OK'), '%s: the owner may set %s' % (name, setting), r)
    before = family_scans(su)
    r = outcome(su, 'SELECT refresh_token FROM jwt_refresh(%s);' % q(rt0))
    ctx.check(r == 'ERROR JW010', '%s: the replay is JW010' % name, r)
    # the worker has exited, and a process reports its counts as it exits;
    # this session's own are flushed by a new transaction after 1 s at most
    time.sleep(1.2)
    su.query('SELECT 1;')
    after = family_scans(su)
    written = su.value("SELECT revoked_at IS NOT NULL FROM jwt_token_families WHERE sub = 'planner-replayed';")
    ctx.check(written == 't', '%s: the worker wrote the revocation' % name, written)
    ctx.check(after[0] == before[0] and after[1] > before[1],
              '%s: the worker found the family by the index, not by a scan of the table' % name,
              'seq_scan %d -> %d, idx_scan %d -> %d' % (before[0], after[0], before[1], after[1]))
    su.query('ALTER DATABASE jwt_attack RESET ALL;')


@attack
def worker_owner_cannot_log_in(ctx):
    """The extension's owner is a role that cannot log in: the worker
    connects as the bootstrap superuser and becomes the owner, so that
    it writes the revocation all the same (before, it connected as the
    owner, and on 15 and 16 could not)."""
    su = ctx.session()
    su.query("CREATE ROLE jwt_nologin_owner SUPERUSER NOLOGIN; CREATE DATABASE jwt_nologin;")
    d = ctx.session(db='jwt_nologin')
    d.query("SET ROLE jwt_nologin_owner; CREATE EXTENSION jwt; SELECT jwt_key_generate('ES256'); RESET ROLE;")
    owner = d.value("SELECT extowner::regrole FROM pg_extension WHERE extname = 'jwt';")
    ctx.check(owner == 'jwt_nologin_owner', 'worker_owner_cannot_log_in: the owner is the NOLOGIN role', owner)
    access, rt0 = d.rows("SELECT access_token, refresh_token FROM jwt_issue_pair('{\"sub\": \"nologin\"}');")[0]
    rt1 = d.value('SELECT refresh_token FROM jwt_refresh(%s);' % q(rt0))
    r = outcome(d, 'SELECT refresh_token FROM jwt_refresh(%s);' % q(rt0))
    ctx.check(r == 'ERROR JW010', 'worker_owner_cannot_log_in: the replay is JW010', r)
    written = d.value("SELECT revoked_at IS NOT NULL FROM jwt_token_families WHERE sub = 'nologin';")
    ctx.check(written == 't', 'worker_owner_cannot_log_in: the worker writes the revocation', written)
    r = outcome(d, 'SELECT refresh_token FROM jwt_refresh(%s);' % q(rt1))
    ctx.check(r == 'ERROR JW010', 'worker_owner_cannot_log_in: the family refreshes no more', r)
    su.query("ALTER ROLE jwt_nologin_owner LOGIN;")
    r = outcome(d, 'SELECT refresh_token FROM jwt_refresh(%s);' % q(rt1))
    ctx.check(r == 'ERROR JW010', 'worker_owner_cannot_log_in: still refused once the owner may log in', r)
    ctx.check(d.value("SELECT revoked_at IS NOT NULL FROM jwt_token_families WHERE sub = 'nologin';") == 't',
              'worker_owner_cannot_log_in: ... and the revocation is written')
    d.close()
    ctx.sessions.remove(d)
    su.query("DROP DATABASE jwt_nologin; DROP ROLE jwt_nologin_owner;")


@attack
def revocation_cached_from_parallel_snapshot(ctx):
    """A parallel query's leader loads the revocation cache with the
    query's snapshot (a parallel query cannot take a newer one).  When a
    revocation commits after that snapshot was taken but before the load,
    the query may count the token valid (its snapshot says so), but the
    cache must not carry that stale answer into later transactions."""
    su = ctx.session()
    su.query("SELECT jwt_key_generate('ES256', 'es-parallel');")
    tok = su.value("SELECT jwt_issue('{\"sub\": \"par\"}', kid => 'es-parallel');")
    # under debug_discard_caches each call reloads the key store: 20,000
    # calls, twice over, took longer than the whole leg may
    n = 2000 if slow_server(su) else 20000
    su.query("CREATE TABLE par_tokens AS SELECT g, %s::text AS tok FROM generate_series(1, %d) g;"
             " ANALYZE par_tokens; ALTER TABLE par_tokens SET (parallel_workers = 2);"
             " GRANT SELECT ON par_tokens TO mallory;" % (q(tok), n))
    for what, revoke in (('jti', 'SELECT jwt_revoke(%s);' % q(tok)),
                         ('key', "SELECT jwt_key_revoke('es-parallel');")):
        m = ctx.session('mallory')     # a backend whose caches are cold
        m.query("SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 0;"
                " SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;")
        plan = '\n'.join(m.query('EXPLAIN (COSTS OFF) SELECT count(*) FROM par_tokens '
                                 'WHERE (SELECT pg_sleep(2)) IS NOT NULL AND jwt_is_valid(tok);'))
        ctx.check('Gather' in plan, 'revocation_cached_from_parallel_snapshot: the query is parallel', plan)
        import threading
        t = threading.Timer(1.0, lambda: su.query(revoke))
        t.start()
        # the snapshot is taken before the sleep; the revocation commits
        # during it; the leader then loads its caches
        m.query('SELECT count(*) FROM par_tokens WHERE (SELECT pg_sleep(2)) IS NOT NULL AND jwt_is_valid(tok);')
        t.join()
        # a parallel query first: a call outside parallel mode reloads anyway
        r = outcome(m, 'SELECT count(*) FROM par_tokens WHERE jwt_is_valid(tok);')
        ctx.check(r == 'OK 0', 'revocation_cached_from_parallel_snapshot: the %s revocation counts in the '
                  'next parallel query' % what, r)
        r = outcome(m, 'SELECT jwt_is_valid(%s);' % q(tok))
        ctx.check(r == 'OK f', 'revocation_cached_from_parallel_snapshot: ... and outside one', r)
        m.close()
        ctx.sessions.remove(m)
        su.query('DELETE FROM jwt_revoked;')
    su.query('DROP TABLE par_tokens;')


@attack
def revocation_seen_inside_open_transaction(ctx):
    """A token verified in an open transaction, then revoked by another
    session (its jti, then its key): the next statement of the same
    transaction must see the revocation."""
    su = ctx.session()
    su.query("SELECT jwt_key_generate('ES256', 'es-revoke-me');")
    tok = su.value("SELECT jwt_issue('{\"sub\": \"tx\"}', kid => 'es-revoke-me');")
    tok2 = su.value("SELECT jwt_issue('{\"sub\": \"tx2\"}', kid => 'es-revoke-me');")
    m = ctx.session('mallory')
    m.query('BEGIN;')
    ctx.check(outcome(m, "SELECT jwt_verify(%s) ->> 'sub';" % q(tok)) == 'OK tx',
              'revocation_seen_inside_open_transaction: verifies first')
    ctx.check(outcome(m, "SELECT jwt_verify(%s) ->> 'sub';" % q(tok2)) == 'OK tx2',
              'revocation_seen_inside_open_transaction: the other token too')
    su.query('SELECT jwt_revoke(%s);' % q(tok))
    r = outcome(m, "SELECT jwt_verify(%s) ->> 'sub';" % q(tok))
    ctx.check(r == 'ERROR JW010', 'revocation_seen_inside_open_transaction: a revoked jti is seen', r)
    m.query('ROLLBACK; BEGIN;')
    ctx.check(outcome(m, "SELECT jwt_verify(%s) ->> 'sub';" % q(tok2)) == 'OK tx2',
              'revocation_seen_inside_open_transaction: verifies again in a new transaction')
    su.query("SELECT jwt_key_revoke('es-revoke-me');")
    r = outcome(m, "SELECT jwt_verify(%s) ->> 'sub';" % q(tok2))
    ctx.check(r == 'ERROR JW009', 'revocation_seen_inside_open_transaction: a revoked key is seen', r)
    m.query('ROLLBACK;')


# ----------------------------------------------------------------
# 8. Keys in the server log
# ----------------------------------------------------------------

@attack
def malformed_key_kept_out_of_log(ctx):
    """A key passed to jwt_key_import that is not valid JSON: the error and
    the server log must not show it (a jsonb cast echoed the text in its
    detail, and the statement was logged with the error)."""
    su = ctx.session()
    marker = 'SECRETMARKER' + 'q' * 20
    r = outcome(su, "SELECT jwt_key_import('{\"kty\": \"oct\", \"k\": \"%s\" oops}');" % marker)
    ctx.check(r == 'ERROR 22023', 'malformed_key_kept_out_of_log: refused with 22023', r)
    lines = su.query("SELECT jwt_key_import('{\"keys\": [%s');" % marker, allow_error=True)
    ctx.check(not any(marker in l for l in lines), 'malformed_key_kept_out_of_log: not in the error',
              '\n'.join(lines))
    time.sleep(0.3)
    ctx.check(marker not in ctx.cluster.log_text(), 'malformed_key_kept_out_of_log: not in the server log')


@attack
def claim_path_echoed_whole(ctx):
    """An invalid claim path of 100 kB: the error quotes its start only,
    in the reply and in the server log (it quoted all of it)."""
    m = ctx.session('mallory')
    tok = issue(ctx, '{"sub": "mallory"}')
    path = 'app.' + 'b' * 100000 + '..role'
    lines = m.query('BEGIN; SELECT jwt_authenticate(%s) IS NOT NULL; SELECT jwt_claim(%s); ROLLBACK;'
                    % (q(tok), q(path)), allow_error=True)
    err = [l for l in lines if 'invalid claim path' in l]
    ctx.check(len(err) == 1 and len(err[0]) < 300,
              'claim_path_echoed_whole: the error quotes at most a short start of the path',
              '%d lines, %s chars' % (len(err), [len(l) for l in err]))
    time.sleep(0.3)
    logged = [l for l in ctx.cluster.log_text().splitlines() if 'invalid claim path' in l]
    ctx.check(logged and all(len(l) < 400 for l in logged),
              'claim_path_echoed_whole: ... and so does the server log',
              '%d lines, longest %d' % (len(logged), max([len(l) for l in logged] or [0])))


@attack
def unknown_issuers_keep_nothing(ctx):
    """Tokens of 5,000 made-up issuers (and one of a 100 kB "iss") are
    refused and leave nothing in the issuer cache: they cannot push a
    trusted issuer's entry out, nor grow the backend."""
    su = ctx.session()
    su.query("INSERT INTO jwt_issuers (issuer) VALUES ('https://trusted.example') ON CONFLICT DO NOTHING;"
             "SELECT jwt_key_import('shared-secret-of-the-trusted-issuer-0123456789', 'HS256', 't1', "
             "'https://trusted.example');")
    m = ctx.session('mallory')
    good = m.value("SELECT jwt_sign('{\"iss\":\"https://trusted.example\",\"sub\":\"a\"}', "
                   "'shared-secret-of-the-trusted-issuer-0123456789', 'HS256', '{\"kid\":\"t1\"}');")
    ok = m.value('SELECT jwt_is_valid(%s);' % q(good))
    before = m.rows("SELECT entries, bytes, hits FROM jwt_cache_stats() WHERE cache = 'issuer';")[0]
    refused = m.value("SELECT count(*) FILTER (WHERE NOT jwt_is_valid(jwt_sign(jsonb_build_object("
                      "'iss', 'https://tenant' || g || '.evil.example'), 'secret'))) "
                      "FROM generate_series(1, 5000) g;")
    big = m.value("SELECT jwt_is_valid(jwt_sign(jsonb_build_object('iss', repeat('i', 100000)), 'secret'));")
    after = m.rows("SELECT entries, bytes, hits FROM jwt_cache_stats() WHERE cache = 'issuer';")[0]
    still = m.value('SELECT jwt_is_valid(%s);' % q(good))
    hits = m.value("SELECT hits FROM jwt_cache_stats() WHERE cache = 'issuer';")
    ctx.check(ok == 't' and refused == '5000' and big == 'f',
              'unknown_issuers_keep_nothing: the trusted token verifies, the 5,001 others are refused',
              '%s %s %s' % (ok, refused, big))
    if su.value('SHOW debug_discard_caches;') != '0':
        # every call drops every entry there: the cache can only shrink, and
        # the trusted issuer is read again
        ctx.check(int(after[0]) <= int(before[0]) and int(after[1]) <= int(before[1]) and still == 't',
                  'unknown_issuers_keep_nothing: the issuer cache holds no more than before, '
                  'and the trusted token still verifies (debug_discard_caches)',
                  '%s -> %s, %s' % (before, after, still))
    else:
        ctx.check(after[0] == before[0] and after[1] == before[1],
                  'unknown_issuers_keep_nothing: the issuer cache holds as many entries and bytes as before',
                  '%s -> %s' % (before, after))
        ctx.check(still == 't' and int(hits) == int(after[2]) + 1,
                  'unknown_issuers_keep_nothing: the trusted issuer is still served from its entry',
                  '%s hits %s -> %s' % (still, after[2], hits))
    su.query("DELETE FROM jwt_issuers WHERE issuer = 'https://trusted.example';")
