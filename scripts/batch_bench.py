#!/usr/bin/env python3
"""Batched inference against single frames, on the engine the service runs (ONNX Runtime).

The exported YOLOv8 graph has a fixed batch of 1: its input, its outputs and four activation
Reshapes (three head levels and the DFL) carry a literal leading 1. This script makes a copy
with a dynamic batch axis (those leading 1s become 0, "copy the input's dimension"), checks that
a batch of two gives the same outputs as two single frames, then measures frames per second for
batch 1, 2 and 4 with one session on every core and with one single-threaded session per core
(the service's default layout, several callers at once).

Usage: PYTHONPATH=.deps/python python3 scripts/batch_bench.py MODEL.onnx [FRAMES]
"""

import json
import os
import sys
import tempfile
import threading
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper


def dynamic_batch(src, dst):
    """Writes `src` with a dynamic batch axis to `dst`; returns how many Reshapes changed."""
    model = onnx.load(src)
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    constants = {n.output[0]: n for n in graph.node if n.op_type == "Constant"}
    changed = 0
    for node in graph.node:
        # Only activations carry the batch; weights reshaped in the graph (a bias to 1xCx1x1) do not.
        if node.op_type != "Reshape" or node.input[0] in initializers or node.input[0] in constants:
            continue
        name = node.input[1]
        if name in initializers:
            shape = numpy_helper.to_array(initializers[name]).copy()
            target = initializers[name]
        elif name in constants:
            shape = numpy_helper.to_array(constants[name].attribute[0].t).copy()
            target = constants[name].attribute[0].t
        else:
            continue
        if len(shape) >= 3 and shape[0] == 1:
            shape[0] = 0
            target.CopyFrom(numpy_helper.from_array(shape, target.name))
            changed += 1
    for value in list(graph.input) + list(graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    del graph.value_info[:]
    onnx.save(model, dst)
    return changed


def session(path, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def frames_per_second(path, sessions, threads, batch, frames):
    pool = [session(path, threads) for _ in range(sessions)]
    x = np.random.default_rng(1).random((batch, 3, 640, 640), dtype=np.float32)
    name = pool[0].get_inputs()[0].name
    for s in pool:
        for _ in range(3):
            s.run(None, {name: x})
    runs = max(1, frames // (sessions * batch))

    def work(s):
        for _ in range(runs):
            s.run(None, {name: x})

    start = time.perf_counter()
    threads_ = [threading.Thread(target=work, args=(s,)) for s in pool]
    for t in threads_:
        t.start()
    for t in threads_:
        t.join()
    return runs * sessions * batch / (time.perf_counter() - start)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    src = sys.argv[1]
    frames = int(sys.argv[2]) if len(sys.argv) > 2 else 48
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "dynamic.onnx")
        changed = dynamic_batch(src, path)
        one = session(path, cores)
        name = one.get_inputs()[0].name
        rng = np.random.default_rng(2)
        a, b = (rng.random((1, 3, 640, 640), dtype=np.float32) for _ in range(2))
        pair = one.run(None, {name: np.concatenate([a, b])})[0]
        single = np.concatenate([one.run(None, {name: a})[0], one.run(None, {name: b})[0]])
        difference = float(np.abs(pair - single).max())
        if difference > 1e-3:
            sys.exit(f"batch of two differs from two frames by {difference}")
        print(f"batch_bench: {src}, {changed} Reshapes made dynamic, batch of two = two frames "
              f"(largest difference {difference:.2g}), {frames} frames per point, {cores} cores")
        rows = []
        for sessions, threads in [(1, cores), (cores, 1)]:
            base = None
            for batch in (1, 2, 4):
                fps = frames_per_second(path, sessions, threads, batch, frames)
                base = base or fps
                rows.append({"sessions": sessions, "threads": threads, "batch": batch,
                             "framesPerSecond": round(fps, 2), "againstBatch1": round(fps / base, 3)})
                print(f"{sessions} sessions x {threads} threads, batch {batch}: "
                      f"{fps:.1f} frames/s ({fps / base:.2f} of batch 1)")
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
