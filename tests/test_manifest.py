"""The output folder's manifest: which job rendered which frame from which .blend content and settings."""

from __future__ import annotations

import os

from dispatcher.images import check_image
from dispatcher.manifest import Identity, Manifest, classify, file_hash, settings_hash

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c63606060"
    "60000000050001a5f645400000000049454e44ae426082"
)


def write_frames(out, frames):
    for frame in frames:
        (out / f"f_{frame:04d}.png").write_bytes(PNG)


def test_png_fixture_is_valid(tmp_path):
    (tmp_path / "a.png").write_bytes(PNG)
    assert check_image(str(tmp_path / "a.png")) is None


def test_own_intact_frames_are_done_whatever_the_policy_and_others_depend_on_it(tmp_path):
    out = tmp_path
    write_frames(out, range(1, 7))
    path = lambda frame: str(out / f"f_{frame:04d}.png")  # noqa: E731
    me = Identity("job-b", "/p/shot.blend", "h2", settings_hash({"samples": 4}))
    manifest = Manifest(str(out))
    manifest.add(path(1), 1, me)  # this job's own frame
    manifest.add(path(2), 2, Identity("job-a", "/p/shot.blend", "h2", me.settings))  # same file, same settings
    manifest.add(path(3), 3, Identity("job-a", "/p/shot.blend", "h1", me.settings))  # earlier version
    manifest.add(path(4), 4, Identity("job-c", "/q/shot.blend", "h9", me.settings))  # another file, same name
    manifest.add(path(5), 5, me)
    manifest.close()
    (out / "f_0005.png").write_bytes(PNG[:-4])  # this job's frame, damaged since
    records = Manifest(str(out)).load()
    frames = list(range(1, 8))  # 6 exists unrecorded; 7 is missing

    overwrite = classify(frames, path, records, me, keep_existing=False, check=check_image)
    assert overwrite.done_before == [1] and overwrite.to_render == [2, 3, 4, 5, 6, 7] and not overwrite.kept

    keep = classify(frames, path, records, me, keep_existing=True, check=check_image)
    assert keep.done_before == [1] and keep.kept == [2, 3, 4, 6] and keep.to_render == [5, 7]
    assert keep.kept_from == {
        "job job-a (same file and settings)": 1,
        "job job-a (an earlier version of this .blend)": 1,
        "job job-c (another .blend: /q/shot.blend)": 1,
        "an unknown render (not in the folder's manifest)": 1,
    }
    assert keep.kept_summary().startswith("kept 4 existing frame(s) instead of rendering them: ")


def test_last_line_wins_torn_lines_are_ignored_and_compaction_keeps_the_latest(tmp_path):
    write_frames(tmp_path, [1])
    path = str(tmp_path / "f_0001.png")
    manifest = Manifest(str(tmp_path))
    for number in range(300):
        manifest.add(path, 1, Identity(f"job-{number}", "/b", "h", "s"))
    manifest.close()
    with open(manifest.path, "a", encoding="utf-8") as handle:
        handle.write('{"file": "f_0001.png", "job"')  # a torn last line
    assert manifest.load()["f_0001.png"]["job"] == "job-299"
    manifest.compact()
    with open(manifest.path, encoding="utf-8") as handle:
        assert len(handle.readlines()) == 1
    assert manifest.load()["f_0001.png"]["job"] == "job-299"


def test_file_hash_follows_the_content(tmp_path):
    blend = tmp_path / "shot.blend"
    blend.write_bytes(b"BLENDER-v500 one")
    first = file_hash(str(blend))
    blend.write_bytes(b"BLENDER-v500 two")
    assert file_hash(str(blend)) != first and len(first) == 64
    assert os.path.exists(blend)
