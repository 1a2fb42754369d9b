#!/usr/bin/env bash
# The main job: set-up, a release build, then `cim-train train` with no options, the demo:
# a small ResNet-18 pretrained with CorInfoMax on the built-in procedural dataset, ending
# with the kNN accuracy of the trained encoder next to the same encoder at initialisation.
# Extra arguments go to `cim-train train` (for example --preset cifar10 --data-dir DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /opt/swift/usr/bin/swift ] && export PATH="/opt/swift/usr/bin:$PATH"

bash scripts/setup.sh
swift build -c release
.build/release/cim-train train "$@"
