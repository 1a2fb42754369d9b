#!/usr/bin/env bash
# The main job: set-up, a release build, then the kernel benchmarks on this machine.
# (Training on the built-in dataset replaces this once `cim-train train` lands.)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /opt/swift/usr/bin/swift ] && export PATH="/opt/swift/usr/bin:$PATH"

bash scripts/setup.sh
swift build -c release
.build/release/cim-train devices
.build/release/cim-train bench "$@"
