"""A word when a job ends: --notify-url POSTs a JSON summary, the desktop is told where it can be, and
no failure to notify (unreachable, erroring or hanging receiver) ever fails the job."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from farmtest import run_cli, wait_for

from dispatcher import jobs, notify


class Receiver:
    """A local HTTP receiver on 127.0.0.1 that keeps what it was sent and answers with ``status``."""

    def __init__(self, status: int = 200, delay: float = 0.0):
        self.posts: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(delay)
                receiver.posts.append({"path": self.path, "type": self.headers.get("Content-Type"), "body": body})
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/render"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver():
    server = Receiver()
    yield server
    server.close()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/nobody-listens"


def test_notify_url_gets_a_summary_when_a_job_ends(tiny_blend, tmp_path, receiver):
    out = tmp_path / "out"
    result = run_cli("render", str(tiny_blend), "-o", str(out), "-f", "1-4", "--cpu-lanes", "2",
                     "--notify-url", receiver.url, "--job-dir", str(tmp_path / "job"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in out.glob("frame_*.png")) == [f"frame_000{n}.png" for n in range(1, 5)]
    (post,) = receiver.posts
    assert post["path"] == "/hooks/render" and post["type"] == "application/json"
    payload = json.loads(post["body"])
    assert payload["event"] == "job-ended" and payload["state"] == "done"
    assert payload["job"] == jobs.load_spec(str(tmp_path / "job")).job_id
    assert payload["frames"]["done"] == payload["frames"]["total"] == 4 and payload["frames"]["failed"] == 0
    assert payload["failures"] == [] and payload["output"] == str(out) and payload["wall_seconds"] > 0
    assert "warning" not in result.stderr
    assert notify.notify_job_end(str(tmp_path / "job"), since=time.time() + 60) == []  # an earlier run's end
    assert len(receiver.posts) == 1  # is not announced again


@pytest.mark.parametrize("kind", ["unreachable", "server error"])
def test_failing_receiver_never_fails_the_job(tiny_blend, tmp_path, kind):
    server = Receiver(status=500) if kind == "server error" else None
    url = server.url if server else closed_port_url()
    out = tmp_path / "out"
    try:
        started = time.monotonic()
        result = run_cli("render", str(tiny_blend), "-o", str(out), "-f", "1-3", "--cpu-lanes", "1",
                         "--notify-url", url, "--job-dir", str(tmp_path / "job"))  # fmt: skip
        took = time.monotonic() - started
    finally:
        if server:
            server.close()
    assert result.returncode == 0, result.stderr
    assert len(list(out.glob("frame_*.png"))) == 3
    assert jobs.read_status(str(tmp_path / "job"))["state"] == "done"
    assert f"warning: notify URL {url}" in result.stderr
    assert took < 120


def test_a_hanging_receiver_costs_at_most_the_timeout():
    server = Receiver(delay=5.0)
    try:
        started = time.monotonic()
        problem = notify.post_json(server.url, {"job": "x"}, timeout=0.5)
        assert problem is not None and time.monotonic() - started < 3.0
    finally:
        server.close()


def test_a_cancelled_job_tells_the_url_and_the_desktop(slow_blend, tmp_path, receiver):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "notify-send.args"
    fake = bin_dir / "notify-send"  # stands in for the desktop's notify-send: records what it was asked to show
    fake.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > '{record}'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "DISPLAY": ":99"}
    job = tmp_path / "job"
    started = run_cli("render", str(slow_blend), "-o", str(tmp_path / "out"), "--cpu-lanes", "2", "--detach",
                      "--notify-url", receiver.url, "--job-dir", str(job), env=env)  # fmt: skip
    assert started.returncode == 0, started.stderr
    wait_for(lambda: (jobs.read_status(str(job)) or {}).get("frames", {}).get("done", 0) >= 1, 120, what="a frame")
    assert run_cli("cancel", str(job)).returncode == 0
    wait_for(lambda: receiver.posts, 30, what="the notification")
    payload = json.loads(receiver.posts[0]["body"])
    assert payload["state"] == "cancelled" and 1 <= payload["frames"]["done"] < payload["frames"]["total"]
    shown = wait_for(lambda: record.exists() and record.read_text(), 10, what="notify-send").splitlines()
    assert f"Render cancelled: {payload['job']}" in shown and "--urgency=critical" in shown
    assert any(line.startswith(f"{payload['frames']['done']}/{payload['frames']['total']} frames") for line in shown)


def test_without_notify_send_the_desktop_is_told_over_dbus(monkeypatch, tmp_path):
    record = tmp_path / "gdbus.args"
    fake = tmp_path / "gdbus"  # stands in for glib's gdbus: records the D-Bus call it was asked to make
    fake.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > '{record}'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent")
    status = {"job_id": "shot", "state": "done", "frames": {"done": 4, "total": 4}, "elapsed": 12.0}
    assert notify.send_job_end(status) == []
    args = record.read_text().splitlines()
    assert "org.freedesktop.Notifications.Notify" in args and "Render done: shot" in args
    assert "4/4 frames, 0 failed, 12 s" in args


def test_no_desktop_is_skipped_silently(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no notify-send anywhere
    monkeypatch.setenv("DISPLAY", ":99")
    status = {"job_id": "j", "state": "failed", "frames": {"done": 1, "total": 2, "failed": 1}, "elapsed": 3.0,
              "failed_frames": {"2": "worker crashed"}, "output_dir": "/renders/j"}  # fmt: skip
    assert notify.send_job_end(status) == []
    payload = notify.summary(status)
    assert payload["failures"] == [{"frame": 2, "error": "worker crashed"}] and payload["output"] == "/renders/j"


def test_a_bad_notify_url_is_refused_before_anything_starts(tiny_blend, tmp_path):
    result = run_cli("render", str(tiny_blend), "-o", str(tmp_path / "out"), "--notify-url", "ftp://example.org/x",
                     env={"GRF_JOBS_DIR": str(tmp_path / "jobs")})  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == "error: notify URL must be http:// or https:// with a host, not 'ftp://example.org/x'"
    assert not (tmp_path / "jobs").exists() and not (tmp_path / "out").exists()
