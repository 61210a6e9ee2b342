#!/usr/bin/env bash
# loom models of ringleader's lock-free protocols, run the same way every time:
# release with debug assertions, preemption bound 2, a target dir of their own so the
# cfg change does not invalidate the normal build.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg ringleader_loom -C debug-assertions"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
export CARGO_TARGET_DIR="${LOOM_TARGET_DIR:-target/loom}"

echo "-- runtime: task state, join/abort, park/unpark, scheduler"
cargo test -p ringleader-runtime --release --lib loom_models -- --test-threads=1

echo "-- taskgroup: group join vs child completion vs cancel vs late spawn; scope cancel vs cancelled(); shields; scoped wake and spawn"
cargo test -p ringleader-taskgroup --release --lib loom_models -- --test-threads=1

for model in sync/tests/loom_*.rs; do
  [ -f "$model" ] || continue
  name="$(basename "$model" .rs)"
  echo "-- sync: $name"
  cargo test -p ringleader-sync --release --test "$name" -- --test-threads=1
done
