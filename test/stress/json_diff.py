#!/usr/bin/python3
"""Differential suite of the strict JSON parser (src/jsonutil.c) against an
independent oracle and PostgreSQL's own jsonb_in, through SQL.

    /usr/bin/python3 test/stress/json_diff.py [--seed S] [--count N] [--ascii-count N]
    /usr/bin/python3 test/stress/json_diff.py --seed S --only [PASS:]K     (reproduce one)

Connects with the usual PG* environment variables (superuser, or CREATEDB,
for the SQL_ASCII pass, which is skipped without it).

Inputs (bytes), from a seeded PRNG (input K of a pass is a pure function of
the seed, the pass name and K, so --only can make it alone), plus a fixed
list of hand-picked corner cases (named cK):
  - random JSON objects: nesting, strings with every escape (\\" \\\\ \\/ \\b
    \\f \\n \\r \\t, \\uXXXX in either case, surrogate pairs) and raw UTF-8 of
    1 to 4 bytes, numbers of all shapes (-0, 1E+3, 1.50, 20-digit integers,
    exponents and lengths at and around the +-1000 bounds), literals,
    whitespace of the four JSON kinds, empty containers, 100-300 keys with
    common prefixes (5,000 in corner cases, and 350 kB strings, 48,000
    element arrays), keys equal only after unescaping;
  - the same with hazards: duplicate member names at any depth, numbers out
    of range, nesting around the limit of 64 (and far beyond), top-level
    values that are not objects, several of these at once;
  - token edits (bad literals and numbers such as 01 .5 1. 1e - +1 tru truex
    nulls NaN Infinity, lone or misordered surrogates, \\u0000, bad escapes,
    control characters, missing or extra commas and colons, bad keys) and
    byte edits (insert / replace / delete structural characters, quotes,
    backslashes, control bytes, NUL, 0x80-0xFF, invalid UTF-8: overlong,
    surrogates, F5+, truncated sequences; truncation; copied spans);
  - top-level shapes: scalars, arrays, trailing garbage, two objects, BOM;
  - corner cases of each rule at its bound (nesting 64/65, number length
    1000/1001, exponents +-1000/1001 and ones that wrap around in 32 or 64
    bits, escaped backslashes before "u" for the non-UTF8 escape scan).

Each input goes through jwt_decode_unverified (as the payload of a token
with header {"alg":"HS256"}), or, for every third input, through jwt_header
(as the header, payload {}), one plpgsql call per input in a BEGIN ...
EXCEPTION block, hundreds per statement; the same call also runs
convert_from(bytes, 'UTF8')::jsonb, the reference.

The oracle (Python, independent of PostgreSQL) decides the expected answer:
'ok' or the class of the JW001 error, by the parser's contract and priority
  encoding  >  too deep  >  syntax  >  number  >  duplicate  >  not object:
  encoding   not strict UTF-8, or a NUL byte; in a database that is not
             UTF8, also a \\u escape above U+007F (or a \\u not followed by 4
             hex digits), found by scanning the raw text as jsonutil.c does;
  too deep   more than 64 nested objects/arrays, counted over the raw text
             with brackets inside strings ignored -- before, and whether or
             not, the text is JSON (the pre-scan of jsonutil.c: so
             '{"a":1} x [[[...65' is too deep, not a syntax error);
  syntax     json.loads (C scanner) rejects it, or it has NaN / Infinity /
             -Infinity, a lone or misordered surrogate escape, or \\u0000;
  number     a number longer than 1000 characters, with an exponent beyond
             +-1000, or with (digits before the point + exponent) > 1000;
  duplicate  an object anywhere repeats a member name (after unescaping);
  not object the top-level value is not an object.
  (An empty input never reaches the parser: "malformed token".)

Checks, one per input:
  expected ok   -> the function returns jsonb equal (=) to the reference,
                   with the same text (1.0 vs 1 shows there) and the same
                   datum size (pg_column_size, both in one expression: a
                   plpgsql variable may have a 1- or 4-byte varlena
                   header); the reference itself succeeded;
  expected fail -> SQLSTATE JW001 (nothing else), message "invalid token
                   payload" / "invalid token header", and the detail names
                   the expected class;
  and the oracle against PostgreSQL: what it calls syntax (or, in UTF8,
  encoding) is refused by jsonb_in too; duplicate / not object is accepted
  by jsonb_in.
Plus: every class was expected at least once; the session kept its backend
pid and pg_postmaster_start_time() did not change (no crash).  If the
backend dies, the suite bisects the pass (fresh sessions, waiting for the
restart) for an input that kills it alone and prints its --only command.

A second, smaller pass runs in a SQL_ASCII database made for the purpose
(dropped at the end).

Prints a histogram (expected vs got by class), the inputs where priority
decided between several problems (as far as the oracle can see them: not
behind invalid UTF-8 or a syntax error), the classes by kind of input, at
most 40 FAIL lines (input as a Python repr, truncated), and ends with
"N passed, M failed"; exits 1 when anything failed.  Defaults: 30,000 +
3,000 generated inputs, about 15 s on 2 cores.
"""

import argparse
import json
import os
import random
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stresslib import Session, SessionLost, SQLError, Tally, wait_for_server  # noqa: E402

MAX_DEPTH = 64          # JWT_JSON_MAX_DEPTH
MAX_EXPONENT = 1000     # JSON_MAX_EXPONENT
MAX_NUMBER_LEN = 1000   # JSON_MAX_NUMBER_LEN
BATCH = 400
MAX_FAIL_LINES = 40

CLASSES = ['ok', 'encoding', 'too deep', 'syntax', 'number', 'duplicate', 'not object']
PRIORITY = CLASSES[1:]
EMPTY = 'empty segment'     # parser not reached
MESSAGE = {0: 'invalid token payload', 1: 'invalid token header'}
MODE_NAME = {0: 'payload', 1: 'header'}
HEADER_B64 = 'eyJhbGciOiJIUzI1NiJ9'     # {"alg":"HS256"}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seed', type=int, default=int(os.environ.get('JWT_STRESS_SEED', '20240601')),
                    help='PRNG seed (default: $JWT_STRESS_SEED or 20240601)')
    ap.add_argument('--count', type=int, default=int(os.environ.get('JWT_JSON_DIFF_COUNT', '30000')),
                    help='generated inputs in the UTF8 pass (default 30,000)')
    ap.add_argument('--ascii-count', type=int, default=int(os.environ.get('JWT_JSON_DIFF_ASCII_COUNT', '3000')),
                    help='generated inputs in the SQL_ASCII pass (0: skip the pass)')
    ap.add_argument('--only', metavar='[PASS:]K',
                    help='re-make and re-check one input, verbosely (K a number, or cK for a corner case; '
                         'PASS utf8 (default) or sql_ascii)')
    return ap.parse_args()


# ----------------------------------------------------------------------
# The oracle
# ----------------------------------------------------------------------

class _Num(str):
    """A number token, as the scanner saw it."""


class _Obj:
    __slots__ = ('pairs',)

    def __init__(self, pairs):
        self.pairs = pairs


class _Constant(ValueError):
    pass


def _reject_constant(name):
    raise _Constant(name)


_STRING_RE = re.compile(rb'"(?:[^"\\]|\\.)*(?:"|\\?\Z)', re.S)
_BRACKETS = bytes(range(256)).translate(None, b'{}[]')
_HEX = set(b'0123456789abcdefABCDEF')
_BAD_CHAR_RE = re.compile('[\x00\ud800-\udfff]')


def raw_depth(data):
    """Deepest nesting of { and [ over the raw bytes, brackets inside strings
    ignored (a backslash in a string skips the next byte), whether or not the
    text is JSON: the pre-scan that decides 'too deep'."""
    depth = top = 0
    for c in _STRING_RE.sub(b'', data).translate(None, _BRACKETS):
        if c == 0x7b or c == 0x5b:
            depth += 1
            if depth > top:
                top = depth
        else:
            depth -= 1
    return top


def escapes_fit_ascii(data):
    """In a database that is not UTF8: every backslash-u in the raw text (an
    escaped backslash skipped) is followed by 4 hex digits naming <= U+007F."""
    i, n = 0, len(data)
    while i + 1 < n:
        if data[i] == 0x5c:
            if data[i + 1] == 0x75:
                h = data[i + 2:i + 6]
                if len(h) < 4 or not all(c in _HEX for c in h) or int(h, 16) > 0x7f:
                    return False
                i += 5
            else:
                i += 1
        i += 1
    return True


def number_ok(tok):
    if len(tok) > MAX_NUMBER_LEN:
        return False
    intdigits = len(re.match(r'-?([0-9]*)', tok).group(1))
    exp = 0
    m = re.search(r'[eE]', tok)
    if m:
        exp = int(tok[m.end():])
        if exp > MAX_EXPONENT or exp < -MAX_EXPONENT:
            return False
    return intdigits + exp <= MAX_EXPONENT


class Verdict:
    """What the oracle found: the expected class, and every problem it saw."""

    def __init__(self, cls, problems, why, depth=None):
        self.cls = cls
        self.problems = problems      # classes found, in priority order
        self.why = why
        self.depth = depth            # raw-text depth


def oracle(data, utf8_db=True):
    if len(data) == 0:
        return Verdict(EMPTY, [EMPTY], 'empty input: the token has an empty segment')
    problems = []
    why = []
    text = None
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as e:
        problems.append('encoding')
        why.append('not UTF-8 (%s at byte %d)' % (e.reason, e.start))
    if text is not None and '\x00' in text:
        problems.append('encoding')
        why.append('NUL byte at %d' % text.index('\x00'))
    if not utf8_db and not escapes_fit_ascii(data):
        problems.append('encoding')
        why.append('a \\u escape above U+007F or malformed, in a non-UTF8 database')
    depth = raw_depth(data)
    if depth > MAX_DEPTH:
        problems.append('too deep')
        why.append('raw nesting %d' % depth)
    if text is None or '\x00' in text or depth > 500:
        # the rest is not looked at (encoding or depth wins anyway)
        return _verdict(problems, why, depth)

    flags = {'number': [], 'duplicate': []}

    def on_pairs(pairs):
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            seen = set()
            flags['duplicate'].extend(k for k in keys if k in seen or seen.add(k))
        return _Obj(pairs)

    def on_number(tok):
        if not number_ok(tok):
            flags['number'].append(tok)
        return _Num(tok)

    try:
        value = json.loads(text, object_pairs_hook=on_pairs, parse_constant=_reject_constant,
                           parse_int=on_number, parse_float=on_number)
    except _Constant as e:
        problems.append('syntax')
        why.append('constant %s' % e)
        return _verdict(problems, why, depth)
    except RecursionError:
        why.append('(nesting too deep for Python to judge the syntax)')
        return _verdict(problems, why, depth)
    except ValueError as e:
        problems.append('syntax')
        why.append('json.loads: %s' % e)
        return _verdict(problems, why, depth)

    bad = []
    sdepth = _walk(value, bad)
    if bad:
        problems.append('syntax')
        why.append('string with %s' % ', '.join(sorted(set(
            'U+0000' if c == '\x00' else 'lone surrogate U+%04X' % ord(c) for c in bad))))
        return _verdict(problems, why, depth)
    if sdepth != depth:
        # cannot happen for valid JSON: a bug of the oracle, shown as a failure
        why.append('ORACLE: structural depth %d but raw depth %d' % (sdepth, depth))
        return Verdict('oracle error', problems, '; '.join(why), depth)
    if flags['number']:
        problems.append('number')
        why.append('number %s' % _short(flags['number'][0]))
    if flags['duplicate']:
        problems.append('duplicate')
        why.append('duplicate key %r' % _short(flags['duplicate'][0]))
    if not isinstance(value, _Obj):
        problems.append('not object')
        why.append('top level is %s' % type(value).__name__.lstrip('_'))
    return _verdict(problems, why, depth)


def _short(s, n=40):
    return s if len(s) <= n else s[:n] + '...(%d)' % len(s)


def _verdict(problems, why, depth):
    order = []
    for p in PRIORITY:
        if p in problems:
            order.append(p)
    return Verdict(order[0] if order else 'ok', order, '; '.join(why) or 'valid', depth)


def _walk(v, bad):
    """Structural depth; collects NUL and surrogate characters of strings."""
    if isinstance(v, _Obj):
        d = 0
        for k, x in v.pairs:
            bad.extend(_BAD_CHAR_RE.findall(k))
            d = max(d, _walk(x, bad))
        return d + 1
    if isinstance(v, list):
        d = 0
        for x in v:
            d = max(d, _walk(x, bad))
        return d + 1
    if isinstance(v, str) and not isinstance(v, _Num):
        bad.extend(_BAD_CHAR_RE.findall(v))
    return 0


def detail_class(msg, det):
    """The class named by an error's detail text."""
    if msg == 'malformed token' and det and 'non-empty' in det:
        return EMPTY
    if not det:
        return 'no detail'
    d = det.lower()
    for key, cls in (('utf-8', 'encoding'), ('deep', 'too deep'), ('not valid json', 'syntax'),
                     ('number', 'number'), ('repeats', 'duplicate'), ('not a json object', 'not object')):
        if key in d:
            return cls
    return 'other detail: ' + det


# ----------------------------------------------------------------------
# The generator
# ----------------------------------------------------------------------

WS = ' \t\n\r'
ASCII_CHARS = [chr(c) for c in range(0x20, 0x7f)]
WORD_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_ -.'
SPECIAL_CHARS = ['"', '\\', '/']
CTRL_CHARS = [chr(c) for c in range(1, 0x20)] + ['\x7f']
TWO_BYTE = ['\u0080', '\u0085', '\u009f', '\u00a0', '\u00e9', '\u00ff', '\u0100', '\u0391', '\u07ff', '\u00df']
THREE_BYTE = ['\u0800', '\u20ac', '\u2028', '\u2029', '\ud7ff', '\ue000', '\ufeff', '\ufffd', '\ufffe',
              '\uffff', '\u4e2d', '\uff0e', '\u0301']
FOUR_BYTE = ['\U00010000', '\U0001f600', '\U0010ffff', '\U0001d11e', '\U00020000', '\U000e0001']

CHAR_POOLS = [WORD_CHARS, ASCII_CHARS, SPECIAL_CHARS, CTRL_CHARS, TWO_BYTE, THREE_BYTE, FOUR_BYTE]
CHAR_WEIGHTS = [45, 10, 7, 7, 10, 11, 10]

KEY_POOL = ['a', 'aa', 'aaa', 'ab', 'abc', 'b', 'ba', '', 'A', 'B', '\u00e9', 'e\u0301', 'key', 'key1',
            'key10', 'key2', 'k', 'ke', '\u20ac', '\U0001f600', 'a b', 'a\nb', '\x7f', '/', '"', '\\',
            'iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'alg', 'typ', 'kid', 'crit', 'b64', '\t',
            'alg ', ' alg', 'ALG', 'x' * 40, 'x' * 41, 'z']


def _numbers():
    sane = ['0', '-0', '1', '-1', '0.0', '-0.0', '1.0', '1.50', '100', '1e3', '1E3', '1E+3', '1e-3',
            '1e+0', '0e0', '0E-0', '-12.5e-7', '3.14159', '2.5E+10', '1e0', '10', '-10',
            '9223372036854775807', '9223372036854775808', '-9223372036854775808', '-9223372036854775809',
            '18446744073709551615', '18446744073709551616', '123456789012345678', '1234567890123456789',
            '12345678901234567890', '2147483647', '2147483648', '-2147483649', '4294967296',
            '1e999', '1e-1000', '12e998', '1e0999', '1e-01000', '0.1e999', '-1e999', '1E+999',
            '0.' + '0' * 997 + '1', '1' * 1000, '-' + '1' * 999, '0.' + '1' * 998, '9' * 500 + 'e500',
            '1.' + '0' * 998, '0e-1000', '0e999',
            '253402300799', '253402300800', '1.5e9', '1700000000', '1700000000.000001',
            '1e' + '0' * 990 + '5', '1e0000000000000000000000000000999', '1e-0000000000000000000000000001000',
            '0.000001e995', '-0.0e-1000']
    insane = ['1e1000', '1e1001', '1e-1001', '9e+1000', '0.1e1000', '0.1e1001', '12e999', '1e01000',
              '1e-01001', '1e99999999999999999999', '1e-99999999999999999999', '1' * 1001,
              '-' + '1' * 1000, '0.' + '1' * 999, '9' * 500 + 'e501', '1' * 1000 + 'e0', '1e+1000',
              '0e1000', '0e-1001', '-0e1001', '1E1000', '1' * 2000, '1e' + '9' * 30,
              '123e999', '1.5e1000', '1e' + '0' * 999 + '1', '1e00000000000000000000000000001000',
              # exponents that wrap around in 32 or 64 bits
              '1e18446744073709551616', '1e18446744073709552616', '1e4294967296', '1e4294967297',
              '1e4294968296', '1e-4294967296', '1e9223372036854775807', '1e9223372036854775808',
              '1e-9223372036854775808', '1e-9223372036854775809', '1e-18446744073709551617',
              '1e2147483648', '1e-2147483649']
    assert all(number_ok(s) for s in sane), [s for s in sane if not number_ok(s)]
    assert not any(number_ok(s) for s in insane), [s for s in insane if number_ok(s)]
    return sane, insane


SANE_NUMBERS, INSANE_NUMBERS = _numbers()

BAD_SCALARS = [
    '01', '-01', '00', '0123', '.5', '-.5', '1.', '-1.', '1.e5', '1e', '1E', '1e+', '1e-', '-', '+1', '+0',
    '--1', '- 1', '0x10', '1_000', '1.2.3', '1e5e5', '1ee5', '1e5.5', 'Infinity', '-Infinity', 'NaN',
    '-NaN', 'inf', 'tru', 'truex', 'True', 'TRUE', 'nul', 'nulls', 'NULL', 'None', 'fals', 'falsey',
    'false1', 'null_', 'undefined', "'s'", '"\\ud800"', '"\\udc00"', '"\\udfff"', '"\\ud800\\u0041"',
    '"\\ud800\\ud800"', '"\\udbff"', '"\\ud800x"', '"\\ud800\\n"', '"\\ud800\\\\"', '"\\udc00\\ud800"',
    '"x\\ud83d"', '"\\ude00\\ud83d"', '"\\u0000"', '"a\\u0000b"', '"\\x41"', '"\\u12"', '"\\u12G4"',
    '"\\u-123"', '"\\u 123"', '"\\u+123"', '"\\u0_12"', '"\\U0041"', '"\\a"', "\"\\'\"", '"\\ "', '"\\0"',
    '"\\e"', '"\t"', '"\n"', '"\x01"', '"\x1f"', '"\r"', '"unterminated', '"a"b"', '"a" "b"', '1 2',
    '[1 2]', '[1,]', '[,1]', '[,]', '[1,,2]', '{"a":1,}', '{,}', '{"a"}', '{"a":}', '{"a" 1}',
    '{"a"::1}', '{1:2}', '{null:1}', "{'a':1}", '{a:1}', '{"a":1 "b":2}', '{"a":1;"b":2}', '[', ']',
    '{', '}', '', ':', ',', '"\\"', '"\\', 'tr\u00fce', '\u00a01', '1\u00a0', '\u2028', '\ufeff1',
    '1\x0b', '\x0c1', '"\\u00e9', '\\u0041', '"\\/\\', '0.5.', '-0-', '1-2', '1+2', '.', 'e5', 'E', '+',
    '[]]', '{}}', '[[]', '{"a":{}', '"""', "''", '`a`', '/*c*/1', '1//c', '#', '\\"a\\"',
]

BAD_KEYS = ['1', 'a', "'a'", '"\\ud800"', '"a\\u0000"', 'null', '"unterminated', '"\\x"', '{}', '[]',
            'true', '"a', 'a"', '"\\u12"', '"\t"', '"\\udc00\\ud800"', '', '"a":"b"', '"a" "b"']

NON_JSON_WS = ['\x0b', '\x0c', '\u00a0', '\u2028', '\u2029', '\ufeff', '\u0085', '\u3000', '\x1c', '\x00']

INSERT_BYTES = (b'{}[],:"\\' + b' \t\n\r' + bytes(range(0, 0x20)) + b'\x7f' + b'-+.eE0123456789'
                + b'aftnulrxu/' + bytes(range(0x80, 0x100, 7)))
MULTI_BYTES = [b'\xc0\x80', b'\xc1\xbf', b'\xe0\x80\x80', b'\xe0\x9f\xbf', b'\xed\xa0\x80', b'\xed\xbf\xbf',
               b'\xed\xb0\x80', b'\xf0\x80\x80\x80', b'\xf0\x8f\xbf\xbf', b'\xf4\x90\x80\x80',
               b'\xf5\x80\x80\x80', b'\xf8\x88\x80\x80\x80', b'\xfc\x84\x80\x80\x80\x80', b'\xff', b'\xfe',
               b'\x80', b'\xbf', b'\xe2\x82', b'\xf0\x9f\x98', b'\xc3', b'\xc2\xa0', b'\xe2\x80\xa8',
               b'\xef\xbb\xbf', b'\xf4\x8f\xbf\xbf', b'\xed\x9f\xbf', b'\xee\x80\x80', b'\x00',
               b'\\u', b'\\ud800', b'\\udc00', b'\\u0000', b'\\u00e9', b'\\u007f', b'\\u0080', b'\\"',
               b'"', b'\\\\', b'\\', b'\xc3\xa9', b'\xf0\x9f\x98\x80', b'[[', b']]', b'{"', b'":']
TOP_TRAILERS = ['x', '{}', ' {}', ',', '}', ']', '1', '"s"', 'null', '\n{}', ',{}', '[]', ' ', '\t\r\n',
                '\x00', '//', '\ufeff', ':', '{', '[', ' x']


class Gen:
    """Makes one input from its own PRNG."""

    def __init__(self, rng, utf8_db=True):
        self.r = rng
        self.budget = 0
        # \u escapes of characters: outside UTF8 databases those above U+007F are refused
        self.uesc_rate = rng.choice([0.0, 0.03, 0.12, 0.12, 0.3] if utf8_db else [0.0, 0.0, 0.0, 0.0, 0.03, 0.2])
        self.ws_rate = rng.choice([0.0, 0.1, 0.25, 0.6])
        self.p_dup = 0.0
        self.p_badnum = 0.0

    # -- text pieces
    def ws(self):
        r = self.r
        if r.random() >= self.ws_rate:
            return ''
        if r.random() < 0.7:
            return r.choice(WS)
        return ''.join(r.choice(WS) for _ in range(r.randint(2, 8)))

    def u4(self, cp):
        h = '%04x' % cp
        k = self.r.random()
        if k < 0.3:
            h = h.upper()
        elif k < 0.4:
            h = ''.join(c.upper() if self.r.random() < 0.5 else c for c in h)
        return '\\u' + h

    def uesc(self, cp):
        if cp > 0xffff:
            cp -= 0x10000
            return self.u4(0xd800 + (cp >> 10)) + self.u4(0xdc00 + (cp & 0x3ff))
        return self.u4(cp)

    def esc_char(self, c, force_u=False):
        o = ord(c)
        if force_u:
            return self.uesc(o)
        r = self.r.random()
        if c == '"' or c == '\\':
            return '\\' + c if r < 0.85 else self.uesc(o)
        if o < 0x20:
            short = {8: '\\b', 12: '\\f', 10: '\\n', 13: '\\r', 9: '\\t'}
            if o in short and r < 0.7:
                return short[o]
            return self.uesc(o)
        if c == '/':
            return '\\/' if r < 0.3 else ('/' if r < 0.9 else self.uesc(o))
        if r < self.uesc_rate:
            return self.uesc(o)
        return c

    def enc_string(self, s, force_u=False):
        return '"' + ''.join(self.esc_char(c, force_u) for c in s) + '"'

    def rand_string(self, maxlen=10):
        r = self.r
        k = r.random()
        if k < 0.05:
            n = 0
        elif k < 0.985:
            n = r.randint(1, maxlen)
        else:
            n = r.randint(50, 300)
        self.budget += n
        return ''.join([r.choice(pool) for pool in r.choices(CHAR_POOLS, CHAR_WEIGHTS, k=n)])

    def rand_key(self):
        k = self.r.random()
        if k < 0.4:
            return self.r.choice(KEY_POOL)
        if k < 0.6:
            return self.r.choice(KEY_POOL) + self.rand_string(3)
        return self.rand_string(8)

    def number(self):
        r = self.r
        if self.p_badnum and r.random() < self.p_badnum:
            return r.choice(INSANE_NUMBERS)
        k = r.random()
        if k < 0.3:
            return r.choice(SANE_NUMBERS)
        sign = '-' if r.random() < 0.3 else ''
        if r.random() < 0.15:
            ip = '0'
        else:
            ip = str(r.randint(1, 9)) + ''.join(r.choice('0123456789') for _ in range(r.choice(
                [0, 0, 1, 2, 3, 5, 8, 12, 17, 18, 19, 20, 25])))
        frac = ''
        if r.random() < 0.4:
            frac = '.' + ''.join(r.choice('0123456789') for _ in range(r.randint(1, 20)))
        exp = ''
        if r.random() < 0.3:
            e = r.choice([0, 1, 3, 10, 100, 307, 308, 400, 990, 999, 1000 - len(ip)])
            esign = r.choice(['', '+', '-'])
            if esign != '-' and e + len(ip) > MAX_EXPONENT:
                e = MAX_EXPONENT - len(ip)
            exp = r.choice('eE') + esign + '0' * r.choice([0, 0, 0, 1, 3]) + str(e)
        return sign + ip + frac + exp

    def scalar(self):
        k = self.r.random()
        if k < 0.4:
            return ('s', self.rand_string())
        if k < 0.8:
            return ('n', self.number())
        return ('l', self.r.choice(['true', 'false', 'null']))

    def value(self, depth, maxd):
        r = self.r
        if depth < maxd and self.budget < 600:
            k = r.random()
            if k < 0.17:
                return self.obj(depth + 1, maxd)
            if k < 0.3:
                return self.arr(depth + 1, maxd)
        self.budget += 3
        return self.scalar()

    def nkeys(self, depth):
        r = self.r
        k = r.random()
        if k < 0.08:
            return 0
        if k < 0.93 or self.budget > 300:
            return r.randint(1, 5)
        if k < 0.985 or depth > 1:
            return r.randint(6, 30)
        return r.randint(100, 300)

    def obj(self, depth, maxd):
        r = self.r
        n = self.nkeys(depth)
        pairs = []
        seen = set()
        many = n > 40
        prefix = r.choice(['', 'k', 'key', 'claim_', '\u00e9', 'x' * 20])
        for i in range(n):
            if many:
                key = prefix + r.choice([str(i), '%03d' % i, self.rand_string(4) + str(i), str(i) * 2])
            else:
                key = self.rand_key()
            if key in seen:
                continue
            seen.add(key)
            self.budget += len(key) + 2
            pairs.append([key, self.value(depth, maxd), False])
        if pairs and self.p_dup and r.random() < self.p_dup:
            for _ in range(r.choice([1, 1, 1, 2, 5])):
                src = r.choice(pairs)
                pos = r.randint(0, len(pairs))
                pairs.insert(pos, [src[0], self.value(depth, maxd), r.random() < 0.4])
        return ('o', pairs)

    def arr(self, depth, maxd):
        r = self.r
        k = r.random()
        n = 0 if k < 0.1 else (r.randint(1, 5) if k < 0.97 or self.budget > 300 else r.randint(20, 80))
        return ('a', [self.value(depth, maxd) for _ in range(n)])

    def chain(self, d, top_obj=True, siblings=0.2):
        """d nested containers, the outermost an object (or array)."""
        r = self.r
        v = self.scalar() if r.random() < 0.7 else (('o', []) if r.random() < 0.5 else ('a', []))
        for level in range(d - 1, 0, -1):
            if r.random() < 0.5:
                pairs = [[self.rand_key() or 'k', v, False]]
                if r.random() < siblings:
                    extra = self.rand_key()
                    if extra != pairs[0][0]:
                        pairs.insert(r.randint(0, 1), [extra, self.scalar(), False])
                v = ('o', pairs)
            else:
                items = [v]
                if r.random() < siblings:
                    items.insert(r.randint(0, 1), self.scalar())
                v = ('a', items)
        if top_obj:
            return ('o', [[self.rand_key(), v, False]])
        return ('a', [v])

    # -- serialization into tokens (kind, text)
    def ser(self, v, out):
        t = v[0]
        if t == 'o':
            out.append(('{', '{'))
            for i, (k, x, force_u) in enumerate(v[1]):
                if i:
                    out.append((',', ','))
                out.append(('ws', self.ws()))
                out.append(('key', self.enc_string(k, force_u)))
                out.append(('ws', self.ws()))
                out.append((':', ':'))
                out.append(('ws', self.ws()))
                self.ser(x, out)
                out.append(('ws', self.ws()))
            if not v[1]:
                out.append(('ws', self.ws()))
            out.append(('}', '}'))
        elif t == 'a':
            out.append(('[', '['))
            for i, x in enumerate(v[1]):
                if i:
                    out.append((',', ','))
                out.append(('ws', self.ws()))
                self.ser(x, out)
                out.append(('ws', self.ws()))
            if not v[1]:
                out.append(('ws', self.ws()))
            out.append((']', ']'))
        elif t == 's':
            out.append(('str', self.enc_string(v[1])))
        elif t == 'n':
            out.append(('num', v[1]))
        elif t == 'l':
            out.append(('lit', v[1]))
        else:
            out.append(('raw', v[1]))

    def document(self, v):
        out = [('ws', self.ws())]
        self.ser(v, out)
        out.append(('ws', self.ws()))
        return out

    # -- edits
    def token_edit(self, toks):
        r = self.r
        op = r.choice(['badscalar', 'badscalar', 'badscalar', 'badkey', 'drop', 'extra', 'badws',
                       'insane', 'swap'])
        idx = lambda kinds: [i for i, (k, _) in enumerate(toks) if k in kinds]  # noqa: E731
        if op == 'badscalar' or op == 'insane':
            c = idx(('str', 'num', 'lit'))
            if c:
                i = r.choice(c)
                toks[i] = ('raw', r.choice(BAD_SCALARS) if op == 'badscalar' else r.choice(INSANE_NUMBERS))
                return op
            op = 'drop'
        if op == 'badkey':
            c = idx(('key',))
            if c:
                toks[r.choice(c)] = ('raw', r.choice(BAD_KEYS))
                return op
            op = 'drop'
        if op == 'drop':
            c = idx((',', ':', '{', '}', '[', ']'))
            if c:
                del toks[r.choice(c)]
                return op
            op = 'extra'
        if op == 'swap':
            c = idx((',', ':'))
            if c:
                i = r.choice(c)
                toks[i] = ('raw', ':' if toks[i][0] == ',' else ',')
                return op
            op = 'extra'
        if op == 'extra':
            c = idx(('{', '[', '}', ']', ',', ':'))
            i = r.choice(c) if c else 0
            toks.insert(i + r.randint(0, 1), ('raw', r.choice([',', ',', ':', ',,', ', ', ':,'])))
            return op
        # badws
        c = idx(('ws',))
        toks.insert(r.choice(c) if c else 0, ('raw', r.choice(NON_JSON_WS)))
        return op

    def byte_edit(self, b):
        r = self.r
        op = r.choice(['ins', 'ins', 'repl', 'repl', 'del', 'del', 'multi', 'multi', 'trunc', 'copy',
                       'delrange'])
        n = len(b)
        pos = r.randint(0, n)
        if op == 'ins':
            return b[:pos] + bytes([r.choice(INSERT_BYTES)]) + b[pos:], op
        if op == 'repl' and n:
            pos = min(pos, n - 1)
            return b[:pos] + bytes([r.choice(INSERT_BYTES)]) + b[pos + 1:], op
        if op == 'del' and n:
            pos = min(pos, n - 1)
            return b[:pos] + b[pos + 1:], op
        if op == 'multi':
            m = r.choice(MULTI_BYTES)
            if r.random() < 0.3 and n:
                pos = min(pos, n - 1)
                return b[:pos] + m + b[pos + 1:], op
            return b[:pos] + m + b[pos:], op
        if op == 'trunc':
            return b[:r.randint(1, max(1, n - 1))], op
        if op == 'copy' and n:
            a = r.randint(0, n - 1)
            e = min(n, a + r.randint(1, 30))
            return b[:pos] + b[a:e] + b[pos:], op
        if op == 'delrange' and n:
            a = r.randint(0, n - 1)
            return b[:a] + b[min(n, a + r.randint(2, 12)):], op
        return b + b'x', 'append'


def generate(seed, pass_name, k):
    """Input k of a pass: (bytes, how it was made)."""
    rng = random.Random('%d:%s:%d' % (seed, pass_name, k))
    g = Gen(rng, utf8_db=pass_name == 'utf8')
    r = rng
    kind = r.choices(['valid', 'hazard', 'token', 'bytes', 'top', 'deep'],
                     weights=[33, 12, 20, 24, 5, 6])[0]
    how = [kind]
    if kind in ('hazard', 'token', 'bytes') and r.random() < (1.0 if kind == 'hazard' else 0.3):
        g.p_dup = r.choice([0.05, 0.2, 0.5])
        g.p_badnum = r.choice([0.0, 0.0, 0.02, 0.1])
        how.append('hazards')
    maxd = r.choice([1, 2, 2, 3, 3, 4, 5, 6, 8])
    if kind == 'deep':
        d = r.choice([r.randint(60, 70)] * 8 + [63, 64, 65, 66, r.randint(1, 200)])
        v = g.chain(d, top_obj=r.random() < 0.9, siblings=r.choice([0.0, 0.2, 0.6]))
        how.append('depth %d' % d)
        if r.random() < 0.3:
            g.p_dup, g.p_badnum = 0.3, 0.1
            # a hazard somewhere: a wide object next to the chain
            extra = g.obj(1, 3)
            if v[0] == 'o':
                v[1].append([r.choice(['', 'z', 'zz']) + g.rand_key(), extra, False])
            else:
                v[1].append(extra)
            how.append('hazards')
        toks = g.document(v)
    elif kind == 'top':
        k2 = r.random()
        if k2 < 0.35:
            v = g.value(0, maxd) if r.random() < 0.5 else g.arr(1, maxd)
            if v[0] == 'o':
                v = ('a', [v])
            toks = g.document(v)
            how.append('not an object')
        else:
            toks = g.document(g.obj(1, maxd))
            if k2 < 0.75:
                toks.append(('raw', r.choice(TOP_TRAILERS)))
                how.append('trailer')
            elif k2 < 0.85:
                toks.insert(0, ('raw', r.choice(TOP_TRAILERS)))
                how.append('leader')
            else:
                toks.insert(0, ('ws', ''.join(r.choice(WS) for _ in range(r.randint(1, 5)))))
                toks.append(('ws', ''.join(r.choice(WS) for _ in range(r.randint(1, 5)))))
                how.append('whitespace')
    else:
        if kind == 'hazard' and r.random() < 0.25:
            v = ('a', [g.obj(2, maxd + 1) for _ in range(r.randint(1, 3))])     # not an object, too
            how.append('in an array')
        else:
            v = g.obj(1, maxd)
        toks = g.document(v)
    if kind == 'token' or (kind == 'deep' and r.random() < 0.2):
        for _ in range(r.choice([1, 1, 1, 2, 3])):
            how.append(g.token_edit(toks))
    data = ''.join(t for _, t in toks).encode('utf-8', 'surrogatepass')
    if kind == 'bytes' or (kind == 'deep' and r.random() < 0.15):
        for _ in range(r.choice([1, 1, 1, 2, 3])):
            data, op = g.byte_edit(data)
            how.append(op)
    return data, ' '.join(how)


# ----------------------------------------------------------------------
# Hand-picked corner cases
# ----------------------------------------------------------------------

def _deep(n, inner=b'1', open_=b'[', close=b']'):
    return b'{"a":' + open_ * (n - 1) + inner + close * (n - 1) + b'}'


def _many_keys(n, prefix='k'):
    return ('{' + ','.join('"%s%d":%d' % (prefix, i, i) for i in range(n)) + '}').encode()


CORNERS = [
    # valid
    b'{}', b'{ }', b' \t\n\r{}\r\n\t ', b'{"a":1}', b'{"a":"\\u0061"}', b'{"":""}', b'{"a":[]}',
    b'{"a":{}}', b'{"a":[{}],"b":[[]]}', b'{\t"a"\n:\r1 ,\n"b" : [ 1 , 2 ] }',
    b'{"a":true,"b":false,"c":null}', b'{"s":"\\"\\\\\\/\\b\\f\\n\\r\\t"}',
    b'{"s":"\\u00e9\\u00E9\\u20ac\\uFFFF\\ufeff\\uD7FF\\uE000"}', b'{"s":"\\ud83d\\ude00\\uD83D\\uDE00"}',
    b'{"s":"\\udbff\\udfff\\ud800\\udc00"}', '{"s":"\u00e9\u20ac\U0001f600\U0010ffff\x7f\u0080"}'.encode(),
    b'{"s":"\\u0001\\u001f\\u007f\\u0080"}', b'{"\\u0061b":1,"ab ":2}',
    b'{"a":"[[[[{{{{"}', b'{"a":"\\"[[[["}', b'{"a\\\\":"[[["}',
    b'{"a":1,"aa":2,"b":3,"ab":4,"":5,"aaa":6,"B":7}',
    _many_keys(150), _many_keys(300, 'key_'),
    b'{"n":0,"m":-0,"f":1.50,"g":-12.5e-7,"h":1E+3,"i":1e3,"j":0.0,"k":-0.0,"l":1.0}',
    b'{"n":9223372036854775807,"m":9223372036854775808,"o":-9223372036854775809}',
    b'{"n":18446744073709551616,"m":1234567890123456789012}',
    b'{"n":1e999}', b'{"n":1e-1000}', b'{"n":12e998}', b'{"n":1e0999}', b'{"n":0.1e999}',
    b'{"n":' + b'1' * 1000 + b'}', b'{"n":-' + b'1' * 999 + b'}', b'{"n":0.' + b'1' * 998 + b'}',
    b'{"n":' + b'9' * 500 + b'e500}', b'{"n":1e-01000}', b'{"n":0e-1000}', b'{"n":0e999}',
    _deep(64), _deep(63, b'{}', b'{"k":', b'}'), _deep(63, b'{"b":[]}'), _deep(64, b'"[[[["'),
    b'[' * 64 + b']' * 64,
    b'{"a":"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf"}',
    b'{"a":"\\u0041\\u007f"}', b'{"a\xc3\xa9":1,"b\\u00e9":2}', b'{"a":"\\\\u00e9"}',
    b'{"a":"\\\\\\u00e9"}', b'{"a":"\\\\\\\\u00e9"}',
    # encoding
    b'{}\x00', b'\x00{}', b'{"a":"\x00"}', b'{"a":"\xc0\x80"}', b'{"a":"\xc1\xbf"}', b'{"a":"\xe0\x80\x80"}',
    b'{"a":"\xed\xa0\x80"}', b'{"a":"\xed\xbf\xbf"}', b'{"a":"\xf0\x80\x80\x80"}', b'{"a":"\xf4\x90\x80\x80"}',
    b'{"a":"\xf5\x80\x80\x80"}', b'{"a":"\xff"}', b'{"a":"\x80"}', b'{"a":"\xe2\x82"}', b'{"a":"\xf0\x9f\x98"}',
    b'{"a":1}\xc3', b'{"a":1,"a":2}\xff', _deep(65) + b'\xff', b'{"a":1e1001}\x00',
    # too deep, and its priority over syntax
    _deep(65), _deep(65, b'{}', b'{"k":', b'}'), _deep(1000), b'[' * 10000 + b']' * 10000,
    b'{"a":' + b'[' * 70, b'{"a":1}' + b'[' * 65, b'{"a":1}x' + b'{' * 65, _deep(66, b'01'),
    _deep(65, b'1e1001'), _deep(65, b'{"x":1,"x":2}'), b'[' * 65 + b']' * 65,
    b']' * 5 + b'[' * 66, b'}' * 3 + b'{' * 67, b'{"a":"' + b'[' * 70, b'{"a":"\\"' + b'[' * 70,
    b'{"a":"\\\\"' + b'[' * 70, b'{"a":\\"' + b'[' * 70,
    # syntax
    b'', b' ', b'\t\n', b'{', b'}', b'{"a"}', b'{"a":}', b'{"a" 1}', b'{"a":1,}', b'{,"a":1}', b'{"a":1 "b":2}',
    b'{"a":[1,]}', b'{"a":[,]}', b'{"a":[1 2]}', b'{"a":tru}', b'{"a":truex}', b'{"a":nulls}', b'{"a":True}',
    b'{"a":01}', b'{"a":-01}', b'{"a":.5}', b'{"a":1.}', b'{"a":1e}', b'{"a":1e+}', b'{"a":-}', b'{"a":+1}',
    b'{"a":NaN}', b'{"a":Infinity}', b'{"a":-Infinity}', b'{"a":0x1}', b"{'a':1}", b'{a:1}', b'{1:1}',
    b'{"a":"\\ud800"}', b'{"a":"\\udc00"}', b'{"a":"\\ud800\\u0041"}', b'{"a":"\\ud800\\ud800"}',
    b'{"a":"\\udc00\\ud800"}', b'{"a":"\\ud800x"}', b'{"a":"\\ud800\\n"}', b'{"\\ud800":1}',
    b'{"a":"\\u0000"}', b'{"\\u0000":1}', b'{"a":"x\\u0000"}', b'{"a":"\\x"}', b'{"a":"\\u12"}',
    b'{"a":"\\u12"', b'{"a":"\\u12', b'{"a":"\\u"}', b'{"a":"\\u 123"}', b'{"a":"\\u+123"}', b'{"a":"\\U0041"}',
    b'{"a":"\t"}', b'{"a":"\n"}', b'{"a":"\x1f"}', b'{"a":"\x01"}', b'{"a":"x', b'{"a":"x\\',
    b'\xef\xbb\xbf{}', b'{\x0b}', b'{\x0c}', b'{\xc2\xa0}', b'{\xe2\x80\xa8}', b'{}{}', b'{} {}', b'{}x',
    b'{},', b'{}]', b'{}}', b'{"a":1}}', b'[{}', b'{"a":1,"a":2', b'{"a":1e1001', b'{"a":1}\\u00e9',
    b'{"a":"b"}\\u0041', b'{"a":1e1001,"a":2}x', b'{"a":1,"a":2} 1', b'[] {"a":1,"a":1}', b'{"a":"\\u00"}',
    # number, and its priority over duplicate and not object
    b'{"n":1e1000}', b'{"n":1e1001}', b'{"n":1e-1001}', b'{"n":12e999}', b'{"n":0.1e1000}',
    b'{"n":1e+1000}', b'{"n":1e01000}', b'{"n":1e99999999999999999999}', b'{"n":1e-99999999999999999999}',
    b'{"n":' + b'1' * 1001 + b'}', b'{"n":-' + b'1' * 1000 + b'}', b'{"n":0.' + b'1' * 999 + b'}',
    b'{"n":' + b'9' * 500 + b'e501}', b'{"n":0e1000}', b'{"n":-0e-1001}', b'1e1001', b'[1e1001]',
    b'{"a":1e1001,"a":1}', b'[{"a":1,"a":2},1e1001]', b'{"a":{"b":[1e5000]}}', b'{"n":1e18446744073709551616}',
    b'{"n":1e18446744073709552616}', b'{"n":1e4294967296}', b'{"n":1e-4294967296}', b'{"n":1e4294968296}',
    b'{"n":1e9223372036854775808}', b'{"n":-1e-9223372036854775809}',
    # duplicate, and its priority over not object
    b'{"a":1,"a":1}', b'{"a":1,"\\u0061":2}', b'{"\\u0061":1,"a":2}', b'{"":1,"":2}',
    b'{"a":{"b":1,"b":2}}', b'{"a":[{"b":1,"\\u0062":2}]}', b'[{"a":1,"a":2}]', b'{"\xc3\xa9":1,"\\u00e9":2}',
    b'{"\\ud83d\\ude00":1,"\xf0\x9f\x98\x80":2}', b'{"a\\/b":1,"a/b":2}', b'{"a":1,"b":2,"a":3}',
    _deep(63, b'{"x":1,"x":2}', b'{"k":', b'}'), _deep(64, b'{"x":1,"x":2}', b'{"k":', b'}'),
    b'{"a":1,"A":2,"a ":3,"a":4}',
    # large
    _many_keys(5000), _many_keys(5000)[:-1] + b',"k2500":0}', b'{"s":"' + b'x\\u00e9' * 50000 + b'"}',
    b'{"a":[' + b','.join([b'1.50', b'-0', b'"s"', b'{}', b'[]', b'null'] * 8000) + b']}',
    ('{' + ','.join('"%s":%d' % ('k' * (i % 50) + '%x' % (i * 7919 % 5000), i) for i in range(5000)) + '}').encode(),
    # not object
    b'[]', b'1', b'"s"', b'null', b'true', b'false', b'-0', b' [ ] ', b'[{"a":1}]', b'"{}"', b'[[[]]]',
    b'0.5', b'"\\u00e9"',
]


# ----------------------------------------------------------------------
# SQL
# ----------------------------------------------------------------------

FUNC_SQL = r"""
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS jwt;
CREATE FUNCTION pg_temp.jdiff(h text, m int,
    OUT st text, OUT msg text, OUT det text, OUT rst text,
    OUT eq boolean, OUT teq boolean, OUT seq boolean, OUT xt text, OUT rt text)
LANGUAGE plpgsql AS $f$
DECLARE
  b bytea := decode(h, 'hex');
  seg text := translate(encode(b, 'base64'), E'+/=\n', '-_');
  enc name := getdatabaseencoding();
  x jsonb;
  r jsonb;
  tok text := CASE WHEN m = 0 THEN 'eyJhbGciOiJIUzI1NiJ9.' || seg || '.c2ln' ELSE seg || '.e30.c2ln' END;
BEGIN
  BEGIN
    IF m = 0 THEN
      x := jwt_decode_unverified(tok);
    ELSE
      x := jwt_header(tok);
    END IF;
    st := '00000';
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
    msg := encode(convert_to(msg, enc), 'hex');
    det := encode(convert_to(det, enc), 'hex');
  END;
  BEGIN
    r := convert_from(b, 'UTF8')::jsonb;
    rst := '00000';
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS rst = RETURNED_SQLSTATE;
  END;
  IF x IS NOT NULL AND r IS NOT NULL THEN
    eq := x = r;
    teq := x::text = r::text;
    -- datum sizes, compared within one expression: a plpgsql variable may
    -- hold a value with a 1-byte or a 4-byte varlena header
    IF m = 0 THEN
      seq := pg_column_size(jwt_decode_unverified(tok)) = pg_column_size(convert_from(b, 'UTF8')::jsonb);
    ELSE
      seq := pg_column_size(jwt_header(tok)) = pg_column_size(convert_from(b, 'UTF8')::jsonb);
    END IF;
  END IF;
  IF x IS NOT NULL AND NOT (coalesce(eq, false) AND teq AND seq) THEN
    xt := encode(convert_to(left(x::text, 300), enc), 'hex');
    rt := encode(convert_to(left(r::text, 300), enc), 'hex');
    IF NOT seq THEN
      xt := encode(convert_to(CASE m WHEN 0 THEN pg_column_size(jwt_decode_unverified(tok))
                                     ELSE pg_column_size(jwt_header(tok)) END || ' bytes: ', enc), 'hex') || xt;
      rt := encode(convert_to(pg_column_size(convert_from(b, 'UTF8')::jsonb) || ' bytes: ', enc), 'hex') || rt;
    END IF;
  END IF;
END
$f$;
"""


def mode_of(name):
    """Every third input goes through jwt_header, the rest jwt_decode_unverified."""
    return 1 if _index(name) % 3 == 2 else 0


def _index(name):
    return int(name[1:]) if name.startswith('c') else int(name)


def run_batch(sess, items):
    """items: [(name, data, mode)]; returns one result dict per item."""
    values = ',\n'.join("(%d, '%s', %d)" % (i, data.hex(), mode) for i, (_, data, mode) in enumerate(items))
    rows = sess.rows('SELECT v.i, r.* FROM (VALUES %s) v(i, h, m), LATERAL pg_temp.jdiff(v.h, v.m) r '
                     'ORDER BY v.i;' % values)
    if len(rows) != len(items):
        raise SQLError('expected %d rows, got %d' % (len(items), len(rows)))
    out = []
    for row in rows:
        i, st, msg, det, rst, eq, teq, seq, xt, rt = row
        out.append({'st': st, 'msg': _unhex(msg), 'det': _unhex(det), 'rst': rst,
                    'eq': eq, 'teq': teq, 'seq': seq, 'xt': _unhex(xt), 'rt': _unhex(rt)})
    return out


def _unhex(h):
    return bytes.fromhex(h).decode('utf-8', 'backslashreplace') if h else None


def judge(v, mode, res, utf8_db):
    """Problems with one result (empty: it passed); and the class the extension gave."""
    probs = []
    if res['st'] == '00000':
        got = 'ok'
    elif res['st'] == 'JW001':
        got = detail_class(res['msg'], res['det'])
    else:
        got = 'SQLSTATE %s' % res['st']
    if v.cls == 'ok':
        if got != 'ok':
            probs.append('expected ok, got %s%s' % (got, (' (%s: %s)' % (res['msg'], res['det']))
                                                    if res['st'] != '00000' else ''))
        elif res['rst'] != '00000':
            probs.append('the extension accepted it, but the reference ::jsonb failed with %s' % res['rst'])
        else:
            if res['eq'] != 't':
                probs.append('jsonb differs from the reference (=)')
            if res['teq'] != 't':
                probs.append('text differs from the reference')
            if res['seq'] != 't':
                probs.append('datum size differs from the reference')
            if probs:
                probs.append('got %s / reference %s' % (res['xt'], res['rt']))
    else:
        want_msg = 'malformed token' if v.cls == EMPTY else MESSAGE[mode]
        if got != v.cls:
            probs.append('expected %s, got %s%s' % (
                v.cls, got, (' (%s: %s)' % (res['msg'], res['det'])) if res['st'] not in ('00000', 'JW001') else
                (' (a jsonb came back)' if got == 'ok' else '')))
        elif res['msg'] != want_msg:
            probs.append('message %r, expected %r' % (res['msg'], want_msg))
        # the oracle against PostgreSQL's own parser
        if v.cls == 'syntax' and res['rst'] == '00000':
            probs.append('ORACLE: says syntax, but jsonb_in accepts it')
        if v.cls == 'encoding' and utf8_db and res['rst'] == '00000':
            probs.append('ORACLE: says encoding, but convert_from/jsonb_in accept it')
        if v.cls in ('duplicate', 'not object') and res['rst'] != '00000':
            probs.append('ORACLE: says %s (so valid JSON), but jsonb_in refuses it: %s' % (v.cls, res['rst']))
    if v.cls == 'oracle error':
        probs.append(v.why)
    return got, probs


def show_input(data, n=160):
    s = repr(data)
    return s if len(s) <= n else s[:n] + '...(%d bytes)' % len(data)


class Pass:
    def __init__(self, name, utf8_db):
        self.name = name
        self.utf8_db = utf8_db
        self.expected = {}
        self.got = {}
        self.modes = {0: 0, 1: 0}
        self.multi = {}
        self.kinds = {}
        self.failures = []
        self.n = 0
        self.gen_time = 0.0
        self.sql_time = 0.0

    def record(self, name, data, how, v, mode, got, probs):
        self.n += 1
        self.modes[mode] += 1
        self.expected[v.cls] = self.expected.get(v.cls, 0) + 1
        self.got[got] = self.got.get(got, 0) + 1
        if len(v.problems) > 1:
            key = ' > '.join(v.problems)
            self.multi[key] = self.multi.get(key, 0) + 1
        kind = how.split(' ')[0]
        kk = self.kinds.setdefault(kind, {})
        kk[v.cls] = kk.get(v.cls, 0) + 1
        if probs:
            self.failures.append((name, data, how, v, mode, got, probs))


def inputs(seed, pass_name, count):
    for i, data in enumerate(CORNERS):
        yield 'c%d' % i, data, 'corner'
    for k in range(count):
        data, how = generate(seed, pass_name, k)
        yield str(k), data, how


def run_pass(sess, p, seed, count, shown):
    t0 = time.time()
    batch = []

    def flush():
        t = time.time()
        results = run_batch(sess, [(name, data, mode) for name, data, how, v, mode in batch])
        p.sql_time += time.time() - t
        for (name, data, how, v, mode), res in zip(batch, results):
            got, probs = judge(v, mode, res, p.utf8_db)
            p.record(name, data, how, v, mode, got, probs)
            if probs and shown[0] < MAX_FAIL_LINES:
                shown[0] += 1
                print('FAIL: [%s] #%s (%s, %s): %s; input %s' % (
                    p.name, name, MODE_NAME[mode], how, '; '.join(probs), show_input(data)), flush=True)
        batch.clear()

    for name, data, how in inputs(seed, p.name, count):
        t = time.time()
        v = oracle(data, p.utf8_db)
        p.gen_time += time.time() - t
        batch.append((name, data, how, v, mode_of(name)))
        if len(batch) >= BATCH or sum(len(b[1]) for b in batch) > 2000000:
            flush()
    if batch:
        flush()
    p.wall = time.time() - t0


def report(tally, p, shown):
    print('\n[%s] %d inputs (%d hand-picked, %d generated): %d through jwt_decode_unverified, %d through '
          'jwt_header; %.1f s (oracle and generator %.1f s, SQL %.1f s)' % (
              p.name, p.n, len(CORNERS), p.n - len(CORNERS), p.modes[0], p.modes[1], p.wall,
              p.wall - p.sql_time, p.sql_time))
    print('  %-14s %9s %9s' % ('class', 'expected', 'got'))
    for c in CLASSES + [EMPTY] + sorted((set(p.got) | set(p.expected)) - set(CLASSES) - {EMPTY}):
        if c in p.expected or c in p.got or c in CLASSES:
            print('  %-14s %9d %9d' % (c, p.expected.get(c, 0), p.got.get(c, 0)))
    if p.multi:
        print('  inputs with several problems (priority decided), by the problems found:')
        for k, n in sorted(p.multi.items(), key=lambda kv: -kv[1]):
            print('    %6d  %s' % (n, k))
    print('  expected class by kind of input:')
    for kind, d in sorted(p.kinds.items()):
        print('    %-7s %s' % (kind, ', '.join('%s %d' % (c, d[c]) for c in CLASSES + [EMPTY] if c in d)))
    for c in CLASSES:
        tally.check(p.expected.get(c, 0) > 0, '[%s] some input was expected to be "%s"' % (p.name, c))
    tally.add(p.n - len(p.failures), len(p.failures))
    if len(p.failures) and shown[0] >= MAX_FAIL_LINES:
        print('  (%d failures in this pass; FAIL lines are shown for the first %d of the run)'
              % (len(p.failures), MAX_FAIL_LINES))


def sessions_alive(tally, sess, pid0, pst0, what):
    try:
        pid, pst = sess.rows('SELECT pg_backend_pid(), pg_postmaster_start_time();')[0]
    except SessionLost as e:
        tally.check(False, '%s: backend survived' % what, str(e))
        return
    tally.check(pid == pid0, '%s: same backend pid at the end' % what, '%s then %s' % (pid0, pid))
    tally.check(pst == pst0, '%s: pg_postmaster_start_time() unchanged' % what, '%s then %s' % (pst0, pst))


def locate_crash(seed, pass_name, count, dbname, utf8_db):
    """Find an input that kills the backend alone, by bisection over the pass."""
    items = [(name, data, mode_of(name)) for name, data, how in inputs(seed, pass_name, count)]
    print('locating the input that crashes the backend (each crash waits for the restart)...', flush=True)

    def crashes(sub):
        s = wait_for_server(dbname)
        if s is None:
            raise SessionLost('the server did not come back')
        try:
            s.query(FUNC_SQL)
            for i in range(0, len(sub), BATCH):
                run_batch(s, sub[i:i + BATCH])
            return False
        except SessionLost:
            return True
        finally:
            s.close()

    lo, n = 0, len(items)
    while n > 1:
        half = n // 2
        if crashes(items[lo:lo + half]):
            n = half
        else:
            lo, n = lo + half, n - half
    if not crashes(items[lo:lo + 1]):
        print('  no single input crashes it alone')
        return
    name, data, mode = items[lo]
    print('  crashing input: %s #%s through %s: %s\n  hex: %s\n  reproduce: /usr/bin/python3 '
          'test/stress/json_diff.py --seed %d --only %s:%s'
          % (pass_name, name, MODE_NAME[mode], show_input(data, 400), data.hex(), seed, pass_name, name),
          flush=True)


def make_ascii_db(admin):
    db = 'jwt_json_diff_sqlascii_%d' % os.getpid()
    out = admin.query("CREATE DATABASE %s ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' "
                      "TEMPLATE template0;" % db, allow_error=True)
    if any('ERROR' in line for line in out):
        print('SKIP: SQL_ASCII pass (cannot create a database: %s)' % ' '.join(out))
        return None
    return db


def reproduce(args):
    spec = args.only
    pass_name, name = spec.split(':') if ':' in spec else ('utf8', spec)
    if pass_name not in ('utf8', 'sql_ascii'):
        sys.exit('unknown pass %s (utf8 or sql_ascii)' % pass_name)
    if name.startswith('c'):
        data, how = CORNERS[int(name[1:])], 'corner'
    else:
        data, how = generate(args.seed, pass_name, int(name))
    mode = mode_of(name)
    utf8_db = pass_name == 'utf8'
    v = oracle(data, utf8_db)
    tally = Tally()
    print('seed %d, pass %s, input #%s (%s), through %s' % (args.seed, pass_name, name, how,
                                                              'jwt_decode_unverified' if mode == 0 else 'jwt_header'))
    print('  bytes (%d): %s\n  hex: %s' % (len(data), show_input(data, 2000), data.hex()))
    print('  oracle: %s (problems: %s; %s; raw depth %s)' % (v.cls, ', '.join(v.problems) or 'none', v.why,
                                                            v.depth))
    admin = Session()
    db = None
    if not utf8_db:
        db = make_ascii_db(admin)
        if db is None:
            return 1
    sess = Session(dbname=db) if db else admin
    try:
        sess.query(FUNC_SQL)
        res = run_batch(sess, [(name, data, mode)])[0]
        got, probs = judge(v, mode, res, utf8_db)
        print('  extension: %s  (SQLSTATE %s, message %r, detail %r)' % (got, res['st'], res['msg'], res['det']))
        print('  reference convert_from(...)::jsonb: SQLSTATE %s; equal %s, same text %s, same size %s'
              % (res['rst'], res['eq'] or '-', res['teq'] or '-', res['seq'] or '-'))
        if res['st'] == '00000':
            t = sess.value("SELECT x FROM (SELECT %s(%s) x) s;" % (
                'jwt_decode_unverified' if mode == 0 else 'jwt_header',
                "'%s.%s.c2ln'" % (HEADER_B64, _b64(data)) if mode == 0 else "'%s.e30.c2ln'" % _b64(data)))
            print('  result: %s' % show_input(t, 2000))
        tally.check(not probs, 'input %s:%s' % (pass_name, name), '; '.join(probs))
    except SessionLost as e:
        tally.check(False, 'input %s:%s: the backend survived' % (pass_name, name), str(e))
    finally:
        if sess is not admin:
            sess.close()
        if db:
            admin.close()
            s = wait_for_server(None, timeout=60)
            if s:
                s.query('DROP DATABASE IF EXISTS %s WITH (FORCE);' % db, allow_error=True)
                s.close()
        else:
            admin.close()
    return tally.finish()


def _b64(data):
    import base64
    return base64.urlsafe_b64encode(data).decode().rstrip('=')


def main():
    args = parse_args()
    if args.only:
        return reproduce(args)
    tally = Tally()
    t_start = time.time()
    print('json_diff: seed %d, %d generated + %d hand-picked inputs (UTF8 pass), %d + %d (SQL_ASCII pass)'
          % (args.seed, args.count, len(CORNERS), args.ascii_count, len(CORNERS) if args.ascii_count else 0),
          flush=True)
    shown = [0]
    main_sess = Session(appname='jwt-json-diff')
    ascii_db = ascii_sess = None
    current = ('utf8', None, args.count, True)
    try:
        pid0, pst0 = main_sess.rows('SELECT pg_backend_pid(), pg_postmaster_start_time();')[0]
        enc = main_sess.value('SELECT getdatabaseencoding();')
        if enc != 'UTF8':
            sys.exit('this database is %s: the suite wants a UTF8 database (PGDATABASE)' % enc)
        main_sess.query(FUNC_SQL)
        p = Pass('utf8', True)
        run_pass(main_sess, p, args.seed, args.count, shown)
        report(tally, p, shown)

        if args.ascii_count > 0:
            ascii_db = make_ascii_db(main_sess)
            if ascii_db:
                current = ('sql_ascii', ascii_db, args.ascii_count, False)
                ascii_sess = Session(dbname=ascii_db, appname='jwt-json-diff')
                apid0, apst0 = ascii_sess.rows('SELECT pg_backend_pid(), pg_postmaster_start_time();')[0]
                ascii_sess.query(FUNC_SQL)
                pa = Pass('sql_ascii', False)
                run_pass(ascii_sess, pa, args.seed, args.ascii_count, shown)
                report(tally, pa, shown)
        print()
        sessions_alive(tally, main_sess, pid0, pst0, 'utf8 session')
        if ascii_sess:
            sessions_alive(tally, ascii_sess, apid0, apst0, 'sql_ascii session')
            ascii_sess.close()
            ascii_sess = None
        if ascii_db:
            main_sess.query('DROP DATABASE IF EXISTS %s WITH (FORCE);' % ascii_db)
            ascii_db = None
        main_sess.close()
        if tally.failed:
            print('reproduce one:  /usr/bin/python3 test/stress/json_diff.py --seed %d --only PASS:K' % args.seed)
        print('%.1f s in all' % (time.time() - t_start))
    except (SessionLost, SQLError) as e:
        tally.check(False, 'the suite ran to the end', '%s: %s' % (type(e).__name__, e))
        for s in (ascii_sess, main_sess):
            if s:
                s.close()
        if isinstance(e, SessionLost):
            try:
                locate_crash(args.seed, current[0], current[2], current[1], current[3])
            except Exception as e2:  # noqa: BLE001
                print('  (could not locate it: %s)' % e2)
        try:
            s = wait_for_server(None, timeout=60)
            if s and ascii_db:
                s.query('DROP DATABASE IF EXISTS %s WITH (FORCE);' % ascii_db, allow_error=True)
            if s:
                s.close()
        except Exception:  # noqa: BLE001
            pass
    return tally.finish()


if __name__ == '__main__':
    sys.exit(main())
