"""A job's status as text: the summary table the CLI prints, and live progress while it runs."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

from .status import JobStatus

if TYPE_CHECKING:
    from .frame_queue import FrameQueue
    from .supervisor import Supervisor


def failure_message(supervisor: Supervisor, queue: FrameQueue) -> str:
    """Why a job ended failed, in one line: the fatal start error, the first failed frame, or the last error."""
    if supervisor.fatal_errors and all(run.blocklisted for run in supervisor.runs.values()):
        return supervisor.fatal_errors[0]
    if queue.failed:
        frame, error = next(iter(sorted(queue.failed.items())))
        return f"{len(queue.failed)} frame(s) failed; frame {frame}: {error}"
    errors = [run.last_error for run in supervisor.runs.values() if run.last_error]
    return errors[-1] if errors else "job did not finish"


def _rate(frames: int, seconds: float | None) -> str:
    return f"{60.0 * frames / seconds:.1f}" if seconds and frames else "-"


def status_table(status: JobStatus) -> str:
    """The job, one row per lane, the frame totals, failed frames and the message."""
    frames = status.frames
    elapsed = status.elapsed or 0.0
    lines = [
        f"job {status.job_id}: {status.state} ({status.phase})",
        f"{'lane':<12} {'device':<34} {'state':<10} {'frames':>6} {'s/frame':>8} {'frames/min':>10}",
    ]
    for lane in status.lanes:
        spf = lane.seconds_per_frame
        state = "blocklist" if lane.blocklisted else lane.state
        lines.append(
            f"{lane.name:<12} {lane.device[:34]:<34} {state:<10} {lane.frames_done:>6} "
            f"{(f'{spf:.2f}' if spf else '-'):>8} {(f'{60.0 / spf:.1f}' if spf else '-'):>10}"
        )
        if lane.last_error:
            lines.append(f"{'':<12} last error: {lane.last_error}")
    rendered = frames.get("rendered", frames.get("done", 0))
    earlier = (f"{frames.get('done_before', 0)} done earlier by this job, {frames['kept']} kept" if "kept" in frames
               else f"{frames.get('skipped', 0)} skipped")  # fmt: skip
    lines.append(
        f"frames: {frames.get('done', 0)}/{frames.get('total', 0)} done ({rendered} rendered, {earlier}, "
        f"{frames.get('failed', 0)} failed); wall {elapsed:.1f} s; {_rate(rendered, elapsed)} frames/min"
    )
    for frame, error in list(status.failed_frames.items())[:10]:
        lines.append(f"failed frame {frame}: {error}")
    if status.message:
        lines.append(status.message)
    return "\n".join(lines)


class ProgressPrinter:
    """Live progress: a redrawn block on a terminal, one line per finished frame otherwise."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None):
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.drawn = 0
        self.last_done = -1
        self.last_draw = 0.0

    def __call__(self, status: JobStatus) -> None:
        if not self.enabled:
            return
        frames = status.frames
        if self.tty:
            if time.monotonic() - self.last_draw < 0.2 and status.state == "running":
                return
            self.last_draw = time.monotonic()
            block = self._block(status)
            if self.drawn:
                self.stream.write(f"\x1b[{self.drawn}F\x1b[J")
            self.stream.write("\n".join(block) + "\n")
            self.drawn = len(block)
        elif frames.get("done", 0) != self.last_done:
            self.last_done = frames.get("done", 0)
            eta = status.eta_seconds
            self.stream.write(
                f"[{status.phase}] {frames.get('done', 0)}/{frames.get('total', 0)} frames"
                f"{f', ETA {eta:.0f} s' if eta else ''}\n"
            )
        self.stream.flush()

    def _block(self, status: JobStatus) -> list[str]:
        frames = status.frames
        eta = status.eta_seconds
        lines = [
            f"{status.phase}: {frames.get('done', 0)}/{frames.get('total', 0)} frames, "
            f"{frames.get('failed', 0)} failed, {status.elapsed or 0:.0f} s"
            + (f", ETA {eta:.0f} s" if eta else "")
        ]
        for lane in status.lanes:
            fraction = (lane.sample or 0) / lane.samples if lane.samples else 0.0
            bar = "#" * int(20 * fraction) + "-" * (20 - int(20 * fraction))
            frame = lane.frame
            lines.append(
                f"  {lane.name:<10} {lane.state:<9} "
                f"{f'frame {frame}' if frame is not None else '':<11} [{bar}] {lane.frames_done} done"
                + (f"  {lane.phase}" if lane.phase else "")
            )
        return lines

    def close(self) -> None:
        self.drawn = 0
