#!/usr/bin/env python3
"""Reference YOLO pipeline for parity tests and benchmarks of traffic-algo's detector.

The usual Ultralytics-style pipeline, built from libraries none of us wrote the algorithms of:
OpenCV decodes, resizes (INTER_LINEAR) and pads (copyMakeBorder, grey 114) exactly as
Ultralytics' LetterBox does; Python onnxruntime runs the model; OpenCV's NMSBoxesBatched does
the class-aware NMS; boxes are mapped back as Ultralytics' scale_boxes does.

Modes:
  yolo_reference.py --model M [--conf C --iou I --max-det N --classes a,b] IMAGE...
      one JSON line per image: {"image","width","height","detectedObjects","processTime"}
  yolo_reference.py --model M --bench N [--warmup W] IMAGE
      one JSON object of per-iteration seconds per stage:
      {"decode":[...],"preprocess":[...],"inference":[...],"postprocess":[...]}
  yolo_reference.py --extract-frames VIDEO OUTDIR INDEX...
      writes the given frames of VIDEO as OUTDIR/frame_INDEX.png and prints their paths
"""

import argparse
import ast
import json
import os
import sys
import time

import cv2
import numpy as np
import onnxruntime as ort


def letterbox(img, new_shape):
    """Ultralytics LetterBox(auto=False, scale_fill=False, scaleup=True, center=True)."""
    shape = img.shape[:2]  # h, w
    r = min(new_shape[0] / shape[0], new_shape[1] / shape[1])
    new_unpad = int(round(shape[1] * r)), int(round(shape[0] * r))
    dw, dh = new_shape[1] - new_unpad[0], new_shape[0] - new_unpad[1]
    dw /= 2
    dh /= 2
    if shape[::-1] != new_unpad:
        img = cv2.resize(img, new_unpad, interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    return img


def scale_boxes(img1_shape, boxes, img0_shape):
    """Ultralytics ops.scale_boxes with ratio_pad=None, then clip_boxes."""
    gain = min(img1_shape[0] / img0_shape[0], img1_shape[1] / img0_shape[1])
    pad_x = round((img1_shape[1] - img0_shape[1] * gain) / 2 - 0.1)
    pad_y = round((img1_shape[0] - img0_shape[0] * gain) / 2 - 0.1)
    boxes = boxes.copy()
    boxes[:, [0, 2]] -= pad_x
    boxes[:, [1, 3]] -= pad_y
    boxes /= gain
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, img0_shape[1])
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, img0_shape[0])
    return boxes


def normalize(name):
    return " ".join(name.replace("_", " ").replace("-", " ").lower().split())


class Reference:
    def __init__(self, model, conf, iou, max_det, classes, threads):
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_hw = (inp.shape[2], inp.shape[3])
        meta = self.session.get_modelmeta().custom_metadata_map
        names = ast.literal_eval(meta["names"])
        self.names = [names[i] for i in range(len(names))]
        self.conf, self.iou, self.max_det = conf, iou, max_det
        if classes:
            wanted = {normalize(c) for c in classes.split(",") if c.strip()}
            self.allowed = np.array([normalize(n) in wanted for n in self.names])
        else:
            self.allowed = np.ones(len(self.names), dtype=bool)

    def preprocess(self, img):
        lb = letterbox(img, self.input_hw)
        blob = lb[..., ::-1].transpose(2, 0, 1)[None]  # BGR->RGB, HWC->CHW, batch
        return np.ascontiguousarray(blob, dtype=np.float32) / 255.0

    def infer(self, blob):
        return self.session.run(None, {self.input_name: blob})[0]

    def postprocess(self, out, img_shape):
        pred = out[0].T  # [N, 4+nc]
        scores_all = pred[:, 4:]
        cls = scores_all.argmax(1)
        conf = scores_all[np.arange(len(cls)), cls]
        keep = (conf > self.conf) & self.allowed[cls]
        boxes_cxcywh, conf, cls = pred[keep, :4], conf[keep], cls[keep]
        if len(conf) == 0:
            return []
        xywh = boxes_cxcywh.copy()
        xywh[:, 0] -= xywh[:, 2] / 2
        xywh[:, 1] -= xywh[:, 3] / 2
        idx = cv2.dnn.NMSBoxesBatched(
            xywh.astype(np.float64).tolist(), conf.astype(float).tolist(), cls.tolist(), self.conf, self.iou
        )
        idx = np.array(idx, dtype=int).reshape(-1)
        idx = idx[np.argsort(-conf[idx], kind="stable")][: self.max_det]
        xyxy = np.stack(
            [xywh[idx, 0], xywh[idx, 1], xywh[idx, 0] + xywh[idx, 2], xywh[idx, 1] + xywh[idx, 3]], axis=1
        )
        xyxy = scale_boxes(self.input_hw, xyxy, img_shape)
        return [
            {"class": self.names[int(c)], "confidence": float(s), "bbox": [float(v) for v in b]}
            for b, s, c in zip(xyxy, conf[idx], cls[idx])
        ]

    def detect(self, img):
        t0 = time.perf_counter()
        blob = self.preprocess(img)
        t1 = time.perf_counter()
        out = self.infer(blob)
        t2 = time.perf_counter()
        dets = self.postprocess(out, img.shape[:2])
        t3 = time.perf_counter()
        return dets, (t1 - t0, t2 - t1, t3 - t2)


def read_image(path):
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"error: {path}: not a readable image")
    return img


def extract_frames(video, outdir, indices):
    cap = cv2.VideoCapture(video)
    if not cap.isOpened():
        raise SystemExit(f"error: cannot open {video}")
    os.makedirs(outdir, exist_ok=True)
    wanted = sorted(set(indices))
    i = 0
    while wanted:
        ok, frame = cap.read()
        if not ok:
            raise SystemExit(f"error: {video} has no frame {wanted[0]}")
        if i == wanted[0]:
            path = os.path.join(outdir, f"frame_{i:05d}.png")
            cv2.imwrite(path, frame)
            print(path)
            wanted.pop(0)
        i += 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model")
    p.add_argument("--conf", type=float, default=0.35)
    p.add_argument("--iou", type=float, default=0.5)
    p.add_argument("--max-det", type=int, default=200)
    p.add_argument("--classes", default="")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--bench", type=int, default=0)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--extract-frames", nargs="+", metavar="ARG")
    p.add_argument("images", nargs="*")
    a = p.parse_args()

    if a.extract_frames:
        video, outdir, *idx = a.extract_frames
        extract_frames(video, outdir, [int(i) for i in idx])
        return
    if not a.model:
        p.error("--model is required")
    ref = Reference(a.model, a.conf, a.iou, a.max_det, a.classes, a.threads)

    if a.bench:
        samples = {"decode": [], "preprocess": [], "inference": [], "postprocess": []}
        for i in range(a.warmup + a.bench):
            t0 = time.perf_counter()
            img = read_image(a.images[0])
            decode = time.perf_counter() - t0
            _, (pre, inf, post) = ref.detect(img)
            if i >= a.warmup:
                for k, v in zip(samples, (decode, pre, inf, post)):
                    samples[k].append(v)
        json.dump(samples, sys.stdout)
        print()
        return

    for path in a.images:
        img = read_image(path)
        dets, times = ref.detect(img)
        line = {
            "image": path,
            "width": img.shape[1],
            "height": img.shape[0],
            "detectedObjects": dets,
            "processTime": sum(times),
        }
        print(json.dumps(line))


if __name__ == "__main__":
    main()
