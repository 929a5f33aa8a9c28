#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into fuzz/corpus/<target>/ (FUZZING.md).

Seeds are small valid documents of each kind, written here by hand (and the token fixtures of
crates/core/src/auth/testdata); the fuzzer grows the corpus from them. Re-running only adds
files named seed-*.
"""
import base64, hashlib, hmac, json, os, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(ROOT)


def put(target, name, data):
    d = os.path.join(ROOT, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(tag, value):
    if isinstance(value, int):
        return varint(tag << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(tag << 3 | 2) + varint(len(value)) + value


def delimited(*msgs):
    return b"".join(varint(len(m)) + m for m in msgs)


# --- protocol_json: mode byte 0 (first frame), 1 (v1), 2 (v2)
v2 = [
    '{"id":1,"connect":{"token":"t","data":{"a":1},"name":"js","subs":{"news":{"recover":true,"offset":3,"epoch":"e"}}}}',
    '{"id":2,"subscribe":{"channel":"news","recover":true,"offset":5,"epoch":"x","delta":"fossil"}}',
    '{"id":3,"publish":{"channel":"news","data":{"text":"hi"}}}',
    '{"id":4,"presence":{"channel":"news"}}\n{"id":5,"history":{"channel":"news","limit":10,"since":{"offset":1,"epoch":"e"},"reverse":true}}',
    '{"id":6,"rpc":{"method":"m","data":[1,2]}}\n{"send":{"data":"x"}}\n{}',
    '{"id":7,"refresh":{"token":"t"}}\n{"id":8,"sub_refresh":{"channel":"c","token":"t"}}\n{"id":9,"unsubscribe":{"channel":"c"}}',
]
v1 = [
    '{"id":1,"params":{"token":"t","data":{"a":1}}}',
    '{"id":2,"method":1,"params":{"channel":"news","recover":true,"seq":1,"gen":0,"epoch":"e"}}',
    '{"id":3,"method":3,"params":{"channel":"news","data":{"text":"hi"}}}\n{"id":4,"method":5,"params":{"channel":"news"}}',
    '{"id":5,"method":"history","params":{"channel":"news"}}\n{"method":8,"params":{"data":"x"}}',
]
for i, s in enumerate(v2):
    put("protocol_json", f"v2-{i}", b"\x00" + s.encode())
    put("protocol_json", f"v2k-{i}", b"\x02" + s.encode())
for i, s in enumerate(v1):
    put("protocol_json", f"v1-{i}", b"\x00" + s.encode())
    put("protocol_json", f"v1k-{i}", b"\x01" + s.encode())

# --- protocol_protobuf: v2 Command{id=1, connect=4{token=1,data=2,subs=3 map,name=4}} ...
connect2 = field(1, 1) + field(4, field(1, "tok") + field(2, b'{"a":1}') + field(4, "js"))
sub2 = field(1, 2) + field(5, field(1, "news") + field(2, "tok") + field(3, 1) + field(6, 4) + field(7, "e"))
pub2 = field(1, 3) + field(7, field(1, "news") + field(2, b'{"x":1}'))
hist2 = field(1, 4) + field(11, field(1, "news") + field(7, 10) + field(8, field(1, 2) + field(2, "e")))
rpc2 = field(1, 5) + field(12, field(1, b"data") + field(2, "m"))
send2 = field(13, field(1, b"hello"))
put("protocol_protobuf", "v2-connect", b"\x00" + delimited(connect2))
put("protocol_protobuf", "v2-many", b"\x02" + delimited(sub2, pub2, hist2, rpc2, send2))
put("protocol_protobuf", "v2-empty", b"\x02" + delimited(b""))
# v1 Command{id=1, method=2 enum, params=3 bytes}
connect1 = field(1, 1) + field(3, field(1, "tok") + field(2, b'{"a":1}'))
sub1 = field(1, 2) + field(2, 1) + field(3, field(1, "news") + field(2, "tok") + field(3, 1) + field(4, 5))
pub1 = field(1, 3) + field(2, 3) + field(3, field(1, "news") + field(2, b'{"x":1}'))
put("protocol_protobuf", "v1-connect", b"\x00" + delimited(connect1))
put("protocol_protobuf", "v1-many", b"\x01" + delimited(sub1, pub1))

# --- api_http: mode 0 batch, 1 method (next byte indexes BATCH_METHODS), 2 legacy
put("api_http", "batch", b"\x00" + json.dumps({"commands": [
    {"publish": {"channel": "a", "data": {"x": 1}}},
    {"broadcast": {"channels": ["a", "b"], "b64data": "aGk=", "tags": {"k": "v"}}},
    None,
    {"presence": {"channel": "a"}},
    {"history": {"channel": "a", "limit": 5, "since": {"offset": 1, "epoch": "e"}}},
    {"unknown": {}},
], "parallel": True}).encode())
methods = ["publish", "broadcast", "subscribe", "unsubscribe", "disconnect", "presence",
           "presence_stats", "history", "history_remove", "info", "rpc", "refresh", "channels"]
params = {
    "publish": {"channel": "a", "data": {"x": 1}, "idempotency_key": "k", "delta": True, "version": 3},
    "broadcast": {"channels": ["a"], "b64data": "AAEC"},
    "subscribe": {"user": "u", "channel": "c", "client": "cl", "recover_since": {"offset": 1, "epoch": "e"}},
    "unsubscribe": {"user": "u", "channel": "c"},
    "disconnect": {"user": "u", "disconnect": {"code": 4000, "reason": "bye"}, "whitelist": ["x"]},
    "presence": {"channel": "c"}, "presence_stats": {"channel": "c"},
    "history": {"channel": "c", "limit": -1, "reverse": True},
    "history_remove": {"channel": "c"}, "info": {},
    "rpc": {"method": "m", "params": {"a": 1}},
    "refresh": {"user": "u", "expire_at": 1700000000, "info": {"a": 1}},
    "channels": {"pattern": "news:*"},
}
for i, m in enumerate(methods):
    put("api_http", "m-" + m, b"\x01" + bytes([i]) + json.dumps(params[m]).encode())
put("api_http", "legacy", b"\x02" + b"\n".join([
    b'{"method":"publish","params":{"channel":"a","data":{"x":1}}}',
    b'{"method":1,"params":{"channels":["a"],"data":1}}',
    b'{"id":3,"method":"presence","params":{"channel":"a"}}',
    b'{"method":"unknown"}',
]))

# --- jwt: mode 0 raw token, 1..3 claims signed HS256/384/512, 4 PEM, 5 DER
tokens = json.load(open(os.path.join(REPO, "crates/core/src/auth/testdata/tokens.json")))
for name, tok in sorted(tokens.items()):
    if isinstance(tok, str):
        put("jwt", "tok-" + name, b"\x00" + tok.encode())


def hs(alg, secret, claims):
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")
    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    h = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    sig = b64(hmac.new(secret.encode(), head + b"." + body, h).digest())
    return head + b"." + body + b"." + sig


put("jwt", "hs256-ok", b"\x00" + hs("HS256", "fuzz-secret", {"sub": "u", "exp": 1800000000, "info": {"a": 1}}))
put("jwt", "hs256-sub", b"\x00" + hs("HS256", "fuzz-secret", {"sub": "u", "channel": "news", "client": "c", "exp": 1800000000}))
claims = [
    {"sub": "alice", "exp": 1800000000, "info": {"name": "A"}, "channels": ["news"], "meta": {"t": 1}},
    {"sub": "bob", "exp": 1000, "nbf": 1, "iat": 1},
    {"sub": "c", "channel": "news", "client": "x", "b64info": "aGk=", "expire_at": 0, "eto": True},
    {"sub": "d", "subs": {"news": {"data": {"a": 1}, "override": {"presence": {"value": True}}}}, "aud": "x", "iss": "y"},
    {"sub": "e", "channel": "c", "exp": 1800000000, "override": {"join_leave": {"value": False}}, "b64data": "AA=="},
]
for i, c in enumerate(claims):
    put("jwt", f"claims-{i}", bytes([1 + i % 3]) + json.dumps(c).encode())
for pem in ["rsa.pub.pem", "ec256.cert.pem", "ed25519.pub.pem", "rsa.pkcs1.pem", "secp256k1.pub.pem"]:
    text = open(os.path.join(REPO, "crates/core/src/auth/testdata", pem), "rb").read()
    put("jwt", "pem-" + pem, b"\x04" + text)
    lines = [l for l in text.split(b"\n") if l and not l.startswith(b"-----")]
    put("jwt", "der-" + pem, b"\x05" + base64.b64decode(b"".join(lines)))

# --- jwks
put("jwks", "set", json.dumps({"keys": [
    {"kty": "RSA", "kid": "r1", "alg": "RS256", "use": "sig", "n": "sXch" * 64, "e": "AQAB"},
    {"kty": "EC", "kid": "e1", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
    {"kty": "OKP", "kid": "o1", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
    {"kty": "oct", "k": "c2VjcmV0"},
    {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"},
]}))
put("jwks", "empty", '{"keys":[]}')

# --- proxy_response: mode even = JSON payloads, odd = binary (base64) payloads
answers = [
    {"result": {"user": "u", "expire_at": 1800000000, "info": {"a": 1}, "data": {"b": 2}, "channels": ["c"],
                "subs": {"news": {"info": {"x": 1}, "override": {"presence": {"value": True}}}}, "meta": {"m": 1}}},
    {"result": {"b64info": "aGk=", "b64data": "AAE=", "expired": False}},
    {"error": {"code": 1000, "message": "no", "temporary": True}},
    {"disconnect": {"code": 4500, "reason": "bye", "reconnect": False}},
    {"result": {"data": {"x": 1}, "skip_history": True, "override": {"join_leave": {"value": True}}}},
    None,
]
for i, a in enumerate(answers):
    put("proxy_response", f"json-{i}", b"\x00" + json.dumps(a).encode())
    put("proxy_response", f"bin-{i}", b"\x01" + json.dumps(a).encode())

# --- websocket_upgrade
def head(path, headers, method="GET"):
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers] + ["", ""]
    return "\r\n".join(lines)

base = [("Host", "localhost"), ("Connection", "keep-alive, Upgrade"), ("Upgrade", "websocket"),
        ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")]
put("websocket_upgrade", "plain", head("/connection/websocket", base))
put("websocket_upgrade", "protobuf", head("/connection/websocket?format=protobuf&cf_protocol_version=v2",
    base + [("Sec-WebSocket-Protocol", "centrifuge-protobuf, centrifuge-json"), ("Origin", "https://a.example.com")]))
put("websocket_upgrade", "deflate", head("/connection/websocket?cf_protocol=json",
    base + [("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"), ("Origin", "http://evil.com")]))
put("websocket_upgrade", "post", head("/connection/websocket", base, "POST"))
put("websocket_upgrade", "v13missing", head("/connection/websocket", base[:3]))

# --- sockjs: mode 0 client payload, 1 server message
put("sockjs", "payload", b'\x00["{\\"id\\":1,\\"connect\\":{}}","x"]')
put("sockjs", "payload-empty", b"\x00[]")
put("sockjs", "message", "\x01{\"id\":1,\"result\":{}}\n\u2028\u2029<script>%\r\x00é")

# --- emulation_body: mode even = JSON, odd = Protobuf
put("emulation_body", "json", b'\x00{"node":"n1","session":"s1","data":"{\\"id\\":1,\\"publish\\":{}}\\n"}')
put("emulation_body", "proto", b"\x01" + field(1, "n1") + field(2, "s1") + field(3, delimited(pub2)))

# --- config: mode 0 JSON, 1 YAML, 2 TOML
cfg = {"token_hmac_secret_key": "s", "api_key": "k", "namespaces": [{"name": "ns", "presence": True, "history_size": 10, "history_ttl": "300s"}],
       "allowed_origins": ["*"], "proxy_connect_endpoint": "http://localhost:9/c", "engine": "memory"}
put("config", "flat-json", b"\x00" + json.dumps(cfg).encode())
put("config", "nested-yaml", b"\x01" + b"""client:
  token:
    hmac_secret_key: s
    jwks_public_endpoint: https://example.com/{{tenant}}/jwks
  allowed_origins: ["http://localhost:3000"]
channel:
  namespaces:
    - name: chat
      presence: true
      history_size: 10
      history_ttl: 60s
http_api:
  key: k
log:
  level: info
""")
put("config", "nested-toml", b"\x02" + b"""[client]
allowed_origins = ["*"]
[client.token]
hmac_secret_key = "s"
[[channel.namespaces]]
name = "ns"
history_size = 5
history_ttl = "30s"
[http_api]
key = "k"
""")
print("seeds written")
