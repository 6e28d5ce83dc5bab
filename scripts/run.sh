#!/usr/bin/env bash
# Quick start, command 1: set everything up, build, and run traffic-algo on the sample.
# For now the sample is a street photo through `traffic-algo detect` (the live service and its
# sample camera come with the service issue); extra arguments go to traffic-algo instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked -q
bin=target/release/traffic-algo
if (($#)); then
  exec "$bin" "$@"
fi
sample=../shared/media/bus.jpg
if [ ! -f "$sample" ]; then
  # No project test data here: take a frame of OpenCV's street clip (Debian opencv-doc).
  clip=/usr/share/doc/opencv-doc/examples/data/vtest.avi
  if [ ! -f "$clip" ]; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get install -y -qq opencv-doc >/dev/null
  fi
  PYTHONPATH=.deps/python python3 tests/reference/yolo_reference.py --extract-frames "$clip" .deps/sample 100 >/dev/null
  sample=.deps/sample/frame_00100.png
fi
echo "traffic-algo detect $sample" >&2
exec "$bin" detect "$sample"
