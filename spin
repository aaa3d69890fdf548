#!/usr/bin/env bash
# spin launcher: finds a JDK >= 22, builds the project on first use (or when sources changed),
# and runs the CLI with the JVM flags Panama and the Vector API need.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$root/tools/find-jdk.sh"
spin_find_jdk || exit 1

jar="$root/target/spin.jar"
stale() {
  [ ! -f "$jar" ] && return 0
  [ -n "$(find "$root/java" "$root/kernels" "$root/native" "$root/pom.xml" "$root/CMakeLists.txt" \
      -newer "$jar" -type f -print -quit 2>/dev/null)" ]
}
if [ -z "${SPIN_NO_BUILD:-}" ] && stale; then
  echo "spin: building (first use or sources changed) ..." >&2
  (cd "$root" && mvn -B -q -DskipTests package >&2) || { echo "spin: build failed; run 'mvn -DskipTests package' in $root to see why" >&2; exit 1; }
fi

exec "$JAVA_HOME/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
  -XX:+UseParallelGC -Dspin.native.dir="$root/target/native" ${SPIN_JAVA_OPTS:-} \
  -jar "$jar" "$@"
