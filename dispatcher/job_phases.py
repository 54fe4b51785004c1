"""What a job run records beside its frames: its phases (timeline.json) and its cards' kernel markers.

The runner stamps the job's own steps here (command, dispatcher ready, frames planned, workers stopped,
exit); the supervisor stamps each lane's (LaneRun.times). After a GPU lane's first frame, the cards it
rendered on get a kernel marker (kernels.py), written on a thread so the lane's next frame is not held up.
Never imports bpy.
"""

from __future__ import annotations

import threading
import time

from . import kernels, timeline


class JobPhases:
    def __init__(self, command_started: float | None, started_wall: float) -> None:
        self.times: dict[str, float] = {"command": command_started or started_wall}
        self.marked: set[str] = set()  # GPU lanes whose kernel markers are written
        self.marking: list[threading.Thread] = []

    def stamp(self, event: str, once: bool = False) -> None:
        if not once or event not in self.times:
            self.times[event] = time.time()

    def after_frame(self, record: dict, run, driver: str | None, program: str, cache_dir_for) -> None:
        """A frame is done: the first on a GPU lane means its cards' kernels are compiled now."""
        if record.get("status") != "done" or run is None or not run.lane.is_gpu or run.lane.name in self.marked:
            return
        self.marked.add(run.lane.name)
        cache_dir = cache_dir_for(run.lane)
        self.marking.append(
            kernels.mark_lane_later(run.lane, run.devices_used, driver, program, cache_dir, run.cycles_lib)
        )

    def finish(self, job_dir: str, runs: dict | None) -> None:
        """Wait for the kernel markers, then write timeline.json (the job's and every lane's events)."""
        for thread in self.marking:
            thread.join(30.0)
        self.stamp("exit")
        if runs is not None:
            try:
                timeline.write(job_dir, self.times, {name: run.times for name, run in runs.items()})
            except OSError:
                pass
