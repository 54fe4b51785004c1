"""dispatcher.report on a hand-written job folder: numbers, table and PNG."""

import argparse
import json

import pytest
from PIL import Image

from dispatcher import chart, report

T0 = 1_800_000_000.0


def write_job(folder, with_status=True):
    # two lanes; gpu0 renders 1,3,5 (gaps 0.02 s and 0.04 s), gpu1 renders 2 then fails 4 and retries on gpu0
    events = [
        {
            "frame": 1,
            "lane": "gpu0",
            "start": T0 + 1.0,
            "end": T0 + 3.0,
            "render_seconds": 1.8,
            "status": "done",
        },
        {
            "frame": 2,
            "lane": "gpu1",
            "start": T0 + 1.0,
            "end": T0 + 3.5,
            "render_seconds": 2.2,
            "status": "done",
        },
        {
            "frame": 3,
            "lane": "gpu0",
            "start": T0 + 3.02,
            "end": T0 + 5.0,
            "render_seconds": 1.9,
            "status": "done",
        },
        {
            "frame": 4,
            "lane": "gpu1",
            "start": T0 + 3.5,
            "end": T0 + 4.0,
            "render_seconds": None,
            "status": "failed",
        },
        {
            "frame": 5,
            "lane": "gpu0",
            "start": T0 + 5.04,
            "end": T0 + 7.0,
            "render_seconds": 1.9,
            "status": "done",
        },
        {
            "frame": 4,
            "lane": "gpu1",
            "start": T0 + 4.5,
            "end": T0 + 6.5,
            "render_seconds": 1.9,
            "status": "done",
            "attempt": 2,
        },
    ]
    lines = [json.dumps(event) for event in events] + ['{"frame": 6, "lane": "gpu0", "sta']  # torn last line
    (folder / "frames.jsonl").write_text("\n".join(lines))
    if with_status:
        status = {
            "job_id": "j1",
            "state": "done",
            "frames": {"total": 5, "done": 5, "failed": 0, "skipped": 0, "remaining": 0, "in_flight": 0},
            "lanes": [{"name": "gpu0"}, {"name": "gpu1"}, {"name": "gpu2"}],
            "started_at": T0,
            "finished_at": T0 + 8.0,
        }
        (folder / "status.json").write_text(json.dumps(status))
    return folder


def test_gaps_and_overhead(tmp_path):
    job = report.load_job(str(write_job(tmp_path)))
    gaps = report.frame_gaps(job.records)
    assert gaps["gpu0"] == pytest.approx([0.02, 0.04])
    assert gaps["gpu1"] == pytest.approx([0.0, 0.5])  # 2 -> failed 4 (touching), failed 4 -> retry
    stats = report.overhead_stats(job.records)
    assert stats["count"] == 4
    assert stats["max_ms"] == pytest.approx(500.0)
    assert stats["median_ms"] == pytest.approx(30.0)


def test_counts_wall_and_rate(tmp_path):
    job = report.load_job(str(write_job(tmp_path)))
    assert job.frames_done == 5  # frame 4 failed once, then succeeded: counted once as done
    assert job.frames_failed == 0
    assert job.wall == pytest.approx(8.0)  # status.json started_at..finished_at
    assert job.frames_per_minute == pytest.approx(60 * 5 / 8.0)
    assert job.lane_names() == ["gpu0", "gpu1", "gpu2"]  # an idle lane keeps its row
    assert report.steady_seconds_per_frame(job.records) == pytest.approx(
        2.5
    )  # median of gpu0 2.0 and gpu1 3.0


def test_without_status_uses_frame_times(tmp_path):
    job = report.load_job(str(write_job(tmp_path, with_status=False)))
    assert job.wall == pytest.approx(6.0)  # first start 1.0 .. last end 7.0
    assert job.lane_names() == ["gpu0", "gpu1"]


def test_summary_table_text(tmp_path):
    text = report.summary_table(str(write_job(tmp_path)))
    assert "5/5 frames done" in text
    assert "median 30.0 ms" in text and "max 500.0 ms" in text
    assert text.count("\ngpu") == 3


def test_timeline_png(tmp_path):
    png = chart.timeline_png(str(write_job(tmp_path)), str(tmp_path / "out" / "t.png"))
    image = Image.open(png)
    assert image.size[0] == 1400 and image.size[1] > 100
    # frame bars are drawn: the lane rows hold palette colours, the failed attempt is red
    colors = {color for _count, color in image.convert("RGB").getcolors(1 << 20)}
    assert chart._FAILED in colors
    assert chart._PALETTE[1] in colors  # frame 1 / 5 / 7 ...


def test_cli_main(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    report.add_arguments(parser)
    folder = write_job(tmp_path)
    assert report.main(parser.parse_args([str(folder), "--png", str(tmp_path / "x.png"), "--json"])) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames_done"] == 5
    assert summary["overhead_between_frames"]["count"] == 4
    assert (tmp_path / "x.png").exists()
    assert report.main(parser.parse_args([str(tmp_path / "missing")])) == 2


def test_iso_timestamps(tmp_path):
    write_job(tmp_path)
    status = json.loads((tmp_path / "status.json").read_text())
    status["started_at"] = "2027-01-15T08:00:00+00:00"
    status["finished_at"] = None
    (tmp_path / "status.json").write_text(json.dumps(status))
    job = report.load_job(str(tmp_path))
    assert job.started == pytest.approx(1_800_000_000.0 + 0.0, abs=1e7)  # parsed, not None


def test_report_takes_a_job_id_as_status_and_resume_do(tiny_blend, tmp_path):
    import os

    from farmtest import run_cli

    from dispatcher import jobs

    job = os.path.join(jobs.default_jobs_root(), "report-by-id")
    rendered = run_cli("render", str(tiny_blend), "-o", str(tmp_path / "out"), "-f", "1-2", "--cpu-lanes", "1",
                       "--job-dir", job, "--quiet")  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    by_id, by_path = run_cli("report", "report-by-id"), run_cli("report", job)
    assert by_id.returncode == 0 and by_id.stdout == by_path.stdout and "cpu0" in by_id.stdout
