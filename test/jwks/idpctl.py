"""idpctl.py -- start and drive the fake identity provider (idp.py) from tests.

    import idpctl
    priv, jwk = idpctl.generate_es256()          # kid = RFC 7638 thumbprint
    with idpctl.start() as idp:                  # or idp = start(); idp.stop()
        idp.set_jwks(idpctl.jwks(jwk))
        token = idpctl.sign(priv, jwk["kid"], {"iss": idp.issuer, "sub": "u"})
        idp.set_mode("stall", seconds=3)         # see idp.py for the modes
        idp.set_headers(cache_control="max-age=120", expires=60)
        idp.set_discovery_issuer("https://evil.example")
        idp.set_clock_skew(3600)     # its Date header runs an hour ahead
        idp.counts()       # {"/jwks.json": 2, ...};  idp.reset_counts()
        # the device authorization flow (RFC 8628), auto-approving: the
        # token endpoint hands out idpctl.sign(priv, kid, claims)
        idp.set_device(priv, jwk["kid"], {"iss": idp.issuer, "sub": "u"})
        idp.device_requests()    # what the client sent, and the answers
        idp.device_off()

Handle attributes: base_url (= issuer), tenant_url, jwks_url, discovery_url,
device_authorization_url, token_url, port, control_url, ca_file (the CA
that signs --cert good), other_ca_file.
Needs python3-cryptography for generate_es256() and sign(); the rest is
standard library.  The control requests bypass any *_proxy environment.
"""

import atexit
import base64
import hashlib
import json
import os
import select
import subprocess
import sys
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
IDP = os.path.join(HERE, "idp.py")
FIXTURES = os.path.normpath(os.path.join(HERE, "..", "fixtures", "idp"))
CA_FILE = os.path.join(FIXTURES, "ca.pem")
OTHER_CA_FILE = os.path.join(FIXTURES, "other-ca.pem")

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Idp:
    """A running idp.py subprocess.  Use start() to make one."""

    ca_file, other_ca_file = CA_FILE, OTHER_CA_FILE

    def __init__(self, port=0, cert="good", control_port=0, verbose=False,
                 timeout=15):
        cmd = [sys.executable, IDP, "--port", str(port), "--cert", cert,
               "--control-port", str(control_port)] + (["-v"] if verbose else [])
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE)
        atexit.register(self.stop)
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError("idp.py did not start (exit %s, said %r)"
                               % (self.proc.returncode, line))
        f = dict(kv.split("=") for kv in line.split()[1:])
        self.port, self.control_port = int(f["port"]), int(f["control_port"])
        self.base_url = self.issuer = "https://127.0.0.1:%d" % self.port
        self.tenant_url = self.base_url + "/tenant"
        self.jwks_url = self.base_url + "/jwks.json"
        self.discovery_url = self.base_url + "/.well-known/openid-configuration"
        self.device_authorization_url = self.base_url + "/device_authorization"
        self.token_url = self.base_url + "/token"
        self.control_url = "http://127.0.0.1:%d" % self.control_port

    def _call(self, method, path, body=None):
        if body is not None and not isinstance(body, bytes):
            body = (body if isinstance(body, str) else json.dumps(body)).encode()
        req = urllib.request.Request(self.control_url + path, data=body,
                                     method=method)
        with _opener.open(req, timeout=10) as r:
            return json.loads(r.read())

    def set_jwks(self, doc):
        """Serve doc: a dict/list (sent as JSON) or str/bytes (verbatim)."""
        self._call("PUT", "/jwks", doc)

    def set_mode(self, mode, endpoint="jwks", **kw):
        """mode: ok 500 html empty huge stall redirect_http redirect_https;
        kw: seconds= (stall), size= (huge), hops= (redirect_https),
        url= (redirect_http).  endpoint: "jwks" or "discovery"."""
        self._call("POST", "/mode", dict(kw, mode=mode, endpoint=endpoint))

    def set_headers(self, cache_control=None, expires=None):
        """Set both headers (None = not sent); expires: str verbatim, or int
        seconds from the time of each response."""
        self._call("POST", "/headers",
                   {"cache_control": cache_control, "expires": expires})

    def set_clock_skew(self, seconds):
        """The provider's clock (its Date header, and an int Expires) runs
        seconds ahead of the real time (negative: behind); 0 = right."""
        self._call("POST", "/clock", {"skew": seconds})

    def set_discovery_issuer(self, issuer):
        """issuer for both discovery documents; None = the default."""
        self.set_discovery(issuer=issuer)

    def set_discovery(self, issuer=None, jwks_uri=None):
        self._call("POST", "/discovery", {"issuer": issuer, "jwks_uri": jwks_uri})

    def counts(self):
        return self._call("GET", "/counts")

    def reset_counts(self):
        self._call("POST", "/counts/reset")

    def reset(self):
        """Modes, headers, clock, discovery and counts back to the start
        (JWKS kept)."""
        self._call("POST", "/reset")

    def set_device(self, private_pem, kid, claims, header=None, pending=0,
                   error=None):
        """Turn the device authorization flow on (the discovery documents
        then name its endpoints): each device code's first `pending` polls
        of the token endpoint are answered authorization_pending, then
        error (if set) or a token: sign(private_pem, kid, claims, header).
        Forgets earlier device codes and requests."""
        self._call("PUT", "/device", {"private_pem": private_pem, "kid": kid,
                                      "claims": claims, "header": header,
                                      "pending": pending, "error": error})

    def device_off(self):
        """The device flow off: its endpoints 404, the documents as before."""
        self._call("PUT", "/device", "null")

    def device_requests(self):
        """The device flow's requests since set_device, in order: dicts of
        endpoint ("device_authorization" or "token"), form (the POSTed
        fields), status and response."""
        return self._call("GET", "/device")["requests"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start(port=0, cert="good", **kw):
    """Start idp.py; returns an Idp handle (also a context manager)."""
    return Idp(port=port, cert=cert, **kw)


# ---- keys and tokens (python3-cryptography) ------------------------------

def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def generate_es256(kid=None):
    """New P-256 key pair: (private key PEM str, public JWK dict with kid,
    alg ES256, use sig).  kid defaults to the RFC 7638 thumbprint."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    nums = key.public_key().public_numbers()
    jwk = {"kty": "EC", "crv": "P-256",
           "x": b64url(nums.x.to_bytes(32, "big")),
           "y": b64url(nums.y.to_bytes(32, "big"))}
    if kid is None:
        canon = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")},
                           separators=(",", ":"), sort_keys=True)
        kid = b64url(hashlib.sha256(canon.encode()).digest())
    jwk.update(kid=kid, alg="ES256", use="sig")
    pem = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return pem, jwk


def jwks(*keys):
    """{"keys": [...]} from public JWKs."""
    return {"keys": list(keys)}


def sign(private_pem, kid, claims, header=None):
    """Compact JWS, ES256, header {"alg": "ES256", "typ": "JWT", "kid": kid}
    plus `header` (kid=None leaves it out)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import \
        decode_dss_signature
    key = serialization.load_pem_private_key(
        private_pem.encode() if isinstance(private_pem, str) else private_pem,
        password=None)
    hdr = {"alg": "ES256", "typ": "JWT"}
    if kid is not None:
        hdr["kid"] = kid
    hdr.update(header or {})
    compact = lambda o: b64url(json.dumps(o, separators=(",", ":")).encode())
    signing_input = compact(hdr) + "." + compact(claims)
    r, s = decode_dss_signature(key.sign(signing_input.encode(),
                                         ec.ECDSA(hashes.SHA256())))
    return signing_input + "." + b64url(r.to_bytes(32, "big") +
                                        s.to_bytes(32, "big"))
