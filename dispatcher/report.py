"""Reports for finished jobs: a per-lane timeline PNG (a Gantt chart) and a text summary.

``python -m dispatcher report JOB_DIR [--png OUT.png] [--json]`` reads ``JOB_DIR/frames.jsonl`` (one JSON
object per frame event: frame, lane, start, end, render_seconds, status, attempt, path) and, when present,
``JOB_DIR/status.json``. The benchmark draws its charts with the same code (``chart.draw_chart``).
Pillow only; never imports bpy.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .status import JobStatus, read_status

# -- reading a job -----------------------------------------------------------------------------------------


def read_records(path: str) -> list[dict]:
    """Frame events from a frames.jsonl file; unreadable lines (a half-written last line) are skipped."""
    records: list[dict] = []
    if not os.path.exists(path):
        return records
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and _number(record.get("start")) is not None:
                records.append(record)
    return records


def read_json(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _number(value) -> float | None:
    """Epoch seconds from a number or an ISO-8601 string; None when absent or unreadable."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _time(value) -> float:
    """_number for a time that must be there (0.0 when it is not)."""
    number = _number(value)
    return 0.0 if number is None else number


@dataclass
class Job:
    """What a report needs from a job folder (or from a benchmark run)."""

    title: str
    records: list[dict]
    started: float | None = None  # epoch seconds; the chart's zero
    finished: float | None = None
    lanes: list[str] = field(default_factory=list)  # lane order; lanes with no frame still get a row
    state: str | None = None
    total_frames: int | None = None
    note: str = ""

    @property
    def t0(self) -> float:
        starts = [_number(record.get("start")) for record in self.records]
        candidates = [value for value in [self.started, *starts] if value is not None]
        return min(candidates) if candidates else 0.0

    @property
    def t1(self) -> float:
        ends = [_number(record.get("end")) for record in self.records]
        candidates = [value for value in [self.finished, *ends] if value is not None]
        return max(candidates) if candidates else self.t0

    @property
    def wall(self) -> float:
        return max(0.0, self.t1 - self.t0)

    def lane_names(self) -> list[str]:
        names = list(self.lanes)
        for record in self.records:
            lane = str(record.get("lane", "?"))
            if lane not in names:
                names.append(lane)
        return names

    def final_status(self) -> dict[int, str]:
        """Each frame's last status (a frame retried after a failure counts once)."""
        result: dict[Any, str] = {}
        for record in sorted(self.records, key=lambda item: _number(item.get("end")) or 0.0):
            if record.get("status") in ("setup",):
                continue
            result[record.get("frame")] = record.get("status", "done")
        return result

    @property
    def frames_done(self) -> int:
        return sum(1 for status in self.final_status().values() if status == "done")

    @property
    def frames_failed(self) -> int:
        return sum(1 for status in self.final_status().values() if status == "failed")

    @property
    def frames_per_minute(self) -> float:
        return 60.0 * self.frames_done / self.wall if self.wall > 0 else 0.0


def load_job(job_dir: str, title: str | None = None) -> Job:
    """Read a job folder; raises FileNotFoundError when it has neither frames.jsonl nor status.json."""
    frames_path = os.path.join(job_dir, "frames.jsonl")
    found = read_status(job_dir)
    if found is None and not os.path.exists(frames_path):
        raise FileNotFoundError(f"{job_dir} is not a job folder (no frames.jsonl or status.json)")
    records = read_records(frames_path)
    status = found or JobStatus(state="")
    return Job(
        title=title or f"job {status.job_id or os.path.basename(os.path.abspath(job_dir))}",
        records=records,
        started=_number(status.started_at),
        finished=_number(status.finished_at),
        lanes=[lane.name for lane in status.lanes if lane.name != "?"],
        state=status.state or None,
        total_frames=status.frames.get("total"),
    )


# -- numbers -----------------------------------------------------------------------------------------------


def frame_gaps(records: list[dict]) -> dict[str, list[float]]:
    """Per lane: seconds a worker sat idle between two frames (the dispatcher's overhead).

    Uses the worker's own clock when the records carry it (from handing in one frame to receiving
    the next: IPC, validation, rename, bookkeeping); otherwise the dispatcher's end/start stamps.
    """
    done = [record for record in records if record.get("status") == "done"]
    if done and all(_number(record.get("worker_end")) is not None for record in done):
        records = [
            {**record, "start": record["worker_start"], "end": record["worker_end"]}
            for record in records
            if record.get("status") == "done"
        ]
    by_lane: dict[str, list[dict]] = {}
    for record in records:
        if record.get("status") == "setup":
            continue
        if _number(record.get("end")) is None:
            continue
        by_lane.setdefault(str(record.get("lane", "?")), []).append(record)
    gaps: dict[str, list[float]] = {}
    for lane, items in by_lane.items():
        items.sort(key=lambda item: _time(item["start"]))
        gaps[lane] = [
            max(0.0, _time(later["start"]) - _time(earlier["end"]))
            for earlier, later in zip(items, items[1:], strict=False)
        ]
    return gaps


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[position]


def overhead_stats(records: list[dict]) -> dict:
    """Median, 95th percentile and largest gap between two frames of one lane, in milliseconds."""
    gaps = [gap for lane_gaps in frame_gaps(records).values() for gap in lane_gaps]
    if not gaps:
        return {"count": 0, "median_ms": None, "p95_ms": None, "max_ms": None}
    return {
        "count": len(gaps),
        "median_ms": 1000.0 * statistics.median(gaps),
        "p95_ms": 1000.0 * percentile(gaps, 0.95),
        "max_ms": 1000.0 * max(gaps),
    }


def steady_seconds_per_frame(records: list[dict]) -> float | None:
    """Per lane, the pace after the first frame: (last end - first end) / (frames - 1); median over lanes.

    This leaves out start-up and kernel compilation, which the first frame carries.
    """
    paces = []
    by_lane: dict[str, list[float]] = {}
    for record in records:
        end = _number(record.get("end"))
        if record.get("status", "done") == "done" and end is not None:
            by_lane.setdefault(str(record.get("lane", "?")), []).append(end)
    for ends in by_lane.values():
        ends.sort()
        if len(ends) >= 2:
            paces.append((ends[-1] - ends[0]) / (len(ends) - 1))
    return statistics.median(paces) if paces else None


def lane_rows(job: Job) -> list[dict]:
    rows = []
    gaps = frame_gaps(job.records)
    for lane in job.lane_names():
        items = [
            record
            for record in job.records
            if str(record.get("lane", "?")) == lane and record.get("status") != "setup"
        ]
        done = [record for record in items if record.get("status", "done") == "done"]
        spans = [
            _time(record["end"]) - _time(record["start"]) for record in done if _number(record.get("end"))
        ]
        renders = [
            float(record["render_seconds"])
            for record in done
            if _number(record.get("render_seconds")) is not None
        ]
        busy = sum(spans)
        lane_gaps = gaps.get(lane, [])
        rows.append(
            {
                "lane": lane,
                "frames": len(done),
                "failed": sum(1 for record in items if record.get("status") == "failed"),
                "seconds_per_frame": statistics.median(spans) if spans else None,
                "render_seconds": statistics.median(renders) if renders else None,
                "busy_pct": 100.0 * busy / job.wall if job.wall > 0 else None,
                "gap_median_ms": 1000.0 * statistics.median(lane_gaps) if lane_gaps else None,
                "gap_max_ms": 1000.0 * max(lane_gaps) if lane_gaps else None,
            }
        )
    return rows


def _fmt(value, pattern: str = "{:.2f}", missing: str = "-") -> str:
    return (
        missing
        if value is None or (isinstance(value, float) and math.isnan(value))
        else pattern.format(value)
    )


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * width for width in widths))
    for row in rows:
        lines.append(
            "  ".join(
                str(cell).rjust(width) if index else str(cell).ljust(width)
                for index, (cell, width) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
    return "\n".join(lines)


def job_summary(job: Job) -> dict:
    return {
        "title": job.title,
        "state": job.state,
        "frames_done": job.frames_done,
        "frames_failed": job.frames_failed,
        "total_frames": job.total_frames,
        "wall_seconds": job.wall,
        "frames_per_minute": job.frames_per_minute,
        "steady_seconds_per_frame": steady_seconds_per_frame(job.records),
        "overhead_between_frames": overhead_stats(job.records),
        "lanes": lane_rows(job),
    }


def summary_table(job_dir) -> str:
    """A text summary of a job folder: totals, overhead between frames and one row per lane."""
    job = job_dir if isinstance(job_dir, Job) else load_job(job_dir)
    summary = job_summary(job)
    overhead = summary["overhead_between_frames"]
    total = f"/{job.total_frames}" if job.total_frames else ""
    lines = [
        f"{job.title}: {job.state or 'finished'}, {job.frames_done}{total} frames done, "
        f"{job.frames_failed} failed, "
        f"wall {job.wall:.1f} s, {job.frames_per_minute:.2f} frames/min",
        "overhead between frames (one lane's frame end -> its next frame start): "
        + (
            f"median {overhead['median_ms']:.1f} ms, p95 {overhead['p95_ms']:.1f} ms, "
            f"max {overhead['max_ms']:.1f} ms "
            f"over {overhead['count']} gaps"
            if overhead["count"]
            else "no lane rendered two frames"
        ),
    ]
    headers = ["lane", "frames", "failed", "s/frame", "render s", "busy %", "gap med ms", "gap max ms"]
    rows = [
        [
            row["lane"],
            str(row["frames"]),
            str(row["failed"]),
            _fmt(row["seconds_per_frame"]),
            _fmt(row["render_seconds"]),
            _fmt(row["busy_pct"], "{:.0f}"),
            _fmt(row["gap_median_ms"], "{:.1f}"),
            _fmt(row["gap_max_ms"], "{:.1f}"),
        ]
        for row in summary["lanes"]
    ]
    lines.append(format_table(headers, rows))
    return "\n".join(lines)


# -- CLI ---------------------------------------------------------------------------------------------------


def add_arguments(parser) -> None:
    parser.add_argument("job", help="a job folder (holds frames.jsonl and status.json)")
    parser.add_argument("--png", help="also draw the per-lane timeline to this PNG file")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def main(args) -> int:
    from .job_files import read_status
    from .jobs import job_path

    args.job = job_path(args.job)  # a path, or a job's id as status and resume take it
    try:
        read_status(args.job)  # a damaged status.json is one SpecError line (exit 2), not a silent empty report
        job = load_job(args.job)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from . import timeline

    phases = timeline.load(args.job)
    if args.json:
        summary = job_summary(job)
        if phases:
            summary["timeline"] = timeline.relative(phases)
        print(json.dumps(summary, indent=1))
    else:
        print(summary_table(job))
        if phases:
            print(timeline.format_table(phases))
    if args.png:
        from .chart import draw_chart

        path = draw_chart([job], args.png, title=f"{job.title} - per-lane timeline", throughput=False)
        if not args.json:
            print(f"timeline: {path}")
    return 0
