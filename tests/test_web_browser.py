"""The dashboard in a real browser (Debian's chromium, headless, driven by selenium) against a live
``serve`` while a real job renders on CPU lanes: the page loads, progress moves, Cancel is refused
without the token and works with it, Resume starts the job again; a job queued behind it is shown queued."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import psutil
import pytest
from farmtest import ROOT, build_scene, run_cli, wait_for, worker_processes

from dispatcher import jobs

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM and DRIVER),
        reason="Debian's chromium and chromium-driver are not installed (`make browser-deps` installs them)",
    ),
]
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1000"]  # fmt: skip


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A job rendering 200 small frames on 2 CPU lanes, and `serve` watching its jobs folder."""
    base = tmp_path_factory.mktemp("browser")
    blend = build_scene(base / "watch.blend", 200, "96x54", 64)
    root = base / "jobs"
    started = run_cli("render", str(blend), "-o", str(base / "out"), "--cpu-lanes", "2", "--detach",
                      env={"GRF_JOBS_DIR": str(root)})  # fmt: skip
    assert started.returncode == 0, started.stderr
    (job_id,) = os.listdir(root)
    queued = run_cli("render", str(blend), "-o", str(base / "out"), "--cpu-lanes", "1", "--detach", "--queue",
                     "--job-dir", str(root / "waiting"), env={"GRF_JOBS_DIR": str(root)})  # fmt: skip
    assert queued.returncode == 0, queued.stderr  # the same output folder: it waits for the first job
    server = subprocess.Popen(
        [sys.executable, "-m", "dispatcher", "serve", "--port", "0", "--jobs-dir", str(root)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    line = server.stdout.readline()
    match = re.match(r"dashboard: (http://127\.0\.0\.1:\d+)/\?token=(\S+)", line)
    assert match, line
    yield {"base": match[1], "token": match[2], "job": job_id, "job_dir": str(root / job_id), "blend": str(blend),
           "waiting": str(root / "waiting")}  # fmt: skip
    jobs.cancel_job(str(root / "waiting"))
    jobs.cancel_job(str(root / job_id))
    server.terminate()
    server.wait(10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    yield driver
    driver.quit()


def text_of(driver, selector: str) -> str:
    found = driver.find_elements("css selector", selector)
    return found[0].text if found else ""


def card(live, job: str | None = None) -> str:
    return f'article.job[data-job="{job or live["job"]}"]'


def frames_done(driver, live) -> int:
    text = text_of(driver, card(live) + " .frames-count b")
    return int(text) if text.isdigit() else -1


def post_from_page(driver, path: str, credentials: str) -> int:
    """POST from inside the page with fetch(); returns the HTTP status."""
    script = (
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {method: 'POST', credentials: arguments[1]}).then(r => done(r.status), () => done(-1));"
    )
    return driver.execute_async_script(script, path, credentials)


def test_page_without_the_token_is_refused(live, browser):
    browser.get(live["base"] + "/")
    assert "401" in browser.find_element("tag name", "body").text


def test_page_loads_and_progress_moves(live, browser, tmp_path):
    browser.get(f"{live['base']}/?token={live['token']}")
    assert browser.current_url == live["base"] + "/"  # the token left the address bar for a cookie
    wait_for(lambda: text_of(browser, card(live) + " .pill") == "running", 60, what="the running job on the page")
    first = wait_for(lambda: frames_done(browser, live) >= 1 and frames_done(browser, live), 120, what="a first frame")
    wait_for(lambda: frames_done(browser, live) >= first + 2, 120, what="progress to move on the page")
    assert len(browser.find_elements("css selector", card(live) + " tr.lane")) == 2
    wait_for(lambda: browser.execute_script(
        "return [...document.querySelectorAll('article.job .thumb img')].some(i => i.complete && i.naturalWidth > 0)"),
        30, what="a lane thumbnail")  # fmt: skip
    devices = text_of(browser, "#devices")
    assert "CPU load" in devices and ("GPU" in devices)
    waiting = card(live, "waiting")
    wait_for(lambda: text_of(browser, waiting + " .pill") == "queued", 60, what="the queued job on the page")
    assert "Waiting for job" in text_of(browser, waiting) and browser.find_elements(
        "css selector", waiting + " button[data-action='cancel']")  # fmt: skip
    path = os.environ.get("GRF_DASHBOARD_SCREENSHOT") or str(tmp_path / "dashboard.png")
    assert browser.save_screenshot(path)


def test_the_queued_job_is_cancelled_from_the_page_and_the_writer_goes_on(live, browser):
    waiting = card(live, "waiting")
    browser.find_element("css selector", waiting + " button[data-action='cancel']").click()
    wait_for(lambda: browser.switch_to.alert, 10, what="the confirmation").accept()
    wait_for(lambda: text_of(browser, waiting + " .pill") == "cancelled", 60, what="the queued job cancelled")
    assert jobs.read_status(live["waiting"]).state == "cancelled" and jobs.is_running(live["job_dir"])


def test_cancel_is_refused_without_the_token_and_works_with_it(live, browser):
    assert frames_done(browser, live) >= 1  # still on the dashboard, logged in by cookie
    assert post_from_page(browser, f"/api/jobs/{live['job']}/cancel", "omit") == 401
    assert jobs.is_running(live["job_dir"]) and not os.path.exists(os.path.join(live["job_dir"], "cancel.request"))
    pids = [lane.pid for lane in jobs.read_status(live["job_dir"]).lanes if lane.pid]
    assert pids and all(psutil.pid_exists(pid) for pid in pids)
    browser.find_element("css selector", card(live) + " button[data-action='cancel']").click()
    wait_for(lambda: browser.switch_to.alert, 10, what="the confirmation").accept()
    wait_for(lambda: text_of(browser, card(live) + " .pill") == "cancelled", 60, what="the page to show cancelled")
    status = jobs.read_status(live["job_dir"])
    assert status["state"] == "cancelled" and status["frames"]["done"] < status["frames"]["total"]
    wait_for(lambda: not [w for w in worker_processes(live["blend"]) if w.pid in pids], 30, what="the workers to exit")


def test_resume_starts_the_job_again(live, browser):
    done_before = jobs.read_status(live["job_dir"])["frames"]["done"]
    browser.find_element("css selector", card(live) + " button[data-action='resume']").click()
    wait_for(lambda: text_of(browser, card(live) + " .pill") == "running", 60, what="the page to show running")
    wait_for(lambda: frames_done(browser, live) > done_before, 120, what="more frames after resuming")
    assert jobs.is_running(live["job_dir"])
