#!/usr/bin/env bash
# The test command: set-up, a release build of cim-train, the test suites, and a smoke run
# of the command line. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /opt/swift/usr/bin/swift ] && export PATH="/opt/swift/usr/bin:$PATH"

bash scripts/setup.sh

echo "== build"
swift build -c release

echo "== tests"
swift test 2>&1 | tee .build/test.log

echo "== command line smoke run"
.build/release/cim-train devices
.build/release/cim-train bench --ops matmul,logdet --warmup 0 --repeat 1 --json .build/bench-smoke.json
