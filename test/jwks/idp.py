#!/usr/bin/python3
"""idp.py -- a fake OpenID identity provider over HTTPS, for the jwt tests.

The database fetches JWKS itself (libcurl); this server is what it fetches
from.  Standard library only (but for signing the device flow's tokens,
which needs python3-cryptography).  Usually driven through idpctl.py.

    idp.py [--port N] [--control-port N] [--cert good|other] [--jwks FILE] [-v]

Port 0 (the default) picks a free port.  When both ports are bound, one line
is printed on stdout and nothing else is ever printed there:

    READY port=<https port> control_port=<control port>

HTTPS port (127.0.0.1, cert test/fixtures/idp/server.pem, or other-server.pem
with --cert other), base = https://127.0.0.1:PORT:
  /.well-known/openid-configuration          {"issuer": base, "jwks_uri": base/jwks.json}
  /tenant/.well-known/openid-configuration   {"issuer": base/tenant, "jwks_uri": base/tenant/jwks.json}
  /jwks.json, /tenant/jwks.json              the current JWKS
  /r/<n>/<path>   302 to /r/<n-1>/<path>; /r/0/<path> serves <path> in mode ok
The JWKS endpoints answer according to the "jwks" mode, the discovery
endpoints according to the "discovery" mode (default both ok):
  ok              200 application/json, the document
  500             500 with a small text body
  html            200 text/html
  empty           200 {"keys": []}
  huge            200 application/json, a valid JSON object of `size` bytes
                  (default 5 MiB: the document plus padding)
  stall           sleep `seconds` (default 10), then answer as ok
  redirect_http   302 to `url` (default http://127.0.0.1:CONTROL/<path>,
                  which serves the same document over plain HTTP)
  redirect_https  302 to /r/<hops-1>/<path> on this server (default hops=1)
Cache-Control / Expires headers, when set, go on every response of both
kinds of endpoint.  The Date header, and an Expires given in seconds, follow
the provider's clock: the real time plus the skew set with POST /clock.
Each request to the HTTPS port (any path, query string dropped) is counted;
requests for a plain copy on the control port are counted as "http:<path>".

Control port (plain HTTP, 127.0.0.1; request and response bodies are JSON):
  PUT  /jwks        body = the JWKS, served byte for byte (need not be JSON)
  POST /mode        {"mode": M, "endpoint": "jwks"|"discovery", "seconds": S,
                     "size": B, "hops": H, "url": U}  (omitted = defaults)
  POST /headers     {"cache_control": str|null, "expires": str|int|null}
                    replaces both; an int is seconds from now, sent as an
                    HTTP date computed per response; null = no header
  POST /clock       {"skew": S}: the HTTPS side's clock (Date, and an int
                    Expires) runs S seconds ahead (negative: behind)
  POST /discovery   {"issuer": str|null, "jwks_uri": str|null}, null = default
                    (applies to both discovery documents)
  GET  /counts      {"/jwks.json": 3, ...} since start or last reset
  POST /counts/reset
  POST /reset       everything back to the start state (JWKS kept; the
                    device flow off)
  GET  /state       the whole state, for debugging
  PUT  /device      {"private_pem": PEM, "kid": str|null, "claims": {...},
                     "header": {...}, "pending": N, "error": str|null}:
                    turns the device flow on (see below); body null = off
  GET  /device      {"on": bool, "requests": [...]}: the device flow's
                    requests since it was last set, in order, each
                    {"endpoint": "device_authorization"|"token", "form": {...},
                    "status": code, "response": {...}}

Device authorization flow (RFC 8628), auto-approving, off until PUT /device.
When on, both discovery documents also carry
  device_authorization_endpoint   <issuer>/device_authorization
  token_endpoint                  <issuer>/token
  grant_types_supported           ["urn:ietf:params:oauth:grant-type:device_code"]
(the default documents are unchanged while it is off), and:
  POST /device_authorization, /tenant/device_authorization
      200 {"device_code", "user_code", "verification_uri": base/device,
           "expires_in": 600, "interval": 1}; needs client_id in the form
  POST /token, /tenant/token  (grant_type = ...:device_code, device_code)
      the first `pending` polls of a device code: 400 authorization_pending;
      then, with `error` set, 400 {"error": error}; else 200
      {"access_token": <JWT>, "token_type": "Bearer", "expires_in": ...}, the
      JWT ES256-signed with private_pem (header kid = kid, plus `header`),
      payload `claims` verbatim; a device code gives one token, then
      400 invalid_grant.  Unknown codes: 400 invalid_grant; another grant
      type: 400 unsupported_grant_type.
With the flow off these POSTs answer 404.  POSTs are counted like GETs.
  GET  /jwks.json, /.well-known/openid-configuration, /tenant/...
                    plain-HTTP copies (the target of redirect_http)
"""

import argparse
import email.utils
import json
import os
import secrets
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "..", "fixtures", "idp")
CERTS = {"good": ("server.pem", "server.key"),
         "other": ("other-server.pem", "other-server.key")}
MODES = ("ok", "500", "html", "empty", "huge", "stall",
         "redirect_http", "redirect_https")
HUGE = 5 * 1024 * 1024
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEVICE_EXPIRES_IN = 600


def default_mode():
    return {"mode": "ok"}


class State:
    """Everything the control port can change; guarded by one lock."""

    def __init__(self, jwks):
        self.lock = threading.Lock()
        self.jwks = jwks
        self.reset()

    def reset(self):
        self.modes = {"jwks": default_mode(), "discovery": default_mode()}
        self.headers = {"cache_control": None, "expires": None}
        self.discovery = {"issuer": None, "jwks_uri": None}
        self.skew = 0.0
        self.counts = {}
        self.device = None          # the device flow's settings; None = off
        self.device_codes = {}      # device_code -> {"polls": n, "used": bool}
        self.device_requests = []

    def now(self):
        """The provider's clock."""
        with self.lock:
            return time.time() + self.skew

    def count(self, path):
        with self.lock:
            self.counts[path] = self.counts.get(path, 0) + 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-idp/1"
    sys_version = ""

    @property
    def state(self):
        return self.server.state

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("idp %s: %s\n" % (self.server.name, fmt % args))

    def send(self, code, body=b"", ctype="application/json", headers=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def document(self, path):
        """(kind, body) for a served path, or None.  kind: jwks|discovery."""
        base = self.server.https_base
        prefix = "/tenant" if path.startswith("/tenant/") else ""
        rest = path[len(prefix):]
        if rest == "/jwks.json":
            with self.state.lock:
                return "jwks", self.state.jwks
        if rest == "/.well-known/openid-configuration":
            with self.state.lock:
                d = dict(self.state.discovery)
                device_on = self.state.device is not None
            doc = {"issuer": d["issuer"] or base + prefix,
                   "jwks_uri": d["jwks_uri"] or base + prefix + "/jwks.json"}
            if device_on:
                doc.update(device_authorization_endpoint=base + prefix
                           + "/device_authorization",
                           token_endpoint=base + prefix + "/token",
                           grant_types_supported=[DEVICE_GRANT])
            return "discovery", json.dumps(doc).encode()
        return None

    def cache_headers(self):
        with self.state.lock:
            h = dict(self.state.headers)
        out = []
        if h["cache_control"] is not None:
            out.append(("Cache-Control", h["cache_control"]))
        if isinstance(h["expires"], int):
            out.append(("Expires", email.utils.formatdate(
                self.state.now() + h["expires"], usegmt=True)))
        elif h["expires"] is not None:
            out.append(("Expires", h["expires"]))
        return out


class IdpHandler(Handler):
    """The HTTPS side."""

    def date_time_string(self, timestamp=None):
        # the Date header, by the provider's (possibly skewed) clock
        return email.utils.formatdate(
            self.state.now() if timestamp is None else timestamp, usegmt=True)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        self.state.count(path)
        if path.startswith("/r/"):
            return self.redirect_chain(path)
        doc = self.document(path)
        if doc is None:
            return self.send(404, "not found\n", "text/plain")
        kind, body = doc
        with self.state.lock:
            m = dict(self.state.modes[kind])
        self.answer(path, body, m)

    do_HEAD = do_GET

    def do_POST(self):
        """The device authorization flow's two endpoints."""
        path = self.path.split("?", 1)[0]
        self.state.count(path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        rest = path[len("/tenant"):] if path.startswith("/tenant/") else path
        endpoint = {"/device_authorization": "device_authorization",
                    "/token": "token"}.get(rest)
        with self.state.lock:
            dev = self.state.device
        if endpoint is None or dev is None:
            return self.send(404, "not found\n", "text/plain")
        form = {k: v[0] for k, v in
                parse_qs(raw.decode("utf-8", "replace")).items()}
        if endpoint == "device_authorization":
            code, body = self.device_authorization(form)
        else:
            code, body = self.token(form, dev)
        with self.state.lock:
            self.state.device_requests.append(
                {"endpoint": endpoint, "form": form, "status": code,
                 "response": body})
        self.send(code, json.dumps(body),
                  headers=[("Cache-Control", "no-store")])

    def device_authorization(self, form):
        if not form.get("client_id"):
            return 400, {"error": "invalid_client",
                         "error_description": "no client_id"}
        device_code = secrets.token_urlsafe(24)
        letters = "BCDFGHJKLMNPQRSTVWXZ"
        user_code = "".join(secrets.choice(letters) for _ in range(8))
        with self.state.lock:
            self.state.device_codes[device_code] = {"polls": 0, "used": False}
        return 200, {"device_code": device_code,
                     "user_code": user_code[:4] + "-" + user_code[4:],
                     "verification_uri": self.server.https_base + "/device",
                     "expires_in": DEVICE_EXPIRES_IN, "interval": 1}

    def token(self, form, dev):
        if form.get("grant_type") != DEVICE_GRANT:
            return 400, {"error": "unsupported_grant_type"}
        with self.state.lock:
            entry = self.state.device_codes.get(form.get("device_code"))
            if entry is None or entry["used"]:
                return 400, {"error": "invalid_grant"}
            entry["polls"] += 1
            if entry["polls"] <= int(dev.get("pending") or 0):
                return 400, {"error": "authorization_pending"}
            entry["used"] = True
        if dev.get("error"):
            return 400, {"error": dev["error"]}
        from idpctl import sign     # python3-cryptography, needed only here
        try:
            jwt = sign(dev["private_pem"], dev.get("kid"),
                       dev.get("claims") or {}, dev.get("header"))
        except Exception as e:      # noqa: BLE001 -- a bad key: say so
            return 400, {"error": "server_error",
                         "error_description": "cannot sign: %s" % e}
        body = {"access_token": jwt, "token_type": "Bearer"}
        exp = (dev.get("claims") or {}).get("exp")
        if isinstance(exp, (int, float)):
            body["expires_in"] = max(0, int(exp - time.time()))
        return 200, body

    def redirect_chain(self, path):
        parts = path.split("/", 3)          # "", "r", n, rest
        try:
            n, rest = int(parts[2]), "/" + parts[3]
        except (IndexError, ValueError):
            return self.send(404, "bad redirect path\n", "text/plain")
        if n > 0:
            return self.send(302, "", "text/plain",
                             [("Location", "%s/r/%d%s" % (
                                 self.server.https_base, n - 1, rest))])
        doc = self.document(rest)
        if doc is None:
            return self.send(404, "not found\n", "text/plain")
        self.answer(rest, doc[1], default_mode())

    def answer(self, path, body, m):
        mode, hdrs = m["mode"], self.cache_headers()
        if mode == "stall":
            time.sleep(float(m.get("seconds", 10)))
            mode = "ok"
        if mode == "ok":
            self.send(200, body, headers=hdrs)
        elif mode == "500":
            self.send(500, "internal server error\n", "text/plain", hdrs)
        elif mode == "html":
            self.send(200, "<!DOCTYPE html><html><body><h1>Sign in</h1>"
                      "</body></html>\n", "text/html; charset=utf-8", hdrs)
        elif mode == "empty":
            self.send(200, '{"keys": []}', headers=hdrs)
        elif mode == "huge":
            self.send(200, pad(body, int(m.get("size", HUGE))), headers=hdrs)
        elif mode == "redirect_http":
            url = m.get("url") or "%s%s" % (self.server.http_base, path)
            self.send(302, "", "text/plain", hdrs + [("Location", url)])
        elif mode == "redirect_https":
            url = "%s/r/%d%s" % (self.server.https_base,
                                 int(m.get("hops", 1)) - 1, path)
            self.send(302, "", "text/plain", hdrs + [("Location", url)])


def pad(body, size):
    """A JSON object of exactly `size` bytes holding body's members (if body
    is a JSON object) plus a "padding" string member."""
    try:
        doc = json.loads(body)
        assert isinstance(doc, dict)
    except (ValueError, AssertionError):
        doc = {}
    doc["padding"] = ""
    n = len(json.dumps(doc).encode())
    doc["padding"] = "x" * max(0, size - n)
    return json.dumps(doc).encode()


class ControlHandler(Handler):
    """The plain-HTTP control side."""

    def reply(self, obj, code=200):
        self.send(code, json.dumps(obj, sort_keys=True) + "\n")

    def do_GET(self):
        st = self.state
        if self.path == "/counts":
            with st.lock:
                return self.reply(dict(st.counts))
        if self.path == "/state":
            with st.lock:
                return self.reply({"modes": st.modes, "headers": st.headers,
                                   "discovery": st.discovery, "skew": st.skew,
                                   "counts": st.counts,
                                   "jwks": st.jwks.decode("utf-8", "replace"),
                                   "device": st.device,
                                   "device_requests": st.device_requests})
        if self.path == "/device":
            with st.lock:
                return self.reply({"on": st.device is not None,
                                   "requests": st.device_requests})
        doc = self.document(self.path)
        if doc is None:
            return self.reply({"error": "no such path"}, 404)
        st.count("http:" + self.path)
        self.send(200, doc[1])

    def do_PUT(self):
        self.do_POST()

    def do_POST(self):
        st = self.state
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/jwks":
            with st.lock:
                st.jwks = raw
            return self.reply({"ok": True})
        try:
            arg = json.loads(raw) if raw.strip() else {}
        except ValueError as e:
            return self.reply({"error": "bad JSON: %s" % e}, 400)
        with st.lock:
            if self.path == "/mode":
                if arg.get("mode") not in MODES:
                    return self.reply({"error": "mode must be one of %s"
                                       % ", ".join(MODES)}, 400)
                endpoint = arg.pop("endpoint", "jwks")
                if endpoint not in st.modes:
                    return self.reply({"error": "bad endpoint"}, 400)
                st.modes[endpoint] = arg
            elif self.path == "/headers":
                st.headers = {"cache_control": arg.get("cache_control"),
                              "expires": arg.get("expires")}
            elif self.path == "/clock":
                try:
                    st.skew = float(arg.get("skew", 0))
                except (TypeError, ValueError):
                    return self.reply({"error": "skew must be a number"}, 400)
            elif self.path == "/discovery":
                st.discovery = {"issuer": arg.get("issuer"),
                                "jwks_uri": arg.get("jwks_uri")}
            elif self.path == "/device":
                if arg is not None and not (isinstance(arg, dict)
                                            and arg.get("private_pem")):
                    return self.reply({"error": "body must be null or an "
                                       "object with private_pem"}, 400)
                st.device = arg
                st.device_codes = {}
                st.device_requests = []
            elif self.path == "/counts/reset":
                st.counts = {}
            elif self.path == "/reset":
                st.reset()
            else:
                return self.reply({"error": "no such operation"}, 404)
        self.reply({"ok": True})


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # TLS failures (the "unknown CA" case) and clients that hang up
        # mid-stall are expected; anything else gets a traceback.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ssl.SSLError, ConnectionError, TimeoutError)):
            if self.verbose:
                sys.stderr.write("idp %s: %r\n" % (self.name, exc))
            return
        super().handle_error(request, client_address)


class TLSServer(Server):
    def __init__(self, addr, handler, ctx):
        super().__init__(addr, handler)
        self.socket = ctx.wrap_socket(self.socket, server_side=True,
                                      do_handshake_on_connect=False)

    def finish_request(self, request, client_address):
        # Handshake in the per-connection thread, so that a slow or bad
        # client cannot block accept().
        request.settimeout(30)
        request.do_handshake()
        super().finish_request(request, client_address)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--control-port", type=int, default=0)
    ap.add_argument("--cert", choices=sorted(CERTS), default="good")
    ap.add_argument("--jwks", help="file with the initial JWKS")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()

    jwks = b'{"keys": []}'
    if a.jwks:
        with open(a.jwks, "rb") as f:
            jwks = f.read()
    state = State(jwks)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert, key = CERTS[a.cert]
    ctx.load_cert_chain(os.path.join(FIXTURES, cert),
                        os.path.join(FIXTURES, key))

    https = TLSServer(("127.0.0.1", a.port), IdpHandler, ctx)
    control = Server(("127.0.0.1", a.control_port), ControlHandler)
    for srv, name in ((https, "https"), (control, "control")):
        srv.state, srv.verbose, srv.name = state, a.verbose, name
        srv.https_base = "https://127.0.0.1:%d" % https.server_address[1]
        srv.http_base = "http://127.0.0.1:%d" % control.server_address[1]

    threading.Thread(target=control.serve_forever, daemon=True).start()
    print("READY port=%d control_port=%d"
          % (https.server_address[1], control.server_address[1]), flush=True)
    try:
        https.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
