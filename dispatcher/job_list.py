"""``python -m dispatcher jobs``: running, queued and recent jobs (state, progress, cards, output)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from . import jobs

RECENT = 10


def job_row(job_dir: str) -> dict | None:
    """One job's line: what its status says, corrected for a dispatcher that is gone."""
    try:
        spec = jobs.load_spec(job_dir)
    except Exception:
        return None
    status: Mapping[str, Any] = jobs.read_status(job_dir) or {}
    state = status.get("state") or "created"
    running = jobs.is_running(job_dir)
    if state not in jobs.TERMINAL_STATES and not running:
        state = "stopped"
    elif running and state not in ("queued", "running"):
        state = "running"  # a resume has started and not written its first status yet
    frames = status.get("frames") or {}
    cards = sorted({lane.get("device", "") for lane in status.get("lanes", []) if lane.get("device")})
    return {
        "job_id": spec.job_id or os.path.basename(job_dir),
        "job_dir": job_dir,
        "state": state,
        "phase": status.get("phase") or "",
        "done": frames.get("done", 0),
        "total": frames.get("total", 0),
        "cards": cards or ([f"GPU {gpu}" for gpu in spec.gpus] if spec.gpus else []),
        "output": spec.output_dir,
        "updated_at": status.get("updated_at") or os.path.getmtime(os.path.join(job_dir, "spec.json")),
    }


def list_jobs(recent: int = RECENT) -> list[dict]:
    """Live jobs (running, then queued) first, oldest first; then the most recent others."""
    rows = [row for row in map(job_row, jobs.known_job_dirs()) if row is not None]
    live = sorted((row for row in rows if row["state"] in ("running", "queued")), key=lambda row: row["updated_at"])
    live.sort(key=lambda row: row["state"] != "running")
    others = sorted((row for row in rows if row not in live), key=lambda row: -row["updated_at"])
    return live + others[:recent]


def format_rows(rows: list[dict]) -> str:
    if not rows:
        return "no jobs"
    lines = [f"{'job':<36} {'state':<10} {'frames':>11}  {'cards':<28} output"]
    for row in rows:
        progress = f"{row['done']}/{row['total']}"
        cards = ", ".join(row["cards"]) or "-"
        lines.append(f"{row['job_id'][:36]:<36} {row['state']:<10} {progress:>11}  {cards[:28]:<28} {row['output']}")
        if row["state"] == "queued" and row["phase"]:
            lines.append(f"{'':<36} {row['phase']}")
    return "\n".join(lines)


def add_arguments(parser) -> None:
    parser.add_argument("--all", action="store_true", help="every finished job, not only the recent ones")
    parser.add_argument("--json", action="store_true")


def main(args) -> int:
    rows = list_jobs(recent=10**9 if args.all else RECENT)
    print(json.dumps(rows, indent=1) if args.json else format_rows(rows))
    return 0
