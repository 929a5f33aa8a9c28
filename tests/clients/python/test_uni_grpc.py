"""uni_grpc with a real grpcio client (TRANSPORTS.md §3.3).

The client stubs are generated at test time by grpcio-tools from the project's own schema,
crates/server/proto/unistream.proto. A server with uni_grpc enabled on its own port is started
here (it says "uni_grpc listening on ADDR" once bound); `Consume` gets the connect push first,
then an API publication on a token channel and on a requested public channel, and an API
disconnect as the last push before the stream ends with status OK.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc
import pytest
import requests
from grpc_tools import protoc

from conftest import REPO_ROOT, free_port, hs256

PROTO_DIR = REPO_ROOT / "crates" / "server" / "proto"


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    out = tmp_path_factory.mktemp("unistream_stubs")
    include = Path(protoc.__file__).parent / "_proto"
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"-I{include}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            str(PROTO_DIR / "unistream.proto"),
        ]
    )
    assert rc == 0, "protoc failed on unistream.proto"
    sys.path.insert(0, str(out))
    try:
        pb2 = importlib.import_module("unistream_pb2")
        pb2_grpc = importlib.import_module("unistream_pb2_grpc")
    finally:
        sys.path.remove(str(out))
    return pb2, pb2_grpc


def start_uni_server(tmp: str, tls_files=None, extra=None):
    """Starts rotor with uni_grpc on its own port (v6 section; with `tls_files` (cert, key) the
    5.x flat keys with TLS; `extra` keys merged into the config); yields the addresses once it
    listens."""
    binary = os.environ.get("ROTOR_BIN") or str(REPO_ROOT / "target" / "debug" / "rotor")
    port, grpc_port = free_port(), free_port()
    config = {
        "address": "127.0.0.1",
        "port": port,
        "token_hmac_secret_key": f"secret-{uuid.uuid4()}",
        "api_key": f"api-{uuid.uuid4()}",
        "uni_grpc": {"enabled": True, "address": "127.0.0.1", "port": grpc_port},
    }
    if tls_files:
        del config["uni_grpc"]
        config.update(
            {
                "uni_grpc": True,
                "uni_grpc_address": "127.0.0.1",
                "uni_grpc_port": grpc_port,
                "uni_grpc_tls": True,
                "uni_grpc_tls_cert": tls_files[0],
                "uni_grpc_tls_key": tls_files[1],
            }
        )
    config.update(extra or {})
    cfg_path = Path(tmp) / "config.json"
    cfg_path.write_text(json.dumps(config))
    log_path = Path(tmp) / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [binary, "-c", str(cfg_path)],
            cwd=tmp,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        needle = f"uni_grpc listening on 127.0.0.1:{grpc_port}"
        deadline = time.monotonic() + 15
        while needle not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"no {needle!r}:\n{log_path.read_text(errors='replace')[-4000:]}")
            time.sleep(0.05)
        yield {"config": config, "grpc": f"127.0.0.1:{grpc_port}", "http": f"http://127.0.0.1:{port}"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def uni_server():
    with tempfile.TemporaryDirectory(prefix="rotor-py-uni-") as tmp:
        yield from start_uni_server(tmp)


def self_signed(tmp: Path):
    """A certificate for 127.0.0.1 and its key (PEM files), made with `cryptography`."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp / "cert.pem").write_bytes(cert_pem)
    (tmp / "key.pem").write_bytes(key_pem)
    return cert_pem, str(tmp / "cert.pem"), str(tmp / "key.pem")


def api(srv, method: str, params: dict) -> None:
    r = requests.post(
        f"{srv['http']}/api/{method}",
        headers={"X-API-Key": srv["config"]["api_key"]},
        json=params,
        timeout=5,
    )
    assert r.status_code == 200 and "error" not in r.json(), r.text


def test_consume_connect_publication_disconnect(stubs, uni_server):
    pb2, pb2_grpc = stubs
    token = hs256({"sub": "py-uni", "channels": ["news"]}, uni_server["config"]["token_hmac_secret_key"])
    with grpc.insecure_channel(uni_server["grpc"]) as channel:
        stub = pb2_grpc.CentrifugoUniStreamStub(channel)
        req = pb2.ConnectRequest(token=token, name="py", subs={"public": pb2.SubscribeRequest()})
        stream = stub.Consume(req, timeout=15)

        first = next(stream)
        assert first.HasField("connect"), first
        assert first.connect.client and len(first.connect.session) == 36, first
        assert set(first.connect.subs) == {"news", "public"}, first
        assert first.connect.ping == 0 and not first.connect.pong and not first.connect.node, first

        api(uni_server, "publish", {"channel": "news", "data": {"n": 1}})
        p = next(stream)
        assert p.channel == "news" and p.HasField("pub"), p
        assert json.loads(getattr(p, "pub").data) == {"n": 1}

        api(uni_server, "publish", {"channel": "public", "data": {"n": 2}})
        p = next(stream)
        assert p.channel == "public" and json.loads(getattr(p, "pub").data) == {"n": 2}, p

        api(uni_server, "disconnect", {"user": "py-uni"})
        d = next(stream)
        assert d.HasField("disconnect"), d
        assert (d.disconnect.code, d.disconnect.reason) == (3503, "force disconnect")
        with pytest.raises(StopIteration):
            next(stream)


def test_consume_bad_token_disconnect_push(stubs, uni_server):
    pb2, pb2_grpc = stubs
    with grpc.insecure_channel(uni_server["grpc"]) as channel:
        stub = pb2_grpc.CentrifugoUniStreamStub(channel)
        stream = stub.Consume(pb2.ConnectRequest(token="not-a-token"), timeout=10)
        d = next(stream)
        assert d.HasField("disconnect") and d.disconnect.code == 3500, d
        with pytest.raises(StopIteration):
            next(stream)


def test_consume_over_tls(stubs):
    pb2, pb2_grpc = stubs
    with tempfile.TemporaryDirectory(prefix="rotor-py-uni-tls-") as tmp:
        cert_pem, cert, key = self_signed(Path(tmp))
        gen = start_uni_server(tmp, (cert, key))
        srv = next(gen)
        try:
            creds = grpc.ssl_channel_credentials(root_certificates=cert_pem)
            token = hs256({"sub": "py-tls", "channels": ["news"]}, srv["config"]["token_hmac_secret_key"])
            with grpc.secure_channel(srv["grpc"], creds) as channel:
                stub = pb2_grpc.CentrifugoUniStreamStub(channel)
                stream = stub.Consume(pb2.ConnectRequest(token=token), timeout=15)
                first = next(stream)
                assert first.HasField("connect") and "news" in first.connect.subs, first
                api(srv, "publish", {"channel": "news", "data": {"tls": True}})
                p = next(stream)
                assert p.channel == "news" and json.loads(getattr(p, "pub").data) == {"tls": True}, p
                stream.cancel()
        finally:
            gen.close()


def test_consume_request_over_max_receive_message_size(stubs, uni_server):
    pb2, pb2_grpc = stubs
    with grpc.insecure_channel(uni_server["grpc"]) as channel:
        stub = pb2_grpc.CentrifugoUniStreamStub(channel)
        stream = stub.Consume(pb2.ConnectRequest(token="x" * 70000), timeout=10)
        with pytest.raises(grpc.RpcError) as e:
            next(stream)
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e.value


def test_consume_refused_by_the_connection_limit(stubs):
    """`client.connection_limit` 1: while one stream is open a second Consume fails with
    UNAVAILABLE (the HTTP 503 of the other transports); once it ends the next is admitted."""
    pb2, pb2_grpc = stubs
    with tempfile.TemporaryDirectory(prefix="rotor-py-uni-limit-") as tmp:
        gen = start_uni_server(tmp, extra={"client": {"connection_limit": 1}, "prometheus": True})
        srv = next(gen)
        try:
            token = hs256({"sub": "py-limit"}, srv["config"]["token_hmac_secret_key"])
            with grpc.insecure_channel(srv["grpc"]) as channel:
                stub = pb2_grpc.CentrifugoUniStreamStub(channel)
                first = stub.Consume(pb2.ConnectRequest(token=token), timeout=15)
                assert next(first).HasField("connect")
                second = stub.Consume(pb2.ConnectRequest(token=token), timeout=10)
                with pytest.raises(grpc.RpcError) as e:
                    next(second)
                assert e.value.code() == grpc.StatusCode.UNAVAILABLE, e.value
                metrics = requests.get(f"{srv['http']}/metrics", timeout=5).text
                assert "centrifugo_node_client_connection_limit 1" in metrics, metrics[-2000:]
                first.cancel()
                deadline = time.monotonic() + 5
                while True:
                    third = stub.Consume(pb2.ConnectRequest(token=token), timeout=10)
                    try:
                        assert next(third).HasField("connect")
                        third.cancel()
                        break
                    except grpc.RpcError as err:
                        # The cancelled stream frees its slot a moment later.
                        assert err.code() == grpc.StatusCode.UNAVAILABLE, err
                        assert time.monotonic() < deadline, "slot not freed within 5 s"
                        time.sleep(0.1)
        finally:
            gen.close()
