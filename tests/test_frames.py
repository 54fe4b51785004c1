"""Frame syntax and output naming."""

import pytest

from dispatcher.frames import FrameSyntaxError, format_frames, output_path, parse_frames, scene_frames


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1-5", [1, 2, 3, 4, 5]),
        ("1-10x3", [1, 4, 7, 10]),
        ("5,9,12-14", [5, 9, 12, 13, 14]),
        ("7", [7]),
        ("3,1-3", [1, 2, 3]),
        ("-2-1", [-2, -1, 0, 1]),
        (" 1 - 3 , 8 ", [1, 2, 3, 8]),
        ("1..4", [1, 2, 3, 4]),
    ],
)
def test_parse_frames(text, expected):
    assert parse_frames(text) == expected


@pytest.mark.parametrize("text", ["", "  ", "10-1", "a-b", "1-5x0", "1-", ",", "1-3-5"])
def test_bad_frames_are_refused_with_a_reason(text):
    with pytest.raises(FrameSyntaxError) as error:
        parse_frames(text)
    assert str(error.value)


def test_reversed_range_names_the_problem():
    with pytest.raises(FrameSyntaxError, match="reversed"):
        parse_frames("250-1")


def test_scene_frames_follow_blender_step():
    assert scene_frames(1, 10, 4) == [1, 5, 9]
    with pytest.raises(FrameSyntaxError):
        scene_frames(10, 1)


def test_format_frames_round_trips():
    for frames in ([1, 2, 3, 7, 9, 11], [5], [1, 4, 7, 10, 20], list(range(1, 251))):
        assert parse_frames(format_frames(frames)) == frames


def test_output_path_pads_like_blender(tmp_path):
    assert output_path(str(tmp_path), "frame_####", 7, ".png") == str(tmp_path / "frame_0007.png")
    assert output_path(str(tmp_path), "shot_##_v", 123, ".exr") == str(tmp_path / "shot_123_v.exr")
    assert output_path(str(tmp_path), "f", 3, ".png") == str(tmp_path / "f0003.png")
    assert output_path(str(tmp_path), "x_####.png", 1, ".png") == str(tmp_path / "x_0001.png")
