#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into fuzz/corpus/<target>/ (FUZZING.md).

Seeds are small valid documents of each kind, written here by hand (and the token fixtures of
crates/core/src/auth/testdata); the fuzzer grows the corpus from them. Re-running only adds
files named seed-*.
"""
import base64, hashlib, hmac, json, os, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(ROOT)


# `make_seeds.py <target>...` writes only those targets' seeds.
ONLY = set(sys.argv[1:])


def put(target, name, data):
    if ONLY and target not in ONLY:
        return
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


# --- grpc_messages: mode 2*k = gRPC proxy answer of call kind k (connect, refresh, subscribe,
# publish, sub_refresh, rpc); mode 2*m+1 = gRPC server API request of method m
# (rotor_server::fuzz::GRPC_API_METHODS). Messages as in proto/proxy.proto, api_v6.proto, api_v1.proto.
def msg(*fields):
    return b"".join(field(t, v) for t, v in fields)


def bmsg(tag, body):
    return varint(tag << 3 | 2) + varint(len(body)) + body


sub_opts = msg((2, '{"i":1}'), (4, '{"d":2}')) + bmsg(6, bmsg(1, msg((1, 1))))
connect_result = msg((1, "42"), (2, 1700000000), (3, '{"name":"A"}'), (5, '{"x":1}'),
                     (7, "news"), (7, "news"), (9, '{"m":1}')) + \
    bmsg(8, msg((1, "chat")) + bmsg(2, sub_opts))
proxy = [
    (0, bmsg(1, connect_result)),
    (0, bmsg(1, msg((1, "u"), (4, "eyJhIjoxfQ==")))),
    (0, bmsg(2, msg((1, 1000), (2, "custom"), (3, 1)))),
    (0, bmsg(3, msg((1, 4501), (2, "go away")))),
    (1, bmsg(1, msg((1, 0), (2, 1700000000), (3, '{"name":"B"}')))),
    (2, bmsg(1, msg((1, 5), (2, '{"i":1}'), (4, '{"d":1}')) + bmsg(6, bmsg(2, msg((1, 1)))))),
    (3, bmsg(1, msg((1, '{"text":"changed"}'), (3, 1)))),
    (3, bmsg(1, msg((2, "eyJ0ZXh0IjoiYiJ9")))),
    (4, bmsg(1, msg((1, 1), (2, 1800000000)))),
    (5, bmsg(1, msg((1, '{"result":[1,2]}')))),
    (5, bmsg(2, msg((1, 1), (2, "no"))) + bmsg(3, msg((1, 70000)))),
]
for i, (kind, body) in enumerate(proxy):
    put("grpc_messages", "proxy-%d" % i, bytes([2 * kind]) + body)
    put("grpc_messages", "proxy-bin-%d" % i, bytes([2 * kind]) + body)
publish = msg((1, "news"), (2, '{"text":"hi"}'), (6, "key-1"), (7, 1), (8, 3), (9, "e1")) + \
    bmsg(5, msg((1, "tag"), (2, "v")))
broadcast = msg((1, "a"), (1, "b"), (3, "eyJhIjoxfQ=="), (4, 1))
subscribe = msg((1, "news"), (2, "42"), (3, 1700000000), (4, '{"i":1}'), (6, "client-1")) + \
    bmsg(9, msg((1, 10), (2, "ep"))) + bmsg(10, bmsg(1, msg((1, 1))) + bmsg(5, msg((1, 0))))
disconnect = msg((1, "42")) + bmsg(2, msg((1, 4000), (2, "bye"))) + msg((4, "keep"), (5, "s1"))
history = msg((1, "news"), (2, 10), (4, 1)) + bmsg(3, msg((1, 5), (2, "ep")))
api = [
    (1, publish), (2, broadcast), (3, subscribe), (4, msg((1, "news"), (2, "42"))),
    (5, disconnect), (6, msg((1, "news"))), (7, msg((1, "news"))), (8, history),
    (9, msg((1, "news"))), (10, b""), (11, msg((1, "getUser"), (2, '{"id":1}'))),
    (12, msg((1, "42"), (2, "c1"), (3, 1), (4, 1700000000))), (13, msg((1, "news*"))),
    (14, msg((1, "news"), (2, '{"a":1}'))), (15, msg((1, "a"), (1, "b"), (2, "{}"))),
    (16, msg((1, "news"), (2, "42"))), (17, msg((1, "42"))), (18, msg((1, "news"))),
    (20, msg((1, "news"))), (24, msg((1, "m"), (2, "[1]"))),
]
for m, body in api:
    put("grpc_messages", "api-%d" % m, bytes([2 * m + 1]) + body)
batch = bmsg(1, bmsg(4, publish)) + bmsg(1, bmsg(11, history)) + bmsg(1, b"") + \
    bmsg(1, bmsg(13, b"")) + msg((2, 1))
put("grpc_messages", "api-batch", bytes([1]) + batch)

# --- websocket_deflate: mode & 3 = 0 inflate (limit index mode >> 2 & 7), 1 deflate/inflate
# round trip (level mode / 4 % 10), 2/3 a client stream through the deflate socket.
import zlib


def raw_deflate(data, level=6):
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4] if out.endswith(b"\x00\x00\xff\xff") else out


def client_frame(opcode, payload, rsv1=False, fin=True, mask=b"\x01\x02\x03\x04"):
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes([b0, 0x80 | n])
    elif n < 65536:
        head = bytes([b0, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


cmd = b'{"id":1,"connect":{"token":"t","name":"js"}}'
push = b'{"push":{"channel":"news","pub":{"data":{"text":"hello hello hello"}}}}'
for li in range(8):
    put("websocket_deflate", "inflate-%d" % li, bytes([li << 2]) + raw_deflate(push))
put("websocket_deflate", "inflate-bomb", bytes([6 << 2]) + raw_deflate(b"a" * 200000, 9))
put("websocket_deflate", "inflate-stored", bytes([5 << 2]) + raw_deflate(cmd, 0))
put("websocket_deflate", "inflate-bad", bytes([4 << 2]) + b"\xff\xff\xff")
for lvl in [0, 1, 6, 9]:
    put("websocket_deflate", "roundtrip-%d" % lvl, bytes([lvl << 2 | 1]) + push)
stream = client_frame(1, raw_deflate(cmd), rsv1=True) + client_frame(9, b"ping") + \
    client_frame(2, raw_deflate(push)[:10], rsv1=True, fin=False) + \
    client_frame(0, raw_deflate(push)[10:]) + client_frame(1, b'{"id":2}') + \
    client_frame(8, b"\x03\xe8bye")
put("websocket_deflate", "stream", bytes([6 << 2 | 2]) + stream)
put("websocket_deflate", "stream-small", bytes([2 << 2 | 3]) + stream)
put("websocket_deflate", "stream-bomb",
    bytes([5 << 2 | 2]) + client_frame(2, raw_deflate(b"a" * 100000, 9), rsv1=True))

# --- uni_connect: mode 0 JSON body / first message, 1 query string, 2 uni_grpc Protobuf body
bodies = [
    '{"token":"t","data":{"a":1},"name":"js","version":"1.0","subs":{"news":{"recover":true,"offset":1,"epoch":"e"}},"headers":{"x-a":"b"}}',
    '{}', 'null', '{"token":""}', '{"subs":{"a":{}}}',
]
for i, b in enumerate(bodies):
    put("uni_connect", "body-%d" % i, b"\x00" + b.encode())
import urllib.parse
for i, b in enumerate(bodies[:3]):
    put("uni_connect", "query-%d" % i, b"\x01" + ("cf_connect=" + urllib.parse.quote(b)).encode())
put("uni_connect", "query-none", b"\x01a=1&b=2")
put("uni_connect", "query-two", b"\x01cf_connect=%7B%7D&cf_connect=bad")
put("uni_connect", "grpc-0", b"\x02" + msg((1, "t"), (2, '{"a":1}'), (4, "go"), (5, "1.0")) +
    bmsg(3, msg((1, "news")) + bmsg(2, msg((1, 1), (4, 3), (5, "e")))))
put("uni_connect", "grpc-empty", b"\x02")

# --- redis_reply: mode % 3 = 0 RESP reply of script mode / 3 % 4 (publish, history, presence,
# presence_stats); 1 a PUB/SUB payload; 2 a PUB/SUB channel name, 0, a channel.
def bulk(b):
    if isinstance(b, str):
        b = b.encode()
    return b"$%d\r\n" % len(b) + b + b"\r\n"


def arr(*items):
    return b"*%d\r\n" % len(items) + b"".join(items)


def wfield(b):
    if isinstance(b, str):
        b = b.encode()
    return str(len(b)).encode() + b":" + b


winfo = wfield("42") + wfield("client-1") + wfield('{"name":"A"}') + b"-"
body0 = b'0{"text":"a"}'
body1 = b"1" + winfo + b'{"text":"b"}'
body3 = b"3" + winfo + b"1:" + wfield("t") + wfield("v") + b'{"text":"c"}'
put("redis_reply", "publish", b"\x00" + arr(bulk("5"), bulk("AbCd1234"), bulk("ok")))
put("redis_reply", "publish-int", b"\x00" + b"*3\r\n:5\r\n+AbCd1234\r\n+dup\r\n")
put("redis_reply", "history", bytes([3]) + arr(bulk("3"), bulk("E"), bulk("1"), bulk(body0),
                                              bulk("2"), bulk(body1), bulk("3"), bulk(body3)))
put("redis_reply", "history-empty", bytes([3]) + arr(bulk("0"), bulk("E")))
put("redis_reply", "presence", bytes([6]) + arr(bulk("client-1"), bulk(winfo), bulk("c2"), bulk(b"x")))
put("redis_reply", "presence-resp3", bytes([6]) + b"%1\r\n" + bulk("client-1") + bulk(winfo))
put("redis_reply", "stats", bytes([9]) + b"*2\r\n:3\r\n:2\r\n")
put("redis_reply", "pub", b"\x01p5:AbCd1234:" + body3)
put("redis_reply", "pub-nohistory", b"\x01p0::" + body0)
put("redis_reply", "delta", b"\x01d6:E:" + wfield(body0) + body1)
put("redis_reply", "join", b"\x01j" + winfo)
put("redis_reply", "leave", b"\x01l" + winfo)
put("redis_reply", "control", b"\x01c\x0a\x05hello")
put("redis_reply", "name", b"\x02P.client.{news}\x00news")
put("redis_reply", "name-hash", b"\x02P.client.{#0123456789abcdef}.a}b\x00a}b")
put("redis_reply", "name-part", b"\x05P.client.{17}.news\x00news")
