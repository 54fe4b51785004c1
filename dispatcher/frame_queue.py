"""The dynamic frame queue: lanes take one frame at a time, so a faster lane takes more frames."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FrameQueue:
    """Pending, in-flight, done and failed frames, with per-frame failure history.

    A frame that fails on ``distinct_lanes_to_fail`` different lanes, or ``max_attempts`` times in
    all, is marked failed; otherwise it goes back to the front of the queue.
    """

    pending: list[int] = field(default_factory=list)
    in_flight: dict[int, str] = field(default_factory=dict)
    done: set[int] = field(default_factory=set)
    skipped: set[int] = field(default_factory=set)
    failed: dict[int, str] = field(default_factory=dict)
    failed_on: dict[int, set[str]] = field(default_factory=dict)
    attempts: dict[int, int] = field(default_factory=dict)
    backups: dict[int, str] = field(default_factory=dict)  # frame -> lane rendering a second copy
    distinct_lanes_to_fail: int = 2
    max_attempts: int = 3
    planned: bool = False

    def plan(self, frames: list[int], already_done: set[int] | None = None) -> None:
        already_done = already_done or set()
        self.skipped = {frame for frame in frames if frame in already_done}
        self.pending = [frame for frame in frames if frame not in already_done]
        self.planned = True

    @property
    def total(self) -> int:
        return len(self.pending) + len(self.in_flight) + len(self.done) + len(self.skipped) + len(self.failed)

    @property
    def finished(self) -> bool:
        return self.planned and not self.pending and not self.in_flight

    def take(self, lane: str, other_live_lanes: int) -> int | None:
        """The next frame for ``lane``; frames that already failed there wait for another lane."""
        for index, frame in enumerate(self.pending):
            if lane not in self.failed_on.get(frame, ()) or other_live_lanes == 0:
                del self.pending[index]
                self.in_flight[frame] = lane
                self.attempts[frame] = self.attempts.get(frame, 0) + 1
                return frame
        return None

    def back_up(self, frame: int, lane: str) -> None:
        """``lane`` renders a second copy of an in-flight frame; the first valid result wins."""
        self.backups[frame] = lane

    def complete(self, frame: int) -> None:
        self.in_flight.pop(frame, None)
        self.backups.pop(frame, None)
        self.done.add(frame)

    def fail(self, frame: int, lane: str, error: str) -> bool:
        """Record a failure; True when the frame is now failed for good."""
        if frame in self.backups:  # one copy failed; the other is still rendering
            backup = self.backups.pop(frame)
            if backup != lane:
                self.failed_on.setdefault(frame, set()).add(lane)
                self.in_flight[frame] = backup
            return False
        self.in_flight.pop(frame, None)
        lanes = self.failed_on.setdefault(frame, set())
        lanes.add(lane)
        if len(lanes) >= self.distinct_lanes_to_fail or self.attempts.get(frame, 0) >= self.max_attempts:
            self.failed[frame] = error
            return True
        self.pending.insert(0, frame)
        return False

    def release(self, frame: int) -> None:
        """Put an in-flight frame back without blaming anyone (cancel, shutdown)."""
        if self.backups.pop(frame, None) is not None:
            return  # the other copy still holds the frame; releasing that one requeues it
        if self.in_flight.pop(frame, None) is not None:
            self.attempts[frame] = max(0, self.attempts.get(frame, 1) - 1)
            self.pending.insert(0, frame)

    def abandon(self, reason: str) -> None:
        """No lane is left: every frame still pending is failed with ``reason``."""
        for frame in self.pending:
            self.failed[frame] = reason
        self.pending.clear()

    def counts(self) -> dict:
        return {
            "total": self.total,
            "done": len(self.done) + len(self.skipped),
            "rendered": len(self.done),
            "skipped": len(self.skipped),
            "failed": len(self.failed),
            "in_flight": len(self.in_flight),
            "remaining": len(self.pending) + len(self.in_flight),
        }
