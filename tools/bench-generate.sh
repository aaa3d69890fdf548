#!/usr/bin/env bash
# Generation throughput of this engine (./spin bench generate) beside the PyTorch peer
# (tools/bench_torch_model.py --mode generate: greedy decoding with a KV cache in eager PyTorch) on
# the same random preset models, prompts of 32 tokens, 64 decode steps, 2 threads. Every
# combination runs RUNS times (default 3), the two engines alternating, with the machine's load
# printed before each run; the table at the end gives the medians over runs of each engine's
# own median over ITERS timed iterations (default 5). Our weights are packed for the GEMM once per
# run, outside the timed steps; the packing time is printed with each run.
#
#   tools/bench-generate.sh                 # tiny and small, batch 1 and 32
#   PRESETS=small BATCHES=32 RUNS=5 tools/bench-generate.sh
#
# Needs Debian's python3-torch (/usr/bin/python3); see DESIGN.md section 10 for the BLAS it uses.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
presets=${PRESETS:-"tiny small"}
batches=${BATCHES:-"1 32"}
runs=${RUNS:-3}
iters=${ITERS:-5}
threads=${THREADS:-2}
common=(--prompt-len 32 --new-tokens 64 --iters "$iters" --threads "$threads")
log=$(mktemp)
trap 'rm -f "$log"' EXIT

"$root/spin" info >/dev/null # build first, outside the timings
/usr/bin/python3 "$root/tools/bench_torch_model.py" --mode generate --preset tiny --batch 1 --new-tokens 1 --iters 1 \
  --threads "$threads" | grep -E '^(torch|loaded BLAS|sgemm)' || true
for preset in $presets; do
  for batch in $batches; do
    for run in $(seq "$runs"); do
      echo "# $preset batch $batch run $run: load average $(cut -d' ' -f1-3 /proc/loadavg)"
      out=$("$root/spin" bench generate --preset "$preset" --batch "$batch" "${common[@]}" | grep -E '^(RESULT|weights)' \
        | sed 's/^/spin /')
      echo "$out"
      echo "$out" | grep ' RESULT ' >> "$log"
      echo "# load average $(cut -d' ' -f1-3 /proc/loadavg)"
      /usr/bin/python3 "$root/tools/bench_torch_model.py" --mode generate --preset "$preset" --batch "$batch" "${common[@]}" \
        | grep '^RESULT' | sed 's/^/torch /' | tee -a "$log"
    done
  done
done

/usr/bin/python3 - "$log" <<'EOF'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    engine, rest = line.split(" ", 1)
    f = dict(re.findall(r"(\w+)=([\w.]+)", rest))
    key = (f["preset"], int(f["batch"]))
    rows.setdefault(key, {}).setdefault(engine, []).append((float(f["prefill_tokens_per_s"]), float(f["decode_tokens_per_s"])))
print("\n| preset | batch | spin prefill tok/s | torch prefill tok/s | spin decode tok/s | torch decode tok/s | decode spin/torch |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for (preset, batch), engines in sorted(rows.items(), key=lambda kv: (kv[0][0] != "tiny", kv[0][1])):
    med = {e: [statistics.median(x[i] for x in v) for i in (0, 1)] for e, v in engines.items()}
    s, t = med.get("spin", [float("nan")] * 2), med.get("torch", [float("nan")] * 2)
    print(f"| {preset} | {batch} | {s[0]:,.0f} | {t[0]:,.0f} | {s[1]:,.1f} | {t[1]:,.1f} | {s[1] / t[1]:.2f}x |")
EOF
