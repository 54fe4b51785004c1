"""Property-based tests (hypothesis): the frame syntax, and loading job files whatever they hold."""

import json
import os
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher import job_files
from dispatcher.frames import MAX_FRAME, MIN_FRAME, FrameSyntaxError, format_frames, output_path, parse_frames
from dispatcher.spec import JobSpec, SpecError

FRAME = st.integers(MIN_FRAME, MAX_FRAME)
SMALL_RANGE = st.tuples(st.integers(-5000, 5000), st.integers(0, 300), st.integers(1, 50))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(st.lists(SMALL_RANGE, min_size=1, max_size=6))
def test_ranges_parse_to_exactly_their_frames(ranges):
    text = ",".join(f"{start}-{start + length}x{step}" for start, length, step in ranges)
    expected = sorted({frame for start, length, step in ranges for frame in range(start, start + length + 1, step)})
    assert parse_frames(text) == expected


@FAST
@given(st.sets(FRAME, min_size=1, max_size=60))
def test_format_frames_round_trips(frames):
    assert parse_frames(format_frames(sorted(frames))) == sorted(frames)


@FAST
@given(st.text(alphabet=string.digits + "-,x:. \t" + "١٢", max_size=40) | st.text(max_size=40))
def test_any_text_is_frames_within_blender_or_a_frame_syntax_error(text):
    try:
        frames = parse_frames(text)
    except FrameSyntaxError as error:
        assert str(error)
        return
    assert frames == sorted(set(frames)) and MIN_FRAME <= frames[0] and frames[-1] <= MAX_FRAME


@FAST
@given(st.integers(-(10**40), 10**40), st.integers(0, 10**40))
def test_huge_numbers_are_refused_without_building_a_list(start, length):
    text = f"{start}-{start + length}"
    if MIN_FRAME <= start and start + length <= MAX_FRAME:
        return
    try:
        parse_frames(text)
    except FrameSyntaxError:
        return
    raise AssertionError(f"{text} was accepted")


@FAST
@given(st.sets(FRAME, min_size=2, max_size=30), st.integers(1, 8))
def test_distinct_frames_get_distinct_file_names(frames, width):
    names = {output_path("/out", "f_" + "#" * width, frame, ".png") for frame in frames}
    assert len(names) == len(frames)


def _write(folder, name, data: bytes) -> str:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as handle:
        handle.write(data)
    return folder


@FAST
@given(st.binary(max_size=200) | JSON.map(lambda value: json.dumps(value).encode()))
def test_any_spec_json_loads_or_is_one_spec_error(tmp_path, data):
    folder = _write(str(tmp_path / "job"), "spec.json", data)
    try:
        spec = job_files.load_spec(folder)
    except SpecError as error:
        assert "\n" not in str(error)
        return
    assert isinstance(spec, JobSpec)


@FAST
@given(st.sampled_from(sorted(JobSpec.__dataclass_fields__)), JSON)
def test_one_field_of_a_real_spec_replaced_by_anything(tmp_path, field, value):
    spec = JobSpec(blend="/scenes/shot.blend", output_dir="/renders/shot", frames="1-10").to_dict()
    spec[field] = value
    folder = _write(str(tmp_path / "job"), "spec.json", json.dumps(spec).encode())
    try:
        loaded = job_files.load_spec(folder)
    except SpecError as error:
        assert "\n" not in str(error) and "spec.json is damaged" in str(error)
        return
    assert loaded.validate() is loaded  # what loads is a spec the farm can run


@FAST
@given(st.binary(max_size=200) | JSON.map(lambda value: json.dumps(value).encode()))
def test_any_status_json_loads_or_is_one_spec_error(tmp_path, data):
    from dispatcher.status_text import status_table

    folder = _write(str(tmp_path / "job"), "status.json", data)
    try:
        status = job_files.read_status(folder)
    except SpecError as error:
        assert "\n" not in str(error)
        return
    status_table(status)  # what loads can be shown


STATUS_KEYS = ["job_id", "state", "phase", "elapsed", "frames", "lanes", "failed_frames", "message", "eta_seconds"]
LANE_KEYS = ["name", "device", "state", "frames_done", "seconds_per_frame", "last_error", "blocklisted", "frame"]
LANE = st.fixed_dictionaries({}, optional={key: JSON for key in LANE_KEYS})
STATUS = st.fixed_dictionaries(
    {}, optional={**{key: JSON for key in STATUS_KEYS}, "lanes": st.lists(LANE, max_size=3) | JSON}
)


@FAST
@given(STATUS)
def test_a_status_with_known_keys_holding_anything_loads_and_shows_or_is_one_spec_error(tmp_path, status):
    from dispatcher.status_text import status_table

    folder = _write(str(tmp_path / "job"), "status.json", json.dumps(status).encode())
    try:
        loaded = job_files.read_status(folder)
    except SpecError as error:
        assert "\n" not in str(error)
        return
    status_table(loaded)
