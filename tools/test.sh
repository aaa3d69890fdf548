#!/usr/bin/env bash
# Runs the whole test suite (CPU tier; GPU-tagged tests skip with their reason when no GPU exists).
# Extra arguments go to Maven, e.g. tools/test.sh -Dtest=CpuOpsTest
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/tools/find-jdk.sh"
spin_find_jdk || exit 1
cd "$root"
exec mvn -B verify "$@"
