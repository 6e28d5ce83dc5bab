#!/usr/bin/python3
"""A real RTSP server for the tests: GStreamer's gst-rtsp-server serving H.264 files.

Usage: rtsp_server.py PORT FILE [FILE...]
Serves FILE i at rtsp://127.0.0.1:PORT/cam<i> (cam0, cam1, ...), in real time, once, one
pipeline per client (a stream ends with its file: tests use clips longer than they run). PORT 0 picks a free port. Prints "PORT <n>" once listening.
Run with Debian's /usr/bin/python3 (python3-gi, gir1.2-gst-rtsp-server-1.0).
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


class FileFactory(GstRtspServer.RTSPMediaFactory):
    def __init__(self, path):
        super().__init__()
        self.path = path
        self.set_shared(False)

    def do_create_element(self, url):
        launch = (
            f'( filesrc location="{self.path}" ! qtdemux ! h264parse config-interval=-1 '
            "! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        )
        return Gst.parse_launch(launch)


def main():
    port = sys.argv[1]
    files = sys.argv[2:]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    mounts = server.get_mount_points()
    for i, path in enumerate(files):
        mounts.add_factory(f"/cam{i}", FileFactory(path))
    server.attach(None)
    print(f"PORT {server.get_bound_port()}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
