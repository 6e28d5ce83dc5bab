#!/usr/bin/env bash
# Quick start, command 1: set everything up, build, and run the service with a sample camera:
# the real street clip vtest (OpenCV's sample data) played in a loop as camera 1.
# Extra arguments are passed to traffic-algo instead (e.g. `scripts/run.sh detect photo.jpg`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked -q
bin=target/release/traffic-algo
if (($#)); then
  exec "$bin" "$@"
fi
sample=../shared/media/vtest-h264.mp4
if [ ! -f "$sample" ]; then
  # No project test data here: make the same H.264 clip from Debian's opencv-doc vtest.avi.
  sample=.deps/sample/vtest-h264.mp4
  if [ ! -f "$sample" ]; then
    clip=/usr/share/doc/opencv-doc/examples/data/vtest.avi
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    command -v ffmpeg >/dev/null 2>&1 && [ -f "$clip" ] ||
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq opencv-doc ffmpeg >/dev/null
    mkdir -p .deps/sample
    ffmpeg -loglevel error -i "$clip" -c:v libx264 -crf 23 -g 20 -keyint_min 20 -sc_threshold 0 \
      -bf 0 -pix_fmt yuv420p -movflags +faststart "$sample"
  fi
fi
sample=$(cd "$(dirname "$sample")" && pwd)/$(basename "$sample")
port=${ALGO_SERVER_PORT:-5000}
cat >&2 <<MSG
traffic-algo: sample camera 1 plays $sample
  live page: http://127.0.0.1:$port/
  metrics:   http://127.0.0.1:$port/metrics
  health:    http://127.0.0.1:$port/api/health/health_check
  cameras:   http://127.0.0.1:$port/api/cameras
  WebSocket: ws://127.0.0.1:$port/ws  (send {"type":"subscribe","data":{"cameraId":1}})
MSG
exec "$bin" serve --camera "1=file://$sample?loop=1"
