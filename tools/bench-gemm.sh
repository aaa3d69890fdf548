#!/usr/bin/env bash
# Benchmarks spin's CPU GEMM (JMH, tests/java/spin/bench/GemmBenchmark.java) and OpenBLAS sgemm
# (tools/bench-openblas.c) at the same shapes and thread count, in one run, and prints median
# GFLOP/s side by side. Needs gcc and Debian's OpenBLAS: apt-get install -y libopenblas-dev.
#
#   tools/bench-gemm.sh                      # all shapes, 2 threads
#   SHAPES="NN:1024x1024x1024" tools/bench-gemm.sh
#   THREADS=1 FORKS=3 ITERATIONS=10 tools/bench-gemm.sh
#
# A shape is XY:MxKxN (X, Y = N or T: op(A), op(B)). Raw results stay in target/bench/.
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
mkdir -p "$out"

echo "== building (test-compile) and resolving the test classpath"
mvn -B -q -Dspin.skipNative=true -DskipTests test-compile
mvn -B -q dependency:build-classpath -Dmdep.includeScope=test -Dmdep.outputFile="$out/classpath.txt" >/dev/null
gcc -O2 -o "$out/bench-openblas" tools/bench-openblas.c -lopenblas -ldl

echo "== machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; $("$JAVA_HOME/bin/java" -version 2>&1 | head -n 1)"
echo "== load before the run: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== OpenBLAS, OPENBLAS_NUM_THREADS=$threads"
OPENBLAS_NUM_THREADS="$threads" "$out/bench-openblas" "${shape_list[@]}" | tee "$out/openblas.txt"

echo "== spin Gemm (JMH: $forks forks x $iterations iterations of 1 s, $warmups warm-up), $threads threads"
shape_param="$(IFS=,; echo "${shape_list[*]}")"
"$JAVA_HOME/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
  -cp "target/test-classes:target/classes:$(cat "$out/classpath.txt")" \
  org.openjdk.jmh.Main 'spin.bench.GemmBenchmark' \
  -p shape="$shape_param" -p threads="$threads" \
  -f "$forks" -wi "$warmups" -i "$iterations" -w 1s -r 1s \
  -rf json -rff "$out/jmh-gemm.json" > "$out/jmh-gemm.log"
tail -n $((${#shape_list[@]} + 2)) "$out/jmh-gemm.log"
echo "== load after the run: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$out/jmh-gemm.json" "$out/openblas.txt" "${shape_list[@]}" <<'EOF'
import json, sys

jmh_file, blas_file, shapes = sys.argv[1], sys.argv[2], sys.argv[3:]

def flop(shape):
    m, k, n = (int(x) for x in shape.split(":")[1].split("x"))
    return 2.0 * m * n * k

spin = {}
for result in json.load(open(jmh_file)):
    metric = result["primaryMetric"]
    spin[result["params"]["shape"]] = metric["scorePercentiles"]["50.0"] * flop(result["params"]["shape"]) / 1e9

blas, blas_name = {}, "?"
for line in open(blas_file):
    if line.startswith("# BLAS:"):
        blas_name = line[len("# BLAS:"):].strip()
    elif line.strip():
        shape, gflops = line.split()
        blas[shape] = float(gflops)

print()
print(f"median GFLOP/s; OpenBLAS = {blas_name}")
print(f"{'shape':<20} {'spin':>8} {'OpenBLAS':>9} {'ratio':>6}")
for shape in shapes:
    s, b = spin.get(shape), blas.get(shape)
    ratio = f"{s / b:6.2f}" if s and b else "     ?"
    print(f"{shape:<20} {s or float('nan'):8.1f} {b or float('nan'):9.1f} {ratio}")
EOF
