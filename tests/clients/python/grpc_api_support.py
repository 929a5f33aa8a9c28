"""Support of test_grpc_api.py: the grpcio stubs generated at test time from the project's
crates/server/proto/api_v1.proto and api_v6.proto, a rotor server with the gRPC API listener,
centrifuge-js subscribers in node processes (js/subscriber.mjs) and response checks.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import grpc
import pytest
from grpc_tools import protoc

from conftest import REPO_ROOT, free_port, hs256

PROTO_DIR = REPO_ROOT / "crates" / "server" / "proto"
SUBSCRIBER = Path(__file__).resolve().parent / "js" / "subscriber.mjs"
V6 = "/centrifugal.centrifugo.api.CentrifugoApi"
TIMEOUT = 5

# The wire shape of google.rpc.Status (three fields), to read grpc-status-details-bin; in a
# package of its own so it cannot collide with a real google.rpc in the descriptor pool.
STATUS_PROTO = """syntax = "proto3";
package rotor_test.rpc;
import "google/protobuf/any.proto";
message Status {
  int32 code = 1;
  string message = 2;
  repeated google.protobuf.Any details = 3;
}
"""


class Pb:
    """The generated modules: v1 / v1g (api_v1), v6 / v6g (api_v6), status."""


def compile_stubs(out: Path) -> Pb:
    """Generates the modules into `out` with grpcio-tools and imports them."""
    (out / "grpc_test_status.proto").write_text(STATUS_PROTO)
    include = Path(protoc.__file__).parent / "_proto"
    for proto_dir, name in ((PROTO_DIR, "api_v1.proto"), (PROTO_DIR, "api_v6.proto"), (out, "grpc_test_status.proto")):
        rc = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{proto_dir}",
                f"-I{include}",
                f"--python_out={out}",
                f"--grpc_python_out={out}",
                str(proto_dir / name),
            ]
        )
        assert rc == 0, f"protoc failed on {name}"
    sys.path.insert(0, str(out))
    try:
        m = Pb()
        m.v1 = importlib.import_module("api_v1_pb2")
        m.v1g = importlib.import_module("api_v1_pb2_grpc")
        m.v6 = importlib.import_module("api_v6_pb2")
        m.v6g = importlib.import_module("api_v6_pb2_grpc")
        m.status = importlib.import_module("grpc_test_status_pb2")
    finally:
        sys.path.remove(str(out))
    return m


# ---------- the server ----------


class Srv:
    def __init__(self, config: Dict[str, Any], grpc_port: int, log_path: Path, key: str):
        self.config = config
        self.grpc_addr = f"127.0.0.1:{grpc_port}"
        self.http = f"http://127.0.0.1:{config['port']}"
        self.ws_url = f"ws://127.0.0.1:{config['port']}/connection/websocket"
        self.log_path = log_path
        self.key = key
        self.md = (("authorization", f"apikey {key}"),)

    def token(self, claims: Dict[str, Any]) -> str:
        return hs256(claims, self.config["token_hmac_secret_key"])

    def output_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def run_server(tmp: str, extra: Dict[str, Any], grpc_port: int, key: str):
    """Starts rotor with `extra` merged into a 2.x flat config; yields a Srv once both the HTTP
    port and the gRPC API listener ("grpc_api listening on ...:<grpc_port>") are up."""
    binary = str(Path(os.environ.get("ROTOR_BIN") or REPO_ROOT / "target" / "debug" / "rotor").resolve())
    config = {
        "address": "127.0.0.1",
        "port": free_port(),
        "token_hmac_secret_key": f"secret-{uuid.uuid4()}",
        "api_key": f"api-{uuid.uuid4()}",
        "presence": True,
        "join_leave": True,
        "history_size": 10,
        "history_lifetime": 300,
        "history_recover": True,
        "prometheus": True,
        # Expired subscriptions are found on the presence tick (test_v6_subscribe_expire_at).
        "client_presence_ping_interval": 1,
        "client_expired_sub_close_delay": 0,
        # `bare`: no presence, no history (108).
        "namespaces": [{"name": "bare"}],
    }
    config.update(extra)
    cfg_path = Path(tmp) / "config.json"
    cfg_path.write_text(json.dumps(config, indent=2))
    log_path = Path(tmp) / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [binary, "-c", str(cfg_path)], cwd=tmp, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        needle = re.compile(rf"grpc_api listening on \S*:{grpc_port}\b")
        deadline = time.monotonic() + 15
        while not needle.search(log_path.read_text(errors="replace")):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"no 'grpc_api listening on ...:{grpc_port}':\n{log_path.read_text(errors='replace')[-4000:]}")
            time.sleep(0.05)
        yield Srv(config, grpc_port, log_path, key)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# ---------- centrifuge-js subscribers ----------


class JsSub:
    """One centrifuge-js client in a node process; `events` are its JSON lines."""

    def __init__(self, version: int, srv: Srv, user: str, channels: List[str], info: Any = None):
        node = shutil.which("node")
        assert node, "node is not installed"
        claims: Dict[str, Any] = {"sub": user}
        if info is not None:
            claims["info"] = info
        opts = {"version": version, "url": srv.ws_url, "token": srv.token(claims), "channels": channels}
        self.version = version
        self.user = user
        self.events: List[Dict[str, Any]] = []
        self.stderr: List[str] = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(
            [node, str(SUBSCRIBER), json.dumps(opts)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()
        self.client: Optional[str] = None

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"ev": "garbage", "line": line}
            with self.cond:
                self.events.append(ev)
                self.cond.notify_all()

    def _read_err(self):
        for line in self.proc.stderr:
            self.stderr.append(line)

    def find(self, ev: str, **fields) -> List[Dict[str, Any]]:
        with self.cond:
            return [e for e in self.events if e.get("ev") == ev and all(e.get(k) == v for k, v in fields.items())]

    def wait(self, ev: str, timeout: float = TIMEOUT, **fields) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for e in self.events:
                    if e.get("ev") == ev and all(e.get(k) == v for k, v in fields.items()):
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"centrifuge-js {self.version} ({self.user}): no {ev} {fields} within {timeout} s; "
                        f"events: {self.events}; stderr: {''.join(self.stderr)[-2000:]}"
                    )
                self.cond.wait(left)

    def ready(self) -> "JsSub":
        self.client = self.wait("connected", timeout=10)["client"]
        self.wait("ready", timeout=10)
        return self

    def pubs(self, channel: str) -> List[Any]:
        return [e["data"] for e in self.find("publication", channel=channel)]

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------- call helpers ----------


def ok(resp, result: bool):
    """A success: no error; `result` set (v6 always) or unset (2.x methods without a result)."""
    assert not resp.HasField("error"), f"unexpected error {resp.error}"
    assert resp.HasField("result") == result, f"result present={resp.HasField('result')}, expected {result}: {resp}"
    return resp.result


def err(resp, code: int, message: str):
    assert resp.HasField("error"), f"expected error {code}, got {resp}"
    assert (resp.error.code, resp.error.message) == (code, message), resp.error
    assert not resp.HasField("result"), f"an error response carries a result: {resp}"


def status_of(fn, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as e:
        fn(*args, **kwargs)
    return e.value


def raw(chan, path: str) -> Callable:
    """A unary call with raw request/response bytes."""
    return chan.unary_unary(path, request_serializer=None, response_deserializer=None)


J = lambda obj: json.dumps(obj).encode()  # noqa: E731


def transport_error(pb, e: grpc.RpcError):
    """(status code, details, the Error message of grpc-status-details-bin)."""
    details = dict(e.trailing_metadata() or ()).get("grpc-status-details-bin")
    assert details, f"no grpc-status-details-bin in {e.trailing_metadata()}"
    st = pb.status.Status.FromString(details)
    assert len(st.details) == 1 and st.details[0].type_url.endswith("/centrifugal.centrifugo.api.Error"), st
    inner = pb.v6.Error.FromString(st.details[0].value)
    assert st.code == e.code().value[0] and st.message == e.details(), (st, e)
    return e.code(), e.details(), (inner.code, inner.message)
