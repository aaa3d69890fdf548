# Sourced by ./spin, tools/test.sh and .ci/run: sets JAVA_HOME to a JDK >= 22 (Panama is final
# from 22 on; the Vector API incubator module ships with it) or fails with what to install.
# Search order: $JAVA_HOME, then the usual JVM folders, newest first.
spin_java_major() {
  "$1/bin/java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1
}

spin_find_jdk() {
  local min=22 candidate major
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/javac" ]; then
    major=$(spin_java_major "$JAVA_HOME")
    if [ -n "$major" ] && [ "$major" -ge "$min" ]; then return 0; fi
  fi
  for candidate in $(ls -d /usr/lib/jvm/* /usr/java/* /opt/java/* /opt/jdk* /opt/*jdk* \
      "$HOME"/.sdkman/candidates/java/* "$HOME"/.jdks/* /Library/Java/JavaVirtualMachines/*/Contents/Home \
      2>/dev/null | sort -r -V); do
    [ -x "$candidate/bin/javac" ] || continue
    major=$(spin_java_major "$candidate")
    if [ -n "$major" ] && [ "$major" -ge "$min" ]; then
      export JAVA_HOME="$candidate"
      return 0
    fi
  done
  echo "spin: no JDK >= $min found (looked at \$JAVA_HOME and /usr/lib/jvm, /usr/java, /opt, ~/.sdkman, ~/.jdks)." >&2
  echo "spin: install one (e.g. Temurin 25 from https://adoptium.net) and set JAVA_HOME to it." >&2
  return 1
}
