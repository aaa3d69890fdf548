#!/usr/bin/env bash
# Packs what a bare GPU machine (nvcc + CMake, no JDK, no Maven) needs to run spin's GPU tier:
#   bundle/jre        a jlink'd Java runtime (java.base + jdk.incubator.vector + a few modules)
#   bundle/app        spin.jar, its runtime jars, test classes and test jars, JUnit's console launcher
# Then, on the GPU machine, from the repository root:
#   tar xzf bundle.tar.gz; tools/build-native.sh target/native            # with -DCMAKE_CUDA_ARCHITECTURES=90a via SPIN_CMAKE_ARGS
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
# The data libraries (DuckDB ~80 MB, DJL tokenizers ~18 MB) are not needed by the GPU tier and
# would break the device tool's 64 MiB carry limit.
rm -f bundle/app/lib/duckdb_jdbc-*.jar bundle/app/lib/tokenizers-*.jar \
  bundle/app/test-lib/duckdb_jdbc-*.jar bundle/app/test-lib/tokenizers-*.jar
cp -r target/test-classes bundle/app/test-classes
"$JAVA_HOME/bin/jlink" --add-modules java.base,jdk.incubator.vector,java.logging,java.management,java.sql,java.xml,jdk.unsupported \
  --compress=zip-9 --no-header-files --no-man-pages --strip-debug --output bundle/jre
du -sh bundle/jre bundle/app
# One archive to carry (the device tool's carry limit is 64 MiB); unpack with: tar xzf bundle.tar.gz
tar czf bundle.tar.gz bundle
du -sh bundle.tar.gz
