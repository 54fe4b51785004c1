"""GPU leases and a first-come queue across jobs, kept under the jobs root (``.leases/``).

A running job holds a lease (a ``filelock`` lock, dropped by the kernel when the job's process ends,
``kill -9`` included) on every card its lanes use, until it ends; its lanes share it, so m workers per
GPU stay possible inside one job. A job whose cards are all leased joins ``queue.json`` and waits; it
takes the free cards that make up whole lanes as soon as no job that queued earlier wants them, so it
may start at once on part of its cards. The queue file is changed only under ``queue.lock``; entries
of processes that are gone are dropped.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

from filelock import FileLock

from .output_lock import HeldLock
from .spec import write_json_atomic

LEASES = ".leases"


def leases_dir(jobs_root: str) -> str:
    path = os.path.join(jobs_root, LEASES)
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def _start_time(pid: int) -> float | None:
    try:
        import psutil

        return round(psutil.Process(pid).create_time(), 2)
    except Exception:
        return None


def _alive(entry: dict) -> bool:
    return entry.get("started") is not None and _start_time(entry.get("pid", 0)) == entry.get("started")


def _card_file(card: str) -> str:
    return "card-" + "".join(char if char.isalnum() or char in "-_" else "_" for char in card)


class CardLeases:
    """The leases one job holds, and its place in the queue while it waits for them."""

    def __init__(self, jobs_root: str, job_id: str, job_dir: str):
        self.root = leases_dir(jobs_root)
        self.job_id, self.job_dir = job_id, job_dir
        self.me = {"job_id": job_id, "job_dir": job_dir, "pid": os.getpid(), "started": _start_time(os.getpid())}
        self.held: dict[str, HeldLock] = {}
        self._mutex = FileLock(os.path.join(self.root, "queue.lock"), thread_local=False)

    def _is_me(self, entry: dict) -> bool:
        return entry.get("pid") == self.me["pid"] and entry.get("job_id") == self.job_id

    # -- the queue file (always under the mutex) ---------------------------------------------------
    def _load_queue(self) -> list[dict]:
        try:
            with open(os.path.join(self.root, "queue.json"), encoding="utf-8") as handle:
                return [entry for entry in json.load(handle) if _alive(entry)]
        except (OSError, ValueError, TypeError):
            return []

    def _save_queue(self, entries: list[dict]) -> None:
        write_json_atomic(os.path.join(self.root, "queue.json"), entries)

    def holder(self, card: str) -> dict:
        try:
            with open(os.path.join(self.root, _card_file(card) + ".json"), encoding="utf-8") as handle:
                holder = json.load(handle)
        except (OSError, ValueError):
            return {}
        return holder if _alive(holder) else {}

    # -- taking cards ----------------------------------------------------------------------------
    def try_take(self, lanes: list[list[str]]) -> tuple[list[str], str | None]:
        """One attempt: (cards now leased, or [] and why this job waits)."""
        wanted = list(dict.fromkeys(card for lane in lanes for card in lane))
        with self._mutex:
            queue = self._load_queue()
            mine = next((index for index, entry in enumerate(queue) if self._is_me(entry)), None)
            if mine is None:
                queue.append({**self.me, "cards": wanted, "since": time.time()})
                mine = len(queue) - 1
            ahead = queue[:mine]
            claimed = {card for entry in ahead for card in entry.get("cards", [])}
            free = {card for card in wanted if card not in claimed and self._lock(card)}
            whole = [lane for lane in lanes if lane and all(card in free for card in lane)]
            taken = list(dict.fromkeys(card for lane in whole for card in lane))
            for card in free - set(taken):
                self.held.pop(card).release()
            if taken:
                del queue[mine]
                for card in taken:
                    write_json_atomic(os.path.join(self.root, _card_file(card) + ".json"), {**self.me, "card": card})
            self._save_queue(queue)
        if taken:
            return taken, None
        return [], self._why_waiting(wanted, ahead)

    def _lock(self, card: str) -> bool:
        if card in self.held:
            return True
        lock = HeldLock(os.path.join(self.root, _card_file(card) + ".lock"))
        if not lock.try_acquire():
            return False
        self.held[card] = lock
        return True

    def _why_waiting(self, wanted: list[str], ahead: list[dict]) -> str:
        """"Queued behind <job> (k of n GPUs busy)": the first earlier job that wants these cards, else a holder."""
        blocker = next((entry for entry in ahead if set(entry.get("cards", [])) & set(wanted)), None)
        holders = [self.holder(card) for card in wanted]
        busy = sum(1 for holder in holders if holder and not self._is_me(holder))
        if blocker is None:
            blocker = next((holder for holder in holders if holder), {})
        name = blocker.get("job_id") or "another job"
        return f"Queued behind {name} ({max(busy, 1)} of {len(wanted)} GPUs busy)"

    def acquire(
        self,
        lanes: list[list[str]],
        on_wait: Callable[[str], object] | None = None,
        cancelled: Callable[[], bool] = lambda: False,
        poll: float = 0.5,
    ) -> list[str] | None:
        """Wait first-come until whole lanes' cards are free; the leased cards, or None when cancelled."""
        while True:
            taken, why = self.try_take(lanes)
            if taken:
                return taken
            if on_wait and why:
                on_wait(why)
            if cancelled():
                self.leave_queue()
                return None
            time.sleep(poll)

    def leave_queue(self) -> None:
        with self._mutex:
            self._save_queue([entry for entry in self._load_queue() if not self._is_me(entry)])

    def release(self) -> None:
        """Give every card back at once (under the queue lock, so a waiter sees them all free together)."""
        if not self.held:
            return
        with self._mutex:
            for card, lock in list(self.held.items()):
                try:
                    os.remove(os.path.join(self.root, _card_file(card) + ".json"))
                except OSError:
                    pass
                lock.release()
            self.held.clear()


    def queue(self) -> list[dict]:
        """Jobs waiting for cards, first come first."""
        with self._mutex:
            return self._load_queue()


def queued_jobs(jobs_root: str) -> list[dict]:
    return CardLeases(jobs_root, "", "").queue()
