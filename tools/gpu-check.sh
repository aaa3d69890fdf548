#!/usr/bin/env bash
# The one command to run when a GPU is lent (README, "On a GPU machine"). It needs no JDK and no
# Maven there: first, here, `tools/gpu-bundle.sh` packs a jlink'd runtime and the jars into
# bundle.tar.xz (62.5 MB; with the tree it stays under the device tool's 64 MiB: name it in the
# run's carry list). Then, there, from the repository root (timeout_s 540 leaves room to report):
#   bash tools/gpu-check.sh [REPORT_DIR]        (default $OUT, else target/gpu-check)
# Every step has its own time limit, cut to what is left of one 460 s budget (a step with under 10 s
# left is skipped and says so), so the whole check ends in under 8 minutes whatever hangs; the steps
# run in the order of what matters most. Every figure goes to REPORT_DIR/gpu-report.txt (full logs
# beside it in gpu-logs.txt):
#   1. the machine: GPU, driver, nvcc, torch;
#   2. the kernels built for sm_90a (libspin_native.so, the native kernel tests, the kernel bench);
#   3. the native kernel tests on the GPU (each kernel against its host reference);
#   4. the JUnit GPU tier: the Backend contract, the PyTorch fixture, generation and training on cuda:0;
#   5. spin bench kernels (the Java backend's kernel table) and its PyTorch peers on the same GPU
#      (same rows; plus a decoder layer, a 2-layer training step and HF generate at batch 1/32/256);
#   6. spin bench train and generate at the peers' shapes (tokens/s, MFU);
#   7. the native kernel bench, the full mistral-7b preset at batch 1 with recompute (the device
#      pool's peak beside the memory plan's prediction), and a short spin demo --device cuda.
# The exit code is the number of failed steps.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-${OUT:-$root/target/gpu-check}}"
mkdir -p "$out"
report="$out/gpu-report.txt" logs="$out/gpu-logs.txt"
: >"$report"
: >"$logs"
failed=0
started=$(date +%s)
budget=${SPIN_GPU_CHECK_BUDGET_S:-460}
cd "$root"

note() { echo "$*" | tee -a "$report"; }

# step NAME SECONDS COMMAND...: runs COMMAND under a time limit, its output to the logs, and
# the lines matching $keep (a grep -E pattern) into the report.
keep='.'
step() {
  local name="$1" limit="$2"
  shift 2
  local begin rc left
  begin=$(date +%s)
  left=$(( budget - (begin - started) ))
  if [ "$left" -lt 10 ]; then
    note "== $name: SKIPPED (the check's ${budget} s budget is spent)"
    failed=$((failed + 1))
    return 0
  fi
  [ "$limit" -le "$left" ] || limit=$left
  echo "==== $name" >>"$logs"
  timeout --kill-after=10 "$limit" "$@" >"$out/step.log" 2>&1
  rc=$?
  cat "$out/step.log" >>"$logs"
  note "== $name: $([ $rc -eq 0 ] && echo ok || echo "FAILED (exit $rc$([ $rc -eq 124 ] && echo ", over its ${limit} s"))") in $(( $(date +%s) - begin )) s"
  grep -E "$keep" "$out/step.log" | tail -n 60 | sed 's/^/   /' >>"$report"
  [ $rc -eq 0 ] || failed=$((failed + 1))
  rm -f "$out/step.log"
  return 0
}

note "spin gpu-check, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
keep='.'
step "machine" 30 bash -c 'nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader;
  nvcc --version | tail -n 2; python3 -c "import torch; print(\"torch\", torch.__version__, torch.cuda.get_device_name())"'

# NCCL (and cuBLAS, where the toolkit lacks it) come with torch's pip wheels on that machine: their
# lib directories go on the loader's path, so that spin's by-name lookups (libnccl.so.2) find them.
nvidia_libs=$(python3 -c 'import glob, os, site
print(":".join(d for p in site.getsitepackages() for d in sorted(glob.glob(os.path.join(p, "nvidia", "*", "lib")))))' 2>/dev/null || true)
if [ -n "$nvidia_libs" ]; then
  export LD_LIBRARY_PATH="$nvidia_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  note "pip's NVIDIA libraries on LD_LIBRARY_PATH: $(echo "$nvidia_libs" | tr ':' '\n' | grep -c .) directories"
fi

if [ ! -x bundle/jre/bin/java ] && [ -f bundle.tar.xz ]; then tar xJf bundle.tar.xz; fi
[ -x bundle/jre/bin/java ] || note "no bundle/jre: run tools/gpu-bundle.sh here before carrying; the Java steps will fail"

keep='error|warning|\[spin native\]'
step "build for sm_90a" 200 env SPIN_CMAKE_ARGS="-DCMAKE_CUDA_ARCHITECTURES=90a" tools/build-native.sh target/native

keep='^(ok|FAIL|PASSED|FAILED)'
step "native kernel tests on the GPU" 60 target/native/spin_kernel_tests

keep='tests (successful|failed|aborted|skipped|found)|MethodSource|=>|Exception|expected'
step "JUnit GPU tier (contract, fixture, generation, training, a ZeRO-3 rank over NCCL on cuda:0)" 150 tools/gpu-tests.sh --details=tree

spin() {
  local app="$root/bundle/app"
  "$root/bundle/jre/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
    -Dspin.native.dir="$root/target/native" -cp "$app/spin.jar:$app/lib/*" spin.cli.Main "$@"
}
export -f spin
export root

keep='.'
# The same table twice, spin's then PyTorch's, row names equal (docs/PERFORMANCE.md, issue 14): spin
# through the Java backend (CUDA events on the compute stream, median of 10 after 3 warm-ups);
# PyTorch's flash SDPA, eager ops, one decoder layer, a 2-layer training step and HF generate
# (median of 5 runs each). Then spin's own training step and generation at the peers' shapes.
step "spin bench kernels --device cuda (Mistral-7B shapes)" 70 bash -c 'spin bench kernels --device cuda'
step "PyTorch peers on the same GPU (same rows; a decoder layer, a 2-layer training step, HF generate)" 120 \
  python3 tools/bench_torch_gpu.py --train-layers 2 --train-batch 2 --train-seq-len 2048 --gen-layers 2
step "spin bench train: 2 layers at Mistral-7B widths, 2 x 2048 (peer: train.step)" 60 bash -c \
  'spin bench train --device cuda --preset mistral-7b --layers 2 --batch 2 --seq-len 2048 --iters 3'
step "spin bench generate: 2 layers at Mistral-7B widths, batch 1, 32, 256 (peers: generate.greedy.b*)" 90 bash -c \
  'for b in 1 32 256; do spin bench generate --device cuda --preset mistral-7b --layers 2 --batch $b --prompt-len 32 \
     --new-tokens 64 --iters 3 --warmup-seconds 2 || exit 1; done'
step "kernel bench (native, Mistral-7B activation shapes)" 30 target/native/spin_kernel_bench
step "spin bench train --preset mistral-7b on cuda (32 layers, batch 1, recompute: peak vs plan)" 100 bash -c \
  'spin bench train --device cuda --preset mistral-7b --batch 1 --seq-len 512 --recompute --iters 2'
keep='exact match|log-prob|iteration|error|Exception'
step "spin demo --device cuda (short)" 60 bash -c \
  'spin demo --device cuda --work /tmp/spin-demo --train-records 64 --test-records 16 --iterations 1 --sft-epochs 2'

note "== total $(( $(date +%s) - started )) s, $failed step(s) failed"
exit "$failed"
