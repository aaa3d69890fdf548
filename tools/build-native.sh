#!/usr/bin/env bash
# Configures and builds the native library (kernels/ + native/) with CMake into $1.
# No CMake or no CUDA compiler: says so and exits 0, so the Java part still builds and GPU tests skip.
# A kernel that does not compile fails the build.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/target/native}"
mkdir -p "$out"
if ! command -v cmake >/dev/null 2>&1; then
  reason="cmake not found (apt-get install cmake)"
  echo "[spin native] SKIPPED: $reason; the CUDA backend will be unavailable." >&2
  # The same record CMakeLists.txt writes when it skips: Java reads it to explain the absence.
  rm -f "$out/libspin_native.so"
  printf 'status=skipped\nreason=%s\n' "$reason" >"$out/spin-native-build.properties"
  exit 0
fi
cmake -S "$root" -B "$out/build" -DCMAKE_BUILD_TYPE=Release -DSPIN_NATIVE_OUT="$out" ${SPIN_CMAKE_ARGS:-} >"$out/cmake-configure.log" 2>&1 \
  || { cat "$out/cmake-configure.log" >&2; exit 1; }
grep -E '^\[spin native\]' "$out/cmake-configure.log" >&2 || true
cmake --build "$out/build" -j "$(nproc 2>/dev/null || echo 2)"
