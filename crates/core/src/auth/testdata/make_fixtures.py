#!/usr/bin/env python3
"""Regenerates the token-verification fixtures in this folder.

Keys come from the `openssl` command line and tokens from PyJWT + `cryptography`, so the
signatures the Rust tests check were made by an implementation independent of Rotor's. Only
public keys (and one throwaway private key, used as a wrong-form fixture) are kept; the
signing keys live in a temporary folder and are discarded.

    python3 -m pip install --target /tmp/pyjwt pyjwt cryptography
    PYTHONPATH=/tmp/pyjwt python3 make_fixtures.py

Writes `*.pem` and `tokens.json` (name -> token) beside this script. Every run makes new keys,
so the whole set must be regenerated together.
"""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import tempfile

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

HERE = os.path.dirname(os.path.abspath(__file__))
FAR = 4102444800  # 2100-01-01
PAST = 1000000000  # 2001-09-09


def sh(*args):
    subprocess.run(args, check=True, capture_output=True)


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def write(name, text):
    with open(os.path.join(HERE, name), "w") as f:
        f.write(text)


def main():
    tmp = tempfile.mkdtemp()
    priv = {}

    def genkey(name, *algorithm_args):
        path = os.path.join(tmp, name + ".key")
        sh("openssl", "genpkey", *algorithm_args, "-out", path)
        with open(path, "rb") as f:
            priv[name] = serialization.load_pem_private_key(f.read(), None)
        pub = os.path.join(HERE, name + ".pub.pem")
        sh("openssl", "pkey", "-in", path, "-pubout", "-out", pub)
        return path

    def gencert(name, key_path):
        sh("openssl", "req", "-new", "-x509", "-key", key_path, "-days", "36500",
           "-subj", "/CN=rotor-test-" + name, "-out", os.path.join(HERE, name + ".cert.pem"))

    rsa = genkey("rsa", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")
    gencert("rsa", rsa)
    genkey("rsa_other", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")
    genkey("rsa1024", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024")
    # PKCS#1 "RSA PUBLIC KEY": a form Centrifugo refuses, so must Rotor.
    sh("openssl", "rsa", "-in", rsa, "-RSAPublicKey_out",
       "-out", os.path.join(HERE, "rsa.pkcs1.pem"))
    p256 = genkey("ec256", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
    gencert("ec256", p256)
    genkey("ec384", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384")
    p521 = genkey("ec521", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521")
    gencert("ec521", p521)
    genkey("ec224", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-224")
    genkey("secp256k1", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp256k1")
    ed = genkey("ed25519", "-algorithm", "ED25519")
    gencert("ed25519", ed)
    # A private key where a public one is wanted (throwaway: it signs no fixture token).
    sh("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
       "-out", os.path.join(HERE, "ec_private.pem"))

    rsa_pub_pem = open(os.path.join(HERE, "rsa.pub.pem")).read()
    claims = {
        "sub": "alice",
        "exp": FAR,
        "info": {"name": "Alice"},
        "meta": {"tier": "gold", "n": [1, 2]},
        "channels": ["news"],
        "user_id": "u-77",
        "uid": 12345,
    }
    sub_claims = {"sub": "alice", "client": "c-1", "channel": "$gossips", "exp": FAR}
    tokens = {}

    def sign(name, key, alg, payload=None, **headers):
        tokens[name] = jwt.encode(payload or claims, key, algorithm=alg,
                                  headers=headers or None)

    for bits in ("256", "384", "512"):
        sign("rs" + bits, priv["rsa"], "RS" + bits)
    sign("es256", priv["ec256"], "ES256")
    sign("es384", priv["ec384"], "ES384")
    sign("es512", priv["ec521"], "ES512")
    sign("eddsa", priv["ed25519"], "EdDSA")
    sign("rs256_kid", priv["rsa"], "RS256", kid="k1")
    sign("rs256_unknown_kid", priv["rsa"], "RS256", kid="matches-nothing")
    sign("rs256_sub", priv["rsa"], "RS256", sub_claims)
    sign("es256_sub", priv["ec256"], "ES256", sub_claims)
    sign("eddsa_sub", priv["ed25519"], "EdDSA", sub_claims)
    sign("rs256_expired", priv["rsa"], "RS256", {"sub": "alice", "exp": PAST})
    sign("es256_nbf_future", priv["ec256"], "ES256", {"sub": "alice", "nbf": FAR})
    sign("eddsa_expired", priv["ed25519"], "EdDSA", {"sub": "alice", "exp": PAST})
    sign("es512_expired", priv["ec521"], "ES512", {"sub": "alice", "exp": PAST})
    sign("rs256_other_key", priv["rsa_other"], "RS256")
    sign("ps256", priv["rsa"], "PS256")
    sign("hs256_secret", "rotor-secret", "HS256")
    tokens["none"] = jwt.encode(claims, None, algorithm="none")

    def by_hand(header, payload, sign_input):
        head = b64(json.dumps(header, separators=(",", ":")))
        body = b64(json.dumps(payload, separators=(",", ":")))
        data = (head + "." + body).encode()
        return head + "." + body + "." + b64(sign_input(data))

    def ecdsa_raw(key, hash_alg, size):
        def go(data):
            r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hash_alg)))
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")
        return go

    # Alg confusion: HS256 MACed with the RSA public key's PEM text (PyJWT refuses to).
    tokens["hs256_with_rsa_pem"] = by_hand(
        {"alg": "HS256", "typ": "JWT"}, claims,
        lambda d: hmac.new(rsa_pub_pem.encode(), d, hashlib.sha256).digest())
    # Curve/alg mismatches, each signature correct for the key that made it.
    tokens["es256_header_p384_key"] = by_hand(
        {"alg": "ES256", "typ": "JWT"}, claims, ecdsa_raw(priv["ec384"], hashes.SHA256(), 48))
    tokens["es384_header_p256_key"] = by_hand(
        {"alg": "ES384", "typ": "JWT"}, claims, ecdsa_raw(priv["ec256"], hashes.SHA384(), 32))
    tokens["es512_header_p256_key"] = by_hand(
        {"alg": "ES512", "typ": "JWT"}, claims, ecdsa_raw(priv["ec256"], hashes.SHA512(), 32))
    # ES256 with a DER signature instead of JOSE r||s.
    tokens["es256_der_signature"] = by_hand(
        {"alg": "ES256", "typ": "JWT"}, claims,
        lambda d: priv["ec256"].sign(d, ec.ECDSA(hashes.SHA256())))
    # RS256 header, PKCS#1 v1.5 over SHA-384: hash mismatch.
    tokens["rs256_header_sha384_sig"] = by_hand(
        {"alg": "RS256", "typ": "JWT"}, claims,
        lambda d: priv["rsa"].sign(d, padding.PKCS1v15(), hashes.SHA384()))
    # Lower-case alg name.
    tokens["rs256_lowercase_alg"] = by_hand(
        {"alg": "rs256", "typ": "JWT"}, claims,
        lambda d: priv["rsa"].sign(d, padding.PKCS1v15(), hashes.SHA256()))
    # Tampered payload: header and signature of `rs256`, another payload.
    head, _, sig = tokens["rs256"].split(".")
    tokens["rs256_tampered"] = head + "." + b64(json.dumps(dict(claims, sub="admin"))) + "." + sig
    head, _, sig = tokens["es256"].split(".")
    tokens["es256_tampered"] = head + "." + b64(json.dumps(dict(claims, sub="admin"))) + "." + sig
    head, _, sig = tokens["eddsa"].split(".")
    tokens["eddsa_tampered"] = head + "." + b64(json.dumps(dict(claims, sub="admin"))) + "." + sig

    write("tokens.json", json.dumps(tokens, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
