"""`python -m dispatcher bench` end to end on CPU lanes (tiny scene)."""

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

pytest.importorskip("bpy")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bench(tmp_path, *args, timeout=600):
    argv = [sys.executable, "-m", "dispatcher", "bench", "--cpu", "--quick", "--out", str(tmp_path), *args]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env, check=False)


def test_bench_subset_prints_table_and_chart(tmp_path):
    result = bench(tmp_path, "--variant", "static", "--approaches", "combined,static-chunks,per-card,single")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    out = result.stdout
    assert "CPU lanes" in out and "standing in for GPUs" in out  # the header says the lanes are CPUs
    for title in ("Blender combined, defaults", "static chunks, 2 processes", "product per-card", "ideal bound"):
        assert title in out
    assert "overhead between frames" in out
    results = json.loads((tmp_path / "results.json").read_text())
    rows = {row["approach"]: row for row in results["variants"]["static"]["rows"]}
    assert all(rows[name]["frames"] == 8 for name in ("combined", "static-chunks", "per-card"))
    assert rows["combined"]["speedup"] == pytest.approx(1.0)
    assert rows["per-card"]["gap_median_ms"] is not None
    assert results["variants"]["static"]["ideal"]["frames_per_minute"] > 0
    image = Image.open(tmp_path / "bench.png")
    assert image.width == 1400 and image.height > 300
    # each approach folder is a job folder the report command can read
    summary = subprocess.run(
        [sys.executable, "-m", "dispatcher", "report", str(tmp_path / "static" / "static-chunks"), "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if summary.returncode == 0 and summary.stdout.lstrip().startswith("{"):
        assert json.loads(summary.stdout)["frames_done"] == 8


@pytest.mark.slow
def test_bench_all_approaches_both_variants(tmp_path):
    result = bench(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    for variant in ("static", "deforming"):
        rows = results["variants"][variant]["rows"]
        assert {row["approach"] for row in rows} == {
            "combined",
            "combined-pd",
            "static-chunks",
            "fresh-per-frame",
            "per-card",
            "per-card-m",
            "product-combined",
            "auto",
            "single",
        }
        assert all(row["ok"] and row["failed"] == 0 for row in rows)
