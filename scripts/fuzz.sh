#!/usr/bin/env bash
# Rotor's fuzz targets (fuzz/, FUZZING.md).
#
#   scripts/fuzz.sh replay             every file of fuzz/corpus/<target>/ and
#                                      fuzz/regressions/<target>/ through its target function,
#                                      without libFuzzer (a cargo test of the fuzz crate, stable
#                                      toolchain, the main target dir), then a bounded
#                                      random-mutation run of every target from its corpus
#                                      (ROTOR_FUZZ_SMOKE_MS each, 1,500 by default): for CI.
#   scripts/fuzz.sh run <seconds> [target...]
#                                      each target (default: all) fuzzed with libFuzzer for
#                                      <seconds>, one after the other, starting from and growing
#                                      its corpus; then the corpus is minimised (-merge=1). A
#                                      crash leaves its input in fuzz/artifacts/<target>/ and
#                                      makes the script exit non-zero. The summary line gives
#                                      the fuzzer's CPU seconds (also in artifacts/<target>.cpu).
#   scripts/fuzz.sh list               the target names.
#
# `run` needs cargo-fuzz (installed with `cargo install cargo-fuzz --locked` when missing). On
# the stable toolchain it builds without a sanitizer (`-s none`: Rotor forbids unsafe code, so
# AddressSanitizer has little to find, and costs ~2x speed) and with debug assertions (`-a`:
# integer overflow and debug_assert! panic). Environment: FUZZ_JOBS (parallel targets, default
# 1), FUZZ_TARGET_DIR (default target/fuzz), FUZZ_NICE (default 19).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ="$ROOT/fuzz"
TARGETS=(protocol_json protocol_protobuf api_http jwt jwks proxy_response websocket_upgrade sockjs emulation_body config
  grpc_messages websocket_deflate uni_connect redis_reply)

usage() {
  sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 2
}

replay() {
  # The main workspace's target dir: the dependencies it already built are reused.
  CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}" \
    cargo test --manifest-path "$FUZZ/Cargo.toml" --no-default-features --test replay --test mutate \
    -- --nocapture
}

fuzz_one() {
  local t="$1" secs="$2" target_dir="$3" nice="$4"
  local corpus="$FUZZ/corpus/$t" fresh="$FUZZ/corpus-new/$t"
  mkdir -p "$corpus" "$FUZZ/artifacts/$t"
  rm -rf "$fresh"
  mkdir -p "$fresh"
  # Fuzz into a fresh directory with the kept corpus as read-only seeds, then merge both
  # back, minimised, into the kept one.
  # `time` reports the user + system CPU seconds of the fuzzer (cargo-fuzz's own start-up is
  # < 1 s of it): on a shared machine wall time overstates what a target got.
  # The inner braces keep the fuzzer's redirections off `time`'s own report.
  local rc=0 TIMEFORMAT='%U %S'
  { time { (cd "$FUZZ" && nice -n "$nice" cargo fuzz run -O -a -s none --target-dir "$target_dir" "$t" \
    "$fresh" "$corpus" -- -max_total_time="$secs" -print_final_stats=1 \
    -artifact_prefix="$FUZZ/artifacts/$t/") >"$FUZZ/artifacts/$t.log" 2>&1; }; } 2>"$FUZZ/artifacts/$t.cpu" || rc=$?
  local cpu
  cpu="$(awk '{printf "%d", $1 + $2}' "$FUZZ/artifacts/$t.cpu")"
  local merged="$FUZZ/corpus-new/$t.merged"
  rm -rf "$merged"
  mkdir -p "$merged"
  (cd "$FUZZ" && nice -n "$nice" cargo fuzz run -O -a -s none --target-dir "$target_dir" "$t" \
    "$merged" "$corpus" "$fresh" -- -merge=1) >"$FUZZ/artifacts/$t.merge.log" 2>&1 || true
  if [ -n "$(ls -A "$merged")" ]; then
    rm -rf "$corpus"
    mv "$merged" "$corpus"
  fi
  rm -rf "$fresh" "$merged"
  local stats
  stats="$(grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$FUZZ/artifacts/$t.log" | tr '\n' ' ')"
  local cov
  cov="$(grep -E '^#[0-9]+' "$FUZZ/artifacts/$t.log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+' || true)"
  printf '%-18s rc=%s cpu=%ss %s %s corpus=%s files\n' "$t" "$rc" "$cpu" "$cov" "$stats" "$(ls "$corpus" | wc -l)"
  return "$rc"
}

run() {
  local secs="${1:-}"
  [[ "$secs" =~ ^[0-9]+$ ]] || usage
  shift
  local targets=("$@")
  [ ${#targets[@]} -gt 0 ] || targets=("${TARGETS[@]}")
  command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
  local target_dir="${FUZZ_TARGET_DIR:-$ROOT/target/fuzz}" nice="${FUZZ_NICE:-19}" jobs="${FUZZ_JOBS:-1}"
  (cd "$FUZZ" && nice -n "$nice" cargo fuzz build -O -a -s none --target-dir "$target_dir")
  local failed=0 running=0 t
  for t in "${targets[@]}"; do
    fuzz_one "$t" "$secs" "$target_dir" "$nice" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
      wait -n || failed=1
      running=$((running - 1))
    fi
  done
  while [ "$running" -gt 0 ]; do
    wait -n || failed=1
    running=$((running - 1))
  done
  if [ "$failed" -ne 0 ]; then
    echo "fuzz: a target crashed; inputs in fuzz/artifacts/<target>/, logs in fuzz/artifacts/<target>.log" >&2
    return 1
  fi
}

case "${1:-}" in
  replay) replay ;;
  run) shift; run "$@" ;;
  list) printf '%s\n' "${TARGETS[@]}" ;;
  *) usage ;;
esac
