"""What a run may write, what it must render, and on which cards: the runner's one gate.

The runner holds one ``OutputGuard`` per run. It takes the output folder's lock (or waits for it),
knows this job's identity (job id, source .blend, the SHA-256 of the file the workers open, a hash of
the pixel-changing settings), splits the frames with the folder's manifest, records every frame the
run puts in place, keeps the scene's placeholders, and holds the run's GPU leases (leases.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from .images import check_image
from .leases import CardLeases
from .manifest import MANIFEST, Classified, Identity, Manifest, classify, file_hash, settings_hash
from .missing_marks import NAME as MISSING_MARKS
from .output_lock import OUTPUT_LOCK, OutputLock, describe_owner
from .spec import JobSpec, write_json_atomic

if TYPE_CHECKING:
    from .lanes import Lane

IDENTITY_FILE = "identity.json"
FOLDER_FILES = (MANIFEST, OUTPUT_LOCK, MISSING_MARKS)  # what the farm keeps in an output folder besides frames


def source_blend(spec: JobSpec) -> str:
    """The artist's .blend (the add-on renders a snapshot of it inside the job folder)."""
    return os.path.realpath(spec.extra.get("source_blend") or spec.extra.get("audio_blend") or spec.blend)


def pixel_settings(spec: JobSpec, extension: str) -> dict:
    """The job's own overrides that change what a frame looks like (the rest is in the .blend's hash)."""
    return {
        "samples": spec.samples,
        "resolution": list(spec.resolution) if spec.resolution else None,
        "extension": extension,
    }


def blend_identity(job_dir: str, blend: str) -> str:
    """The .blend's SHA-256, cached in the job folder while the file's size and time stay the same."""
    stat = os.stat(blend)
    key = {"path": blend, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    cache = os.path.join(job_dir, IDENTITY_FILE)
    try:
        with open(cache, encoding="utf-8") as handle:
            cached = json.load(handle)
        if all(cached.get(name) == value for name, value in key.items()):
            return cached["sha256"]
    except (OSError, ValueError, KeyError):
        pass
    digest = file_hash(blend)
    write_json_atomic(cache, {**key, "sha256": digest})
    return digest


class OutputGuard:
    """The output folder's lock, manifest and this job's identity for one run."""

    def __init__(self, spec: JobSpec, job_dir: str):
        self.spec = spec
        self.job_dir = job_dir
        self.lock = OutputLock(spec.output_dir, spec.job_id, job_dir)
        self.manifest = Manifest(spec.output_dir)
        self.identity: Identity | None = None
        self.blend_hash = ""
        self.plan: Classified | None = None
        self.leases: CardLeases | None = None

    def claim(self, on_wait: Callable[[str], object], cancelled: Callable[[], bool] = lambda: False) -> bool:
        """Take the folder (raise Busy, or wait with the spec's ``wait_for_output``); False when cancelled."""

        def waiting(owner: dict) -> None:
            on_wait(f"Waiting for {describe_owner(owner)} to finish writing the output folder")

        if not self.lock.acquire(wait=self.spec.wait_for_output, on_wait=waiting, cancelled=cancelled):
            return False
        self.blend_hash = blend_identity(self.job_dir, self.spec.blend)
        return True

    def classify(self, frames: list[int], final_path: Callable[[int], str], extension: str,
                 redo: set[int] | frozenset[int] = frozenset(), own: set[int] | frozenset[int] = frozenset(),
                 ) -> Classified:  # fmt: skip
        """This job's intact frames, the existing frames it keeps (skip policy) and those it renders
        (``redo``: rendered whatever the manifest says; ``own``: this job's, found intact elsewhere)."""
        settings = settings_hash(pixel_settings(self.spec, extension))
        self.identity = Identity(self.spec.job_id, source_blend(self.spec), self.blend_hash, settings)
        records = self.manifest.load()
        keep = self.spec.overwrite == "skip"
        self.plan = classify(frames, final_path, records, self.identity, keep_existing=keep, check=check_image,
                             redo=redo, own=own)
        if self.plan.to_render:
            self.manifest.compact(records)
        return self.plan

    def record(self, event: dict) -> None:
        """A frames.jsonl event: a frame put in place ("done") goes into the folder's manifest."""
        if event.get("status") != "done" or self.identity is None:
            return
        folder = os.path.realpath(self.spec.output_dir)
        for path in event.get("files") or [event["path"]]:  # every file of the frame in the output folder
            if os.path.dirname(os.path.realpath(path)) == folder and os.path.exists(path):
                self.manifest.add(path, event["frame"], self.identity)

    def counts(self) -> dict[str, int]:
        """Status counts: this job's earlier frames, and existing frames kept by the skip policy."""
        return {"done_before": len(self.plan.done_before), "kept": len(self.plan.kept)} if self.plan else {}

    def kept_from(self) -> dict[str, int]:
        return dict(self.plan.kept_from) if self.plan else {}

    def kept_summary(self) -> str | None:
        return self.plan.kept_summary() if self.plan else None

    def lease(self, lanes: list[Lane], on_wait: Callable[[str], object], cancelled: Callable[[], bool]) -> list | None:
        """Wait first-come for the GPU lanes' cards. None: cancelled; [] all leased; else the cards leased."""
        wanted = [[gpu.uuid for gpu in lane.gpus] for lane in lanes if lane.gpus]
        if not wanted:
            return []
        from .jobs import default_jobs_root

        self.leases = CardLeases(default_jobs_root(), self.spec.job_id, self.job_dir)
        taken = self.leases.acquire(wanted, on_wait=on_wait, cancelled=cancelled)
        if taken is None or len(taken) == len({card for lane in wanted for card in lane}):
            return None if taken is None else []
        return taken

    def placeholder(self, final: str) -> str:
        """With the scene's Placeholders on, an empty file marks a frame being rendered (as Blender does)."""
        if self.spec.placeholders and not os.path.exists(final):
            open(final, "ab").close()
        return final

    def drop_placeholders(self, finals: Iterable[str]) -> None:
        """Frames not finished leave no empty placeholder behind (as Blender does on a cancel)."""
        if not self.spec.placeholders:
            return
        for final in finals:
            if os.path.exists(final) and os.path.getsize(final) == 0:
                os.remove(final)

    def release(self) -> None:
        """Give the folder and the cards back (idempotent)."""
        self.manifest.close()
        self.lock.release()
        if self.leases is not None:
            self.leases.release()
