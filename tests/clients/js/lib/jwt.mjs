// Asymmetric JWTs for the token tests, minted with node's built-in crypto only (no JWT library,
// none of Rotor's code): key pairs (RSA 2048, EC P-256, Ed25519), their public halves as PEM
// (`PUBLIC KEY`, what the server's `rsa_public_key` / `ecdsa_public_key` take) and as JWKs (what a
// JWKS endpoint publishes), and compact JWS signing with RS256, ES256 (raw r‖s, the JOSE form:
// `dsaEncoding: 'ieee-p1363'`) and EdDSA.

import { generateKeyPairSync, sign } from 'node:crypto';

function b64url(buf) {
  return Buffer.from(buf).toString('base64url');
}

/**
 * A fresh key pair of `kind` ('rsa' | 'ec' | 'ed25519') with its algorithm:
 * {kind, alg, privateKey (KeyObject), publicKey (KeyObject), publicPem}.
 */
export function keyPair(kind) {
  let pair;
  let alg;
  switch (kind) {
    case 'rsa':
      pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
      alg = 'RS256';
      break;
    case 'ec':
      pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      alg = 'ES256';
      break;
    case 'ed25519':
      pair = generateKeyPairSync('ed25519');
      alg = 'EdDSA';
      break;
    default:
      throw new Error(`unknown key kind ${kind}`);
  }
  const publicPem = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  return { kind, alg, privateKey: pair.privateKey, publicKey: pair.publicKey, publicPem };
}

/**
 * The public JWK of `key` (from keyPair) as a JWKS publishes it: kty and its components from
 * node's own JWK export, plus `kid`, `use: "sig"` and `alg` (omitted when `alg` is null).
 */
export function publicJwk(key, kid, { alg = key.alg } = {}) {
  const jwk = key.publicKey.export({ format: 'jwk' });
  const out = { ...jwk, kid, use: 'sig' };
  if (alg) out.alg = alg;
  return out;
}

/**
 * A compact JWS over `claims` signed with `key` (from keyPair) using its algorithm.
 * `kid` goes into the header when given; `alg` overrides the header's alg (the signature is
 * still made with the key's own algorithm); `der` makes an ECDSA signature ASN.1 DER instead of
 * the JOSE raw r‖s form (a malformed token, for refusal tests).
 */
export function signJwt(key, claims, { kid, alg, der = false } = {}) {
  const header = { alg: alg || key.alg, typ: 'JWT' };
  if (kid !== undefined) header.kid = kid;
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const data = Buffer.from(input);
  let sig;
  switch (key.kind) {
    case 'rsa':
      sig = sign('sha256', data, key.privateKey); // RSASSA-PKCS1-v1_5 with SHA-256
      break;
    case 'ec':
      sig = sign('sha256', data, { key: key.privateKey, dsaEncoding: der ? 'der' : 'ieee-p1363' });
      break;
    case 'ed25519':
      sig = sign(null, data, key.privateKey);
      break;
    default:
      throw new Error(`unknown key kind ${key.kind}`);
  }
  return `${input}.${b64url(sig)}`;
}
