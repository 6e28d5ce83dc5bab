#!/usr/bin/env python3
"""Independent ByteTrack reference for the tracker parity test.

Runs Roboflow's clean-room `ByteTrackTracker` (PyPI `trackers`, fed `supervision.Detections`)
over a detection sequence and prints the track id it gives each detection.

stdin:  {"params": {"track_thresh": f, "match_thresh": f, "max_lost_frames": n},
         "frames": [[[x1, y1, x2, y2, score], ...], ...]}
stdout: {"ids": [[id or null, ...], ...],   (aligned with the input detections)
         "seconds": [s, ...]}                (time of each frame's tracker update, for benches)

Parameter mapping (ByteTrack's names -> trackers'): high/low split and the score that starts a
track as in ByteTrack (`track_thresh`, `track_thresh + 0.1`); the first-stage gate
`1 - IoU x score <= match_thresh` becomes `IoU >= 1 - match_thresh`; the lost-track buffer in
frames at 30 fps; a track is confirmed by its second sighting.
"""

import json
import sys
import time

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker


def main() -> None:
    request = json.load(sys.stdin)
    p = request["params"]
    tracker = ByteTrackTracker(
        lost_track_buffer=int(p["max_lost_frames"]),
        frame_rate=30.0,
        track_activation_threshold=float(p["track_thresh"]) + 0.1,
        minimum_consecutive_frames=2,
        minimum_iou_threshold=1.0 - float(p["match_thresh"]),
        high_conf_det_threshold=float(p["track_thresh"]),
    )
    out = []
    seconds = []
    for frame in request["frames"]:
        n = len(frame)
        if n == 0:
            dets = sv.Detections.empty()
            dets.data["index"] = np.zeros(0, dtype=int)
        else:
            arr = np.asarray(frame, dtype=np.float64)
            dets = sv.Detections(
                xyxy=arr[:, :4],
                confidence=arr[:, 4],
                class_id=np.zeros(n, dtype=int),
                data={"index": np.arange(n)},
            )
        started = time.perf_counter()
        result = tracker.update(dets)
        seconds.append(time.perf_counter() - started)
        ids = [None] * n
        for index, tid in zip(result.data.get("index", []), result.tracker_id):
            ids[int(index)] = int(tid) if tid >= 0 else None
        out.append(ids)
    json.dump({"ids": out, "seconds": seconds}, sys.stdout)


if __name__ == "__main__":
    main()
