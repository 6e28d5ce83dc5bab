"""Makes a static int8 (QDQ) copy of a YOLOv8/11 ONNX detector for `model.precision: int8`.

Run by scripts/setup.sh (python3 with .deps/python on PYTHONPATH):

    python3 scripts/quantize.py FP32.onnx INT8.onnx VIDEO [VIDEO ...]

Calibration: `--frames` frames (default 60) spread evenly over the videos, letterboxed exactly
as the service feeds the model (640 square, grey 114, RGB, 0-1). Weights are int8 per channel,
activations uint8 (the u8s8 kernels AVX-512 VNNI and AVX-VNNI run fast). What must stay float
stays float: the detection head past its convolutions (`/model.22/` for YOLOv8, `/model.23/`
for YOLO11: box decoding, DFL softmax, class sigmoid and the final concatenation, which puts
box coordinates of 0-640 and class scores of 0-1 into one tensor that a single int8 scale
would wipe the scores out of).
"""

import argparse
import os
import sys
import tempfile

import cv2
import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process


def letterbox(img, size):
    h, w = img.shape[:2]
    s = min(size / h, size / w)
    nh, nw = round(h * s), round(w * s)
    canvas = np.full((size, size, 3), 114, np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    canvas[top : top + nh, left : left + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return canvas[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0


def frames(videos, count, size):
    per = max(1, -(-count // len(videos)))
    out = []
    for path in videos:
        cap = cv2.VideoCapture(path)
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 1
        for k in range(per):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int((k + 0.5) * total / per))
            ok, img = cap.read()
            if ok:
                out.append(letterbox(img, size))
        cap.release()
    if not out:
        sys.exit(f"quantize: no frame could be read from {', '.join(videos)}")
    return out[:count]


class Reader(CalibrationDataReader):
    def __init__(self, name, batches):
        self.it = iter([{name: b} for b in batches])

    def get_next(self):
        return next(self.it, None)


def head_prefix(model):
    # The detection head is the last `/model.N/` block: its non-Conv nodes stay float.
    blocks = [n.name.split("/")[1] for n in model.graph.node if n.name.startswith("/model.")]
    return "/" + max(set(blocks), key=lambda b: int(b.split(".")[1])) + "/"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fp32")
    ap.add_argument("int8")
    ap.add_argument("videos", nargs="+")
    ap.add_argument("--frames", type=int, default=60)
    args = ap.parse_args()

    model = onnx.load(args.fp32)
    inp = model.graph.input[0]
    size = inp.type.tensor_type.shape.dim[2].dim_value or 640
    head = head_prefix(model)
    keep_float = [n.name for n in model.graph.node if n.name.startswith(head) and n.op_type != "Conv"]
    batches = frames(args.videos, args.frames, size)

    with tempfile.TemporaryDirectory() as tmp:
        pre = os.path.join(tmp, "pre.onnx")
        quant_pre_process(args.fp32, pre, skip_symbolic_shape=True)
        part = args.int8 + ".part"
        quantize_static(
            pre,
            part,
            Reader(inp.name, batches),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=keep_float,
        )
        # The service reads the class names from the metadata: keep the fp32 model's.
        q = onnx.load(part)
        del q.metadata_props[:]
        q.metadata_props.extend(model.metadata_props)
        q.metadata_props.add(key="precision", value="int8")
        onnx.save(q, part)
        os.replace(part, args.int8)
    print(f"quantize: {args.int8} from {args.fp32}, {len(batches)} calibration frames, {len(keep_float)} head nodes kept float")


if __name__ == "__main__":
    main()
