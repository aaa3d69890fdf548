#!/usr/bin/env bash
# Benchmarks spin's CPU GEMM (JMH, tests/java/spin/bench/GemmBenchmark.java) and OpenBLAS sgemm
# (tools/bench-openblas.c) at the same shapes and thread count, in one run, and prints median
# GFLOP/s side by side. Needs gcc and Debian's OpenBLAS: apt-get install -y libopenblas-dev.
#
#   tools/bench-gemm.sh                      # all shapes, 2 threads
#   SHAPES="NN:1024x1024x1024" tools/bench-gemm.sh
#   THREADS=1 FORKS=3 ITERATIONS=10 tools/bench-gemm.sh
#
# A shape is XY:MxKxN (X, Y = N or T: op(A), op(B)). The two are timed shape by shape, back to
# back, so that a change in the machine's load hits both. The "others" column is how many cores
# other processes kept busy meanwhile (from /proc/stat minus this script's own CPU time): anything
# well above 0 means the figures on that line were disturbed; such a shape is timed again (up to
# ATTEMPTS=3 times) and the least disturbed attempt is shown. Raw results stay in target/bench/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/tools/find-jdk.sh"
spin_find_jdk || exit 1
cd "$root"

threads="${THREADS:-2}"
forks="${FORKS:-2}"
warmups="${WARMUPS:-3}"
iterations="${ITERATIONS:-5}"
shapes="${SHAPES:-NN:1024x1024x1024 NT:1024x1024x1024 TN:1024x1024x1024
  NT:512x256x256 NT:512x256x768 NT:512x768x256 NT:512x256x512
  NN:512x256x256 NN:512x768x256 NN:512x256x768 NN:512x512x256
  TN:256x512x256 TN:768x512x256 TN:256x512x768 TN:512x512x256}"
read -r -a shape_list <<< "$(echo $shapes)"
out="$root/target/bench"
rm -rf "$out"
mkdir -p "$out"

echo "== building (test-compile) and resolving the test classpath"
mvn -B -q -Dspin.skipNative=true -DskipTests test-compile
mvn -B -q dependency:build-classpath -Dmdep.includeScope=test -Dmdep.outputFile="$out/classpath.txt" >/dev/null
gcc -O2 -o "$out/bench-openblas" tools/bench-openblas.c -lopenblas -ldl

echo "== machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; $("$JAVA_HOME/bin/java" -version 2>&1 | head -n 1)"
echo "== spin: JMH, $forks forks x $iterations iterations of 1 s after $warmups warm-up; OpenBLAS: median of 15 samples"
echo "== $threads threads each (CpuParallel($threads), OPENBLAS_NUM_THREADS=$threads)"

# Jiffies the whole machine spent busy, and CPU seconds used by this script's finished children.
machine_busy() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
# Sets own_cpu; `times` must run in this shell, not in a $(...) subshell, to see this shell's children.
measure_own_cpu() {
  times > "$out/times.txt"
  own_cpu="$(tail -n 1 "$out/times.txt" | awk '{ for (i = 1; i <= 2; i++) { split($i, t, "m"); s += t[1] * 60 + t[2] } print s }')"
}
hz="$(getconf CLK_TCK)"

# One timing of both libraries at $1, into $out/<library>-$1.<attempt>.*; sets others.
measure_shape() {
  local shape="$1" attempt="$2" busy0 busy1 t0 t1 own0 own1
  measure_own_cpu; own0="$own_cpu"; busy0="$(machine_busy)"; t0="$(date +%s.%N)"
  OPENBLAS_NUM_THREADS="$threads" "$out/bench-openblas" "$shape" > "$out/openblas-$shape.$attempt.txt"
  "$JAVA_HOME/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
    -cp "target/test-classes:target/classes:$(cat "$out/classpath.txt")" \
    org.openjdk.jmh.Main 'spin.bench.GemmBenchmark' \
    -p shape="$shape" -p threads="$threads" \
    -f "$forks" -wi "$warmups" -i "$iterations" -w 1s -r 1s \
    -rf json -rff "$out/jmh-$shape.$attempt.json" > "$out/jmh-$shape.$attempt.log"
  busy1="$(machine_busy)"; t1="$(date +%s.%N)"; measure_own_cpu; own1="$own_cpu"
  others="$(awk -v b="$((busy1 - busy0))" -v hz="$hz" -v o0="$own0" -v o1="$own1" -v t0="$t0" -v t1="$t1" \
    'BEGIN { x = (b / hz - (o1 - o0)) / (t1 - t0); printf "%.2f", x < 0 ? 0 : x }')"
}

# A shape whose timing was disturbed (others above QUIET cores) is timed again, up to ATTEMPTS
# times; the table shows the least disturbed attempt, and every attempt stays in $out.
quiet="${QUIET:-0.1}"
attempts="${ATTEMPTS:-3}"
for shape in "${shape_list[@]}"; do
  for ((attempt = 1; attempt <= attempts; attempt++)); do
    measure_shape "$shape" "$attempt"
    echo "$shape $attempt $others" >> "$out/others.txt"
    echo "   $shape attempt $attempt: others kept $others cores busy"
    if awk -v x="$others" -v q="$quiet" 'BEGIN { exit !(x <= q) }'; then break; fi
  done
done

python3 - "$out" "${shape_list[@]}" <<'EOF'
import json, sys

out, shapes = sys.argv[1], sys.argv[2:]

def flop(shape):
    m, k, n = (int(x) for x in shape.split(":")[1].split("x"))
    return 2.0 * m * n * k

blas_name = "?"
rows = []
attempts = {}
for line in open(f"{out}/others.txt"):
    shape, attempt, busy = line.split()
    attempts.setdefault(shape, []).append((float(busy), int(attempt)))
for shape in shapes:
    busy, attempt = min(attempts[shape])
    (result,) = json.load(open(f"{out}/jmh-{shape}.{attempt}.json"))
    spin = result["primaryMetric"]["scorePercentiles"]["50.0"] * flop(shape) / 1e9
    blas = None
    for line in open(f"{out}/openblas-{shape}.{attempt}.txt"):
        if line.startswith("# BLAS:"):
            blas_name = line[len("# BLAS:"):].strip()
        elif line.strip():
            blas = float(line.split()[1])
    rows.append((shape, spin, blas, busy, len(attempts[shape])))

print()
print(f"median GFLOP/s; OpenBLAS = {blas_name}")
print(f"{'shape':<20} {'spin':>8} {'OpenBLAS':>9} {'ratio':>6} {'others':>7} {'tries':>6}")
for shape, spin, blas, busy, tries in rows:
    print(f"{shape:<20} {spin:8.1f} {blas:9.1f} {spin / blas:6.2f} {busy:7.2f} {tries:6d}")
EOF
