"""Shared fixtures: real bpy scenes, built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from farmtest import build_scene


@pytest.fixture(scope="session", autouse=True)
def private_jobs_root(tmp_path_factory):
    """Jobs, GPU leases and the job registry of the tests stay out of the user's own cache folder."""
    if not os.environ.get("GRF_JOBS_DIR"):
        os.environ["GRF_JOBS_DIR"] = str(tmp_path_factory.mktemp("grf") / "jobs")
    return os.environ["GRF_JOBS_DIR"]


@pytest.fixture(scope="session")
def scenes(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("scenes")


@pytest.fixture(scope="session")
def tiny_blend(scenes) -> Path:
    """8 frames, 32x32, 4 samples: renders in well under a second per frame on one core."""
    return build_scene(scenes / "tiny.blend")


@pytest.fixture(scope="session")
def slow_blend(scenes) -> Path:
    """24 frames that take long enough per frame (~0.3-1 s) to cancel or kill a worker mid-job."""
    return build_scene(scenes / "slow scene ünï 'q'.blend", 24, "96x96", 96)
