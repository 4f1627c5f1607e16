#!/usr/bin/python3
"""Mutation stress suite: mutated genuine tokens through jwt_verify.

    /usr/bin/python3 test/stress/mutation.py [--seed S] [--per-alg N] [--ascii-per-alg N]
    /usr/bin/python3 test/stress/mutation.py --seed S --only PASS:TAG:I     (reproduce one)

Connects with the usual PG* environment variables (superuser not needed,
except CREATE DATABASE for the SQL_ASCII pass, which is skipped without it).

For each of 14 variants (HS256/384/512, RS256/384/512, PS256/384/512,
ES256/384/512, EdDSA with Ed25519 and with Ed448) it makes 6 genuine tokens,
then N mutations of them (1 to 3 edits each: character replace / insert /
delete with base64url, '.', near-miss, ASCII, and non-ASCII characters;
byte edits inside a decoded segment; non-canonical last characters, padding,
the standard base64 alphabet; dropping, duplicating, reordering, emptying,
repeating segments; segments swapped in from other tokens; crafted headers
such as "alg":"none"; truncation and extension), all inside the database
(mutation.sql), from a seeded PRNG.  Each mutated token goes through
jwt_verify (4 ways: JWK / JWK + allow-list / JWKS / PEM or bytea), and also
jwt_is_valid, jwt_header and jwt_decode_unverified.

One check per mutated token:
  changed token   -> jwt_verify rejects it with JW001..JW010 (an acceptance
                     is a forgery); jwt_is_valid says false and never raises;
                     jwt_header / jwt_decode_unverified return or raise JW*;
  unchanged token -> accepted everywhere (the harness's control);
  token equal to another genuine token ("pool") -> accepted or JW*, and
                     jwt_is_valid agrees.
Plus: every genuine token verifies in every mode; fixed forgery attempts
(alg none, HMAC keyed with the public key's text, another RSA key, a token
over 1 MB) are rejected; an Ed25519 (R, S+L) twin is rejected; and the
backend survives: the same backend pid from first to last statement (a crash
of ANY backend ends every session) and pg_postmaster_start_time() unchanged
(which alone would miss a crash: a crash-restart keeps it).

A second pass runs in a SQL_ASCII database made for the purpose, where text
can hold any byte but NUL (invalid UTF-8 included).

Ends with "N passed, M failed"; exits 1 when anything failed.
"""

import argparse
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stresslib import HERE, Session, SessionLost, SQLError, Tally, key_variables, wait_for_server  # noqa: E402

TAGS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512',
        'ES256', 'ES384', 'ES512', 'EdDSA', 'EdDSA-Ed448']
CODES = ['JW001', 'JW002', 'JW003', 'JW009']


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seed', type=int, default=int(os.environ.get('JWT_STRESS_SEED', '20240601')),
                    help='PRNG seed (default: $JWT_STRESS_SEED or 20240601)')
    ap.add_argument('--per-alg', type=int, default=int(os.environ.get('JWT_STRESS_PER_ALG', '8000')),
                    help='mutations per variant in the UTF8 pass (default 8000: 112,000 in all)')
    ap.add_argument('--ascii-per-alg', type=int, default=int(os.environ.get('JWT_STRESS_ASCII_PER_ALG', '1000')),
                    help='mutations per variant in the SQL_ASCII pass (0: skip the pass)')
    ap.add_argument('--tags', default=','.join(TAGS), help='variants to run (comma list)')
    ap.add_argument('--only', metavar='PASS:TAG:I', help='re-make and re-check one mutation, verbosely')
    ap.add_argument('--keep', action='store_true', help='keep schema stress_mutation (and its results)')
    ap.add_argument('--write-base-tokens', action='store_true',
                    help='sign new base tokens into test/stress/base_tokens.txt, and stop')
    return ap.parse_args()


BASE_TOKENS = os.path.join(HERE, 'base_tokens.txt')


def variables(pinned=True):
    """psql variables: the fixture keys, and the pinned base tokens (if any)."""
    kv = key_variables()
    kv['base_tokens'] = ''
    if pinned and os.path.exists(BASE_TOKENS):
        with open(BASE_TOKENS, encoding='ascii') as f:
            kv['base_tokens'] = f.read()
    return kv


def setup(sess):
    """Create schema stress_mutation; return which base tokens are in use."""
    sess.query('SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS jwt;')
    with open(os.path.join(HERE, 'mutation.sql'), encoding='ascii') as f:
        sess.query(f.read())
    return sess.value('SELECT origin FROM stress_mutation.base_origin;')


def write_base_tokens():
    """Sign a fresh set of base tokens and write them to base_tokens.txt."""
    sess = Session(variables=variables(pinned=False))
    setup(sess)
    rows = sess.rows("SELECT tag, n, foreign_key, token FROM stress_mutation.base "
                     "ORDER BY foreign_key, (SELECT ord FROM stress_mutation.alg a WHERE a.tag = base.tag), tag, n;")
    sess.query('DROP SCHEMA stress_mutation CASCADE;')
    sess.close()
    with open(BASE_TOKENS, 'w', encoding='ascii') as f:
        f.write('# Base tokens of test/stress/mutation.py, signed once with test/fixtures/keys\n'
                '# (ECDSA and PSS signatures are randomized: pinning them keeps every mutation\n'
                '# reproducible from the seed).  Regenerate after changing the keys or the\n'
                '# claims in mutation.sql:  /usr/bin/python3 test/stress/mutation.py --write-base-tokens\n'
                '# tag<TAB>n<TAB>foreign<TAB>token\n')
        for tag, n, foreign, token in rows:
            f.write('%s\t%s\t%s\t%s\n' % (tag, n, 'true' if foreign == 't' else 'false', token))
    print('wrote %d tokens to %s' % (len(rows), BASE_TOKENS))
    return 0


def say_origin(pass_name, origin):
    if origin == 'pinned':
        print('[%s] base tokens: pinned, from test/stress/base_tokens.txt' % pass_name, flush=True)
    elif origin == 'stale':
        print('[%s] NOTE: test/stress/base_tokens.txt does not fit the keys or the claims any more: '
              'tokens signed now are used, so ES*/PS* mutations will differ from run to run; refresh it: '
              '/usr/bin/python3 test/stress/mutation.py --write-base-tokens' % pass_name, flush=True)
    else:
        print('[%s] base tokens: signed now (no test/stress/base_tokens.txt: ES*/PS* mutations will differ '
              'from run to run)' % pass_name, flush=True)


def sessions_alive(tally, sess, pid0, pst0, what):
    try:
        pid, pst = sess.rows('SELECT pg_backend_pid(), pg_postmaster_start_time();')[0]
    except SessionLost as e:
        tally.check(False, '%s: backend survived' % what, str(e))
        tally.check(False, '%s: postmaster not restarted' % what, 'session lost')
        return
    tally.check(pid == pid0, '%s: same backend pid at the end' % what, '%s then %s' % (pid0, pid))
    tally.check(pst == pst0, '%s: pg_postmaster_start_time() unchanged' % what, '%s then %s' % (pst0, pst))


class Crashed(Exception):
    """A backend died; the crashing mutation has been looked for."""


def work_session(dbname):
    """A session on a server that may be recovering from a crash, search_path set."""
    s = wait_for_server(dbname)
    if s is not None:
        s.query("SELECT set_config('search_path', 'stress_mutation, ' || current_setting('search_path'), false);")
    return s


def locate_crash(seed, pass_name, tag, count, dbname):
    """Bisect mutations 0..count-1 of one variant for the one that kills the backend."""
    print('locating the crashing mutation of %s %s by bisection (each crash waits for the restart)...'
          % (pass_name, tag), flush=True)

    def crashes(first, n):
        s = work_session(dbname)
        if s is None:
            raise Crashed('the server did not come back')
        try:
            s.query('SELECT stress_mutation.run(%d, %s, %s, %d, %d);' % (seed, lit(pass_name), lit(tag), first, n))
            return False
        except SessionLost:
            return True
        finally:
            s.close()

    lo, n = 0, count
    while n > 1:
        half = n // 2
        if crashes(lo, half):
            n = half
        else:
            lo, n = lo + half, n - half
    if not crashes(lo, 1):
        print('  the crash does not come back with one mutation alone (state built up by earlier calls?); '
              'the whole run crashes: --only is no use, run the variant again with --tags %s' % tag)
        return None
    s = work_session(dbname)
    hexed, ops, mode = s.rows("SELECT encode(convert_to(token, getdatabaseencoding()), 'hex'), ops, mode "
                              "FROM stress_mutation.mutate_one(%d, %s, %s, %d);"
                              % (seed, lit(pass_name), lit(tag), lo))[0]
    s.close()
    print('  crashing mutation: %s:%s:%d (edits %s, verify mode %s)\n  token (hex of its bytes): %s\n'
          '  reproduce: /usr/bin/python3 test/stress/mutation.py --seed %d --only %s:%s:%d'
          % (pass_name, tag, lo, ops, mode, hexed, seed, pass_name, tag, lo), flush=True)
    return lo


def run_pass(tally, sess, pass_name, seed, per_alg, tags, dbname=None):
    """Sanity, then the mutation loops; returns the number of tokens run."""
    bad = sess.rows("SELECT tag, n, mode, v, iv FROM stress_mutation.sanity() WHERE v <> '00000' OR iv <> 't';")
    total = sess.value('SELECT count(*) FROM stress_mutation.base WHERE NOT foreign_key;')
    for r in bad:
        tally.check(False, '%s: genuine token %s #%s verifies in mode %s' % (pass_name, r[0], r[1], r[2]),
                    'jwt_verify %s, jwt_is_valid %s' % (r[3], r[4]))
    tally.add(int(total) * 4 - len(bad), 0)
    print('[%s] %d genuine tokens verify in all 4 modes: %s' % (pass_name, int(total),
          'yes' if not bad else 'NO (%d failures)' % len(bad)), flush=True)
    n = 0
    for tag in tags:
        t = time.time()
        try:
            nbad = int(sess.value('SELECT stress_mutation.run(%d, %s, %s, 0, %d);'
                                  % (seed, lit(pass_name), lit(tag), per_alg)))
        except SessionLost as e:
            tally.check(False, '[%s] %s: the backend survived its mutations' % (pass_name, tag), str(e))
            locate_crash(seed, pass_name, tag, per_alg, dbname)
            raise Crashed('a backend crashed')
        n += per_alg
        print('[%s] %-12s %7d mutations  %5.1f s  %s' % (pass_name, tag, per_alg, time.time() - t,
              'ok' if nbad == 0 else '%d FAILED' % nbad), flush=True)
    return n


def lit(s):
    return "'" + s.replace("'", "''") + "'"


def report(tally, sess, pass_name):
    """Tallies and failures of one pass, from its result table."""
    print('\n[%s] jwt_verify outcome by variant (each row: mutated tokens)' % pass_name)
    hdr = '%-12s %8s %9s %5s ' % ('variant', 'tokens', 'unchanged', 'pool') + \
          ' '.join('%7s' % c for c in CODES) + ' %8s %8s %6s' % ('JW other', 'accepted', 'FAILED')
    print(hdr)
    rows = sess.rows(
        "SELECT tag, count(*), count(*) FILTER (WHERE outcome = 'unchanged'), count(*) FILTER (WHERE outcome = 'pool'), "
        + ', '.join("count(*) FILTER (WHERE outcome = 'changed' AND v = '%s')" % c for c in CODES)
        + ", count(*) FILTER (WHERE outcome = 'changed' AND v LIKE 'JW%%' AND v NOT IN (%s))"
        % ', '.join("'%s'" % c for c in CODES)
        + ", count(*) FILTER (WHERE outcome <> 'unchanged' AND v = '00000'), count(*) FILTER (WHERE NOT ok)"
        + " FROM stress_mutation.result WHERE pass = %s GROUP BY tag"
        " ORDER BY (SELECT ord FROM stress_mutation.alg a WHERE a.tag = result.tag);" % lit(pass_name))
    tot = [0] * 10
    for r in rows:
        nums = [int(x) for x in r[1:]]
        tot = [a + b for a, b in zip(tot, nums)]
        print('%-12s %8d %9d %5d ' % (r[0], nums[0], nums[1], nums[2]) + ' '.join('%7d' % x for x in nums[3:7])
              + ' %8d %8d %6d' % tuple(nums[7:10]))
    print('%-12s %8d %9d %5d ' % ('total', tot[0], tot[1], tot[2]) + ' '.join('%7d' % x for x in tot[3:7])
          + ' %8d %8d %6d' % tuple(tot[7:10]))

    print('\n[%s] tally by SQLSTATE, all tokens (00000 = accepted; t/f = jwt_is_valid\'s answer)' % pass_name)
    for col, fn in (('v', 'jwt_verify'), ('iv', 'jwt_is_valid'), ('h', 'jwt_header'),
                    ('d', 'jwt_decode_unverified')):
        r = sess.rows('SELECT %s, count(*) FROM stress_mutation.result WHERE pass = %s GROUP BY 1 ORDER BY 1;'
                      % (col, lit(pass_name)))
        print('  %-22s %s' % (fn, '  '.join('%s %d' % (x[0], int(x[1])) for x in r)))
    acc = sess.value("SELECT count(*) FROM stress_mutation.result WHERE pass = %s AND outcome = 'unchanged' "
                     "AND v = '00000';" % lit(pass_name))
    forged = sess.value("SELECT count(*) FROM stress_mutation.result WHERE pass = %s AND outcome = 'changed' "
                        "AND v = '00000';" % lit(pass_name))
    print('  accepted unchanged tokens: %s; accepted CHANGED tokens (forgeries): %s' % (acc, forged))

    print('\n[%s] jwt_verify outcome by first edit (changed tokens)' % pass_name)
    r = sess.rows("SELECT op, sum(c), string_agg(v || ' ' || c, ', ' ORDER BY v) FROM "
                  "(SELECT split_part(ops, '+', 1) op, v, count(*) c FROM stress_mutation.result "
                  " WHERE pass = %s AND outcome = 'changed' GROUP BY 1, 2) x GROUP BY 1 ORDER BY 1;"
                  % lit(pass_name))
    for x in r:
        print('  %-20s %7d  %s' % (x[0], int(x[1]), x[2]))

    fails = sess.rows("SELECT tag, i, ops, outcome, v, iv, h, d, "
                      "encode(convert_to(token, getdatabaseencoding()), 'hex'), coalesce(msg, '') "
                      "FROM stress_mutation.result WHERE pass = %s AND NOT ok "
                      "ORDER BY (SELECT ord FROM stress_mutation.alg a WHERE a.tag = result.tag), i LIMIT 25;"
                      % lit(pass_name))
    nfail = int(sess.value('SELECT count(*) FROM stress_mutation.result WHERE pass = %s AND NOT ok;'
                           % lit(pass_name)))
    for f in fails:
        print('FAIL: [%s] %s mutation %s (%s), %s token: jwt_verify %s, jwt_is_valid %s, jwt_header %s, '
              'jwt_decode_unverified %s%s\n      token (hex): %s%s'
              % (pass_name, f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7],
                 ('; ' + f[9].replace('\n', ' ')) if f[9] else '',
                 f[8][:400], '...' if len(f[8]) > 400 else ''))
    if nfail > len(fails):
        print('FAIL: ... and %d more in pass %s' % (nfail - len(fails), pass_name))
    total = int(sess.value('SELECT count(*) FROM stress_mutation.result WHERE pass = %s;' % lit(pass_name)))
    tally.add(total - nfail, nfail)       # one check per mutated token (its FAILs are printed above)
    return nfail


def reproduce(args):
    pass_name, tag, i = args.only.split(':')
    i = int(i)
    tally = Tally()
    kv = variables()
    ascii_db = None
    if pass_name == 'sql_ascii':
        ascii_db = 'jwt_stress_sqlascii_%d' % os.getpid()
        admin = Session()
        admin.query("CREATE DATABASE %s ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;"
                    % ascii_db)
        sess = Session(dbname=ascii_db, variables=kv)
    else:
        sess = Session(variables=kv)
        enc = sess.value('SELECT getdatabaseencoding();')
        if pass_name != ('utf8' if enc == 'UTF8' else enc.lower()):
            print('note: pass %s, but this database is %s' % (pass_name, enc))
    setup(sess)
    hexed = sess.value("SELECT encode(convert_to(token, getdatabaseencoding()), 'hex') "
                       "FROM stress_mutation.mutate_one(%d, %s, %s, %d);" % (args.seed, lit(pass_name), lit(tag), i))
    try:
        r = sess.rows("SELECT m.base_n, m.mode, m.ops, encode(convert_to(m.token, getdatabaseencoding()), 'hex'), "
                      "c.v, c.iv, c.h, c.d, coalesce(c.msg, ''), "
                      "CASE WHEN m.token = b.token THEN 'unchanged' WHEN m.token = ANY(stress_mutation.genuine()) "
                      "THEN 'pool' ELSE 'changed' END "
                      "FROM stress_mutation.mutate_one(%d, %s, %s, %d) m "
                      "JOIN stress_mutation.base b ON b.tag = %s AND b.n = m.base_n, "
                      "LATERAL stress_mutation.check_token(m.token, "
                      "(SELECT a FROM stress_mutation.alg a WHERE a.tag = %s), m.mode) c;"
                      % (args.seed, lit(pass_name), lit(tag), i, lit(tag), lit(tag)))[0]
    except SessionLost as e:
        print('seed %d, pass %s, variant %s, mutation %d\n  token (hex of its bytes): %s'
              % (args.seed, pass_name, tag, i, hexed))
        tally.check(False, 'mutation %s:%s:%d: the backend survived' % (pass_name, tag, i), str(e))
        if not args.keep:
            s = wait_for_server(ascii_db, timeout=60)
            if s:
                s.query('DROP SCHEMA IF EXISTS stress_mutation CASCADE;', allow_error=True)
                s.close()
        if ascii_db and not args.keep:
            s = wait_for_server(None, timeout=60)
            if s:
                s.query('DROP DATABASE IF EXISTS %s WITH (FORCE);' % ascii_db, allow_error=True)
                s.close()
        return tally.finish()
    vk = sess.value("SELECT coalesce(vk[%d], 'hs_secret as bytea') FROM stress_mutation.alg WHERE tag = %s;"
                    % (int(r[1]) + 1, lit(tag)))
    print('seed %d, pass %s, variant %s, mutation %d' % (args.seed, pass_name, tag, i))
    print('  base token #%s, verify mode %s: key %s, algorithms %s' % (
        r[0], r[1], vk, "ARRAY['%s']" % tag.split('-')[0] if r[1] in ('1', '3') else 'NULL'))
    print('  edits: %s -> %s token' % (r[2], r[9]))
    print('  token (hex of its bytes): %s' % r[3])
    print('  jwt_verify %s, jwt_is_valid %s, jwt_header %s, jwt_decode_unverified %s' % tuple(r[4:8]))
    if r[8]:
        print('  unexpected error: %s' % r[8])
    ok = sess.value('SELECT stress_mutation.judge(%s);' % ', '.join(lit(x) for x in [r[9]] + r[4:8]))
    tally.check(ok == 't', 'mutation %s:%s:%d' % (pass_name, tag, i))
    if args.keep:
        print('  schema stress_mutation kept%s; in SQL:\n'
              '    SELECT m.*, c.* FROM stress_mutation.mutate_one(%d, %s, %s, %d) m,\n'
              '      LATERAL stress_mutation.check_token(m.token, (SELECT a FROM stress_mutation.alg a '
              'WHERE a.tag = %s), m.mode) c;'
              % (' (database %s)' % ascii_db if ascii_db else '', args.seed, lit(pass_name), lit(tag), i, lit(tag)))
    else:
        sess.query('DROP SCHEMA stress_mutation CASCADE;')
    sess.close()
    if ascii_db and not args.keep:
        admin.query('DROP DATABASE %s;' % ascii_db)
    if ascii_db:
        admin.close()
    return tally.finish()


def main():
    args = parse_args()
    if args.write_base_tokens:
        return write_base_tokens()
    if args.only:
        return reproduce(args)
    tags = [t for t in args.tags.split(',') if t]
    for t in tags:
        if t not in TAGS:
            sys.exit('unknown variant %s (have %s)' % (t, ', '.join(TAGS)))
    tally = Tally()
    t_start = time.time()
    print('mutation suite: seed %d, %d mutations per variant x %d variants (UTF8 pass), %d per variant '
          '(SQL_ASCII pass)' % (args.seed, args.per_alg, len(tags), args.ascii_per_alg), flush=True)
    kv = variables()
    main_sess = Session(variables=kv, appname='jwt-stress-mutation')
    ascii_db = None
    ascii_sess = None
    try:
        pid0, pst0 = main_sess.rows('SELECT pg_backend_pid(), pg_postmaster_start_time();')[0]
        enc = main_sess.value('SELECT getdatabaseencoding();')
        pass_name = 'utf8' if enc == 'UTF8' else enc.lower()
        if enc != 'UTF8':
            print('note: this database is %s, not UTF8: the first pass has no non-ASCII code points' % enc)
        say_origin(pass_name, setup(main_sess))
        ntok = run_pass(tally, main_sess, pass_name, args.seed, args.per_alg, tags)

        if args.ascii_per_alg > 0:
            ascii_db = 'jwt_stress_sqlascii_%d' % os.getpid()
            out = main_sess.query("CREATE DATABASE %s ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' "
                                  "TEMPLATE template0;" % ascii_db, allow_error=True)
            if any('ERROR' in l for l in out):
                print('SKIP: SQL_ASCII pass (cannot create a database: %s)' % ' '.join(out))
                ascii_db = None
            else:
                ascii_sess = Session(dbname=ascii_db, variables=kv, appname='jwt-stress-mutation')
                apid0, apst0 = ascii_sess.rows('SELECT pg_backend_pid(), pg_postmaster_start_time();')[0]
                say_origin('sql_ascii', setup(ascii_sess))
                ntok += run_pass(tally, ascii_sess, 'sql_ascii', args.seed, args.ascii_per_alg, tags, ascii_db)

        # fixed forgery attempts and signature twins (UTF8 database)
        rows = main_sess.rows('SELECT name, expected, got, got ~ expected FROM stress_mutation.attacks();')
        bad = [r for r in rows if r[3] != 't']
        for r in bad:
            tally.check(False, 'attack: %s' % r[0], 'expected %s, got %s' % (r[1], r[2]))
        tally.add(len(rows) - len(bad), 0)
        print('\nfixed forgery attempts: %d, rejected as expected: %d' % (len(rows), len(rows) - len(bad)))
        got = {}
        for r in rows:
            got[r[2]] = got.get(r[2], 0) + 1
        print('  by SQLSTATE: %s' % '  '.join('%s %d' % kv_ for kv_ in sorted(got.items())))
        for name, counted, accepted in main_sess.rows('SELECT * FROM stress_mutation.probe();'):
            if counted == 't':
                tally.check(not accepted.startswith('yes'), 'probe: %s rejected' % name, 'accepted')
                print('  probe: %-32s accepted: %s' % (name, accepted))
            else:
                print('  probe: %-32s accepted: %s  (information only: ECDSA is malleable, '
                      'RFC 7518 does not ask for low s)' % (name, accepted))

        nfail = report(tally, main_sess, pass_name)
        if ascii_sess:
            nfail += report(tally, ascii_sess, 'sql_ascii')

        print()
        sessions_alive(tally, main_sess, pid0, pst0, pass_name + ' session')
        if ascii_sess:
            sessions_alive(tally, ascii_sess, apid0, apst0, 'sql_ascii session')
            ascii_sess.close()
        if nfail:
            print('reproduce one:  /usr/bin/python3 test/stress/mutation.py --seed %d --only PASS:TAG:I'
                  % args.seed)
        if not args.keep:
            main_sess.query('DROP SCHEMA stress_mutation CASCADE;')
        if ascii_db:
            main_sess.query('DROP DATABASE IF EXISTS %s WITH (FORCE);' % ascii_db)
            ascii_db = None
        main_sess.close()
        print('%d mutated tokens in %.1f s' % (ntok, time.time() - t_start))
    except (SessionLost, SQLError, Crashed) as e:
        tally.check(False, 'the suite ran to the end', '%s: %s' % (type(e).__name__, e))
        # clean up, best effort, on a fresh connection
        for sess in (ascii_sess, main_sess):
            if sess:
                sess.close()
        try:
            s = wait_for_server(None, timeout=60)
            if ascii_db:
                s.query('DROP DATABASE IF EXISTS %s WITH (FORCE);' % ascii_db, allow_error=True)
            if not args.keep:
                s.query('DROP SCHEMA IF EXISTS stress_mutation CASCADE;', allow_error=True)
            s.close()
        except Exception:
            pass
    return tally.finish()


if __name__ == '__main__':
    sys.exit(main())
