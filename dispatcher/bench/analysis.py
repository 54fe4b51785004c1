"""The benchmark's numbers: per approach wall time, frames/min, speed-ups, the ideal bound and the targets."""

from __future__ import annotations

from .. import report, timeline
from . import goals
from .approaches import ALL_APPROACHES, BLENDER_APPROACHES, Run

TARGETS = {
    "per_card_of_ideal": goals.OF_IDEAL,  # one worker's wall for F/N frames on one GPU / per-card wall
    "vs_combined_default": 7.0,  # >= 7x faster than Blender combined (defaults), on >= 64 frames
    "vs_combined_persistent": 1.15,  # >= 1.15x faster than Blender combined + persistent data
    "overhead_ms": 50.0,  # median gap between two frames of one worker
    "auto_vs_best": 1.05,  # autotune's wall within 5 % of the best approach
}


def first_frame_seconds(run: Run) -> float | None:
    ends = [end for r in run.records if r.get("status") == "done" and (end := report._number(r.get("end"))) is not None]
    return min(ends) - run.started if ends else None


def ideal(runs: dict[str, Run], settings_lanes: int) -> dict | None:
    """The ideal bound: N lanes each as fast as one long-lived worker alone on one GPU rendering F/N
    frames (the 'single' run, start-up included); also that worker's steady pace."""
    single = runs.get("single")
    if single is None or not single.ok or not single.wall:
        return None
    done = single.job().frames_done
    if not done:
        return None
    pace = report.steady_seconds_per_frame(single.records) or single.wall / done
    return {"seconds_per_frame": pace, "frames_per_minute": settings_lanes * 60.0 * done / single.wall}


def analyse(runs: dict[str, Run], lanes: int, frames: int) -> dict:
    """Rows for the table and the targets, from the runs of one variant."""
    runs = goals.with_extrapolation(runs)  # Blender combined (defaults) on a few frames, extrapolated
    base = runs.get("combined")
    bound = ideal(runs, lanes)
    rows = []
    for name in ALL_APPROACHES:
        run = runs.get(name)
        if run is None:
            continue
        job = run.job()
        overhead = report.overhead_stats(run.records) if name not in BLENDER_APPROACHES else None
        row = {
            "approach": name,
            "title": run.title,
            "lanes": len(run.lanes),
            "frames": run.extra.get("extrapolate_to") or job.frames_done,
            "failed": job.frames_failed,
            "wall": run.wall,
            "frames_per_minute": 60.0 * (run.extra.get("extrapolate_to") or job.frames_done) / run.wall
            if run.wall
            else 0.0,
            "speedup": (base.wall / run.wall) if base and base.ok and run.wall and name != "single" else None,
            "of_ideal": None,
            "gap_median_ms": overhead["median_ms"] if overhead else None,
            "gap_p95_ms": overhead["p95_ms"] if overhead else None,
            "first_frame": first_frame_seconds(run),
            "first_frame_sent": goals.first_frame_sent(run) if name not in BLENDER_APPROACHES else None,
            "setup": goals.setup_seconds(run) if name in BLENDER_APPROACHES else None,
            "ok": run.ok,
            "error": run.error,
        }
        if bound and name != "single":
            row["of_ideal"] = row["frames_per_minute"] / bound["frames_per_minute"]
        if run.extra.get("autotune"):
            row["autotune"] = run.extra["autotune"]
        if run.extra.get("timeline"):
            row["timeline"] = timeline.relative(run.extra["timeline"], run.started)
        rows.append(row)
    return {"rows": rows, "ideal": bound, "targets": targets(runs, rows, frames)}


def targets(runs: dict[str, Run], rows: list[dict], frames: int) -> list[dict]:
    result = []
    per_card = runs.get("per-card")

    def add(name, value, limit, passed, text):
        result.append({"target": name, "value": value, "limit": limit, "pass": passed, "text": text})

    goals.judge(runs, add)
    for key, other in (("vs_combined_default", "combined"), ("vs_combined_persistent", "combined-pd")):
        base = runs.get(other)
        if per_card and base and per_card.ok and base.ok and per_card.wall:
            speedup = base.wall / per_card.wall
            limit = TARGETS[key]
            enough = frames >= 64
            add(
                f"per-card vs {other}",
                speedup,
                limit,
                (speedup >= limit) if enough else None,
                f"{speedup:.2f}x faster than Blender {other} (>= {limit}x"
                + (")" if enough else f"; not judged: {frames} < 64 frames)"),
            )
    if per_card and per_card.ok:
        stats = report.overhead_stats(per_card.records)
        if stats["count"]:
            limit = TARGETS["overhead_ms"]
            add(
                "overhead between frames",
                stats["median_ms"],
                limit,
                stats["median_ms"] <= limit,
                f"median {stats['median_ms']:.1f} ms, p95 {stats['p95_ms']:.1f} ms, max {stats['max_ms']:.1f} ms "
                f"(<= {limit:.0f} ms)",
            )
    auto = runs.get("auto")
    finished = [run for name, run in runs.items() if run.ok and name != "single" and run.wall > 0]
    if auto and auto.ok and finished:
        best = min(finished, key=lambda run: run.wall)
        ratio = auto.wall / best.wall
        limit = TARGETS["auto_vs_best"]
        add(
            "autotune vs best",
            ratio,
            limit,
            ratio <= limit,
            f"auto {auto.wall:.1f} s vs best {best.approach} {best.wall:.1f} s: {ratio:.3f}x (<= {limit})",
        )
    return result


def _f(value, pattern="{:.2f}"):
    return "-" if value is None else pattern.format(value)


def format_variant(variant: str, analysis: dict, header: str) -> str:
    rows = analysis["rows"]
    table_rows = []
    for row in rows:
        name = row["title"] + ("" if row["ok"] else " (FAILED)")
        table_rows.append(
            [
                name,
                str(row["lanes"]),
                f"{row['frames']}" + (f"+{row['failed']}F" if row["failed"] else ""),
                f"{row['wall']:.1f}",
                f"{row['frames_per_minute']:.1f}",
                _f(row["speedup"], "{:.2f}x"),
                _f(row["of_ideal"], "{:.2f}"),
                _f(row["first_frame"], "{:.1f}"),
                _f(row["gap_median_ms"], "{:.0f}"),
            ]
        )
    bound = analysis["ideal"]
    if bound:
        table_rows.append(
            [
                "ideal bound (N x one worker alone, F/N frames)",
                "",
                "",
                "",
                f"{bound['frames_per_minute']:.1f}",
                "",
                "1.00",
                "",
                "",
            ]
        )
    headers = [
        "approach",
        "lanes",
        "frames",
        "wall s",
        "frames/min",
        "vs combined",
        "of ideal",
        "1st frame s",
        "gap ms",
    ]
    lines = [f"== {variant} scene: {header}", report.format_table(headers, table_rows)]
    for target in analysis["targets"]:
        mark = {True: "PASS", False: "FAIL", None: "n/a "}[target["pass"]]
        lines.append(f"  [{mark}] {target['target']}: {target['text']}")
    for row in rows:
        if row.get("timeline"):
            lines.append(f"  {row['approach']} timeline: {timeline_line(row['timeline'])}")
        elif row.get("setup") is not None:
            lines.append(f"  {row['approach']}: Blender ready to render {row['setup']:.2f} s after launch")
    for row in rows:
        if row.get("autotune"):
            lines.append(f"  autotune chose: {row['autotune'].get('reason')}")
        if not row["ok"] and row["error"]:
            lines.append(f"  {row['approach']} failed: {row['error']}")
    return "\n".join(lines)


SHORT = (("bpy_imported", "bpy"), ("file_opened", "file"), ("devices_set", "devices"), ("ready", "ready"),
         ("first_frame_sent", "sent"), ("first_sample", "sample"), ("first_frame_done", "1st done"),
         ("last_frame_done", "last"), ("exit", "exit"))  # fmt: skip


def timeline_line(shifted: dict) -> str:
    """One line of a job's timeline, seconds from launching the command."""
    job = shifted.get("job") or {}
    parts = [f"dispatcher ready {job['dispatcher_ready']:.2f}"] if "dispatcher_ready" in job else []
    for lane, events in sorted((shifted.get("lanes") or {}).items()):
        steps = ", ".join(f"{label} {events[key]:.2f}" for key, label in SHORT if key in events)
        parts.append(f"{lane}: {steps}")
    if "exit" in job:
        parts.append(f"dispatcher exit {job['exit']:.2f}")
    return "; ".join(parts)
