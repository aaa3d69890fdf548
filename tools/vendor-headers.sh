#!/usr/bin/env bash
# Fetches NVIDIA's C headers for cuBLASLt and NCCL from their pip wheels into $1/include (default
# target/vendor-headers), for VendorHeadersTest, which checks the enum values and struct layouts of
# the Java bindings (spin.nativebind.CublasLtAbi, NcclAbi) and of the emulator's cuBLASLt stand-in
# against them. Only the include/ folders are kept; the wheels (hundreds of MB, mostly the
# libraries) are deleted once unpacked.
#
# Where pip cannot get a wheel (offline, no pip) this says why, writes the reason to
# $1/<group>.status for the test's skip message, and exits 0: the check is skipped, not failed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/target/vendor-headers}"
mkdir -p "$out/include"

# cublas_api.h includes the CUDA runtime's headers, which include crt/ and CCCL's nv/target.
cuda_headers=("nvidia-cuda-runtime==13.*" "nvidia-cuda-crt==13.*" "nvidia-cuda-cccl==13.*")

say() { echo "[spin vendor headers] $*" >&2; }

# fetch GROUP HEADER WHEEL...: the wheels' include/ folders, unless HEADER is there from the same wheel list.
fetch() {
  local group="$1" header="$2"
  shift 2
  local status="$out/$group.status" wanted="wheels: $*"
  if [ -f "$out/include/$header" ] && [ -f "$status" ] && [ "$(sed -n 2p "$status")" = "$wanted" ]; then
    say "$group: $(head -n 1 "$status")"
    return
  fi
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
    record "$group" "SKIPPED: python3 with pip is not installed, so the $* wheels cannot be fetched" "$wanted"
    return
  fi
  local wheels
  wheels="$(mktemp -d "$out/wheels.XXXXXX")"
  # No retries and a short timeout: offline, pip would otherwise wait minutes before giving up.
  if ! python3 -m pip download --no-deps --retries 0 --timeout 30 --quiet --disable-pip-version-check \
      --dest "$wheels" "$@" >"$wheels/pip.log" 2>&1; then
    record "$group" "SKIPPED: pip download $* failed: $(grep -v '^ *$' "$wheels/pip.log" | tail -n 1)" "$wanted"
    rm -rf "$wheels"
    return
  fi
  # Every wheel keeps its headers in some */include/ folder (nvidia/cu13/include, nvidia/nccl/include).
  python3 - "$wheels" "$out/include" <<'PY'
import pathlib, sys, zipfile
wheels, include = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for wheel in sorted(wheels.glob("*.whl")):
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            prefix, found, relative = member.filename.partition("/include/")
            if found and relative and not member.is_dir():
                target = include / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(member))
PY
  local names
  names="$(cd "$wheels" && ls -- *.whl | tr '\n' ' ')"
  rm -rf "$wheels"
  if [ ! -f "$out/include/$header" ]; then
    record "$group" "SKIPPED: the wheels $names hold no include/$header" "$wanted"
    return
  fi
  record "$group" "ok: include/$header from $names" "$wanted"
}

# record GROUP TEXT WANTED: line 1 the outcome (the test's skip reason), line 2 the wheels asked for.
record() {
  printf '%s\n%s\n' "$2" "$3" >"$out/$1.status"
  say "$1: $2"
}

fetch cublaslt cublasLt.h "nvidia-cublas==13.*" "${cuda_headers[@]}"
fetch nccl nccl.h "nvidia-nccl-cu13" "${cuda_headers[@]}"
