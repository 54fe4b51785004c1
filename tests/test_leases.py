"""GPU leases and the first-come queue across jobs, with real processes (cards are names, no GPU needed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

from farmtest import ROOT, wait_for

from dispatcher.leases import CardLeases, queued_jobs

TAKER = textwrap.dedent(
    """
    import json, sys, time
    from dispatcher.leases import CardLeases
    root, job, cards, hold, log = sys.argv[1:6]
    def note(**event):
        with open(log, "a") as handle:
            handle.write(json.dumps({"job": job, "t": time.time(), **event}) + "\\n")
    leases = CardLeases(root, job, "/jobs/" + job)
    said = []
    def waiting(why):
        if why not in said:
            said.append(why)
            note(event="waiting", why=why)
    taken = leases.acquire([[card] for card in cards.split(",")], on_wait=waiting, poll=0.05)
    note(event="got", cards=taken)
    time.sleep(float(hold))
    note(event="released", cards=taken)
    leases.release()
    """
)


def take(root, job, cards, hold, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", TAKER, str(root), job, cards, str(hold), str(log)], cwd=ROOT)


def events(log) -> list[dict]:
    if not os.path.exists(log):
        return []
    with open(log) as handle:
        return [json.loads(line) for line in handle]


def seen(log, job, event):
    return next((item for item in events(log) if item["job"] == job and item["event"] == event), None)


def test_jobs_queue_first_come_and_never_share_a_card(tmp_path):
    log = tmp_path / "events.jsonl"
    first = take(tmp_path, "job-a", "c0,c1", 1.5, log)
    wait_for(lambda: seen(log, "job-a", "got"), timeout=20, what="job-a to lease its cards")
    second = take(tmp_path, "job-b", "c0,c1", 1.0, log)
    wait_for(lambda: seen(log, "job-b", "waiting"), timeout=20, what="job-b to queue")
    third = take(tmp_path, "job-c", "c1", 0.2, log)
    wait_for(lambda: seen(log, "job-c", "waiting"), timeout=20, what="job-c to queue")
    assert [entry["job_id"] for entry in queued_jobs(str(tmp_path))] == ["job-b", "job-c"]
    for process in (first, second, third):
        assert process.wait(timeout=60) == 0
    assert seen(log, "job-b", "waiting")["why"] == "Queued behind job-a (2 of 2 GPUs busy)"
    assert seen(log, "job-c", "waiting")["why"].startswith("Queued behind job-")
    assert seen(log, "job-a", "got")["cards"] == ["c0", "c1"] == seen(log, "job-b", "got")["cards"]
    # first come: job-c (queued after job-b, wanting one of its cards) waits for job-b, not only for job-a
    assert seen(log, "job-c", "got")["t"] >= seen(log, "job-b", "released")["t"]
    holding: dict[str, str] = {}
    for item in sorted(events(log), key=lambda item: item["t"]):
        for card in item.get("cards", []):
            if item["event"] == "got":
                assert card not in holding, f"{item['job']} got {card} while {holding.get(card)} held it"
                holding[card] = item["job"]
            else:
                del holding[card]
    assert queued_jobs(str(tmp_path)) == []


def test_a_job_starts_at_once_on_the_free_card(tmp_path):
    log = tmp_path / "events.jsonl"
    first = take(tmp_path, "job-a", "c0", 30, log)
    wait_for(lambda: seen(log, "job-a", "got"), timeout=20, what="job-a to lease c0")
    started = time.time()
    second = take(tmp_path, "job-b", "c0,c1", 0, log)
    assert second.wait(timeout=30) == 0
    assert seen(log, "job-b", "got")["cards"] == ["c1"] and not seen(log, "job-b", "waiting")
    assert seen(log, "job-b", "got")["t"] - started < 10
    os.kill(first.pid, signal.SIGKILL)  # the lease dies with its holder
    first.wait()
    leases = CardLeases(str(tmp_path), "job-d", "/jobs/job-d")
    assert leases.try_take([["c0"]])[0] == ["c0"]
    assert leases.holder("c0")["job_id"] == "job-d"
    leases.release()
    assert leases.holder("c0") == {}
