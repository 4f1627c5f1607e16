#!/bin/bash
#
# make_corpus.sh -- write the seed corpus of fuzz_jws into a directory.
#
# Usage: test/fuzz/make_corpus.sh DIR
#
# Seeds (see fuzz_jws.c for how one input is read in several ways):
#   - a valid compact JWS for every algorithm of the table, signed here with
#     the openssl command line tool, not with jws_sign, using the test keys
#     embedded in fuzz_jws.c (read back out of it, so there is one copy);
#   - the same signatures in the "raw" layout: two bytes of big-endian
#     signature length, the signature, then the signed text;
#   - ECDSA signatures as DER and as raw R||S, with edge values of r and s;
#   - malformed tokens, base64url edge cases and algorithm names.
#
# Needs bash, sed, od and openssl (3.x).  Writes only into DIR.

set -euo pipefail

OPENSSL=${OPENSSL:-openssl}

here=$(cd "$(dirname "$0")" && pwd)
src=$here/fuzz_jws.c

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
out=$1
mkdir -p "$out"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- helpers ----------------------------------------------------------------

# The PEM text of "static const char pem_NAME[]" in fuzz_jws.c.
pem() {
    sed -n "/^static const char pem_$1\[\] =\$/,/;\$/{ s/^\"\(.*\)\\\\n\";\{0,1\}\$/\1/p; }" "$src"
}

# base64url without padding, of stdin
b64u() {
    "$OPENSSL" base64 -A | tr '+/' '-_' | tr -d '='
}

# bytes from hex on stdin (no xxd needed)
unhex() {
    local hex
    hex=$(tr -d ' \n')
    # shellcheck disable=SC2059
    printf "$(printf '%s' "$hex" | sed 's/../\\x&/g')"
}

# hex of the file $1
hexof() {
    od -An -v -tx1 "$1" | tr -d ' \n'
}

# a seed file from a printf format
seed() {
    local name=$1
    shift
    # shellcheck disable=SC2059
    printf "$@" > "$out/$name"
}

# two bytes, big-endian, of the number $1
# shellcheck disable=SC2059
be16() {
    printf "\\x$(printf '%02x' $(($1 >> 8)))\\x$(printf '%02x' $(($1 & 255)))"
}

for k in rsa ec256 ec384 ec521 ed25519 ed448; do
    pem "$k" > "$tmp/$k.pem"
    if ! "$OPENSSL" pkey -in "$tmp/$k.pem" -noout 2>/dev/null; then
        echo "$0: cannot read key pem_$k from $src" >&2
        exit 1
    fi
done
hmac_hex=$(sed -n '/^static const char hmac_secret_hex\[\] =$/{n; s/^"\([0-9a-f]*\)";$/\1/p;}' "$src")
if [ ${#hmac_hex} -ne 64 ]; then
    echo "$0: cannot read hmac_secret_hex from $src" >&2
    exit 1
fi

# group order of an OpenSSL curve, in hex, for edge values of r and s
order_of() {
    "$OPENSSL" ecparam -name "$1" -param_enc explicit -noout -text |
        sed -n '/^Order:/,/^Cofactor:/{/^ /p;}' | tr -d ' \n:' | sed 's/^00//'
}

# ---- a signed token per algorithm -------------------------------------------

# sign ALG KEY: the signature of $tmp/si into $tmp/sig
sign() {
    local alg=$1 key=$2 bits=${1:2}
    case $alg in
        HS*)
            "$OPENSSL" dgst "-sha$bits" -mac HMAC -macopt "hexkey:$hmac_hex" \
                -binary -out "$tmp/sig" "$tmp/si" ;;
        RS*)
            "$OPENSSL" dgst "-sha$bits" -sign "$tmp/$key.pem" \
                -binary -out "$tmp/sig" "$tmp/si" ;;
        PS*)
            "$OPENSSL" dgst "-sha$bits" -sign "$tmp/$key.pem" \
                -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest \
                -sigopt "rsa_mgf1_md:sha$bits" \
                -binary -out "$tmp/sig" "$tmp/si" ;;
        ES*)
            # openssl writes DER; JWS wants r || s, each coord bytes
            local coord=$(( bits == 512 ? 66 : bits / 8 )) r s
            "$OPENSSL" dgst "-sha$bits" -sign "$tmp/$key.pem" \
                -binary -out "$tmp/der" "$tmp/si"
            { read -r r; read -r s; } < <("$OPENSSL" asn1parse -inform DER \
                -in "$tmp/der" | sed -n 's/.*INTEGER *://p')
            r=$(printf '%s' "$r" | sed 's/^0*//')
            s=$(printf '%s' "$s" | sed 's/^0*//')
            while [ ${#r} -lt $((2 * coord)) ]; do r=0$r; done
            while [ ${#s} -lt $((2 * coord)) ]; do s=0$s; done
            printf '%s%s' "$r" "$s" | unhex > "$tmp/sig" ;;
        EdDSA)
            "$OPENSSL" pkeyutl -sign -inkey "$tmp/$key.pem" -rawin \
                -in "$tmp/si" -out "$tmp/sig" ;;
    esac
}

b64chars=ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_

while read -r alg key; do
    name=${alg}_$key
    header="{\"alg\":\"$alg\",\"typ\":\"JWT\"}"
    payload="{\"sub\":\"seed\",\"key\":\"$key\",\"iat\":1700000000}"
    si="$(printf '%s' "$header" | b64u).$(printf '%s' "$payload" | b64u)"
    printf '%s' "$si" > "$tmp/si"
    sign "$alg" "$key"
    siglen=$(wc -c < "$tmp/sig")
    sig64=$(b64u < "$tmp/sig")

    seed "jws_$name" '%s.%s' "$si" "$sig64"
    { be16 "$siglen"; cat "$tmp/sig" "$tmp/si"; } > "$out/raw_$name"
    # the signature alone; the token with the lowest bit of its last
    # character flipped, which is an unused bit when the signature length is
    # not a multiple of 3 (a lax decoder would accept that spelling)
    cp "$tmp/sig" "$out/sig_$name"
    last=${sig64: -1}
    prefix=${b64chars%%"$last"*}
    seed "jws_${name}_lastbit" '%s.%s%s' "$si" "${sig64%?}" \
        "${b64chars:$(( ${#prefix} ^ 1 )):1}"
    case $alg in
        ES*) cp "$tmp/der" "$out/der_$name" ;;
    esac
done <<'EOF'
HS256 secret
HS384 secret
HS512 secret
RS256 rsa
RS384 rsa
RS512 rsa
PS256 rsa
PS384 rsa
PS512 rsa
ES256 ec256
ES384 ec384
ES512 ec521
EdDSA ed25519
EdDSA ed448
EOF

# algorithm confusion: an RS256 header over an HMAC made with the RSA public
# key as the secret (CVE-2015-9235), and alg "none" with no signature
"$OPENSSL" pkey -in "$tmp/rsa.pem" -pubout -out "$tmp/rsa_pub.pem"
si="$(printf '{"alg":"HS256"}' | b64u).$(printf '{"sub":"x"}' | b64u)"
printf '%s' "$si" > "$tmp/si"
"$OPENSSL" dgst -sha256 -mac HMAC -macopt "hexkey:$(hexof "$tmp/rsa_pub.pem")" \
    -binary -out "$tmp/sig" "$tmp/si"
seed jws_confusion '%s.%s' "$si" "$(b64u < "$tmp/sig")"
seed jws_none '%s.%s.' "$(printf '{"alg":"none"}' | b64u)" "$(printf '{"sub":"x"}' | b64u)"

# ---- ECDSA edge values -------------------------------------------------------

for spec in ES256:prime256v1:32 ES384:secp384r1:48 ES512:secp521r1:66; do
    IFS=: read -r alg curve coord <<< "$spec"
    n=$(order_of "$curve")
    while [ ${#n} -lt $((2 * coord)) ]; do n=0$n; done
    zero=$(printf '%0*d' $((2 * coord)) 0)
    one=${zero%?}1
    # n - 1: every order here ends in a non-zero byte
    last=$(( 16#${n: -2} - 1 ))
    nm1=${n%??}$(printf '%02x' "$last")
    ff=$(printf '%*s' $((2 * coord)) '' | tr ' ' f)
    printf '%s%s' "$zero" "$zero" | unhex > "$out/raw_${alg}_zero"
    printf '%s%s' "$one" "$one" | unhex > "$out/raw_${alg}_one"
    printf '%s%s' "$n" "$one" | unhex > "$out/raw_${alg}_r_is_n"
    printf '%s%s' "$one" "$nm1" | unhex > "$out/raw_${alg}_s_is_n-1"
    printf '%s%s' "$ff" "$ff" | unhex > "$out/raw_${alg}_ff"
done

# hand-made DER: minimal, zero, non-minimal integer, negative, long-form
# length, trailing byte, wrong tag
printf '30060201010201 01' | unhex > "$out/der_one"
printf '3006020100020100' | unhex > "$out/der_zero"
printf '300702020001020101' | unhex > "$out/der_nonminimal_int"
printf '30060201ff020101' | unhex > "$out/der_negative"
printf '3081060201010201 01' | unhex > "$out/der_longform_len"
printf '300602010102010100' | unhex > "$out/der_trailing"
printf '310602010102010100' | unhex > "$out/der_set"
printf '3000' | unhex > "$out/der_empty_seq"

# ---- base64url edge cases and names -----------------------------------------

i=0
for t in '' A QQ QR QUI QUJ AAAA Zm9v Zm9vYg Zm9vYmE Zm9vYmFy Zg== Zm9v= \
    -_-_ ____ +/+/ AAAAA Zm9v.Zg a.b.c.d .. . \
    HS256 HS384 HS512 RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 \
    EdDSA none None hs256 ES256K Ed25519; do
    printf '%s' "$t" > "$out/text_$i"
    i=$((i + 1))
done
seed text_nul 'HS256\000'
seed text_newline 'Zm9v\n'
seed text_high '\377\376Zm9v\200'

# ---- token edits: first byte picks a token, then 3-byte edits ---------------

for t in 0 1 2 3 4 5 6 7 8 9 10 11 12 13; do
    seed "edit_$t" "\\x$(printf '%02x' "$t")"
done
seed edit_replace '\003\000\020A'
seed edit_insert '\011\100\000.'
seed edit_delete '\014\200\005\000'
seed edit_truncate '\002\300\200\000'

echo "make_corpus.sh: $(find "$out" -type f | wc -l) seeds in $out"
