#!/usr/bin/python3
"""Concurrent refreshes of one refresh token: exactly one wins.

    /usr/bin/python3 test/concurrency/refresh_race.py [--clients N] [--rounds N]

Connects with the usual PG* environment variables as a superuser, and works
in a database of its own (jwt_concurrency, dropped at the end).

Each round issues a pair, then starts CLIENTS psql sessions that each call
jwt_refresh() on the same refresh token.  They are held at a barrier (an
advisory lock this script holds until every client waits on it) and let go
together.  Checks per round: exactly one client got a new pair; every other
failed cleanly with JW010 (another session holds the family, the token was
already used, or its family is revoked); no deadlock (40P01), no other
error, no client still running after the timeout; and in the table, the
token was rotated once: one used token, one successor.

Then rounds of CLIENTS different families refreshed at once: every one
succeeds (a family's lock does not block another family).

Ends with "N passed, M failed"; exits 1 when anything failed.
"""

import argparse
import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'stress'))
from stresslib import Tally  # noqa: E402

DB = 'jwt_concurrency'
LOCK = 424242
TIMEOUT = 60

T = Tally()
check = T.check


def psql(sql, db=DB):
    p = subprocess.run(['psql', '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-d', db, '-c', sql],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT)
    if p.returncode != 0:
        raise RuntimeError(p.stderr.decode())
    return p.stdout.decode().strip()


def waiting_clients():
    return int(psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %d "
                    "AND NOT granted" % LOCK))


def won(rc, out):
    return rc == 0 and any(line.startswith('OK ') for line in out.splitlines())


def race(tokens):
    """Run one client per token, released together; [(rc, stdout, stderr)]."""
    holder = subprocess.Popen(['psql', '-X', '-q', '-d', DB], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    holder.stdin.write('SELECT pg_advisory_lock(%d);\n' % LOCK)
    holder.stdin.flush()
    deadline = time.time() + TIMEOUT
    while psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %d AND granted"
               % LOCK) != '1':
        if time.time() > deadline:
            raise RuntimeError('the barrier lock was never taken')
        time.sleep(0.02)

    clients = []
    for tok in tokens:
        sql = ("SELECT pg_advisory_lock_shared(%d) IS NULL; "
               "SELECT 'OK ' || (jwt_decode_unverified(refresh_token) ->> 'jti') FROM jwt_refresh('%s')"
               % (LOCK, tok))
        clients.append(subprocess.Popen(
            ['psql', '-X', '-A', '-t', '-q', '-v', 'VERBOSITY=verbose', '-d', DB, '-c', sql],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    while waiting_clients() < len(tokens):
        if time.time() > deadline:
            break
        time.sleep(0.02)
    check(waiting_clients() == len(tokens), 'all %d clients wait at the barrier' % len(tokens))
    holder.stdin.write('SELECT pg_advisory_unlock(%d);\n\\q\n' % LOCK)
    holder.stdin.flush()

    results = []
    for c in clients:
        try:
            out, err = c.communicate(timeout=max(1, deadline + TIMEOUT - time.time()))
            results.append((c.returncode, out, err))
        except subprocess.TimeoutExpired:
            if not any(r[2] == 'timed out' for r in results):
                print('a client is stuck; the server says:\n' + psql(
                    "SELECT string_agg(format('%s %s %s/%s %s: %s', pid, backend_type, wait_event_type, "
                    "wait_event, state, left(query, 80)), E'\\n') FROM pg_stat_activity "
                    "WHERE pid <> pg_backend_pid() AND datname IS NOT NULL"), flush=True)
            c.kill()
            c.communicate()
            results.append((None, '', 'timed out'))
    try:
        holder.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        holder.kill()
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--clients', type=int, default=8)
    ap.add_argument('--rounds', type=int, default=10)
    args = ap.parse_args()

    psql('DROP DATABASE IF EXISTS %s' % DB, db='postgres')
    psql('CREATE DATABASE %s' % DB, db='postgres')
    try:
        psql('CREATE EXTENSION jwt')
        psql("SELECT jwt_key_generate('ES256')")
        kinds = {}
        for r in range(args.rounds):
            tok = psql("SELECT refresh_token FROM jwt_issue_pair('{\"sub\": \"race-%d\"}')" % r)
            results = race([tok] * args.clients)
            wins = [out for rc, out, err in results if won(rc, out)]
            others = [(rc, err) for rc, out, err in results if not won(rc, out)]
            check(len(wins) == 1, 'round %d: exactly one refresh wins' % r, '%d won' % len(wins))
            for rc, err in others:
                m = re.search(r'ERROR:\s+([0-9A-Z]{5}): ([^\n]*)', err)
                code, msg = (m.group(1), m.group(2)) if m else (None, err.strip()[:200])
                kinds[msg] = kinds.get(msg, 0) + 1
                check(code == 'JW010', 'round %d: a losing refresh fails with JW010' % r,
                      '%s %s' % (code, msg))
            jti = psql("SELECT jwt_decode_unverified('%s') ->> 'jti'" % tok)
            state = psql("SELECT count(*) FILTER (WHERE used_at IS NOT NULL) || ' used, ' || count(*) || ' in family' "
                         "FROM jwt_refresh_tokens WHERE family = (SELECT family FROM jwt_refresh_tokens "
                         "WHERE jti = '%s')" % jti)
            check(state == '1 used, 2 in family', 'round %d: the token was rotated once' % r, state)

        for r in range(3):
            toks = [psql("SELECT refresh_token FROM jwt_issue_pair('{\"sub\": \"many-%d-%d\"}')" % (r, i))
                    for i in range(args.clients)]
            results = race(toks)
            wins = sum(1 for rc, out, err in results if won(rc, out))
            check(wins == args.clients, 'round %d of separate families: all %d refresh' % (r, args.clients),
                  '%d did' % wins)
        print('losing refreshes, by message: %s' % ', '.join('%s: %d' % kv for kv in sorted(kinds.items())))
    except Exception as e:  # the suite must still print its tally
        check(False, 'the suite ran to the end', '%s: %s' % (type(e).__name__, e))
    finally:
        psql('DROP DATABASE IF EXISTS %s' % DB, db='postgres')
    return T.finish()


if __name__ == '__main__':
    sys.exit(main())
