#!/usr/bin/env bash
# Cancelled I/O under valgrind: a read dropped while the kernel may still write into its
# buffer must leave the buffer with the driver (no invalid write) and leak nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v valgrind >/dev/null 2>&1; then
  echo "installing valgrind"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq valgrind >/dev/null
fi
binary=$(cargo test --test io_cancel --no-run --message-format=json 2>/dev/null \
  | sed -n 's/.*"executable":"\([^"]*io_cancel[^"]*\)".*/\1/p' | tail -1)
[ -x "$binary" ] || { echo "io_cancel test binary not found"; exit 1; }
# "possibly lost" is libtest's own thread handle; definite and indirect leaks fail the run.
timeout -s KILL 600 valgrind --quiet --error-exitcode=1 --leak-check=full \
  --errors-for-leak-kinds=definite,indirect --show-possibly-lost=no "$binary" --test-threads=1
