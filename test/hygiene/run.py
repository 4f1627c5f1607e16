#!/usr/bin/python3
"""Secret hygiene suite (SECURITY.md item 19).

    /usr/bin/python3 test/hygiene/run.py SERVER_LOG

The cluster must run with shared_preload_libraries = pg_stat_statements,
log_statement = all and log_min_error_statement = error (scripts/test.sh
starts it so); SERVER_LOG is its log file, readable by us.

Fresh keys are made here, loaded with \\copy (whose data the server never
logs) and used by hygiene.sql, which provokes every kind of error at top
level.  Afterwards no private key, secret or token may appear in the server
log or in pg_stat_statements.  A canary statement that does hold a marker
proves that the log and pg_stat_statements were both being written and that
the search finds what is there.
"""

import csv
import os
import re
import secrets
import subprocess
import sys
import tempfile

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwcrypto import jwk as jc_jwk

HERE = os.path.dirname(os.path.abspath(__file__))
PSQL = ['psql', '-X', '-A', '-t', '-q']

passed = 0
failed = 0


def check(ok, name, detail=''):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print('FAIL: %s%s' % (name, (': ' + detail) if detail else ''), flush=True)


def psql(sql, check_rc=True):
    p = subprocess.run(PSQL + ['-v', 'ON_ERROR_STOP=1'], input=sql.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    if check_rc and p.returncode != 0:
        raise RuntimeError(p.stderr.decode())
    return p.stdout.decode()


def pem(key, private):
    if private:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def make_keys():
    """Rows of hygiene.key: name, alg, priv, pub, priv_jwk, encrypted."""
    rows = []
    for name, alg, key in (('rsa', 'RS256', rsa.generate_private_key(65537, 2048)),
                           ('ec', 'ES256', ec.generate_private_key(ec.SECP256R1())),
                           ('ed25519', 'EdDSA', ed25519.Ed25519PrivateKey.generate())):
        priv = pem(key, True)
        enc = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.BestAvailableEncryption(secrets.token_bytes(16).hex().encode())
                                ).decode()
        jwk = jc_jwk.JWK.from_pem(priv.encode()).export_private()
        rows.append([name, alg, priv, pem(key, False), jwk, enc])
    for name in ('hmac', 'hmac2'):
        secret = secrets.token_hex(32)
        jwk = jc_jwk.JWK(kty='oct', k=jc_jwk.base64url_encode(secret.encode())).export()
        rows.append([name, 'HS256', secret, secret, jwk, None])
    return rows


def needles(rows, tokens):
    """(what, string) pairs that must appear nowhere."""
    out = []
    for name, _alg, priv, _pub, jwk, enc in rows:
        if priv == 'table key':
            pass
        elif priv.startswith('-----BEGIN'):
            # every full line of the PEM body: a leak of any part is found
            body = [line for line in priv.splitlines() if line and not line.startswith('-----')]
            out += [('%s private PEM line %d' % (name, i + 1), line)
                    for i, line in enumerate(body) if len(line) >= 32]
            out += [('%s encrypted PEM line %d' % (name, i + 1), line)
                    for i, line in enumerate(enc.splitlines())
                    if line and not line.startswith('-----') and len(line) >= 32]
        else:
            out.append(('%s secret' % name, priv))
        for member in ('d', 'p', 'q', 'dp', 'dq', 'qi', 'k'):
            m = re.search(r'"%s"\s*:\s*"([^"]+)"' % member, jwk)
            if m and len(m.group(1)) >= 16:
                out.append(('%s JWK member %s' % (name, member), m.group(1)))
    for name, token in tokens:
        out.append(('token %s' % name, token))
        out.append(('token %s signature' % name, token.split('.')[2]))
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit('usage: run.py SERVER_LOG')
    logfile = sys.argv[1]

    settings = dict(line.split('|', 1) for line in psql(
        "SELECT name, setting FROM pg_settings WHERE name IN "
        "('log_statement', 'log_min_error_statement', 'shared_preload_libraries')").split())
    check(settings.get('log_statement') == 'all', 'log_statement is all', str(settings))
    check(settings.get('log_min_error_statement') == 'error',
          'log_min_error_statement is error', str(settings))
    check('pg_stat_statements' in settings.get('shared_preload_libraries', ''),
          'pg_stat_statements is loaded', str(settings))

    rows = make_keys()
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)                # the server does not read it: \copy does
        keyfile = os.path.join(tmp, 'keys.csv')
        with open(keyfile, 'w', newline='') as f:
            csv.writer(f).writerows(rows)

        canary = 'hygiene_canary_' + secrets.token_hex(8)
        psql('CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset();')
        script_path = os.path.join(HERE, 'hygiene.sql')
        with open(script_path) as f:
            script = f.read()
        expected = re.findall(r'^-- expect (\S+):', script, re.M)
        with open(keyfile, 'rb') as keys:       # read by \copy ... FROM pstdin
            p = subprocess.run(PSQL + ['-f', script_path], stdin=keys,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        err = p.stderr.decode('utf-8', 'replace')
        out = p.stdout.decode('utf-8', 'replace')
    # a canary that must be found, in both places
    psql('CREATE TABLE hygiene.%s (); SELECT count(*) FROM hygiene.%s;' % (canary, canary))

    # the workload did what it meant to: tokens made, every error raised
    counts = out.split()[0] if out.split() else ''
    check(re.fullmatch(r'(\d+)\|\1', counts) is not None and counts != '0|0',
          'every token verifies with its key', repr(out[:200]))
    got = re.findall(r'^psql:[^\n]*ERROR:\s+([0-9A-Z]{5}):', err, re.M)
    check(len(got) == len(expected), 'one error per expected failure',
          'expected %d, got %d:\n%s' % (len(expected), len(got), '\n'.join(
              line for line in err.splitlines() if 'ERROR' in line)))
    for i, state in enumerate(expected):
        check(i < len(got) and got[i] == state, 'failure %d raises %s' % (i + 1, state),
              got[i] if i < len(got) else 'missing')

    tokens = [tuple(line.split('|', 1)) for line in
              psql('SELECT name, token FROM hygiene.token ORDER BY name').split()]
    check(len(tokens) >= 13, 'tokens kept for the search', str(len(tokens)))
    # private keys the key table holds, made by jwt_key_generate
    for line in psql("SELECT kid || '|' || private_jwk::text FROM jwt_keys "
                     "WHERE kid LIKE 'hygiene-%'").splitlines():
        kid, jwk = line.split('|', 1)
        rows.append(['table ' + kid, None, 'table key', None, jwk, ''])
    check(sum(1 for r in rows if r[2] == 'table key') == 4, 'table keys kept for the search')
    pgss = psql("SELECT query FROM pg_stat_statements")
    with open(logfile, encoding='utf-8', errors='replace') as f:
        log = f.read()

    check(canary in log, 'canary statement is in the server log')
    check(canary in pgss, 'canary statement is in pg_stat_statements')
    check(re.search(r'ERROR:\s+JW002', log) is not None and
          re.search(r'statement: SELECT jwt_verify', log) is not None,
          'failing statements are in the server log with their errors')

    for what, needle in needles(rows, tokens):
        check(needle not in log, 'server log holds no %s' % what)
        check(needle not in pgss, 'pg_stat_statements holds no %s' % what)

    psql("DROP SCHEMA hygiene CASCADE; DELETE FROM jwt_keys WHERE kid LIKE 'hygiene-%';")
    print('%d passed, %d failed' % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
