"""Draw docs/dashboard.png: a finished job and a running one on CPU lanes, seen by headless chromium.

    .venv/bin/python tools/dashboard_screenshot.py [docs/dashboard.png]

Needs bpy, the web extra, selenium and Debian's chromium + chromium-driver (make browser-deps).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args: str, env: dict) -> None:
    subprocess.run([sys.executable, "-m", "dispatcher", *args], cwd=ROOT, env=env, check=True, capture_output=True)


def main() -> int:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    target = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "docs", "dashboard.png"))
    work = tempfile.mkdtemp(prefix="grf-shot-")
    env = {**os.environ, "GRF_JOBS_DIR": os.path.join(work, "jobs")}
    scene = os.path.join(work, "shot_010.blend")
    demo = os.path.join(ROOT, "dispatcher", "blender_scripts", "demo_scene.py")
    args = ["--out", scene, "--frames", "240", "--size", "192x108", "--samples", "32"]
    subprocess.run([sys.executable, demo, *args], check=True, capture_output=True)
    cli("render", scene, "-o", os.path.join(work, "out_a"), "-f", "1-12", "--cpu-lanes", "2", "--video", env=env)
    cli("render", scene, "-o", os.path.join(work, "out_b"), "--cpu-lanes", "2", "--detach", env=env)
    server = subprocess.Popen([sys.executable, "-m", "dispatcher", "serve", "--port", "0"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    url = re.search(r"http://\S+", server.stdout.readline())[0]
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={work}/profile", "--window-size=1400,1500"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    try:
        driver.get(url)
        time.sleep(40)  # let the running job get going and the CPU chart fill a little
        for summary in driver.find_elements("css selector", "article.job details summary")[-1:]:
            summary.click()  # open the finished job's per-lane timeline
        driver.execute_script("window.scrollTo(0, 0)")
        time.sleep(2)
        driver.save_screenshot(target)
    finally:
        driver.quit()
        for job in os.listdir(env["GRF_JOBS_DIR"]):
            subprocess.run([sys.executable, "-m", "dispatcher", "cancel", job], cwd=ROOT, env=env, capture_output=True)
        server.terminate()
        server.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
