"""The last minutes of each card's NVML utilisation, memory and temperature, and of the CPU load."""

from __future__ import annotations

import time
from collections import deque

from ..devices import detect_gpus

HISTORY_SECONDS = 300.0
INTERVAL = 2.0


class DeviceHistory:
    """Samples NVML (through devices.detect_gpus) and psutil; keeps HISTORY_SECONDS of them."""

    def __init__(self, interval: float = INTERVAL, seconds: float = HISTORY_SECONDS, detect=detect_gpus):
        self.interval = interval
        self.detect = detect
        size = max(2, int(seconds / interval) + 1)
        self.cards: dict[int, dict] = {}
        self.samples: dict[int, deque] = {}
        self.cpu: deque = deque(maxlen=size)
        self.size = size
        self.reason: str | None = None
        self.driver: str | None = None

    def sample(self) -> None:
        """Take one sample of every card and of the CPU (called from a background task)."""
        report = self.detect()
        now = round(time.time(), 1)
        self.reason, self.driver = report.reason, report.driver
        for gpu in report.gpus:
            self.cards[gpu.index] = {"index": gpu.index, "name": gpu.name, "memory_total_mb": gpu.memory_total_mb}
            history = self.samples.setdefault(gpu.index, deque(maxlen=self.size))
            history.append([now, gpu.utilization_pct, gpu.memory_used_mb, gpu.temperature_c])
        try:
            import psutil

            self.cpu.append([now, psutil.cpu_percent(interval=None), psutil.virtual_memory().percent])
        except ImportError:
            pass

    def to_dict(self) -> dict:
        """[t, utilisation %, memory MiB, temperature C] per card; [t, CPU %, RAM %] for the CPU."""
        cards = [{**card, "samples": list(self.samples.get(index, ()))} for index, card in sorted(self.cards.items())]
        return {
            "cards": cards,
            "reason": None if cards else self.reason,
            "driver": self.driver,
            "cpu": list(self.cpu),
            "window_seconds": (self.size - 1) * self.interval,
        }
