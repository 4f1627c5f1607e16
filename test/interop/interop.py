#!/usr/bin/python3
"""Interoperability suite: the jwt extension against PyJWT and jwcrypto.

Run with Debian's interpreter (python3-jwt, python3-jwcrypto):

    PGHOST=... PGPORT=... PGUSER=... PGDATABASE=... /usr/bin/python3 test/interop/interop.py

PostgreSQL is reached only through `psql` subprocesses; keys and tokens are
passed as psql variables (-v name=value, used as :'name'), never spliced into SQL.
"""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time

import jwt as pyjwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwcrypto import jwk as jc_jwk
from jwcrypto import jwt as jc_jwt

HERE = os.path.dirname(os.path.abspath(__file__))
KEYDIR = os.path.join(HERE, '..', 'fixtures', 'keys')

PSQL = ['psql', '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1']

passed = 0
failed = 0


def check(ok, name, detail=''):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print('FAIL: %s%s' % (name, (': ' + detail) if detail else ''), flush=True)


def attempt(name, fn):
    """Run fn() -> (ok, detail); an exception counts as a failure."""
    try:
        ok, detail = fn()
    except Exception as e:  # noqa: BLE001 - any exception is a failed check
        ok, detail = False, '%s: %s' % (type(e).__name__, e)
    check(ok, name, detail)


# ---------------------------------------------------------------- psql

class SQLError(Exception):
    def __init__(self, sqlstate, text):
        super().__init__(text)
        self.sqlstate = sqlstate


def psql(sql, **vars_):
    """Run sql (read from stdin) with psql variables; return stdout stripped.

    With VERBOSITY sqlstate an error prints `ERROR:  JW003`; that code is put
    in SQLError.sqlstate."""
    args = list(PSQL)
    for k, v in vars_.items():
        args += ['-v', '%s=%s' % (k, v)]
    env = dict(os.environ, PGCLIENTENCODING='UTF8')
    script = '\\set VERBOSITY sqlstate\n' + sql + '\n'
    p = subprocess.run(args, input=script.encode('utf-8'), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=env, timeout=60)
    out = p.stdout.decode('utf-8')
    err = p.stderr.decode('utf-8', 'replace')
    if p.returncode != 0:
        state = None
        for line in err.splitlines():
            if 'ERROR:' in line:
                state = line.split('ERROR:', 1)[1].strip().split()[0] if \
                    line.split('ERROR:', 1)[1].strip() else None
                break
        raise SQLError(state, err.strip())
    return out.strip()


def sql_sign(claims, key, alg, bytea=False):
    cast = 'convert_to(:\'key\', \'UTF8\')' if bytea else ':\'key\'::text'
    return psql("SELECT jwt_sign(:'claims'::jsonb, %s, :'alg');" % cast,
                claims=json.dumps(claims, ensure_ascii=False), key=key, alg=alg)


def sql_verify(token, key, alg, bytea=False):
    cast = 'convert_to(:\'key\', \'UTF8\')' if bytea else ':\'key\'::text'
    out = psql("SELECT jwt_verify(:'tok', %s, ARRAY[:'alg']::text[]);" % cast,
               tok=token, key=key, alg=alg)
    return json.loads(out)


# ---------------------------------------------------------------- helpers

def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode('ascii')


def b64u_dec(s):
    return base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))


def fixture(name):
    with open(os.path.join(KEYDIR, name), encoding='utf-8') as f:
        data = f.read()
    # JSON fixtures are loaded without a trailing newline (see sql/fixtures.sql)
    return data.rstrip('\n') if name.endswith('.json') else data


def make_claims(tag):
    now = int(time.time())
    return {
        'sub': 'user-%s' % tag,
        'iat': now,
        'exp': now + 3600,
        'name': 'Zo\u00eb \u2713 \u65e5\u672c\u8a9e \U0001F600 "q" \\ \u00e9',
        'nested': {'a': [1, 2, {'b': 'x', 'c': None}], 'ok': True, 'n': -7},
    }


def pyjwt_verify(token, pubkey, alg):
    return pyjwt.decode(token, pubkey, algorithms=[alg],
                        options={'verify_aud': False})


def jwcrypto_verify(token, jwkey, alg):
    t = jc_jwt.JWT(key=jwkey, jwt=token, algs=[alg])
    return json.loads(t.claims)


def jwcrypto_sign(claims, jwkey, alg):
    t = jc_jwt.JWT(header={'alg': alg, 'typ': 'JWT'}, claims=claims, algs=[alg])
    t.make_signed_token(jwkey)
    return t.serialize()


def eq(got, want):
    return (got == want, '' if got == want else 'claims differ: got %r want %r' % (got, want))


def pem_priv(k):
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption()).decode()


def pem_pub(k):
    return k.public_key().public_bytes(serialization.Encoding.PEM,
                                       serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def flip_sig_bit(token):
    h, p, s = token.split('.')
    sig = bytearray(b64u_dec(s))
    sig[len(sig) // 2] ^= 0x01
    return '%s.%s.%s' % (h, p, b64u(bytes(sig)))


# ---------------------------------------------------------------- key sets

HS = ['HS256', 'HS384', 'HS512']
RS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']
EC = {'ES256': ('P-256', ec.SECP256R1), 'ES384': ('P-384', ec.SECP384R1),
      'ES512': ('P-521', ec.SECP521R1)}
OKP = {'Ed25519': ed25519.Ed25519PrivateKey, 'Ed448': ed448.Ed448PrivateKey}

HMAC_SECRET = 'interop secret \u00fc\u00df \u2603 0123456789abcdef0123456789abcdef'


def fixture_sets():
    """(label, alg, priv_text_for_sql, pub_text_for_sql, pyjwt_priv, pyjwt_pub,
    jwcrypto_jwk) from the test fixtures."""
    sets = []
    oct_json = fixture('oct_jwk.json')
    oct_key = jc_jwk.JWK.from_json(oct_json)
    oct_secret = b64u_dec(json.loads(oct_json)['k'])
    for alg in HS:
        sets.append(('secret', alg, HMAC_SECRET, HMAC_SECRET, HMAC_SECRET.encode(),
                     HMAC_SECRET.encode(),
                     jc_jwk.JWK(kty='oct', k=b64u(HMAC_SECRET.encode()))))
        if 'alg' not in json.loads(oct_json) or json.loads(oct_json)['alg'] == alg:
            sets.append(('oct_jwk', alg, oct_json, oct_json, oct_secret, oct_secret, oct_key))
    rsa_priv = fixture('rsa_priv_pkcs8.pem')
    rsa_pub = fixture('rsa_pub_spki.pem')
    rsa_priv1 = fixture('rsa_priv_pkcs1.pem')
    rsa_pub1 = fixture('rsa_pub_pkcs1.pem')
    for alg in RS:
        sets.append(('rsa_pkcs8/spki', alg, rsa_priv, rsa_pub, rsa_priv, rsa_pub,
                     jc_jwk.JWK.from_pem(rsa_priv.encode())))
        sets.append(('rsa_pkcs1', alg, rsa_priv1, rsa_pub1, rsa_priv1, rsa_pub,
                     jc_jwk.JWK.from_pem(rsa_priv1.encode())))
    ecf = {'ES256': ('ec256_priv_pkcs8.pem', 'ec256_pub.pem'),
           'ES384': ('ec384_priv.pem', 'ec384_pub.pem'),
           'ES512': ('ec521_priv.pem', 'ec521_pub.pem')}
    for alg, (pv, pb) in ecf.items():
        priv, pub = fixture(pv), fixture(pb)
        sets.append(('ec_' + pv, alg, priv, pub, priv, pub, jc_jwk.JWK.from_pem(priv.encode())))
    sets.append(('ec256_priv_sec1', 'ES256', fixture('ec256_priv_sec1.pem'),
                 fixture('ec256_pub.pem'), fixture('ec256_priv_sec1.pem'),
                 fixture('ec256_pub.pem'),
                 jc_jwk.JWK.from_pem(fixture('ec256_priv_sec1.pem').encode())))
    for name in ('ed25519', 'ed448'):
        priv, pub = fixture(name + '_priv.pem'), fixture(name + '_pub.pem')
        sets.append((name, 'EdDSA', priv, pub, priv, pub, jc_jwk.JWK.from_pem(priv.encode())))
    return sets


# ---------------------------------------------------------------- checks

def check_sql_signs(label, alg, sql_priv, py_pub, jc_key):
    """1. jwt_sign -> PyJWT and jwcrypto."""
    claims = make_claims('sqlsign-' + alg)
    name = '[%s %s] jwt_sign' % (label, alg)
    try:
        tok = sql_sign(claims, sql_priv, alg)
    except Exception as e:  # noqa: BLE001
        check(False, name, 'jwt_sign failed: %s' % e)
        check(False, name + ' -> jwcrypto', 'no token')
        return None
    attempt(name + ' -> PyJWT (tok=%s)' % tok, lambda: eq(pyjwt_verify(tok, py_pub, alg), claims))
    attempt(name + ' -> jwcrypto (tok=%s)' % tok,
            lambda: eq(jwcrypto_verify(tok, jc_key, alg), claims))
    return tok


def check_py_signs(label, alg, py_priv, jc_key, sql_pubs):
    """2. PyJWT and jwcrypto -> jwt_verify with each of sql_pubs [(what, key)]."""
    claims = make_claims('pysign-' + alg)
    toks = []
    try:
        toks.append(('PyJWT', pyjwt.encode(claims, py_priv, algorithm=alg)))
    except Exception as e:  # noqa: BLE001
        check(False, '[%s %s] PyJWT encode' % (label, alg), repr(e))
    try:
        toks.append(('jwcrypto', jwcrypto_sign(claims, jc_key, alg)))
    except Exception as e:  # noqa: BLE001
        check(False, '[%s %s] jwcrypto sign' % (label, alg), repr(e))
    for who, tok in toks:
        for what, key in sql_pubs:
            attempt('[%s %s] %s -> jwt_verify(%s) tok=%s' % (label, alg, who, what, tok),
                    lambda: eq(sql_verify(tok, key, alg), claims))


def run_fixtures():
    sigs = {}
    for label, alg, sql_priv, sql_pub, py_priv, py_pub, jc_key in fixture_sets():
        tok = check_sql_signs('fixture ' + label, alg, sql_priv, py_pub, jc_key)
        if tok:
            sigs.setdefault(alg, (tok, py_pub, jc_key))
        pubs = [('PEM' if '-----BEGIN' in sql_pub else 'text', sql_pub),
                ('jwcrypto JWK', jc_key.export_public() if jc_key.has_public and
                 jc_key['kty'] != 'oct' else jc_key.export())]
        check_py_signs('fixture ' + label, alg, py_priv, jc_key, pubs)
    return sigs


def run_generated():
    """3. keys generated in Python (cryptography and jwcrypto) on both sides."""
    gens = []  # (label, algs, cryptography-or-None private key, jwcrypto JWK)
    rk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    gens.append(('cryptography RSA', RS, rk, jc_jwk.JWK.from_pyca(rk)))
    jr = jc_jwk.JWK.generate(kty='RSA', size=2048)
    gens.append(('jwcrypto RSA', RS, None, jr))
    for alg, (crv, cls) in EC.items():
        k = ec.generate_private_key(cls())
        gens.append(('cryptography ' + crv, [alg], k, jc_jwk.JWK.from_pyca(k)))
        gens.append(('jwcrypto ' + crv, [alg], None, jc_jwk.JWK.generate(kty='EC', crv=crv)))
    for crv, cls in OKP.items():
        k = cls.generate()
        gens.append(('cryptography ' + crv, ['EdDSA'], k, jc_jwk.JWK.from_pyca(k)))
        gens.append(('jwcrypto ' + crv, ['EdDSA'], None, jc_jwk.JWK.generate(kty='OKP', crv=crv)))

    for label, algs, pk, jk in gens:
        if pk is None:
            priv_pem = jk.export_to_pem(private_key=True, password=None).decode()
            pub_pem = jk.export_to_pem().decode()
        else:
            priv_pem, pub_pem = pem_priv(pk), pem_pub(pk)
        priv_jwk, pub_jwk = jk.export_private(), jk.export_public()
        for alg in algs:
            # SQL signs with the generated key (PEM, then JWK); Python verifies
            check_sql_signs('gen %s PEM' % label, alg, priv_pem, pub_pem, jk)
            check_sql_signs('gen %s JWK' % label, alg, priv_jwk, pub_pem, jk)
            # Python signs; SQL verifies with the public PEM and public JWK
            check_py_signs('gen ' + label, alg, priv_pem, jk,
                           [('PEM', pub_pem), ('JWK', pub_jwk)])

    # HMAC: fresh secret as text, and as an oct JWK generated by jwcrypto
    secret = b64u(os.urandom(32))
    sk = jc_jwk.JWK(kty='oct', k=b64u(secret.encode()))
    ok = jc_jwk.JWK.generate(kty='oct', size=512)
    ok_secret = b64u_dec(json.loads(ok.export())['k'])
    for alg in HS:
        check_sql_signs('gen secret text', alg, secret, secret.encode(), sk)
        check_py_signs('gen secret text', alg, secret.encode(), sk,
                       [('text', secret), ('oct JWK', sk.export())])
        check_sql_signs('gen jwcrypto oct JWK', alg, ok.export(), ok_secret, ok)
        check_py_signs('gen jwcrypto oct JWK', alg, ok_secret, ok,
                       [('oct JWK', ok.export())])
    # binary secret (not UTF-8) as bytea on the SQL side
    bsecret = 'bin\u00ff'  # sent as UTF-8 text, converted with convert_to
    claims = make_claims('bytea')
    attempt('[bytea secret HS256] jwt_sign(bytea) -> PyJWT',
            lambda: eq(pyjwt_verify(sql_sign(claims, bsecret, 'HS256', bytea=True),
                                    bsecret.encode(), 'HS256'), claims))
    attempt('[bytea secret HS256] PyJWT -> jwt_verify(bytea)',
            lambda: eq(sql_verify(pyjwt.encode(claims, bsecret.encode(), algorithm='HS256'),
                                  bsecret, 'HS256', bytea=True), claims))


def expect_sql_error(name, token, key, algs, want):
    def fn():
        try:
            out = psql("SELECT jwt_verify(:'tok', :'key'::text, %s);" %
                       ("ARRAY[:'alg']::text[]" if algs else 'NULL::text[]'),
                       tok=token, key=key, alg=algs or '')
        except SQLError as e:
            return e.sqlstate == want, 'got SQLSTATE %s, want %s (%s)' % (
                e.sqlstate, want, str(e)[:200])
        return False, 'jwt_verify accepted it: %s (tok=%s)' % (out, token)
    attempt(name, fn)


def expect_py_reject(name, fn):
    def wrap():
        try:
            res = fn()
        except Exception as e:  # noqa: BLE001 - rejection is the expected result
            return True, repr(e)
        return False, 'accepted: %r' % (res,)
    attempt(name, wrap)


def run_negative(sigs):
    """4. negative checks on both sides."""
    rsa_pub = fixture('rsa_pub_spki.pem')
    claims = make_claims('confusion')
    # HS256 token MACed with the RSA public PEM text (algorithm confusion).
    # PyJWT 2.6 refuses to HMAC with a PEM, so the MAC is computed by hand.
    hdr = b64u(json.dumps({'alg': 'HS256', 'typ': 'JWT'}, separators=(',', ':')).encode())
    pl = b64u(json.dumps(claims, separators=(',', ':')).encode())
    mac = hmac.new(rsa_pub.encode(), ('%s.%s' % (hdr, pl)).encode(), hashlib.sha256).digest()
    conf = '%s.%s.%s' % (hdr, pl, b64u(mac))
    expect_py_reject('[neg] PyJWT refuses to HMAC with an RSA public PEM',
                     lambda: pyjwt.encode(claims, rsa_pub, algorithm='HS256'))
    expect_sql_error('[neg] HS256 MACed with RSA public PEM -> jwt_verify(pem, NULL)',
                     conf, rsa_pub, None, 'JW003')
    expect_sql_error('[neg] HS256 MACed with RSA public PEM -> jwt_verify(pem, {HS256})',
                     conf, rsa_pub, 'HS256', 'JW003')
    expect_sql_error('[neg] HS256 MACed with RSA public PEM -> jwt_verify(pem, {RS256})',
                     conf, rsa_pub, 'RS256', 'JW003')
    expect_py_reject('[neg] HS256 MACed with RSA public PEM -> PyJWT',
                     lambda: pyjwt.decode(conf, rsa_pub, algorithms=['HS256', 'RS256']))
    jpub = jc_jwk.JWK.from_pem(rsa_pub.encode())
    expect_py_reject('[neg] HS256 MACed with RSA public PEM -> jwcrypto',
                     lambda: jwcrypto_verify(conf, jpub, 'HS256'))
    # the same, by jwcrypto: an oct JWK whose k is the PEM text
    jconf = jwcrypto_sign(claims, jc_jwk.JWK(kty='oct', k=b64u(rsa_pub.encode())), 'HS256')
    expect_sql_error('[neg] jwcrypto HS256 keyed with RSA PEM -> jwt_verify(pem, NULL)',
                     jconf, rsa_pub, None, 'JW003')

    # flipped signature bit on jwt_sign tokens: PyJWT and jwcrypto must reject
    for alg, (tok, py_pub, jc_key) in sorted(sigs.items()):
        bad = flip_sig_bit(tok)
        expect_py_reject('[neg %s] flipped signature bit -> PyJWT (tok=%s)' % (alg, bad),
                         lambda: pyjwt_verify(bad, py_pub, alg))
        expect_py_reject('[neg %s] flipped signature bit -> jwcrypto (tok=%s)' % (alg, bad),
                         lambda: jwcrypto_verify(bad, jc_key, alg))

    # and the reverse: PyJWT tokens with a flipped bit must fail jwt_verify (JW002)
    for alg, priv, pub in (('HS256', HMAC_SECRET, HMAC_SECRET),
                           ('RS256', fixture('rsa_priv_pkcs8.pem'), rsa_pub),
                           ('PS256', fixture('rsa_priv_pkcs8.pem'), rsa_pub),
                           ('ES256', fixture('ec256_priv_pkcs8.pem'), fixture('ec256_pub.pem')),
                           ('EdDSA', fixture('ed25519_priv.pem'), fixture('ed25519_pub.pem'))):
        k = priv.encode() if alg.startswith('HS') else priv
        bad = flip_sig_bit(pyjwt.encode(claims, k, algorithm=alg))
        expect_sql_error('[neg %s] PyJWT token, flipped signature bit -> jwt_verify' % alg,
                         bad, pub, alg, 'JW002')
    # expired PyJWT token must fail on both sides
    old = dict(claims, exp=int(time.time()) - 10)
    etok = pyjwt.encode(old, HMAC_SECRET.encode(), algorithm='HS256')
    expect_sql_error('[neg] expired PyJWT token -> jwt_verify', etok, HMAC_SECRET, 'HS256', 'JW004')
    expect_py_reject('[neg] expired jwt_sign token -> PyJWT',
                     lambda: pyjwt_verify(sql_sign(old, HMAC_SECRET, 'HS256'),
                                          HMAC_SECRET.encode(), 'HS256'))


def main():
    t0 = time.time()
    try:
        psql('SET client_min_messages = warning;\nCREATE EXTENSION IF NOT EXISTS jwt;')
    except Exception as e:  # noqa: BLE001
        print('cannot set up the extension: %s' % e)
        print('0 passed, 1 failed')
        return 1
    sigs = run_fixtures()
    run_generated()
    run_negative(sigs)
    print('(%.1fs)' % (time.time() - t0), file=sys.stderr)
    print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
