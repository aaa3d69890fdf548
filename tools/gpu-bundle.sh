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
# The device tool carries 64 MiB in all, so the two jars with native libraries for every platform
# (DJL tokenizers 18 MB, DuckDB 80 MB) keep only their Linux x86-64 library, DuckDB's stripped of
# its symbol tables, stored uncompressed for the archive's xz (the demo needs both: its tokenizer
# and its Parquet data), and test-lib keeps only the jars lib does not already hold.
for jar in bundle/app/lib/tokenizers-*.jar bundle/app/lib/duckdb_jdbc-*.jar; do
  rm -f "bundle/app/test-lib/$(basename "$jar")"
  python3 - "$jar" <<'PY'
import os, shutil, subprocess, sys, tempfile, zipfile
name = sys.argv[1]

def keep(entry):
    if entry.startswith("native/lib/") and "/" in entry[len("native/lib/"):]:
        return entry.startswith("native/lib/linux-x86_64/")
    if entry.startswith("libduckdb_java.so_"):
        return entry == "libduckdb_java.so_linux_amd64"
    return True

# Stored, not deflated: the bundle's xz compresses the libraries far better than zip would.
with zipfile.ZipFile(name) as src, zipfile.ZipFile(name + ".tmp", "w", zipfile.ZIP_STORED) as dst:
    for item in src.infolist():
        if not keep(item.filename):
            continue
        data = src.read(item.filename)
        if item.filename == "libduckdb_java.so_linux_amd64" and shutil.which("strip"):
            with tempfile.NamedTemporaryFile(delete=False) as lib:
                lib.write(data)
            subprocess.run(["strip", "--strip-unneeded", lib.name], check=True)
            with open(lib.name, "rb") as stripped:
                data = stripped.read()
            os.unlink(lib.name)
        item.compress_type = zipfile.ZIP_STORED
        dst.writestr(item, data)
os.replace(name + ".tmp", name)
PY
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
