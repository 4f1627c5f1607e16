#!/usr/bin/env node
// interop_jose.mjs: interoperability suite, the jwt extension against panva/jose.
//
// From the repository root, with node >= 18:
//
//     npm ci --prefix test/interop/node
//     PGHOST=... PGPORT=... PGUSER=... PGDATABASE=... node test/interop/node/interop_jose.mjs
//
// PostgreSQL is reached only through `psql` subprocesses; keys and tokens are
// passed as psql variables (-v name=value, used as :'name'), never spliced into
// SQL.  To keep the run short the SQL calls are batched: each psql session
// defines small pg_temp wrappers that call jwt_sign / jwt_verify and return
// either the result or the SQLSTATE of the error (plpgsql EXCEPTION block);
// a few checks also run one statement per psql with VERBOSITY verbose and read
// the SQLSTATE from psql's own error output.
//
// Each failed check prints a `FAIL:` line (INTEROP_VERBOSE=1 also prints an
// `ok:` line per passed check); the last line is exactly `N passed, M failed`;
// the exit status is 1 when anything failed.  Run time and versions go to stderr.

import { spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, sign as nodeSign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';

const HERE = dirname(fileURLToPath(import.meta.url));
const KEYDIR = join(HERE, '..', '..', 'fixtures', 'keys');

let passed = 0;
let failed = 0;

function check(ok, name, detail = '') {
  if (ok) {
    passed += 1;
    if (process.env.INTEROP_VERBOSE) console.log(`ok: ${name}`);
  } else {
    failed += 1;
    console.log(`FAIL: ${name}${detail ? ': ' + detail : ''}`);
  }
}

function finish() {
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}

let jose;
try {
  jose = await import('jose');
} catch (e) {
  console.log(`FAIL: cannot load jose (run: npm ci --prefix test/interop/node): ${e.message}`);
  failed += 1;
  finish();
  process.exit();
}

// fn() -> [ok, detail] (may be async); an exception counts as a failure
async function attempt(name, fn) {
  let ok;
  let detail;
  try {
    [ok, detail] = await fn();
  } catch (e) {
    ok = false;
    detail = `${e && e.name}: ${e && e.message}`;
  }
  check(ok, name, detail);
}

function eq(got, want) {
  return isDeepStrictEqual(got, want)
    ? [true, '']
    : [false, `claims differ: got ${JSON.stringify(got)} want ${JSON.stringify(want)}`];
}

// fn() must throw (or reject); with wantCode, the error's jose code must match
async function expectJoseReject(name, fn, wantCode) {
  await attempt(name, async () => {
    let res;
    try {
      res = await fn();
    } catch (e) {
      if (wantCode && e.code !== wantCode) {
        return [false, `rejected with ${e.code || e.name} (${e.message}), want ${wantCode}`];
      }
      return [true, ''];
    }
    return [false, `accepted: ${JSON.stringify(res && (res.payload || res))}`];
  });
}

// ---------------------------------------------------------------- psql

const PSQL_ARGS = ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1'];
const PSQL_ENV = { ...process.env, PGCLIENTENCODING: 'UTF8' };
let psqlCalls = 0;

function psql(script, vars = {}) {
  psqlCalls += 1;
  const args = [...PSQL_ARGS];
  for (const [k, v] of Object.entries(vars)) args.push('-v', `${k}=${v}`);
  const p = spawnSync('psql', args, {
    input: script, encoding: 'utf8', env: PSQL_ENV, maxBuffer: 64 << 20, timeout: 120000,
  });
  if (p.error) throw p.error;
  return p;
}

// One statement in its own psql, errors as psql reports them (VERBOSITY
// verbose prints `ERROR:  JW004: message`).  -> {ok, out, state, err}
function sqlRaw(sql, vars = {}) {
  const p = psql('\\set VERBOSITY verbose\n' + sql + '\n', vars);
  if (p.status === 0) return { ok: true, out: p.stdout.trim(), state: null, err: '' };
  const m = /ERROR:\s+([0-9A-Z]{5}):/.exec(p.stderr);
  return { ok: false, out: p.stdout.trim(), state: m ? m[1] : null, err: p.stderr.trim() };
}

// Batched statements.  The wrappers return 'OK<TAB>result', 'NULL', or
// 'ERR<TAB>sqlstate<TAB>message'; each output line is '<job id><TAB><that>'.
const WRAPPERS = `
SET client_min_messages = warning;
CREATE FUNCTION pg_temp.try_sign(c jsonb, k text, a text, h jsonb) RETURNS text
LANGUAGE plpgsql AS $f$
BEGIN
  RETURN coalesce('OK' || chr(9) || jwt_sign(c, k, a, h), 'NULL');
EXCEPTION WHEN OTHERS THEN
  RETURN 'ERR' || chr(9) || SQLSTATE || chr(9) || replace(SQLERRM, chr(10), ' ');
END $f$;
CREATE FUNCTION pg_temp.try_sign(c jsonb, k bytea, a text, h jsonb) RETURNS text
LANGUAGE plpgsql AS $f$
BEGIN
  RETURN coalesce('OK' || chr(9) || jwt_sign(c, k, a, h), 'NULL');
EXCEPTION WHEN OTHERS THEN
  RETURN 'ERR' || chr(9) || SQLSTATE || chr(9) || replace(SQLERRM, chr(10), ' ');
END $f$;
CREATE FUNCTION pg_temp.try_verify(t text, k text, al text[], au text, iss text,
                                   n timestamptz) RETURNS text
LANGUAGE plpgsql AS $f$
BEGIN
  RETURN coalesce('OK' || chr(9) || jwt_verify(t, k, al, au, iss, NULL, NULL, n)::text, 'NULL');
EXCEPTION WHEN OTHERS THEN
  RETURN 'ERR' || chr(9) || SQLSTATE || chr(9) || replace(SQLERRM, chr(10), ' ');
END $f$;
CREATE FUNCTION pg_temp.try_verify(t text, k bytea, al text[], au text, iss text,
                                   n timestamptz) RETURNS text
LANGUAGE plpgsql AS $f$
BEGIN
  RETURN coalesce('OK' || chr(9) || jwt_verify(t, k, al, au, iss, NULL, NULL, n)::text, 'NULL');
EXCEPTION WHEN OTHERS THEN
  RETURN 'ERR' || chr(9) || SQLSTATE || chr(9) || replace(SQLERRM, chr(10), ' ');
END $f$;
`;

const ARG_BUDGET = 400 * 1024; // bytes of -v arguments per psql call (ARG_MAX is ~2 MB)
const queue = [];
let jobSeq = 0;

// expr uses :'name' for the entries of vars; then(res) gets
// {ok, value, state, msg} (ok false and state null when psql itself failed)
function enqueue(expr, vars, then) {
  queue.push({ expr, vars, then });
}

async function runChunk(jobs) {
  const vars = {};
  const lines = [WRAPPERS];
  const byId = new Map();
  for (const job of jobs) {
    const id = `j${++jobSeq}`;
    byId.set(id, job);
    for (const [k, v] of Object.entries(job.vars)) vars[`${id}_${k}`] = v;
    const expr = job.expr.replace(/:'(\w+)'/g, (m, name) => {
      if (!(name in job.vars)) throw new Error(`unknown psql variable ${name} in ${job.expr}`);
      return `:'${id}_${name}'`;
    });
    lines.push(`SELECT '${id}' || chr(9) || ${expr};`);
  }
  const p = psql(lines.join('\n') + '\n', vars);
  const results = new Map();
  for (const line of p.stdout.split('\n')) {
    const m = /^(j\d+)\t(OK|ERR|NULL)(?:\t([^]*))?$/.exec(line);
    if (!m) continue;
    if (m[2] === 'OK') results.set(m[1], { ok: true, value: m[3] });
    else if (m[2] === 'NULL') results.set(m[1], { ok: true, value: null });
    else {
      const [state, ...msg] = (m[3] || '').split('\t');
      results.set(m[1], { ok: false, state, msg: msg.join('\t') });
    }
  }
  for (const [id, job] of byId) {
    const res = results.get(id) || {
      ok: false, state: null, msg: `no result from psql (exit ${p.status}): ${p.stderr.trim()}`,
    };
    try {
      await job.then(res);
    } catch (e) {
      check(false, `internal error in a check of ${job.expr}`, `${e.name}: ${e.message}`);
    }
  }
}

async function flush() {
  while (queue.length) {
    const jobs = queue.splice(0);
    let chunk = [];
    let size = 0;
    for (const job of jobs) {
      const s = Object.values(job.vars).reduce((a, v) => a + Buffer.byteLength(v) + 64, 0);
      if (chunk.length && size + s > ARG_BUDGET) {
        await runChunk(chunk);
        chunk = [];
        size = 0;
      }
      chunk.push(job);
      size += s;
    }
    if (chunk.length) await runChunk(chunk);
  }
}

// A key for SQL: a string is passed as text, {bytes} as bytea (hex on the wire).
function keyExpr(key, vars) {
  if (typeof key === 'string') {
    vars.k = key;
    return ":'k'::text";
  }
  vars.k = Buffer.from(key.bytes).toString('hex');
  return "decode(:'k', 'hex')";
}

function sqlSign(claims, key, alg, header, then) {
  const vars = { c: JSON.stringify(claims), a: alg };
  const k = keyExpr(key, vars);
  let h = 'NULL::jsonb';
  if (header) {
    vars.h = JSON.stringify(header);
    h = ":'h'::jsonb";
  }
  enqueue(`pg_temp.try_sign(:'c'::jsonb, ${k}, :'a', ${h})`, vars, then);
}

// opts: algs (array, or null for the key's own), aud, iss, now (epoch seconds)
function sqlVerify(token, key, opts, then) {
  const vars = { t: token };
  const k = keyExpr(key, vars);
  let al = 'NULL::text[]';
  if (opts.algs) {
    vars.al = opts.algs.join(',');
    al = "string_to_array(:'al', ',')";
  }
  let au = 'NULL::text';
  if (opts.aud !== undefined) {
    vars.au = opts.aud;
    au = ":'au'";
  }
  let iss = 'NULL::text';
  if (opts.iss !== undefined) {
    vars.iss = opts.iss;
    iss = ":'iss'";
  }
  let n = 'NULL::timestamptz';
  if (opts.now !== undefined) {
    vars.n = String(opts.now);
    n = "to_timestamp(:'n'::float8)";
  }
  enqueue(`pg_temp.try_verify(:'t', ${k}, ${al}, ${au}, ${iss}, ${n})`, vars, then);
}

// jwt_verify must return claims equal to want
function sqlVerifyEq(name, token, key, opts, want) {
  sqlVerify(token, key, opts, (res) => attempt(name, () => {
    if (!res.ok) return [false, `jwt_verify failed: ${res.state} ${res.msg} (tok=${token})`];
    return eq(JSON.parse(res.value), want);
  }));
}

// jwt_verify must fail with SQLSTATE want
function sqlVerifyErr(name, token, key, opts, want) {
  sqlVerify(token, key, opts, (res) => attempt(name, () => {
    if (res.ok) return [false, `jwt_verify accepted it: ${res.value} (tok=${token})`];
    return [res.state === want,
      `got SQLSTATE ${res.state}, want ${want} (${res.msg}) (tok=${token})`];
  }));
}

// ---------------------------------------------------------------- helpers

const enc = new TextEncoder();
const b64u = (bytes) => Buffer.from(bytes).toString('base64url');
const b64uDec = (s) => Buffer.from(s, 'base64url');
const now = () => Math.floor(Date.now() / 1000);

function fixture(name) {
  const data = readFileSync(join(KEYDIR, name), 'utf8');
  // JSON fixtures are loaded without a trailing newline (see sql/fixtures.sql)
  return name.endsWith('.json') ? data.replace(/\n+$/, '') : data;
}

function makeClaims(tag) {
  const t = now();
  return {
    sub: `user-${tag}`,
    iat: t,
    exp: t + 3600,
    name: 'Zo\u00eb \u2713 \u65e5\u672c\u8a9e \u{1F600} "q" \\ \u00e9',
    nested: { a: [1, 2, { b: 'x', c: null }], ok: true, n: -7 },
  };
}

function flipSigBit(token) {
  const [h, p, s] = token.split('.');
  const sig = b64uDec(s);
  sig[sig.length >> 1] ^= 0x01;
  return `${h}.${p}.${b64u(sig)}`;
}

function tamperPayload(token) {
  const [h, p, s] = token.split('.');
  const claims = JSON.parse(b64uDec(p).toString('utf8'));
  claims.sub = `${claims.sub}-tampered`;
  return `${h}.${b64u(enc.encode(JSON.stringify(claims)))}.${s}`;
}

async function joseSign(claims, key, alg, kid, extraHeader = {}) {
  const header = { alg, typ: 'JWT', ...extraHeader };
  if (kid) header.kid = kid;
  return new jose.SignJWT(claims).setProtectedHeader(header).sign(key);
}

const HS = ['HS256', 'HS384', 'HS512'];
const RS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
const ES = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' };
const ALL = [...HS, ...RS, ...Object.keys(ES), 'EdDSA'];

const HMAC_SECRET = 'interop secret \u00fc\u00df \u2603 0123456789abcdef0123456789abcdef';

// ---------------------------------------------------------------- key sets
//
// A set is one key (pair) for one algorithm, in the forms each side has of it:
//   sqlPrivs  [[what, key, header?]]  jwt_sign keys (text, or {bytes} for bytea)
//   sqlPubs   [[what, key]]           jwt_verify keys
//   josePriv  jose signing key (KeyObject / Uint8Array), or null
//   josePubs  [[what, key, kidOnly?]] jose verification keys (a KeyObject, a
//                                     Uint8Array, or a createLocalJWKSet function;
//                                     kidOnly: only for tokens with a kid)
//   kid       kid jose puts in its header
//   wrongJose / wrongSql              a different key of the same kind, for the
//                                     negative checks (neg: true)

async function fixtureSets() {
  const sets = [];
  const octJson = fixture('oct_jwk.json');
  const oct = JSON.parse(octJson);
  for (const alg of HS) {
    const sb = enc.encode(HMAC_SECRET);
    sets.push({
      label: 'fixture secret text', alg, neg: true,
      sqlPrivs: [['text', HMAC_SECRET], ['bytea', { bytes: sb }]],
      sqlPubs: [['text', HMAC_SECRET], ['bytea', { bytes: sb }],
        ['oct JWK', JSON.stringify({ kty: 'oct', k: b64u(sb) })]],
      josePriv: sb,
      josePubs: [['Uint8Array', sb]],
      wrongJose: enc.encode(HMAC_SECRET + 'x'),
      wrongSql: HMAC_SECRET + 'x',
    });
    sets.push({
      label: 'fixture oct_jwk.json', alg, kid: oct.kid,
      sqlPrivs: [['oct JWK', octJson]],
      sqlPubs: [['oct JWK', octJson], ['bytea', { bytes: b64uDec(oct.k) }]],
      josePriv: await jose.importJWK(oct, alg),
      josePubs: [['importJWK', await jose.importJWK(oct, alg)]],
    });
  }
  const rsaPriv = fixture('rsa_priv_pkcs8.pem');
  const rsaPub = fixture('rsa_pub_spki.pem');
  const rsaJwkPriv = fixture('rsa_jwk_priv.json');
  const rsaJwkPub = fixture('rsa_jwk_pub.json');
  const rsaCert = fixture('rsa_cert.pem');
  for (const alg of RS) {
    const spki = await jose.importSPKI(rsaPub, alg);
    sets.push({
      label: 'fixture rsa PEM', alg, neg: true,
      sqlPrivs: [['PKCS#8 PEM', rsaPriv], ['PKCS#1 PEM', fixture('rsa_priv_pkcs1.pem')]],
      sqlPubs: [['SPKI PEM', rsaPub], ['PKCS#1 PEM', fixture('rsa_pub_pkcs1.pem')],
        ['X.509 PEM', rsaCert], ['jose exportJWK', JSON.stringify(await jose.exportJWK(spki))]],
      josePriv: await jose.importPKCS8(rsaPriv, alg),
      josePubs: [['importSPKI', spki], ['importX509', await jose.importX509(rsaCert, alg)],
        ['importJWK(rsa_jwk_pub.json)', await jose.importJWK(JSON.parse(rsaJwkPub), alg)]],
      wrongJose: await jose.importSPKI(fixture('rsa2_pub_spki.pem'), alg),
      wrongSql: fixture('rsa2_pub_spki.pem'),
    });
    sets.push({
      label: 'fixture rsa JWK', alg, kid: 'rsa1',
      sqlPrivs: [['private JWK', rsaJwkPriv]],
      sqlPubs: [['public JWK', rsaJwkPub], ['JWKS', fixture('jwks_pub.json')]],
      josePriv: await jose.importJWK(JSON.parse(rsaJwkPriv), alg),
      josePubs: [['importJWK', await jose.importJWK(JSON.parse(rsaJwkPub), alg)]],
    });
  }
  const ecf = {
    ES256: ['ec256_priv_pkcs8.pem', 'ec256_pub.pem', 'ec256_jwk_pub.json'],
    ES384: ['ec384_priv.pem', 'ec384_pub.pem', 'ec384_jwk_pub.json'],
    ES512: ['ec521_priv.pem', 'ec521_pub.pem', 'ec521_jwk_pub.json'],
  };
  for (const [alg, [pv, pb, pj]] of Object.entries(ecf)) {
    const privs = [['PKCS#8 PEM', fixture(pv)]];
    if (alg === 'ES256') privs.push(['SEC1 PEM', fixture('ec256_priv_sec1.pem')]);
    sets.push({
      label: `fixture ${pv}`, alg, neg: true,
      sqlPrivs: privs,
      sqlPubs: [['SPKI PEM', fixture(pb)], [pj, fixture(pj)]],
      josePriv: await jose.importPKCS8(fixture(pv), alg),
      josePubs: [['importSPKI', await jose.importSPKI(fixture(pb), alg)],
        [`importJWK(${pj})`, await jose.importJWK(JSON.parse(fixture(pj)), alg)]],
    });
  }
  sets.push({
    label: 'fixture ec256 JWK', alg: 'ES256', kid: 'ec256',
    sqlPrivs: [['private JWK', fixture('ec256_jwk_priv.json')]],
    sqlPubs: [['public JWK', fixture('ec256_jwk_pub.json')], ['JWKS', fixture('jwks_pub.json')]],
    josePriv: await jose.importJWK(JSON.parse(fixture('ec256_jwk_priv.json')), 'ES256'),
    josePubs: [['importJWK', await jose.importJWK(JSON.parse(fixture('ec256_jwk_pub.json')), 'ES256')]],
  });
  for (const name of ['ed25519', 'ed448']) {
    const spki = await jose.importSPKI(fixture(`${name}_pub.pem`), 'EdDSA');
    sets.push({
      label: `fixture ${name} PEM`, alg: 'EdDSA', neg: true,
      sqlPrivs: [['PKCS#8 PEM', fixture(`${name}_priv.pem`)]],
      sqlPubs: [['SPKI PEM', fixture(`${name}_pub.pem`)],
        ['jose exportJWK', JSON.stringify(await jose.exportJWK(spki))]],
      josePriv: await jose.importPKCS8(fixture(`${name}_priv.pem`), 'EdDSA'),
      josePubs: [['importSPKI', spki]],
    });
  }
  sets.push({
    label: 'fixture ed25519 JWK', alg: 'EdDSA', kid: 'ed1',
    sqlPrivs: [['private JWK', fixture('ed25519_jwk_priv.json')]],
    sqlPubs: [['public JWK', fixture('ed25519_jwk_pub.json')], ['JWKS', fixture('jwks_pub.json')]],
    josePriv: await jose.importJWK(JSON.parse(fixture('ed25519_jwk_priv.json')), 'EdDSA'),
    josePubs: [['importJWK', await jose.importJWK(JSON.parse(fixture('ed25519_jwk_pub.json')), 'EdDSA')]],
  });
  // jwt_sign with the private JWKS, the key picked by the header's kid;
  // jose verifies with createLocalJWKSet over the public JWKS
  const jwksPub = jose.createLocalJWKSet(JSON.parse(fixture('jwks_pub.json')));
  for (const [kid, alg] of [['rsa1', 'RS256'], ['rsa1', 'PS512'], ['ec256', 'ES256'], ['ed1', 'EdDSA']]) {
    sets.push({
      label: `fixture jwks_priv.json kid=${kid}`, alg,
      sqlPrivs: [['JWKS + header kid', fixture('jwks_priv.json'), { kid }]],
      sqlPubs: [],
      josePriv: null,
      josePubs: [['createLocalJWKSet(jwks_pub.json)', jwksPub]],
    });
  }
  return sets;
}

async function generatedSets() {
  const sets = [];
  const pubJwks = { keys: [] };
  const privJwks = { keys: [] };
  const asym = [['RSA 2048', 'RS256', { modulusLength: 2048 }, RS]];
  for (const [alg, crv] of Object.entries(ES)) asym.push([crv, alg, {}, [alg]]);
  asym.push(['Ed25519', 'EdDSA', { crv: 'Ed25519' }, ['EdDSA']]);
  asym.push(['Ed448', 'EdDSA', { crv: 'Ed448' }, ['EdDSA']]);
  for (const [label, genAlg, opts, algs] of asym) {
    const { publicKey, privateKey } = await jose.generateKeyPair(genAlg, { ...opts, extractable: true });
    // a second key of the same kind, for the wrong-key checks
    const other = await jose.generateKeyPair(genAlg, { ...opts, extractable: true });
    const pkcs8 = await jose.exportPKCS8(privateKey);
    const spki = await jose.exportSPKI(publicKey);
    const jwkPriv = await jose.exportJWK(privateKey);
    const jwkPub = await jose.exportJWK(publicKey);
    const kid = `jose-${label.replace(/\s+/g, '-')}`;
    pubJwks.keys.push({ ...jwkPub, kid, use: 'sig' });
    privJwks.keys.push({ ...jwkPriv, kid, use: 'sig' });
    for (const alg of algs) {
      sets.push({
        label: `jose ${label}`, alg, neg: true, kid, jwksKid: kid,
        sqlPrivs: [['PKCS#8 PEM', pkcs8], ['private JWK', JSON.stringify(jwkPriv)],
          ['private JWK+kid,use,alg', JSON.stringify({ ...jwkPriv, kid, use: 'sig', alg })]],
        sqlPubs: [['SPKI PEM', spki], ['public JWK', JSON.stringify(jwkPub)],
          ['public JWK+kid,use,alg', JSON.stringify({ ...jwkPub, kid, use: 'sig', alg })]],
        josePriv: privateKey,
        josePubs: [['KeyObject', publicKey], ['importSPKI', await jose.importSPKI(spki, alg)],
          ['importJWK', await jose.importJWK(jwkPub, alg)]],
        wrongJose: other.publicKey,
        wrongSql: await jose.exportSPKI(other.publicKey),
      });
    }
  }
  for (const alg of HS) {
    const secret = await jose.generateSecret(alg, { extractable: true });
    const raw = secret.export(); // random bytes, as a rule not UTF-8
    const jwk = await jose.exportJWK(secret);
    const kid = `jose-${alg}`;
    sets.push({
      label: 'jose generateSecret', alg, neg: true, kid,
      sqlPrivs: [['oct JWK', JSON.stringify(jwk)], ['bytea', { bytes: raw }]],
      sqlPubs: [['oct JWK', JSON.stringify(jwk)], ['bytea', { bytes: raw }],
        ['oct JWK+kid,alg', JSON.stringify({ ...jwk, kid, alg })]],
      josePriv: secret,
      josePubs: [['KeyObject', secret], ['importJWK', await jose.importJWK(jwk, alg)]],
      wrongJose: await jose.generateSecret(alg, { extractable: true }),
      wrongSql: { bytes: (await jose.generateSecret(alg, { extractable: true })).export() },
    });
  }
  // the public JWKS of all generated keys: jwt_verify picks the key by the
  // jose token's kid; jwt_sign with the private JWKS and a header kid
  const pubJwksText = JSON.stringify(pubJwks);
  const localSet = jose.createLocalJWKSet(pubJwks);
  for (const s of sets) {
    if (!s.jwksKid) continue;
    s.sqlPubs.push(['jose JWKS', pubJwksText]);
    s.sqlPrivs.push(['jose private JWKS + header kid', JSON.stringify(privJwks), { kid: s.jwksKid }]);
    s.josePubs.push(['createLocalJWKSet', localSet, true]);
  }
  return sets;
}

// ---------------------------------------------------------------- checks

// the kid jwt_sign puts in the header when the key is a JWK with one
function jwkKid(key) {
  if (typeof key !== 'string' || !key.startsWith('{')) return undefined;
  return JSON.parse(key).kid;
}

const headerOk = (hdr, alg, kid) => {
  const want = { alg, typ: 'JWT' };
  if (kid) want.kid = kid;
  return isDeepStrictEqual(hdr, want)
    ? [true, ''] : [false, `header ${JSON.stringify(hdr)}, want ${JSON.stringify(want)}`];
};

// 1. jwt_sign -> jose (jwtVerify with every jose key, compactVerify with the first)
function checkSqlSigns(s) {
  s.sqlPrivs.forEach(([what, key, header], i) => {
    const claims = makeClaims(`sqlsign-${s.alg}`);
    const name = `[${s.label} ${s.alg}] jwt_sign(${what})`;
    const expKid = header && header.kid ? header.kid : jwkKid(key);
    sqlSign(claims, key, s.alg, header, async (res) => {
      if (!res.ok) {
        check(false, name, `jwt_sign failed: ${res.state} ${res.msg}`);
        return;
      }
      const tok = res.value;
      for (const [jw, jkey, kidOnly] of s.josePubs) {
        // jose's createLocalJWKSet refuses a token without kid when several
        // keys fit (JWKSMultipleMatchingKeys); the extension tries them all
        if (kidOnly && !expKid) continue;
        await attempt(`${name} -> jose jwtVerify(${jw})`, async () => {
          const r = await jose.jwtVerify(tok, jkey, { algorithms: [s.alg], typ: 'JWT' });
          const h = headerOk(r.protectedHeader, s.alg, expKid);
          if (!h[0]) return [false, `${h[1]} (tok=${tok})`];
          const e = eq(r.payload, claims);
          return e[0] ? e : [false, `${e[1]} (tok=${tok})`];
        });
      }
      const [jw0, jkey0] = s.josePubs[0];
      await attempt(`${name} -> jose compactVerify(${jw0})`, async () => {
        const r = await jose.compactVerify(tok, jkey0, { algorithms: [s.alg] });
        return eq(JSON.parse(new TextDecoder().decode(r.payload)), claims);
      });
      if (s.neg && i === 0) {
        await expectJoseReject(`${name} flipped signature bit -> jose rejects`,
          () => jose.jwtVerify(flipSigBit(tok), jkey0, { algorithms: [s.alg] }),
          'ERR_JWS_SIGNATURE_VERIFICATION_FAILED');
        await expectJoseReject(`${name} tampered payload -> jose rejects`,
          () => jose.jwtVerify(tamperPayload(tok), jkey0, { algorithms: [s.alg] }),
          'ERR_JWS_SIGNATURE_VERIFICATION_FAILED');
        if (s.wrongJose) {
          await expectJoseReject(`${name} -> jose with a wrong key rejects`,
            () => jose.jwtVerify(tok, s.wrongJose, { algorithms: [s.alg] }),
            'ERR_JWS_SIGNATURE_VERIFICATION_FAILED');
        }
      }
    });
  });
}

// 2. jose SignJWT -> jwt_verify with every SQL form of the key
async function checkJoseSigns(s) {
  if (!s.josePriv) return;
  const claims = makeClaims(`josesign-${s.alg}`);
  const name = `[${s.label} ${s.alg}] jose SignJWT`;
  let tok;
  try {
    tok = await joseSign(claims, s.josePriv, s.alg, s.kid);
  } catch (e) {
    check(false, name, `${e.name}: ${e.message}`);
    return;
  }
  for (const [what, key] of s.sqlPubs) {
    sqlVerifyEq(`${name} -> jwt_verify(${what}, {${s.alg}})`, tok, key, { algs: [s.alg] }, claims);
  }
  const [w0, k0] = s.sqlPubs[0];
  sqlVerifyEq(`${name} -> jwt_verify(${w0}, NULL allow-list)`, tok, k0, { algs: null }, claims);
  if (s.neg) {
    sqlVerifyErr(`${name} flipped signature bit -> jwt_verify(${w0}) JW002`,
      flipSigBit(tok), k0, { algs: [s.alg] }, 'JW002');
    sqlVerifyErr(`${name} tampered payload -> jwt_verify(${w0}) JW002`,
      tamperPayload(tok), k0, { algs: [s.alg] }, 'JW002');
    if (s.wrongSql) {
      sqlVerifyErr(`${name} -> jwt_verify(wrong key) JW002`, tok, s.wrongSql, { algs: [s.alg] }, 'JW002');
    }
    sqlVerifyErr(`${name} -> jwt_verify(${w0}, allow-list without ${s.alg}) JW003`,
      tok, k0, { algs: ALL.filter((a) => a !== s.alg) }, 'JW003');
  }
}

// 3. negative and boundary checks
async function negativeChecks() {
  const secret = enc.encode(HMAC_SECRET);
  const rsaPubPem = fixture('rsa_pub_spki.pem');

  // wrong allow-list (JW003), also as psql reports it
  const rsTok = await joseSign(makeClaims('allow'), await jose.importPKCS8(fixture('rsa_priv_pkcs8.pem'), 'RS256'), 'RS256');
  sqlVerifyErr('[neg] jose RS256 token -> jwt_verify(SPKI, {RS384,PS256}) JW003',
    rsTok, rsaPubPem, { algs: ['RS384', 'PS256'] }, 'JW003');
  await attempt('[neg] jose RS256 token -> jwt_verify(SPKI, {ES256}) in psql: ERROR JW003', () => {
    const r = sqlRaw("SELECT jwt_verify(:'tok', :'key'::text, ARRAY['ES256']);",
      { tok: rsTok, key: rsaPubPem });
    return [!r.ok && r.state === 'JW003', `ok=${r.ok} state=${r.state} ${r.err || r.out}`];
  });

  // alg "none" from jose's UnsecuredJWT: refused by jwt_verify and by jose
  const none = new jose.UnsecuredJWT(makeClaims('none')).encode();
  sqlVerifyErr('[neg] jose UnsecuredJWT (alg none) -> jwt_verify(secret) JW003',
    none, HMAC_SECRET, { algs: null }, 'JW003');
  sqlVerifyErr("[neg] jose UnsecuredJWT (alg none) -> jwt_verify(secret, {none}) JW003",
    none, HMAC_SECRET, { algs: ['none'] }, 'JW003');
  await expectJoseReject('[neg] jose jwtVerify refuses alg none',
    () => jose.jwtVerify(none, secret));

  // algorithm confusion: HS256 keyed with the RSA public PEM text (jose lets
  // one do that); jwt_verify with that PEM must refuse, and so must jose
  const conf = await joseSign(makeClaims('confusion'), enc.encode(rsaPubPem), 'HS256');
  sqlVerifyErr('[neg] jose HS256 keyed with RSA public PEM -> jwt_verify(pem, NULL) JW003',
    conf, rsaPubPem, { algs: null }, 'JW003');
  sqlVerifyErr('[neg] jose HS256 keyed with RSA public PEM -> jwt_verify(pem, {HS256}) JW003',
    conf, rsaPubPem, { algs: ['HS256'] }, 'JW003');
  const rsaKey = await jose.importSPKI(rsaPubPem, 'RS256');
  await expectJoseReject('[neg] jose HS256 keyed with RSA public PEM -> jose (RSA key) rejects',
    () => jose.jwtVerify(conf, rsaKey, { algorithms: ['HS256', 'RS256'] }));

  // expired jose token: JW004 (batched, and as psql reports it)
  const t = now();
  const expTok = await joseSign({ ...makeClaims('expired'), iat: t - 100, exp: t - 10 }, secret, 'HS256');
  sqlVerifyErr('[neg] expired jose token -> jwt_verify JW004', expTok, HMAC_SECRET, { algs: ['HS256'] }, 'JW004');
  await attempt('[neg] expired jose token -> jwt_verify in psql: ERROR JW004', () => {
    const r = sqlRaw("SELECT jwt_verify(:'tok', :'key'::text, ARRAY['HS256']);",
      { tok: expTok, key: HMAC_SECRET });
    return [!r.ok && r.state === 'JW004', `ok=${r.ok} state=${r.state} ${r.err || r.out}`];
  });
  // and an expired / not-yet-valid jwt_sign token in jose
  sqlSign({ sub: 'x', exp: t - 10 }, HMAC_SECRET, 'HS256', null, (res) => expectJoseReject(
    '[neg] expired jwt_sign token -> jose JWTExpired',
    () => { if (!res.ok) throw new Error('jwt_sign failed'); return jose.jwtVerify(res.value, secret); },
    'ERR_JWT_EXPIRED'));
  sqlSign({ sub: 'x', nbf: t + 600 }, HMAC_SECRET, 'HS256', null, (res) => expectJoseReject(
    '[neg] jwt_sign token with nbf in the future -> jose rejects (nbf)',
    () => { if (!res.ok) throw new Error('jwt_sign failed'); return jose.jwtVerify(res.value, secret); },
    'ERR_JWT_CLAIM_VALIDATION_FAILED'));

  // nbf / iat in the future, audience, issuer, set by jose's claim setters
  const nbfTok = await new jose.SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'HS256' })
    .setNotBefore(t + 600).sign(secret);
  sqlVerifyErr('[neg] jose setNotBefore(future) -> jwt_verify JW005', nbfTok, HMAC_SECRET, { algs: ['HS256'] }, 'JW005');
  const iatTok = await new jose.SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt(t + 600).sign(secret);
  sqlVerifyErr('[neg] jose setIssuedAt(future) -> jwt_verify JW005', iatTok, HMAC_SECRET, { algs: ['HS256'] }, 'JW005');
  const audClaims = { sub: 'x', aud: 'my-api', iss: 'https://idp.example/', iat: t, exp: t + 600 };
  const audTok = await new jose.SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setAudience('my-api').setIssuer('https://idp.example/').setIssuedAt(t).setExpirationTime(t + 600)
    .sign(secret);
  sqlVerifyEq('[claims] jose setAudience/setIssuer -> jwt_verify(audience, issuer) ok',
    audTok, HMAC_SECRET, { algs: ['HS256'], aud: 'my-api', iss: 'https://idp.example/' }, audClaims);
  sqlVerifyErr('[neg] jose token with aud -> jwt_verify without audience JW006',
    audTok, HMAC_SECRET, { algs: ['HS256'] }, 'JW006');
  sqlVerifyErr('[neg] jose token with aud -> jwt_verify(audience other) JW006',
    audTok, HMAC_SECRET, { algs: ['HS256'], aud: 'other-api' }, 'JW006');
  sqlVerifyErr('[neg] jose token with iss -> jwt_verify(issuer other) JW007',
    audTok, HMAC_SECRET, { algs: ['HS256'], aud: 'my-api', iss: 'https://evil.example/' }, 'JW007');
  const audArrTok = await new jose.SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'HS256' })
    .setAudience(['a1', 'my-api']).sign(secret);
  sqlVerifyEq('[claims] jose setAudience([a1, my-api]) -> jwt_verify(audience my-api) ok',
    audArrTok, HMAC_SECRET, { algs: ['HS256'], aud: 'my-api' }, { sub: 'x', aud: ['a1', 'my-api'] });
  sqlSign({ sub: 'x', aud: ['a1', 'my-api'], iss: 'https://idp.example/' }, HMAC_SECRET, 'HS256', null,
    async (res) => {
      const tok = res.ok ? res.value : 'jwt_sign failed';
      await attempt('[claims] jwt_sign aud/iss -> jose jwtVerify(audience, issuer) ok', async () => {
        const r = await jose.jwtVerify(tok, secret, { audience: 'my-api', issuer: 'https://idp.example/' });
        return [r.payload.sub === 'x', JSON.stringify(r.payload)];
      });
      await expectJoseReject('[neg] jwt_sign aud -> jose jwtVerify(audience other) rejects',
        () => jose.jwtVerify(tok, secret, { audience: 'other' }), 'ERR_JWT_CLAIM_VALIDATION_FAILED');
    });

  // crit: jose signs a token with a critical extension it was told it
  // understands; jwt_verify implements no extension, so JW001
  const critTok = await new jose.SignJWT({ sub: 'x' })
    .setProtectedHeader({ alg: 'HS256', crit: ['urn:example:ext'], 'urn:example:ext': 1 })
    .sign(secret, { crit: { 'urn:example:ext': true } });
  sqlVerifyErr('[neg] jose token with crit -> jwt_verify JW001', critTok, HMAC_SECRET, { algs: ['HS256'] }, 'JW001');

  // time boundaries at a fixed instant T: exp == now is expired, nbf == now is
  // valid, on both sides (jwt_verify's now argument, jose's currentDate)
  const T = 1900000000;
  const bExp = await joseSign({ sub: 'b', exp: T }, secret, 'HS256');
  sqlVerifyErr('[boundary] jose exp=T -> jwt_verify(now=T) JW004', bExp, HMAC_SECRET, { algs: ['HS256'], now: T }, 'JW004');
  sqlVerifyEq('[boundary] jose exp=T -> jwt_verify(now=T-1) ok', bExp, HMAC_SECRET, { algs: ['HS256'], now: T - 1 }, { sub: 'b', exp: T });
  const bNbf = await joseSign({ sub: 'b', nbf: T }, secret, 'HS256');
  sqlVerifyEq('[boundary] jose nbf=T -> jwt_verify(now=T) ok', bNbf, HMAC_SECRET, { algs: ['HS256'], now: T }, { sub: 'b', nbf: T });
  sqlVerifyErr('[boundary] jose nbf=T -> jwt_verify(now=T-1) JW005', bNbf, HMAC_SECRET, { algs: ['HS256'], now: T - 1 }, 'JW005');
  sqlSign({ sub: 'b', exp: T }, HMAC_SECRET, 'HS256', null, async (res) => {
    const tok = res.ok ? res.value : 'jwt_sign failed';
    await expectJoseReject('[boundary] jwt_sign exp=T -> jose(currentDate=T) JWTExpired',
      () => jose.jwtVerify(tok, secret, { currentDate: new Date(T * 1000) }), 'ERR_JWT_EXPIRED');
    await attempt('[boundary] jwt_sign exp=T -> jose(currentDate=T-1) ok', async () => eq(
      (await jose.jwtVerify(tok, secret, { currentDate: new Date((T - 1) * 1000) })).payload, { sub: 'b', exp: T }));
  });
  sqlSign({ sub: 'b', nbf: T }, HMAC_SECRET, 'HS256', null, async (res) => {
    const tok = res.ok ? res.value : 'jwt_sign failed';
    await attempt('[boundary] jwt_sign nbf=T -> jose(currentDate=T) ok', async () => eq(
      (await jose.jwtVerify(tok, secret, { currentDate: new Date(T * 1000) })).payload, { sub: 'b', nbf: T }));
    await expectJoseReject('[boundary] jwt_sign nbf=T -> jose(currentDate=T-1) rejects',
      () => jose.jwtVerify(tok, secret, { currentDate: new Date((T - 1) * 1000) }), 'ERR_JWT_CLAIM_VALIDATION_FAILED');
  });

  // RSA 1024: both sides refuse it, to sign and to verify
  const weakPriv = fixture('rsa1024_priv.pem');
  const weakPub = fixture('rsa1024_pub.pem');
  await expectJoseReject('[neg] jose refuses to sign RS256 with RSA 1024',
    async () => joseSign({ sub: 'w' }, await jose.importPKCS8(weakPriv, 'RS256'), 'RS256'));
  sqlSign({ sub: 'w' }, weakPriv, 'RS256', null, (res) => attempt(
    '[neg] jwt_sign refuses RS256 with RSA 1024 (22023)',
    () => [!res.ok && res.state === '22023', `ok=${res.ok} state=${res.state} ${res.msg || res.value}`]));
  // a 1024-bit RS256 token made with node:crypto directly
  const si = `${b64u(enc.encode('{"alg":"RS256","typ":"JWT"}'))}.${b64u(enc.encode('{"sub":"w"}'))}`;
  const weakTok = `${si}.${b64u(nodeSign('sha256', Buffer.from(si), createPrivateKey(weakPriv)))}`;
  sqlVerifyErr('[neg] RS256 token from an RSA 1024 key -> jwt_verify JW009', weakTok, weakPub, { algs: ['RS256'] }, 'JW009');
  await expectJoseReject('[neg] RS256 token from an RSA 1024 key -> jose rejects',
    async () => jose.jwtVerify(weakTok, createPublicKey(weakPub), { algorithms: ['RS256'] }));
}

// ---------------------------------------------------------------- main

const t0 = Date.now();
const setup = sqlRaw('SET client_min_messages = warning;\nCREATE EXTENSION IF NOT EXISTS jwt;');
if (!setup.ok) {
  console.log(`FAIL: cannot set up the extension: ${setup.err}`);
  failed += 1;
  finish();
  process.exit();
}

try {
  const sets = [...await fixtureSets(), ...await generatedSets()];
  for (const s of sets) {
    checkSqlSigns(s);
    await checkJoseSigns(s);
  }
  await negativeChecks();
  await flush();
} catch (e) {
  check(false, 'suite aborted', `${e.name}: ${e.message}\n${e.stack}`);
}

console.error(`(${((Date.now() - t0) / 1000).toFixed(1)}s, ${psqlCalls} psql calls, jose ${jose.cryptoRuntime || ''} on node ${process.version})`);
finish();
