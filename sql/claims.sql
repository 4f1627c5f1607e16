--
-- Registered claims: exp, nbf, iat, aud, iss, required claims, leeway, clock
-- The clock is injected with now => so every boundary is exact.
-- 1767225600 = 2026-01-01 00:00:00 UTC, verify_outcome's default now.
--

-- exp == now is expired; one second before is valid (RFC 7519 §4.1.4)
SELECT verify_outcome(jwt_sign('{"exp":1767225600}', 'secret')) AS exp_equals_now,
       verify_outcome(jwt_sign('{"exp":1767225601}', 'secret')) AS exp_after_now,
       verify_outcome(jwt_sign('{"exp":1767225599}', 'secret')) AS exp_before_now;
-- fractions are allowed and honoured
SELECT verify_outcome(jwt_sign('{"exp":1767225600.5}', 'secret')) AS exp_half_second_left,
       verify_outcome(jwt_sign('{"exp":1767225600.5}', 'secret'), now => '2026-01-01 00:00:00.5+00') AS exp_fraction_reached;

-- nbf == now is valid; later is not yet valid (RFC 7519 §4.1.5)
SELECT verify_outcome(jwt_sign('{"nbf":1767225600}', 'secret')) AS nbf_equals_now,
       verify_outcome(jwt_sign('{"nbf":1767225601}', 'secret')) AS nbf_after_now;

-- iat in the future is refused as not yet valid
SELECT verify_outcome(jwt_sign('{"iat":1767225600}', 'secret')) AS iat_now,
       verify_outcome(jwt_sign('{"iat":1767225660}', 'secret')) AS iat_future;

-- Leeway widens each window by exactly its amount
SELECT verify_outcome(jwt_sign('{"exp":1767225570}', 'secret'), leeway => '30 seconds') AS exp_at_leeway_edge,
       verify_outcome(jwt_sign('{"exp":1767225571}', 'secret'), leeway => '30 seconds') AS exp_within_leeway,
       verify_outcome(jwt_sign('{"nbf":1767225630}', 'secret'), leeway => '30 seconds') AS nbf_within_leeway,
       verify_outcome(jwt_sign('{"nbf":1767225631}', 'secret'), leeway => '30 seconds') AS nbf_beyond_leeway,
       verify_outcome(jwt_sign('{"iat":1767225630}', 'secret'), leeway => '30 seconds') AS iat_within_leeway;
-- the GUC jwt.leeway is the default when no leeway is passed
SET jwt.leeway = '1min';
SELECT verify_outcome(jwt_sign('{"exp":1767225570}', 'secret')) AS guc_leeway,
       verify_outcome(jwt_sign('{"exp":1767225570}', 'secret'), leeway => '0') AS argument_wins;
RESET jwt.leeway;
SELECT verify_outcome(jwt_sign('{"exp":1767225570}', 'secret')) AS guc_reset;
SELECT outcome($$SELECT jwt_verify('a.b.c', 's', leeway => '-1 second')$$) AS negative_leeway;
SELECT outcome($$SELECT jwt_verify('a.b.c', 's', leeway => '100 years')$$) AS huge_leeway;
-- (the range, which 17 prints with units, is left out)
SELECT split_part(outcome($$SET jwt.leeway = -5$$), ' (', 1) AS negative_guc;
SELECT outcome($$SET jwt.no_such_setting = 1$$) AS reserved_prefix;

-- Without now => the statement's clock is used
SELECT jwt_is_valid(jwt_sign(jsonb_build_object('exp', extract(epoch FROM now()) + 60), 'secret'), 'secret') AS live_token,
       jwt_is_valid(jwt_sign(jsonb_build_object('exp', extract(epoch FROM now()) - 60), 'secret'), 'secret') AS live_expired;
SELECT outcome($$SELECT jwt_verify('a.b.c', 's', now => 'infinity')$$) AS infinite_now;

-- Time claims must be NumericDates: anything else is a decode error, never "absent"
SELECT claim, verify_outcome(forge('{"alg":"HS256"}', format('{"%s":%s}', claim, val))) AS outcome, val
FROM (VALUES ('exp', '"1767225601"'), ('exp', 'true'), ('exp', 'null'), ('exp', '[1767225601]'),
             ('exp', '{}'), ('exp', '1e400'), ('exp', '-1'), ('exp', '253402300800'),
             ('nbf', '"0"'), ('nbf', '-0.5'), ('iat', 'false'), ('iat', '1e20'),
             -- 18 digits (read as an integer while parsing) and 19 (as a numeric)
             ('iat', '999999999999999999'), ('iat', '1000000000000000000'), ('nbf', '-0')) AS t(claim, val);
-- the extremes of the range are accepted
SELECT verify_outcome(forge('{"alg":"HS256"}', '{"nbf":0,"exp":253402300799}')) AS range_ends,
       verify_outcome(forge('{"alg":"HS256"}', '{"exp":1.767225601e9}')) AS exponent_form;

-- Audience: a string or any element of an array must match
SELECT verify_outcome(jwt_sign('{"aud":"api"}', 'secret'), audience => 'api') AS string_match,
       verify_outcome(jwt_sign('{"aud":"api"}', 'secret'), audience => 'API') AS case_differs,
       verify_outcome(jwt_sign('{"aud":["web","api"]}', 'secret'), audience => 'api') AS array_match,
       verify_outcome(jwt_sign('{"aud":["web"]}', 'secret'), audience => 'api') AS array_no_match;
-- expected but absent; present but not expected (RFC 7519 §4.1.3)
SELECT verify_outcome(jwt_sign('{}', 'secret'), audience => 'api') AS absent,
       verify_outcome(jwt_sign('{"aud":"api"}', 'secret')) AS not_expected;
-- odd shapes are audience errors
SELECT verify_outcome(forge('{"alg":"HS256"}', format('{"aud":%s}', val)), audience => 'api') AS outcome, val
FROM (VALUES ('[]'), ('["api",1]'), ('[["api"]]'), ('1'), ('null'), ('{"api":true}'), ('""')) AS t(val);
-- the GUC jwt.audience is the default audience
SET jwt.audience = 'api';
SELECT verify_outcome(jwt_sign('{"aud":"api"}', 'secret')) AS guc_audience,
       verify_outcome(jwt_sign('{"aud":"web"}', 'secret')) AS guc_mismatch,
       verify_outcome(jwt_sign('{"aud":"web"}', 'secret'), audience => 'web') AS argument_wins;
RESET jwt.audience;

-- Issuer: exact match when expected; not checked otherwise
SELECT verify_outcome(jwt_sign('{"iss":"https://idp"}', 'secret'), issuer => 'https://idp') AS match,
       verify_outcome(jwt_sign('{"iss":"https://idp/"}', 'secret'), issuer => 'https://idp') AS trailing_slash,
       verify_outcome(jwt_sign('{}', 'secret'), issuer => 'https://idp') AS absent,
       verify_outcome(jwt_sign('{"iss":["https://idp"]}', 'secret'), issuer => 'https://idp') AS not_a_string,
       verify_outcome(jwt_sign('{"iss":"x"}', 'secret')) AS not_expected;

-- Required claims
SELECT verify_outcome(jwt_sign('{"sub":"a","jti":"1"}', 'secret'), require => ARRAY['sub', 'jti']) AS all_present,
       verify_outcome(jwt_sign('{"sub":"a"}', 'secret'), require => ARRAY['sub', 'jti']) AS one_missing,
       verify_outcome(jwt_sign('{"sub":null}', 'secret'), require => ARRAY['sub']) AS null_counts_as_missing,
       verify_outcome(jwt_sign('{}', 'secret'), require => ARRAY['exp']) AS exp_required;
SELECT jwt_verify(jwt_sign('{}', 'secret'), 'secret', require => ARRAY['sub']);

-- Order of checks: signature before claims, claims in a fixed order
SELECT verify_outcome(jwt_sign('{"exp":1}', 'secret'), 'wrong') AS bad_signature_wins,
       verify_outcome(jwt_sign('{"exp":1,"nbf":9999999999}', 'secret')) AS exp_before_nbf,
       verify_outcome(jwt_sign('{"exp":1}', 'secret'), require => ARRAY['sub']) AS required_before_exp,
       verify_outcome(forge('{"alg":"HS256"}', '{"exp":"x"}'), require => ARRAY['sub']) AS types_first;
