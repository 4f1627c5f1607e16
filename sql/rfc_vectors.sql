--
-- Published vectors: RFC 7515 Appendix A.1-A.5, RFC 8037 A.4, RFC 7520 4.1-4.4,
-- each with its JWK, as checked against an independent JOSE library
-- (test/vectors/rfc-jws.json, copied here verbatim).  Each must give exactly
-- the outcome listed: OK with the listed claims, or the listed SQLSTATE.
-- Several payloads are not JSON objects: their signatures are valid (the
-- unit tests verify them at the signature layer) but as JWTs they are JW001.
--
CREATE TABLE rfc_vectors AS
SELECT v->>'id' AS id, v->>'alg' AS alg, v->>'token' AS token, v->>'jwk' AS jwk,
       v->>'jwt_verify' AS expected, v->'claims' AS claims,
       to_timestamp((v->>'evaluate_at')::bigint) AS evaluate_at
FROM jsonb_array_elements($vectors$
[
 {
  "id": "rfc7515-A.1-HS256",
  "source": "RFC 7515 Appendix A.1",
  "alg": "HS256",
  "token": "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
  "jwk": {
   "kty": "oct",
   "k": "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"
  },
  "signature_verifies": true,
  "jwt_verify": "OK",
  "evaluate_at": 1300819000,
  "claims": {
   "iss": "joe",
   "exp": 1300819380,
   "http://example.com/is_root": true
  }
 },
 {
  "id": "rfc7515-A.2-RS256",
  "source": "RFC 7515 Appendix A.2",
  "alg": "RS256",
  "token": "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw",
  "jwk": {
   "kty": "RSA",
   "e": "AQAB",
   "n": "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"
  },
  "signature_verifies": true,
  "jwt_verify": "OK",
  "evaluate_at": 1300819000,
  "claims": {
   "iss": "joe",
   "exp": 1300819380,
   "http://example.com/is_root": true
  }
 },
 {
  "id": "rfc7515-A.3-ES256",
  "source": "RFC 7515 Appendix A.3",
  "alg": "ES256",
  "token": "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q",
  "jwk": {
   "kty": "EC",
   "crv": "P-256",
   "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
   "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
  },
  "signature_verifies": true,
  "jwt_verify": "OK",
  "evaluate_at": 1300819000,
  "claims": {
   "iss": "joe",
   "exp": 1300819380,
   "http://example.com/is_root": true
  }
 },
 {
  "id": "rfc7515-A.4-ES512-nonjson-payload",
  "source": "RFC 7515 Appendix A.4",
  "alg": "ES512",
  "token": "eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA.AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZqwqT2SI-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8KpEHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn",
  "jwk": {
   "kty": "EC",
   "crv": "P-521",
   "x": "AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk",
   "y": "ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2"
  },
  "signature_verifies": true,
  "jwt_verify": "JW001",
  "evaluate_at": 1700000000,
  "claims": null
 },
 {
  "id": "rfc7515-A.5-alg-none",
  "source": "RFC 7515 Appendix A.5 / RFC 7519 6.1",
  "alg": "none",
  "token": "eyJhbGciOiJub25lIn0.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.",
  "jwk": {
   "kty": "oct",
   "k": "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"
  },
  "signature_verifies": false,
  "jwt_verify": "JW003",
  "evaluate_at": 1300819000,
  "claims": null
 },
 {
  "id": "rfc8037-A.4-Ed25519-nonjson-payload",
  "source": "RFC 8037 Appendix A.4",
  "alg": "EdDSA",
  "token": "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg",
  "jwk": {
   "kty": "OKP",
   "crv": "Ed25519",
   "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
  },
  "signature_verifies": true,
  "jwt_verify": "JW001",
  "evaluate_at": 1700000000,
  "claims": null
 },
 {
  "id": "rfc7520-4.1-RS256-nonjson-payload",
  "source": "RFC 7520 section 4.1",
  "alg": "RS256",
  "token": "eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9.SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4.MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmKZopdHM1O2U4mwzJdQx996ivp83xuglII7PNDi84wnB-BDkoBwA78185hX-Es4JIwmDLJK3lfWRa-XtL0RnltuYv746iYTh_qHRD68BNt1uSNCrUCTJDt5aAE6x8wW1Kt9eRo4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLGdjluPxUAhb6L2aXic1U12podGU0KLUQSE_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_fcIe8u9ipH84ogoree7vjbU5y18kDquDg",
  "jwk": {
   "kty": "RSA",
   "kid": "bilbo.baggins@hobbiton.example",
   "use": "sig",
   "e": "AQAB",
   "n": "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw"
  },
  "signature_verifies": true,
  "jwt_verify": "JW001",
  "evaluate_at": 1700000000,
  "claims": null
 },
 {
  "id": "rfc7520-4.2-PS384-nonjson-payload",
  "source": "RFC 7520 section 4.2",
  "alg": "PS384",
  "token": "eyJhbGciOiJQUzM4NCIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9.SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4.cu22eBqkYDKgIlTpzDXGvaFfz6WGoz7fUDcfT0kkOy42miAh2qyBzk1xEsnk2IpN6-tPid6VrklHkqsGqDqHCdP6O8TTB5dDDItllVo6_1OLPpcbUrhiUSMxbbXUvdvWXzg-UD8biiReQFlfz28zGWVsdiNAUf8ZnyPEgVFn442ZdNqiVJRmBqrYRXe8P_ijQ7p8Vdz0TTrxUeT3lm8d9shnr2lfJT8ImUjvAA2Xez2Mlp8cBE5awDzT0qI0n6uiP1aCN_2_jLAeQTlqRHtfa64QQSUmFAAjVKPbByi7xho0uTOcbH510a6GYmJUAfmWjwZ6oD4ifKo8DYM-X72Eaw",
  "jwk": {
   "kty": "RSA",
   "kid": "bilbo.baggins@hobbiton.example",
   "use": "sig",
   "e": "AQAB",
   "n": "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw"
  },
  "signature_verifies": true,
  "jwt_verify": "JW001",
  "evaluate_at": 1700000000,
  "claims": null
 },
 {
  "id": "rfc7520-4.3-ES512-nonjson-payload",
  "source": "RFC 7520 section 4.3",
  "alg": "ES512",
  "token": "eyJhbGciOiJFUzUxMiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9.SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4.AE_R_YZCChjn4791jSQCrdPZCNYqHXCTZH0-JZGYNlaAjP2kqaluUIIUnC9qvbu9Plon7KRTzoNEuT4Va2cmL1eJAQy3mtPBu_u_sDDyYjnAMDxXPn7XrT0lw-kvAD890jl8e2puQens_IEKBpHABlsbEPX6sFY8OcGDqoRuBomu9xQ2",
  "jwk": {
   "kty": "EC",
   "kid": "bilbo.baggins@hobbiton.example",
   "use": "sig",
   "crv": "P-521",
   "x": "AHKZLLOsCOzz5cY97ewNUajB957y-C-U88c3v13nmGZx6sYl_oJXu9A5RkTKqjqvjyekWF-7ytDyRXYgCF5cj0Kt",
   "y": "AdymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVySsUdaQkAgDPrwQrJmbnX9cwlGfP-HqHZR1"
  },
  "signature_verifies": true,
  "jwt_verify": "JW001",
  "evaluate_at": 1700000000,
  "claims": null
 },
 {
  "id": "rfc7520-4.4-HS256-nonjson-payload",
  "source": "RFC 7520 section 4.4",
  "alg": "HS256",
  "token": "eyJhbGciOiJIUzI1NiIsImtpZCI6IjAxOGMwYWU1LTRkOWItNDcxYi1iZmQ2LWVlZjMxNGJjNzAzNyJ9.SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4.s0h6KThzkfBBBkLspW1h84VsJZFTsPPqMDA7g1Md7p0",
  "jwk": {
   "kty": "oct",
   "kid": "018c0ae5-4d9b-471b-bfd6-eef314bc7037",
   "use": "sig",
   "alg": "HS256",
   "k": "hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg"
  },
  "signature_verifies": true,
  "jwt_verify": "JW001",
  "evaluate_at": 1700000000,
  "claims": null
 }
]
$vectors$::jsonb) AS v;

SELECT id, expected,
       verify_outcome(token, jwk, ARRAY[alg], now => evaluate_at) AS outcome,
       CASE WHEN expected = 'OK'
            THEN jwt_verify(token, jwk, ARRAY[alg], now => evaluate_at) = claims END AS claims_match
FROM rfc_vectors ORDER BY id;

-- every vector gives exactly its expected outcome
SELECT count(*) AS vectors,
       count(*) FILTER (WHERE verify_outcome(token, jwk, ARRAY[alg], now => evaluate_at) = expected
                           OR left(verify_outcome(token, jwk, ARRAY[alg], now => evaluate_at), 5) = expected) AS as_expected
FROM rfc_vectors;

-- RFC 7515 A.1 once its exp has passed, and with its key's bytes as bytea
SELECT verify_outcome(token, jwk, ARRAY[alg]) AS a1_today
FROM rfc_vectors WHERE id = 'rfc7515-A.1-HS256';
SELECT jwt_verify(token, b64url_decode(jwk::jsonb->>'k'), now => evaluate_at) AS a1_bytea_key
FROM rfc_vectors WHERE id = 'rfc7515-A.1-HS256';

-- the signatures really are what decides: one changed signature character
-- turns every signed vector into JW002 (the payload is parsed only after)
SELECT id, verify_outcome(overlay(token PLACING CASE WHEN substr(token, p, 1) = 'A' THEN 'B' ELSE 'A' END FROM p FOR 1),
                          jwk, ARRAY[alg], now => evaluate_at) AS tampered
FROM rfc_vectors,
LATERAL (SELECT length(split_part(token, '.', 1)) + length(split_part(token, '.', 2)) + 2 + 5 AS p) s
ORDER BY id;
