"""Live sources over a real network connection: an MJPEG stream served on loopback that drops."""

from __future__ import annotations

import http.server
import logging
import socketserver
import threading
import time
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from openlfr.live.sources import FolderSource, LiveSource, SourceError, open_source


class _Camera(http.server.BaseHTTPRequestHandler):
    """An IP camera that sends 15 frames per connection, then hangs up."""

    connections = 0

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        type(self).connections += 1
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        for i in range(15):
            ok, jpeg = cv2.imencode(".jpg", np.full((120, 160, 3), i * 12, np.uint8))
            body = jpeg.tobytes()
            try:
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n")
                self.wfile.write(b"Content-Length: %d\r\n\r\n" % len(body) + body + b"\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                return
            time.sleep(0.03)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def camera() -> Iterator[tuple[str, socketserver.ThreadingTCPServer]]:
    _Camera.connections = 0
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Camera)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg", server
    server.shutdown()
    server.server_close()


def test_dropped_stream_reconnects_with_backoff_and_says_so(
    camera: tuple[str, socketserver.ThreadingTCPServer], caplog: pytest.LogCaptureFixture
) -> None:
    url, server = camera
    caplog.set_level(logging.WARNING, logger="openlfr.live.sources")
    source = open_source(url)
    assert isinstance(source, LiveSource) and source.live
    frames = []
    for frame in source.frames():
        frames.append(frame)
        if _Camera.connections >= 3 and len(frames) > 30:
            break
    messages = [r.getMessage() for r in caplog.records]
    assert any("reconnecting in" in m for m in messages)
    assert any("reconnected" in m for m in messages)
    assert frames[0].image.shape == (120, 160, 3)
    assert all(b.time_s >= a.time_s for a, b in zip(frames, frames[1:], strict=False))
    source.close()


def test_stream_that_stays_down_gives_up_with_a_clear_error(
    camera: tuple[str, socketserver.ThreadingTCPServer],
) -> None:
    url, server = camera
    source = LiveSource(url, max_reconnects=2, max_backoff_s=0.2)
    server.shutdown()
    server.server_close()
    with pytest.raises(SourceError, match="gave up after 2 reconnection attempts"):
        for _ in source.frames():
            pass
    source.close()


def test_slow_consumer_gets_the_newest_frame_and_drops_are_counted(
    camera: tuple[str, socketserver.ThreadingTCPServer],
) -> None:
    url, _ = camera
    source = LiveSource(url)
    for taken, _ in enumerate(source.frames(), start=1):
        time.sleep(0.2)  # a pipeline slower than the camera
        if taken == 4:
            break
    assert source.dropped >= 4
    source.close()


def test_folder_of_frames(tmp_path) -> None:  # type: ignore[no-untyped-def]
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.full((20, 30, 3), i * 50, np.uint8))
    source = open_source(str(tmp_path))
    assert isinstance(source, FolderSource)
    frames = list(source.frames())
    assert [f.index for f in frames] == [0, 1, 2] and frames[2].time_s > frames[1].time_s
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images"):
        FolderSource(tmp_path / "empty")


def test_unknown_camera_index_fails_clearly() -> None:
    with pytest.raises(SourceError, match="cannot open"):
        open_source("97")
