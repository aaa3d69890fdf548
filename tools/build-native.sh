#!/usr/bin/env bash
# Configures and builds the native library (kernels/ + native/) with CMake into $1.
# No CMake or no CUDA compiler: says so and exits 0, so the Java part still builds and GPU tests skip.
# A kernel that does not compile fails the build.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/target/native}"
if ! command -v cmake >/dev/null 2>&1; then
  echo "[spin native] SKIPPED: cmake not found; the CUDA backend will be unavailable (apt-get install cmake)." >&2
  exit 0
fi
mkdir -p "$out"
cmake -S "$root" -B "$out/build" -DCMAKE_BUILD_TYPE=Release -DSPIN_NATIVE_OUT="$out" ${SPIN_CMAKE_ARGS:-} >"$out/cmake-configure.log" 2>&1 \
  || { cat "$out/cmake-configure.log" >&2; exit 1; }
grep -E '^\[spin native\]' "$out/cmake-configure.log" >&2 || true
cmake --build "$out/build" -j "$(nproc 2>/dev/null || echo 2)"
