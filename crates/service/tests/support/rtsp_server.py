#!/usr/bin/python3
"""A real RTSP server for the tests: GStreamer's gst-rtsp-server serving H.264 files.

Usage: rtsp_server.py PORT FILE [FILE...]
Serves FILE i at rtsp://127.0.0.1:PORT/cam<i> (cam0, cam1, ...), in real time, looping, one
pipeline per client. PORT 0 picks a free port. Prints "PORT <n>" once listening.
Run with Debian's /usr/bin/python3 (python3-gi, gir1.2-gst-rtsp-server-1.0).
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


class LoopingFactory(GstRtspServer.RTSPMediaFactory):
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

    def do_configure(self, media):
        # Loop: when the file ends, seek back to the start instead of ending the session.
        media.connect("prepared", self._prepared)

    def _prepared(self, media):
        bus = media.get_element().get_bus() if hasattr(media.get_element(), "get_bus") else None
        pipeline = media.get_element()

        def on_eos(*_):
            pipeline.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH, 0)

        if bus is not None:
            bus.add_signal_watch()
            bus.connect("message::eos", on_eos)


def main():
    port = sys.argv[1]
    files = sys.argv[2:]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    mounts = server.get_mount_points()
    for i, path in enumerate(files):
        mounts.add_factory(f"/cam{i}", LoopingFactory(path))
    server.attach(None)
    print(f"PORT {server.get_bound_port()}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
