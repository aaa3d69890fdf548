#!/usr/bin/env bash
# Runs the tests tagged "gpu" with the runtime made by tools/gpu-bundle.sh (or a JDK >= 22), against
# the native library in target/native. Prints JUnit's summary; exit code non-zero on any failure.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -x "$root/bundle/jre/bin/java" ]; then
  java="$root/bundle/jre/bin/java"
else
  . "$root/tools/find-jdk.sh"; spin_find_jdk || exit 1; java="$JAVA_HOME/bin/java"
fi
app="$root/bundle/app"
cp="$app/spin.jar:$app/test-classes:$(ls "$app"/lib/*.jar "$app"/test-lib/*.jar | tr '\n' ':')"
exec "$java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
  -Dspin.native.dir="$root/target/native" \
  -jar "$app"/junit-platform-console-standalone-*.jar execute \
  --class-path "$cp" --scan-class-path "$app/test-classes" --include-tag gpu --details=summary "$@"
