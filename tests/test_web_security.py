"""The dashboard's API against a real rendered job: token on every request, origin on POSTs, no file
outside a job's output folder (path traversal, encoded ../, symlinks), thumbnails and timeline."""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import subprocess
import sys

import psutil
import pytest
from farmtest import ROOT, run_cli, wait_for
from PIL import Image

pytest.importorskip("starlette", reason="the web extra (starlette) is not installed")
from starlette.testclient import TestClient  # noqa: E402

from dispatcher import jobs  # noqa: E402
from dispatcher.spec import JobSpec  # noqa: E402
from dispatcher.web.app import create_app  # noqa: E402
from dispatcher.web.gpus import DeviceHistory  # noqa: E402

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def farm(tmp_path_factory, tiny_blend):
    """A jobs root holding one real finished job (4 frames on 2 CPU lanes) and a secret beside it."""
    base = tmp_path_factory.mktemp("web")
    root, out = base / "jobs", base / "out"
    result = run_cli("render", str(tiny_blend), "-o", str(out), "-f", "1-4", "--cpu-lanes", "2", "--video",
                     env={"GRF_JOBS_DIR": str(root)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    (job_id,) = os.listdir(root)
    secret = base / "secret.png"
    Image.new("RGB", (8, 8), "red").save(secret)
    return {"root": str(root), "out": out, "job": job_id, "secret": secret}


@pytest.fixture()
def client(farm):
    history = DeviceHistory()
    history.sample()  # one real NVML/psutil sample; the background task is not started in these tests
    app = create_app(farm["root"], TOKEN, history=history, sample=False)
    with TestClient(app, base_url="http://127.0.0.1:8765") as test_client:
        yield test_client


def authed(client, path, **kw):
    return client.get(path, headers={"Authorization": f"Bearer {TOKEN}"}, **kw)


def test_every_request_needs_the_token(client, farm):
    job = farm["job"]
    paths = ["/", "/api/state", f"/api/jobs/{job}", "/static/app.js", f"/files/{job}/frame_0001.png",
             f"/thumbs/{job}/frame_0001.png", f"/timeline/{job}.png", "/nothing-here"]  # fmt: skip
    for path in paths:
        for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}):
            assert client.get(path, headers=headers).status_code == 401, path
        assert client.get(path, params={"token": "nearly-" + TOKEN}).status_code == 401
    assert authed(client, "/api/state").status_code == 200
    assert authed(client, "/static/app.js").status_code == 200


def test_token_link_sets_a_strict_cookie_and_leaves_the_address_bar(client):
    first = client.get("/", params={"token": TOKEN}, follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/"
    cookie = first.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    page = client.get("/")  # the client now carries the cookie
    assert page.status_code == 200 and "GPU Render Farm" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY" and page.headers["referrer-policy"] == "no-referrer"


def test_page_uses_no_outside_asset(client):
    page = authed(client, "/").text + authed(client, "/static/app.js").text + authed(client, "/static/app.css").text
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert "http://" not in page and "https://" not in page


def test_state_shows_the_real_job(client, farm):
    state = authed(client, "/api/state").json()
    (job,) = state["jobs"]
    assert job["id"] == farm["job"] and job["state"] == "done"
    assert job["frames"]["done"] == job["frames"]["total"] == 4
    assert {lane["name"] for lane in job["lanes"]} == {"cpu0", "cpu1"}
    assert all(lane["latest"]["file"].startswith("frame_") for lane in job["lanes"] if lane["frames_done"])
    assert job["video"].endswith(".mp4") and job["has_timeline"] and not job["can_cancel"]
    devices = state["devices"]
    assert bool(devices["cards"]) != bool(devices["reason"])  # cards, or the reason there are none


def test_frames_thumbnails_video_and_timeline(client, farm):
    job = farm["job"]
    frame = authed(client, f"/files/{job}/frame_0002.png")
    assert frame.status_code == 200 and frame.headers["content-type"] == "image/png"
    assert frame.content == (farm["out"] / "frame_0002.png").read_bytes()
    thumb = authed(client, f"/thumbs/{job}/frame_0002.png")
    image = Image.open(io.BytesIO(thumb.content))
    assert image.format == "JPEG" and image.size[0] <= 320 and image.size[1] <= 180
    video_name = authed(client, "/api/state").json()["jobs"][0]["video"]
    video = authed(client, f"/files/{job}/{video_name}")
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4" and video.content[4:8] == b"ftyp"
    timeline = Image.open(io.BytesIO(authed(client, f"/timeline/{job}.png").content))
    assert timeline.format == "PNG" and timeline.size[0] > 400


@pytest.mark.parametrize(
    "path",
    [
        "/files/{job}/../secret.png", "/files/{job}/..%2fsecret.png", "/files/{job}/%2e%2e/secret.png",
        "/files/{job}/%2e%2e%2fsecret.png", "/files/{job}/..%5csecret.png", "/files/{job}/%252e%252e%252fsecret.png",
        "/files/{job}/%2fetc%2fpasswd", "/files/{job}//etc/passwd", "/files/{job}/frame_0001.png%00.png",
        "/files/..%2f..%2fetc/passwd", "/files/%2e%2e/out/frame_0001.png", "/files/{job}/link-out.png",
        "/files/{job}/linkdir/secret.png", "/thumbs/{job}/link-out.png", "/files/{job}/frames.jsonl",
        "/files/linkjob/frame_0001.png", "/timeline/..%2f{job}.png", "/files/{job}/.%2e/secret.png",
    ],
)  # fmt: skip
def test_no_file_outside_the_output_folder(client, farm, path):
    out = farm["out"]
    for name, target in (("link-out.png", farm["secret"]), ("linkdir", farm["secret"].parent)):
        if not (out / name).is_symlink():
            (out / name).symlink_to(target)
    if not os.path.islink(os.path.join(farm["root"], "linkjob")):
        os.symlink(os.path.join(farm["root"], farm["job"]), os.path.join(farm["root"], "linkjob"))
    response = authed(client, path.format(job=farm["job"]))
    assert response.status_code in (404, 400), (path, response.status_code)
    assert response.content != farm["secret"].read_bytes()
    assert b"root:" not in response.content and b'"blend"' not in response.content


def test_buttons_need_the_token_and_this_origin(client, farm):
    job_dir = os.path.join(farm["root"], farm["job"])
    url = f"/api/jobs/{farm['job']}/resume"
    assert client.post(url).status_code == 401
    cookies = {"grf_token": TOKEN}
    client.cookies.update(cookies)
    assert client.post(url).status_code == 403  # a browser form from nowhere: no Origin
    assert client.post(url, headers={"Origin": "http://evil.example"}).status_code == 403
    assert client.post(url, headers={"Origin": "null"}).status_code == 403
    forged = {"Origin": "http://127.0.0.1:8765", "Sec-Fetch-Site": "cross-site"}
    assert client.post(url, headers=forged).status_code == 403
    assert client.get(url).status_code == 405  # a link or an <img> cannot press the button
    assert not os.path.exists(os.path.join(job_dir, "cancel.request"))
    cancel = client.post(f"/api/jobs/{farm['job']}/cancel", headers={"Origin": "http://127.0.0.1:8765"})
    assert cancel.status_code == 200 and cancel.json()["stopped"] is True
    client.cookies.clear()
    assert jobs.read_status(job_dir)["state"] == "done"  # a finished job stays finished


def test_many_jobs_are_paged(client, farm, tmp_path):
    for index in range(125):
        spec = JobSpec(blend=str(tmp_path / "a.blend"), output_dir=str(tmp_path / f"o{index}"), job_id=f"q{index:03d}")
        jobs.create_job(spec, jobs_root=farm["root"])
    try:
        first = authed(client, "/api/state", params={"limit": 20}).json()
        last = authed(client, "/api/state", params={"offset": 120, "limit": 20}).json()
        huge = authed(client, "/api/state", params={"limit": 100000}).json()
        assert first["total"] == 126 and len(first["jobs"]) == 20 and len(last["jobs"]) == 6
        assert len(huge["jobs"]) == huge["limit"] == 100  # capped
        assert len({job["id"] for job in first["jobs"] + last["jobs"]}) == 26
        assert {job["state"] for job in first["jobs"]} <= {"stopped", "done"}  # as `dispatcher jobs` says
    finally:
        for index in range(125):
            shutil.rmtree(os.path.join(farm["root"], f"q{index:03d}"))


def test_a_job_folder_elsewhere_is_listed_through_its_registration(tiny_blend, tmp_path, monkeypatch):
    root, job_dir, out = tmp_path / "jobs", tmp_path / "elsewhere" / "shot-job", tmp_path / "out"
    result = run_cli("render", str(tiny_blend), "-o", str(out), "-f", "1-2", "--cpu-lanes", "1",
                     "--job-dir", str(job_dir), env={"GRF_JOBS_DIR": str(root)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    monkeypatch.setenv("GRF_JOBS_DIR", str(root))  # serving the CLI's own jobs root
    with TestClient(create_app(str(root), TOKEN, sample=False), base_url="http://127.0.0.1:8765") as client:
        (job,) = authed(client, "/api/state").json()["jobs"]
        assert job["id"] == "shot-job" and job["state"] == "done" and job["frames"]["done"] == 2
        frame = authed(client, "/files/shot-job/frame_0002.png")
        assert frame.status_code == 200 and frame.content == (out / "frame_0002.png").read_bytes()
        assert authed(client, "/files/elsewhere/frame_0002.png").status_code == 404


@pytest.mark.parametrize("host", [None, "0.0.0.0"])
def test_serve_binds_localhost_unless_told_and_prints_a_token(farm, host):
    argv = [sys.executable, "-m", "dispatcher", "serve", "--port", "0", "--jobs-dir", farm["root"]]
    process = subprocess.Popen(argv + (["--host", host] if host else []), cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        line = process.stdout.readline()
        match = re.match(rf"dashboard: http://{re.escape(host or '127.0.0.1')}:(\d+)/\?token=(\S{{16,}})", line)
        assert match, line
        port = int(match[1])
        listening = wait_for(lambda: [c for c in psutil.Process(process.pid).net_connections() if c.status == "LISTEN"])
        assert {conn.laddr.ip for conn in listening} == {host or "127.0.0.1"}
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /api/state HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            assert sock.recv(64).startswith(b"HTTP/1.1 401")
        if host:  # beyond this machine: a note that it is plain HTTP
            assert "every request needs the token" in process.stdout.readline() + process.stdout.readline()
    finally:
        process.terminate()
        process.wait(10)


def test_token_file_is_private(tmp_path):
    from dispatcher.spec import SpecError
    from dispatcher.web.auth import load_token

    path = tmp_path / "private" / "token"
    token = load_token(str(path))
    assert len(token) >= 16 and load_token(str(path)) == token
    assert os.stat(path).st_mode & 0o777 == 0o600
    os.chmod(path, 0o644)
    with pytest.raises(SpecError, match="readable by other users"):
        load_token(str(path))


def test_core_imports_and_serve_explains_without_the_extra():
    blocker = (
        "import sys\n"
        "for name in ('starlette', 'uvicorn'):\n    sys.modules[name] = None\n"
        "import dispatcher.cli, dispatcher.runner, dispatcher.serve, dispatcher.web.data, dispatcher.notify\n"
        "sys.exit(dispatcher.cli.main(['serve']))\n"
    )
    result = subprocess.run([sys.executable, "-c", blocker], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "'web' extra" in result.stderr
    assert result.stderr.startswith("error: ")


def test_job_folders_stay_private(client, farm):
    authed(client, "/api/state")
    authed(client, f"/timeline/{farm['job']}.png")
    for path in (farm["root"], os.path.join(farm["root"], farm["job"])):
        assert os.stat(path).st_mode & 0o077 == 0, path
    assert os.stat(os.path.join(farm["root"], farm["job"], "status.json")).st_mode & 0o077 == 0


def test_device_history_keeps_the_last_minutes_per_card():
    from dispatcher.devices import DeviceReport, Gpu

    readings = iter(range(100))

    def two_cards() -> DeviceReport:  # NVML's answer on a 2-GPU machine; CI has no GPU to ask
        load = next(readings)
        cards = [Gpu(i, "NVIDIA H100", f"GPU-{i}", f"0000:1{i}:00.0", 81559, 81559 - 1024 * i, load, 40 + i)
                 for i in (0, 1)]  # fmt: skip
        return DeviceReport(gpus=cards)

    history = DeviceHistory(interval=2.0, seconds=10.0, detect=two_cards)
    for _ in range(9):
        history.sample()
    state = history.to_dict()
    assert [card["name"] for card in state["cards"]] == ["NVIDIA H100", "NVIDIA H100"] and state["reason"] is None
    samples = state["cards"][1]["samples"]
    assert len(samples) == 6 and [s[1] for s in samples] == [3, 4, 5, 6, 7, 8]  # the oldest ones dropped
    assert samples[-1][2:] == [1024, 41] and state["window_seconds"] == 10.0
    assert len(state["cpu"]) == 6
    empty = DeviceHistory(detect=lambda: DeviceReport(reason="NVML unavailable: no driver"))
    empty.sample()
    assert empty.to_dict()["cards"] == [] and empty.to_dict()["reason"] == "NVML unavailable: no driver"
