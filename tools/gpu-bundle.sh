#!/usr/bin/env bash
# Packs what a bare GPU machine (nvcc + CMake, no JDK, no Maven) needs to run spin's GPU tier:
#   bundle/jre        a jlink'd Java runtime (java.base + jdk.incubator.vector + a few modules; java.desktop
#                     for the report's charts)
#   bundle/app        spin.jar, its runtime jars, test classes and test jars, JUnit's console launcher
# Then, on the GPU machine, from the repository root:
#   tar xJf bundle.tar.xz; tools/build-native.sh target/native            # with -DCMAKE_CUDA_ARCHITECTURES=90a via SPIN_CMAKE_ARGS
#   tools/gpu-tests.sh                             # runs the tests tagged "gpu" with bundle/jre
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/tools/find-jdk.sh"
spin_find_jdk || exit 1
cd "$root"
junit_console_version=1.14.1
rm -rf bundle && mkdir -p bundle/app/lib bundle/app/test-lib
mvn -B -q -Dspin.skipNative=true -DskipTests package
mvn -B -q dependency:copy-dependencies -DincludeScope=test -DoutputDirectory=bundle/app/test-lib
mvn -B -q dependency:copy -Dartifact=org.junit.platform:junit-platform-console-standalone:$junit_console_version \
  -DoutputDirectory=bundle/app
cp target/spin.jar bundle/app/
cp -r target/lib/. bundle/app/lib/
# The device tool carries 64 MiB in all. DuckDB (~80 MB, Parquet) is not needed on the GPU; the
# DJL tokenizers jar (the demo's tokenizer) keeps only its Linux x86-64 library (18 MB -> ~6 MB);
# test-lib keeps only the jars lib does not already hold.
rm -f bundle/app/lib/duckdb_jdbc-*.jar bundle/app/test-lib/duckdb_jdbc-*.jar
for jar in bundle/app/lib/tokenizers-*.jar; do
  (cd "$(dirname "$jar")" && python3 - "$(basename "$jar")" <<'PY'
import sys, zipfile, os
name = sys.argv[1]
keep = lambda n: not n.startswith("native/lib/") or n.startswith("native/lib/linux-x86_64/")
with zipfile.ZipFile(name) as src, zipfile.ZipFile(name + ".tmp", "w", zipfile.ZIP_DEFLATED) as dst:
    for item in src.infolist():
        if keep(item.filename):
            dst.writestr(item, src.read(item.filename))
os.replace(name + ".tmp", name)
PY
  )
done
for jar in bundle/app/test-lib/*.jar; do
  [ -e "bundle/app/lib/$(basename "$jar")" ] && rm -f "$jar"
done
cp -r target/test-classes bundle/app/test-classes
"$JAVA_HOME/bin/jlink" --add-modules java.base,jdk.incubator.vector,java.desktop,java.logging,java.management,java.sql,java.xml,jdk.unsupported \
  --compress=zip-0 --no-header-files --no-man-pages --strip-debug --output bundle/jre
du -sh bundle/jre bundle/app
# One archive to carry (the device tool's limit is 64 MiB with the tree): xz over the uncompressed
# runtime is ~25% smaller than jlink's own zip compression under gzip. Unpack: tar xJf bundle.tar.xz
rm -f bundle.tar.xz
XZ_OPT="-6 -T0" tar cJf bundle.tar.xz bundle
du -sh bundle.tar.xz
