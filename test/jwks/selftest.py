#!/usr/bin/python3
"""selftest.py -- check the fake identity provider (idp.py) with curl.

Starts idp.py through idpctl, exercises every mode with the curl command line
(--cacert test/fixtures/idp/ca.pem, proxies off), checks the TLS fixtures
(good cert verifies, the "other" cert does not), prints "N passed, M failed"
and exits non-zero on failure.  Run: /usr/bin/python3 test/jwks/selftest.py
"""

import email.utils
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import idpctl  # noqa: E402

passed = failed = 0
tmp = tempfile.mkdtemp(prefix="idp-selftest-")


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("ok   %s" % name)
    else:
        failed += 1
        print("FAIL %s %s" % (name, detail))


def curl(url, *args, cacert=idpctl.CA_FILE):
    """-> (exit code, write-out dict, body bytes, {lower header: value})."""
    body, hdrs = os.path.join(tmp, "body"), os.path.join(tmp, "hdrs")
    for f in (body, hdrs):
        open(f, "w").close()
    cmd = ["curl", "-sS", "--noproxy", "*", "-o", body, "-D", hdrs,
           "-w", "%{json}", "--max-time", "20"]
    cmd += (["--cacert", cacert] if cacert else []) + list(args) + [url]
    p = subprocess.run(cmd, capture_output=True, text=True)
    try:
        w = json.loads(p.stdout)
    except ValueError:
        w = {}
    h = {}
    for line in open(hdrs, encoding="latin-1"):    # last response wins
        if ":" in line:
            k, v = line.split(":", 1)
            h[k.strip().lower()] = v.strip()
    return p.returncode, w, open(body, "rb").read(), h


def get_json(url, *args, **kw):
    rc, w, body, h = curl(url, *args, **kw)
    try:
        return rc, w, json.loads(body), h
    except ValueError:
        return rc, w, None, h


def main():
    priv, jwk = idpctl.generate_es256()
    _, jwk2 = idpctl.generate_es256(kid="second")
    doc = idpctl.jwks(jwk, jwk2)

    with idpctl.start() as idp:
        B = idp.base_url
        idp.set_jwks(doc)

        # TLS: good cert, both SANs; no CA or the wrong CA fails
        rc, w, d, _ = get_json(idp.discovery_url)
        check("good cert verifies with ca.pem", rc == 0 and w.get("ssl_verify_result") == 0, (rc, w.get("errormsg")))
        check("discovery document", d == {"issuer": B, "jwks_uri": B + "/jwks.json"}, d)
        rc, _, d, _ = get_json("https://localhost:%d/jwks.json" % idp.port)
        check("DNS:localhost SAN verifies", rc == 0 and d == doc, rc)
        rc, *_ = curl(idp.jwks_url, cacert=None)
        check("system CA store rejects it (curl 60)", rc == 60, rc)
        rc, *_ = curl(idp.jwks_url, cacert=idpctl.OTHER_CA_FILE)
        check("other-ca.pem rejects good cert (curl 60)", rc == 60, rc)

        rc, _, d, _ = get_json(idp.tenant_url + "/.well-known/openid-configuration")
        check("tenant discovery", d == {"issuer": B + "/tenant", "jwks_uri": B + "/tenant/jwks.json"}, d)
        rc, _, d, _ = get_json(B + "/tenant/jwks.json")
        check("tenant jwks", d == doc, d)
        rc, w, _, _ = curl(B + "/nope")
        check("unknown path 404", w.get("http_code") == 404, w.get("http_code"))

        # ok + the JWS helper (verified independently with jwcrypto)
        rc, w, d, h = get_json(idp.jwks_url)
        check("ok: 200 application/json JWKS", rc == 0 and w.get("http_code") == 200
              and h.get("content-type") == "application/json" and d == doc, (rc, w.get("http_code"), d))
        claims = {"iss": B, "sub": "alice", "exp": int(time.time()) + 60}
        tok = idpctl.sign(priv, jwk["kid"], claims)
        try:
            from jwcrypto import jwk as jk, jws
            ks = jk.JWKSet.from_json(json.dumps(d))
            o = jws.JWS()
            o.deserialize(tok)
            o.verify(ks.get_key(jwk["kid"]), alg="ES256")
            ok = json.loads(o.payload) == claims and o.jose_header["kid"] == jwk["kid"]
        except Exception as e:  # noqa: BLE001
            ok = False
            print("   ", repr(e))
        check("sign() verifies (jwcrypto) with the served JWK", ok)
        idp.set_jwks('{"keys": [ not json')
        rc, w, body, _ = curl(idp.jwks_url)
        check("set_jwks(str) is served verbatim", body == b'{"keys": [ not json', body[:40])
        idp.set_jwks(doc)

        idp.set_mode("500")
        rc, w, _, _ = curl(idp.jwks_url)
        check("500", w.get("http_code") == 500, w.get("http_code"))
        rc, w, _, _ = curl(idp.jwks_url, "--fail")
        check("500 with curl --fail (22)", rc == 22, rc)

        idp.set_mode("html")
        rc, w, body, h = curl(idp.jwks_url)
        check("html: 200 text/html", w.get("http_code") == 200 and
              h.get("content-type", "").startswith("text/html") and b"<html>" in body, (w.get("http_code"), h.get("content-type")))

        idp.set_mode("empty")
        rc, w, d, _ = get_json(idp.jwks_url)
        check("empty", w.get("http_code") == 200 and d == {"keys": []}, d)

        idp.set_mode("huge")
        rc, w, d, h = get_json(idp.jwks_url)
        check("huge: 5 MiB, valid JSON, keys intact", rc == 0 and w.get("size_download") == 5 * 1024 * 1024
              and int(h.get("content-length", 0)) == 5 * 1024 * 1024 and d and d["keys"] == doc["keys"], w.get("size_download"))
        rc, *_ = curl(idp.jwks_url, "--max-filesize", "1048576")
        check("huge: curl --max-filesize 1M refuses (63)", rc == 63, rc)

        idp.set_mode("stall", seconds=2)
        t = time.monotonic()
        rc, *_ = curl(idp.jwks_url, "--max-time", "1")
        check("stall: curl --max-time 1 times out (28)", rc == 28 and time.monotonic() - t < 1.9, rc)
        t = time.monotonic()
        rc, w, d, _ = get_json(idp.jwks_url)
        el = time.monotonic() - t
        check("stall: answers ok after 2 s", rc == 0 and d == doc and 1.9 <= el < 5, (rc, el))

        idp.set_mode("redirect_http")
        rc, w, _, h = curl(idp.jwks_url)
        check("redirect_http: 302 to http://", w.get("http_code") == 302
              and h.get("location", "").startswith("http://127.0.0.1:"), h.get("location"))
        rc, *_ = curl(idp.jwks_url, "-L", "--proto-redir", "=https")
        check("redirect_http: refused with --proto-redir =https (1)", rc == 1, rc)
        rc, w, d, _ = get_json(idp.jwks_url, "-L")
        check("redirect_http: target really serves the JWKS", rc == 0 and d == doc, rc)
        idp.set_mode("redirect_http", url="http://127.0.0.1:1/x")
        rc, w, _, h = curl(idp.jwks_url)
        check("redirect_http url=", h.get("location") == "http://127.0.0.1:1/x", h.get("location"))

        idp.set_mode("redirect_https")
        rc, w, d, _ = get_json(idp.jwks_url, "-L", "--proto-redir", "=https")
        check("redirect_https: followed, JWKS, 1 redirect", rc == 0 and d == doc
              and w.get("num_redirects") == 1, (rc, w.get("num_redirects")))
        idp.set_mode("redirect_https", hops=4)
        rc, w, d, _ = get_json(idp.jwks_url, "-L")
        check("redirect_https hops=4: 4 redirects", rc == 0 and d == doc and w.get("num_redirects") == 4, w.get("num_redirects"))
        rc, *_ = curl(idp.jwks_url, "-L", "--max-redirs", "3")
        check("redirect_https hops=4: --max-redirs 3 refuses (47)", rc == 47, rc)

        idp.set_mode("500", endpoint="discovery")
        rc, w, _, _ = curl(idp.discovery_url)
        rc2, _, d, _ = get_json(idp.jwks_url, "-L")
        check("mode per endpoint (discovery 500, jwks untouched)", w.get("http_code") == 500 and d == doc, w.get("http_code"))
        idp.set_mode("ok", endpoint="discovery")
        idp.set_mode("ok")

        idp.set_headers(cache_control="max-age=120", expires=60)
        rc, w, d, h = get_json(idp.jwks_url)
        exp = email.utils.parsedate_to_datetime(h["expires"]).timestamp() if "expires" in h else 0
        check("Cache-Control + Expires (int = now+60)", h.get("cache-control") == "max-age=120"
              and abs(exp - time.time() - 60) < 5, (h.get("cache-control"), h.get("expires")))
        idp.set_headers(expires="0")
        rc, w, d, h = get_json(idp.jwks_url)
        check("Expires verbatim, Cache-Control cleared", h.get("expires") == "0" and "cache-control" not in h, h)
        idp.set_headers()
        rc, w, d, h = get_json(idp.jwks_url)
        check("headers cleared", "expires" not in h and "cache-control" not in h, h)

        idp.set_discovery_issuer("https://evil.example")
        _, _, d, _ = get_json(idp.discovery_url)
        _, _, d2, _ = get_json(idp.tenant_url + "/.well-known/openid-configuration")
        check("issuer mismatch", d == {"issuer": "https://evil.example", "jwks_uri": B + "/jwks.json"}
              and d2["issuer"] == "https://evil.example", (d, d2))
        idp.set_discovery_issuer(None)
        _, _, d, _ = get_json(idp.discovery_url)
        check("issuer back to default", d["issuer"] == B, d)

        idp.reset_counts()
        for _ in range(3):
            curl(idp.jwks_url)
        curl(idp.discovery_url)
        curl(idp.jwks_url + "?x=1")
        c = idp.counts()
        check("counts", c == {"/jwks.json": 4, "/.well-known/openid-configuration": 1}, c)
        rc, w, d, _ = get_json(idp.control_url + "/counts")
        check("control port is plain HTTP", rc == 0 and d == c, rc)
        idp.reset_counts()
        check("reset_counts", idp.counts() == {}, idp.counts())
        idp.set_mode("html")
        idp.set_headers(cache_control="no-store")
        curl(idp.jwks_url)
        idp.reset()
        _, _, d, h = get_json(idp.jwks_url)
        check("reset: modes/headers/counts back, JWKS kept", d == doc and "cache-control" not in h
              and idp.counts() == {"/jwks.json": 1}, (d, h, idp.counts()))
        listening = [s for s in (idp.port, idp.control_port)]
        proc = idp.proc
    check("stop() ends the process", proc.poll() is not None, proc.poll())
    check("ports closed after stop", all(not port_open(p) for p in listening), listening)

    with idpctl.start(cert="other") as other:
        rc, *_ = curl(other.jwks_url)
        check("other cert fails with ca.pem (curl 60)", rc == 60, rc)
        rc, w, d, _ = get_json(other.jwks_url, cacert=idpctl.OTHER_CA_FILE)
        check("other cert verifies with other-ca.pem", rc == 0 and d == {"keys": []}, rc)

    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


def port_open(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
