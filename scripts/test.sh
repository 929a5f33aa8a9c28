#!/usr/bin/env bash
# The one command that runs Rotor's whole test suite from the repo root, on a fresh machine too:
#
#   1. cargo fmt --check, cargo clippy -D warnings          (fail fast)
#   2. cargo build --workspace (dev profile)                 (fail fast: later parts need the binary)
#   3. cargo test --workspace                                (the Rust suite)
#   4. node --test in tests/clients/js                       (centrifuge-js 2.8.5 and 5.8.0)
#   5. pytest in tests/clients/python                        (cent 5.2.0, centrifuge-python 0.7.0)
#
# Parts 3–5 all run even when one fails; the script exits non-zero if any part failed.
# Installs what is missing: node deps with `npm ci` (tests/clients/js/node_modules), Python deps
# with pip into the venv target/venv; each is redone only when its lock/requirements file changed.
# ROTOR_BIN is set to the dev binary just built. No TTY needed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
LOG_DIR="$ROOT/target/test-logs"
VENV="$ROOT/target/venv"
JS_DIR="$ROOT/tests/clients/js"
PY_DIR="$ROOT/tests/clients/python"
mkdir -p "$LOG_DIR"

# The suite runs against rotor, never the reference server.
unset ROTOR_TEST_SERVER
export ROTOR_BIN="$TARGET_DIR/debug/rotor"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

banner() {
  printf '\n==============================================================================\n'
  printf '== %s\n' "$*"
  printf '==============================================================================\n'
}

die() {
  printf '\n!! %s\n' "$*" >&2
  exit 1
}

sha() { cat "$@" | sha256sum | cut -d' ' -f1; }

# ---------------------------------------------------------------- 1. format and lints (fail fast)
banner "1/5 cargo fmt --all -- --check"
cargo fmt --all -- --check || die "cargo fmt: code is not formatted (run 'cargo fmt --all')"

banner "1/5 cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings || die "cargo clippy reported warnings or errors"

# ---------------------------------------------------------------- 2. build (fail fast)
banner "2/5 cargo build --workspace"
cargo build --workspace || die "cargo build failed"
[ -x "$ROTOR_BIN" ] || die "cargo build did not produce $ROTOR_BIN"

# ---------------------------------------------------------------- test dependencies
banner "installing test dependencies (node: npm ci; python: venv at target/venv)"
command -v node >/dev/null || die "node is not installed"
command -v npm >/dev/null || die "npm is not installed"
js_stamp="$(sha "$JS_DIR/package.json" "$JS_DIR/package-lock.json")"
if [ "$(cat "$JS_DIR/node_modules/.rotor-stamp" 2>/dev/null)" != "$js_stamp" ]; then
  (cd "$JS_DIR" && npm ci --no-audit --no-fund) || die "npm ci failed in tests/clients/js"
  echo "$js_stamp" >"$JS_DIR/node_modules/.rotor-stamp"
else
  echo "node deps up to date"
fi

# The Redis engine's tests start their own redis-server / redis-sentinel processes.
if ! command -v redis-server >/dev/null || ! command -v redis-sentinel >/dev/null || ! command -v openssl >/dev/null; then
  echo "installing redis-server and redis-sentinel (apt-get)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-sentinel openssl >/dev/null; } ||
    die "cannot install redis-server (apt-get install redis-server redis-sentinel)"
fi
export ROTOR_REQUIRE_REDIS=1

# The NATS broker's tests start their own nats-server processes.
if ! command -v nats-server >/dev/null; then
  echo "installing nats-server (apt-get)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null; } ||
    die "cannot install nats-server (apt-get install nats-server)"
fi
export ROTOR_REQUIRE_NATS=1

# Headless Chromium for the admin UI browser test (tests/clients/js/admin.test.mjs): Debian's
# package, since nothing may download a browser build. Installed only when missing.
if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian's chromium (for the admin UI browser test)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } ||
    die "cannot install chromium with apt-get (needed by tests/clients/js/admin.test.mjs)"
fi

# The reference server (../shared/peers, a Go centrifuge-library server with SockJS) for the
# frame comparisons of crates/server/tests/e2e_sockjs.rs; its build installs Debian's Go packages
# when missing. Built into target/peers; the comparison then must run (ROTOR_REQUIRE_REFERENCE).
PEERS_BUILD="$ROOT/../shared/peers/build.sh"
if [ -f "$PEERS_BUILD" ]; then
  if [ ! -x "$ROOT/target/peers/bin/centrifuge-ref" ]; then
    echo "building the reference server (../shared/peers/build.sh)"
    PEERS_OUT="$ROOT/target/peers" bash "$PEERS_BUILD" >"$LOG_DIR/peers-build.log" 2>&1 ||
      die "cannot build the reference server (see $LOG_DIR/peers-build.log)"
  fi
  export ROTOR_REQUIRE_REFERENCE=1
fi

PY="${PYTHON:-python3}"
command -v "$PY" >/dev/null || die "$PY is not installed"
if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
  rm -rf "$VENV"
  "$PY" -m venv "$VENV" || die "cannot create the venv $VENV"
fi
py_stamp="$(sha "$PY_DIR/requirements.txt")"
if [ "$(cat "$VENV/.rotor-stamp" 2>/dev/null)" != "$py_stamp" ]; then
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$PY_DIR/requirements.txt" ||
    die "pip install -r tests/clients/python/requirements.txt failed"
  echo "$py_stamp" >"$VENV/.rotor-stamp"
else
  echo "python deps up to date"
fi

# ---------------------------------------------------------------- 3–5. the suites
declare -a PART_NAMES=() PART_STATUS=()
record() { PART_NAMES+=("$1"); PART_STATUS+=("$2"); }

banner "3/5 cargo test --workspace"
cargo test --workspace --no-fail-fast 2>&1 | tee "$LOG_DIR/cargo-test.log"
record "cargo test --workspace" "${PIPESTATUS[0]}"

# Every fuzz corpus and regression input through its target function (fuzz/, FUZZING.md), on
# the stable toolchain without libFuzzer: a parser change that crashes on a known input fails.
banner "extra: fuzz corpus replay (scripts/fuzz.sh replay)"
CARGO_TARGET_DIR="$TARGET_DIR" timeout --kill-after=10 900 bash "$ROOT/scripts/fuzz.sh" replay 2>&1 |
  tee "$LOG_DIR/fuzz-replay.log"
record "fuzz corpus replay (scripts/fuzz.sh replay)" "${PIPESTATUS[0]}"

banner "4/5 node --test (tests/clients/js) with ROTOR_BIN=$ROTOR_BIN"
(cd "$JS_DIR" && timeout --kill-after=10 900 node --test) 2>&1 | tee "$LOG_DIR/node-test.log"
record "node --test (centrifuge-js 2.8.5 / 5.8.0)" "${PIPESTATUS[0]}"

banner "5/5 pytest (tests/clients/python) with ROTOR_BIN=$ROTOR_BIN"
(cd "$PY_DIR" && timeout --kill-after=10 900 "$VENV/bin/python" -m pytest -q -p no:cacheprovider) 2>&1 |
  tee "$LOG_DIR/pytest.log"
record "pytest (cent 5.2.0 / centrifuge-python 0.7.0)" "${PIPESTATUS[0]}"

# ---------------------------------------------------------------- extra part: rotor-bench smoke (begin)
# Every rotor-bench scenario briefly against the dev build (scripts/bench-smoke.sh): deliveries
# happened and nothing was lost. Runs like parts 3–5 (a failure is recorded, the rest goes on).
banner "extra: rotor-bench smoke (scripts/bench-smoke.sh) with ROTOR_BIN=$ROTOR_BIN"
ROTOR_BIN="$ROTOR_BIN" BENCH_BIN="$TARGET_DIR/debug/rotor-bench" \
  timeout --kill-after=10 600 bash "$ROOT/scripts/bench-smoke.sh" 2>&1 | tee "$LOG_DIR/bench-smoke.log"
record "rotor-bench smoke (scripts/bench-smoke.sh)" "${PIPESTATUS[0]}"
# ---------------------------------------------------------------- extra part: rotor-bench smoke (end)

# ---------------------------------------------------------------- summary
# Counts from the runners' own summary lines: cargo's "test result:" lines, node's "# pass N" (TAP)
# or "ℹ pass N" (spec reporter), pytest's closing "N passed, M failed in Xs" line.
count() { # file, line filter (ERE), pattern holding one number (ERE) → sum of the numbers
  grep -E "$2" "$1" 2>/dev/null | grep -oE "$3" | grep -oE '[0-9]+' | awk '{s+=$1} END {print s+0}'
}
CT="$LOG_DIR/cargo-test.log" NT="$LOG_DIR/node-test.log" PT="$LOG_DIR/pytest-summary.log"
grep -E ' in [0-9.]+s' "$LOG_DIR/pytest.log" 2>/dev/null | tail -n 1 >"$PT"
passed=$(($(count "$CT" '^test result: ' '[0-9]+ passed') + $(count "$NT" '^(# |ℹ )pass [0-9]+$' 'pass [0-9]+') +
  $(count "$PT" . '[0-9]+ passed')))
failed=$(($(count "$CT" '^test result: ' '[0-9]+ failed') + $(count "$NT" '^(# |ℹ )fail [0-9]+$' 'fail [0-9]+') +
  $(count "$PT" . '[0-9]+ (failed|errors?)')))
skipped=$(($(count "$CT" '^test result: ' '[0-9]+ ignored') + $(count "$NT" '^(# |ℹ )skipped [0-9]+$' 'skipped [0-9]+') +
  $(count "$PT" . '[0-9]+ skipped')))

banner "summary"
rc=0
for i in "${!PART_NAMES[@]}"; do
  if [ "${PART_STATUS[$i]}" = 0 ]; then
    printf 'PASS  %s\n' "${PART_NAMES[$i]}"
  else
    printf 'FAIL  %s (exit %s)\n' "${PART_NAMES[$i]}" "${PART_STATUS[$i]}"
    rc=1
  fi
done
echo "logs: $LOG_DIR"
echo "total: $passed passed, $failed failed, $skipped skipped"
exit "$rc"
