"""The JWKS worker under attack: checks of the JWKS suite (run.py) on its
preloaded primary, after its own worker tests.

- One issuer's kid misses never cost another issuer its early refresh:
  two issuers that shared a cool-down slot before (FNV-1a modulo 64), and
  an issuer name of 300 bytes, which had no slot at all.
- The kid-miss retry (jwt.jwks_miss_wait) starts again from the caller's
  rules: an issuer with required claims and an audience, whose key just
  rotated, verifies on the first token (it failed with a required claim
  read from freed memory).
- A bounded number of backends wait for the worker: a flood of tokens with
  an unknown kid while the provider is slow holds at most a quarter of
  max_connections.
- The worker reports its table statistics (autovacuum sees its writes).
- An error in one issuer's refresh is that issuer's: the round goes on,
  and the worker does not exit.
- The database owner sets, for the database, the role, the session
  authorization, read-only transactions, tiny timeouts and plpgsql knobs:
  the restarted worker still refreshes, as the extension's owner.
"""

import threading
import time

import idpctl

# the JWKS suite's cluster has max_connections = 40 (PreloadedCluster)
MAX_WAITERS = 10


def fnv_slot(s):
    """The slot the worker of 0.5 gave an issuer: FNV-1a modulo 64."""
    h = 2166136261
    for b in s.encode():
        h = ((h ^ b) * 16777619) & 0xffffffff
    return h % 64


def colliding_issuers():
    a = 'https://tenant-a.example'
    for n in range(10000):
        b = 'https://tenant-b-%d.example' % n
        if fnv_slot(b) == fnv_slot(a):
            return a, b
    raise RuntimeError('no collision found')


def worker_hardening(c, port, db, idp, s, w, T, session, verify_sub, wait_until, q, keys):
    priv = keys['w1'][0]
    exp = int(time.time()) + 3600
    a, b = colliding_issuers()
    long_iss = 'https://long.example/' + 'x' * 300
    for iss in (a, b, long_iss):
        r = s.value('SELECT jwt_issuer_trust(%s, %s);' % (q(iss), q(idp.jwks_url)))
        T.check(r is not None and int(r) >= 1, 'hardening: issuer %s... registered' % iss[:30], r)

    def tok(iss, kid, priv_pem=None, **extra):
        claims = dict({'iss': iss, 'sub': 'dana', 'exp': exp}, **extra)
        return idpctl.sign(priv_pem or priv, kid, claims)

    # -- one issuer's junk does not block another's early refresh
    time.sleep(3.2)     # every cool-down is over
    r = verify_sub(w, tok(a, 'junk-for-a'))
    T.check(r == 'ERROR JW009', 'hardening: a junk kid of issuer A is JW009 (and cools A down)', r)
    time.sleep(0.5)
    k5 = idpctl.generate_es256('w5')
    idp.set_jwks(idpctl.jwks(keys['w1'][1], keys['w2'][1], keys['w3'][1], k5[1]))

    def refreshes_early(iss, what):
        """a kid miss of iss is JW009, then the new key verifies within 2.5 s"""
        t0 = time.time()
        first = verify_sub(w, tok(iss, 'w5', k5[0]))
        ok = wait_until(lambda: verify_sub(w, tok(iss, 'w5', k5[0])) == 'OK dana', 2.5)
        T.check(first == 'ERROR JW009' and ok,
                'hardening: %s (%.2f s)' % (what, time.time() - t0), first)

    refreshes_early(b, 'issuer B (A\'s slot before) refreshes early while A cools down')
    refreshes_early(long_iss, 'an issuer of 300 bytes refreshes early on a kid miss')

    # -- the retry starts again from the caller's rules
    s.query("UPDATE jwt_issuers SET required_claims = '{sub,exp}', audiences = '{api}' "
            "WHERE issuer = %s;" % q(b))
    time.sleep(3.2)
    k6 = idpctl.generate_es256('w6')
    idp.set_jwks(idpctl.jwks(keys['w1'][1], keys['w2'][1], keys['w3'][1], k5[1], k6[1]))
    w.query("SET jwt.jwks_miss_wait = '5s';")
    r = verify_sub(w, tok(b, 'w6', k6[0], aud='api'))
    T.check(r == 'OK dana', 'hardening: with required claims and an audience, a rotated key verifies '
            'on the first token after the wait', r)
    r = verify_sub(w, tok(b, 'w6', k6[0], aud='other'))
    T.check(r == 'ERROR JW006', "hardening: ... and the issuer's audience still holds", r)
    w.query('RESET jwt.jwks_miss_wait;')

    # -- a flood of unknown kids while the worker is busy: few wait.  The
    # worker is in a slow round for issuer B when the tokens of the
    # provider's own issuer come: it stays asked for until the next round,
    # and every token of it would wait for that one
    time.sleep(3.2)
    n = 2 * MAX_WAITERS
    flood = [session(c.conninfo()) for _ in range(n)]
    for f in flood:
        f.query("SET jwt.jwks_miss_wait = '5s';")
    took = [None] * n
    junk = tok(idp.issuer, 'stall-kid')

    def present(i):
        t = time.time()
        verify_sub(flood[i], junk)
        took[i] = time.time() - t
    threads = [threading.Thread(target=present, args=(i,)) for i in range(n)]
    idp.set_mode('stall', seconds=1.5)
    verify_sub(w, tok(b, 'busy-kid'))      # the worker's slow round begins
    time.sleep(0.2)
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    idp.set_mode('ok')
    waited = sum(1 for t in took if t is not None and t >= 1.0)
    print('waiters: %d of %d sessions waited for the worker (at most %d may)' % (waited, n, MAX_WAITERS))
    T.check(1 <= waited <= MAX_WAITERS and None not in took,
            'hardening: %d tokens of an unknown kid hold at most %d backends in the wait'
            % (n, MAX_WAITERS), 'waited: %d, times %s' % (waited, ['%.2f' % t for t in took if t]))
    for f in flood:
        f.close()

    # -- the worker's writes reach the statistics
    time.sleep(3.2)
    s.query("SELECT pg_stat_reset_single_table_counters('jwt_jwks_fetches'::regclass);")
    verify_sub(w, tok(a, 'stats-kid'))

    def counted():
        s.query('SELECT pg_stat_clear_snapshot();')
        return s.value("SELECT n_tup_ins + n_tup_upd FROM pg_stat_user_tables "
                       "WHERE relname = 'jwt_jwks_fetches';") not in (None, '0')
    T.check(wait_until(counted, 5), "hardening: the worker's writes are in the table statistics")

    # -- an error in one issuer's refresh costs that issuer only: a trigger
    # refuses to write issuer X's status; in the same or the next round,
    # issuer Y (after X in the worker's order) still refreshes, and the
    # worker lives on (it exited, and came back 10 s later)
    x, y = 'https://tenant-0-refused.example', 'https://tenant-1-fine.example'
    for iss in (x, y):
        s.query('SELECT jwt_issuer_trust(%s, %s);' % (q(iss), q(idp.jwks_url)))
    s.query("CREATE FUNCTION public.jwt_test_refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN IF NEW.issuer = %s THEN RAISE EXCEPTION 'refused for the test'; END IF; "
            "RETURN NEW; END $$; "
            "CREATE TRIGGER jwt_test_refuse BEFORE INSERT OR UPDATE ON jwt_jwks_fetches "
            "FOR EACH ROW EXECUTE FUNCTION public.jwt_test_refuse();" % q(x))
    time.sleep(3.2)
    pid = s.value("SELECT pid FROM pg_stat_activity WHERE backend_type = 'jwt jwks';")
    k7 = idpctl.generate_es256('w7')
    idp.set_jwks(idpctl.jwks(keys['w1'][1], keys['w2'][1], keys['w3'][1], k5[1], k6[1], k7[1]))
    rx = verify_sub(w, tok(x, 'w7', k7[0]))
    ry = verify_sub(w, tok(y, 'w7', k7[0]))
    ok = wait_until(lambda: verify_sub(w, tok(y, 'w7', k7[0])) == 'OK dana', 2.5)
    T.check(rx == 'ERROR JW009' and ry == 'ERROR JW009' and ok,
            "hardening: issuer Y refreshes early although issuer X's refresh raised", '%s %s' % (rx, ry))
    time.sleep(0.3)
    T.check(s.value("SELECT pid FROM pg_stat_activity WHERE backend_type = 'jwt jwks';") == pid,
            'hardening: ... and the worker did not exit')
    T.check('could not refresh the key set of issuer "%s": refused for the test' % x in c.log_text(),
            "hardening: ... and it logged X's error")
    s.query('DROP TRIGGER jwt_test_refuse ON jwt_jwks_fetches; DROP FUNCTION public.jwt_test_refuse();')
    for iss in (x, y):
        s.query('DELETE FROM jwt_issuers WHERE issuer = %s;' % q(iss))

    # -- the database owner's settings do not steer the worker
    m = session('host=%s port=%d dbname=%s user=mallory' % (c.dir, port, db))
    m.query('DO $$ BEGIN END $$;')     # plpgsql loaded: its settings are known
    hostile = ["role = 'mallory'", "session_authorization = 'mallory'",
               "default_transaction_read_only = on", "statement_timeout = '1ms'",
               "lock_timeout = '1ms'", "idle_in_transaction_session_timeout = '1ms'",
               "plpgsql.extra_errors = 'all'", "transform_null_equals = on",
               "standard_conforming_strings = off", "synchronous_commit = off"]
    refused = [h for h in hostile
               if any('ERROR' in line for line in m.query('ALTER DATABASE %s SET %s;' % (db, h),
                                                          allow_error=True))]
    T.check(not refused, 'hardening: the database owner may make each of %d settings' % len(hostile),
            str(refused))
    m.close()
    old_pid = s.value("SELECT pid FROM pg_stat_activity WHERE backend_type = 'jwt jwks';")
    s.query('SELECT pg_terminate_backend(%s);' % old_pid)
    back = wait_until(lambda: s.value("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'jwt jwks' "
                                      "AND pid <> %s;" % old_pid) == '1', 20)
    T.check(back, 'hardening: the worker is back after being terminated')
    time.sleep(3.5)
    before = s.value('SELECT last_success FROM jwt_jwks_status() WHERE issuer = %s;' % q(a))
    verify_sub(w, tok(a, 'settings-kid'))
    T.check(wait_until(lambda: s.value('SELECT last_success FROM jwt_jwks_status() WHERE issuer = %s;'
                                       % q(a)) != before, 10),
            "hardening: with the owner's hostile database settings, the restarted worker refreshes")
    # (pg_stat_activity names the user the worker was when it connected,
    # the database's session_authorization included; it is the owner after)
    s.query('ALTER DATABASE %s RESET ALL;' % db)

    # -- a kid miss is not queued behind a backlog of scheduled refreshes:
    # 400 issuers never fetched are all due, a round takes 32 of them, and
    # the kid miss goes into the next round (the worker of 0.5's first
    # builds took every due issuer in one round, the kid miss after them)
    n_backlog = 400
    s.query("INSERT INTO jwt_issuers (issuer, jwks_uri) "
            "SELECT 'https://backlog-' || g || '.example', %s FROM generate_series(1, %d) g;"
            % (q(idp.jwks_url), n_backlog))
    fetched = ("SELECT count(*) FROM jwt_jwks_status() WHERE issuer LIKE 'https://backlog-%' "
               "AND last_success IS NOT NULL;")
    wait_until(lambda: int(s.value(fetched)) > 0, 10)
    time.sleep(3.2)     # the cool-downs of the checks above are over
    k8 = idpctl.generate_es256('w8')
    idp.set_jwks(idpctl.jwks(keys['w1'][1], keys['w2'][1], keys['w3'][1], k8[1]))
    first = verify_sub(w, tok(long_iss, 'w8', k8[0]))
    ok = wait_until(lambda: verify_sub(w, tok(long_iss, 'w8', k8[0])) == 'OK dana', 10)
    done_then = int(s.value(fetched))
    T.check(first == 'ERROR JW009' and ok and done_then < n_backlog,
            'hardening: a kid miss is refreshed while a backlog of scheduled refreshes waits '
            '(%d of %d done then)' % (done_then, n_backlog), first)
    T.check(wait_until(lambda: int(s.value(fetched)) == n_backlog, 120),
            'hardening: ... and the backlog is worked off in rounds back to back',
            s.value(fetched))
    s.query("DELETE FROM jwt_issuers WHERE issuer LIKE 'https://backlog-%';")

    # -- the schedule is a priority queue: with 5,000 more issuers fetched
    # here, none of them due, a kid miss and the rounds around it read
    # neither jwt_issuers nor jwt_jwks_fetches whole (the worker of 0.5's
    # first builds joined every issuer each round, and hashed each name
    # to find the one asked for)
    n_queue = 5000
    s.query("INSERT INTO jwt_issuers (issuer, jwks_uri) "
            "SELECT 'https://queue-' || g || '.example', %s FROM generate_series(1, %d) g;"
            % (q(idp.jwks_url), n_queue))
    s.query("UPDATE jwt_jwks_fetches SET next_refresh = now() + interval '1 day' "
            "WHERE issuer LIKE 'https://queue-%';")
    s.query('ANALYZE jwt_issuers; ANALYZE jwt_jwks_fetches;')
    queued = s.value("SELECT count(*) FROM jwt_jwks_fetches WHERE issuer LIKE 'https://queue-%' "
                     "AND next_refresh > now();")
    T.check(queued == str(n_queue), 'hardening: each issuer fetched here has its row in the queue', queued)
    time.sleep(3.2)     # the cool-downs of the checks above are over
    # this test's own scans (jwt_jwks_status reads every issuer) are
    # reported before the counters start, not into them
    for sess in (s, w):
        sess.query('SELECT pg_stat_force_next_flush();')
    for rel in ('jwt_issuers', 'jwt_jwks_fetches'):
        s.query("SELECT pg_stat_reset_single_table_counters(%s::regclass);" % q(rel))

    def last_success(iss):
        return s.value('SELECT last_success FROM jwt_jwks_fetches WHERE issuer = %s;' % q(iss))
    before = last_success(a)
    k9 = idpctl.generate_es256('w9')
    idp.set_jwks(idpctl.jwks(keys['w1'][1], keys['w2'][1], keys['w3'][1], k9[1]))
    verify_sub(w, tok(a, 'w9', k9[0]))
    ok = wait_until(lambda: verify_sub(w, tok(a, 'w9', k9[0])) == 'OK dana', 10)
    T.check(ok and last_success(a) != before,
            'hardening: with %d issuers queued, a kid miss is refreshed early' % n_queue)
    time.sleep(1.5)     # the worker's counts are reported after each round
    s.query('SELECT pg_stat_clear_snapshot();')
    scans = s.rows("SELECT relname, seq_scan FROM pg_stat_user_tables "
                   "WHERE relname IN ('jwt_issuers', 'jwt_jwks_fetches') ORDER BY relname;")
    T.check(all(r[1] == '0' for r in scans) and len(scans) == 2,
            'hardening: ... and no round read the issuers or the queue whole', str(scans))
    s.query("DELETE FROM jwt_issuers WHERE issuer LIKE 'https://queue-%';")
    for iss in (a, b, long_iss):
        s.query('DELETE FROM jwt_issuers WHERE issuer = %s;' % q(iss))


def missing_database(T, initdb, pg_start, pg_stop, session, wait_until, port):
    """jwt.database names no database: the worker says so once (one FATAL
    as it first connects, one LOG), instead of a FATAL every 10 s, and
    starts when the database is made and the configuration reloaded."""
    import os
    import shutil
    import tempfile
    top = tempfile.mkdtemp(prefix='jwt-jwks-nodb.')
    if os.geteuid() == 0:
        shutil.chown(top, 'postgres', 'postgres')
    data = os.path.join(top, 'data')
    log = os.path.join(top, 'server.log')
    try:
        initdb(data, "shared_preload_libraries = 'jwt'\njwt.database = 'jwt_not_yet'\n")
        pg_start(data, top, port, log)
        time.sleep(25)
        with open(log, errors='replace') as f:
            text = f.read()
        fatals = text.count('database "jwt_not_yet" does not exist')
        T.check(fatals == 1, 'missing database: in 25 s, the worker failed to connect once, not every 10 s',
                '%d lines' % fatals)
        s = session('host=%s port=%d dbname=postgres user=postgres' % (top, port))
        s.query('CREATE DATABASE jwt_not_yet; SELECT pg_reload_conf();')
        T.check(wait_until(lambda: s.value("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'jwt jwks' "
                                           "AND datname = 'jwt_not_yet';") == '1', 20),
                'missing database: the worker connects once it is made')
        s.close()
    finally:
        pg_stop(data)
        shutil.rmtree(top, ignore_errors=True)
