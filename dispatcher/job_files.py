"""Reading a job folder's files strictly: damage is one SpecError line (exit 2), never a traceback.

A hand-edited or damaged ``spec.json`` or ``status.json`` (not UTF-8, not JSON, not an object, a
field of the wrong type, an impossible value) is named with the file and what is wrong with it. Nothing
is deleted or rewritten: the user decides.
"""

from __future__ import annotations

import json
import os
import types
import typing

from .spec import JobSpec, SpecError
from .status import JobStatus

MAX_BYTES = 64 * 2**20  # a job file is a few KiB; a huge one is damage, not something to load
NUMBER = (int, float)
# What the commands read from status.json: containers must be what they are; a value may be null.
STATUS_FIELDS = {"state": str, "phase": str, "job_id": str, "message": str, "elapsed": NUMBER,
                 "eta_seconds": NUMBER, "frames": dict, "lanes": list, "failed_frames": dict}  # fmt: skip
LANE_FIELDS = {"name": str, "device": str, "state": str, "last_error": str, "phase": str, "frames_done": NUMBER,
               "seconds_per_frame": NUMBER, "frame": int, "sample": NUMBER, "samples": NUMBER}  # fmt: skip
CONTAINERS = (dict, list)


def read_json_object(path: str, what: str) -> dict:
    """The JSON object in ``path``; SpecError naming ``what`` when it is unreadable or not an object."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise SpecError(f"{what} is damaged: larger than {MAX_BYTES // 2**20} MiB")
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise SpecError(f"{what} is damaged: not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise SpecError(f"{what} is damaged: not JSON ({error.msg} at line {error.lineno})") from None
    except RecursionError:
        raise SpecError(f"{what} is damaged: nested too deeply") from None
    except OSError as error:
        raise SpecError(f"cannot read {what}: {error.strerror}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{what} is damaged: a JSON {type(data).__name__}, not an object")
    return data


def load_spec(job_dir: str) -> JobSpec:
    """The job's spec, type-checked and validated; SpecError for a folder that is not a job or is damaged."""
    path = os.path.join(job_dir, "spec.json")
    if not os.path.isfile(path):
        raise SpecError(f"{job_dir} is not a job folder (no spec.json)")
    what = f"{path}"
    data = read_json_object(path, what)
    hints = typing.get_type_hints(JobSpec)
    for name, value in data.items():
        if name in hints and not _matches(value, hints[name]):
            raise SpecError(f"{what} is damaged: {name} is {value!r}, not {_describe(hints[name])}")
    for required in ("blend", "output_dir"):
        if required not in data:
            raise SpecError(f"{what} is damaged: no {required}")
    for name in ("blend", "output_dir"):  # the job may run from another folder: relative paths would move
        if isinstance(data[name], str) and not os.path.isabs(data[name]):
            raise SpecError(f"{what} is damaged: {name} {data[name]!r} is not an absolute path")
    try:
        spec = JobSpec.from_dict(data)
        return spec.validate()
    except SpecError as error:
        raise SpecError(f"{what} is damaged: {error}") from None
    except (TypeError, ValueError, AttributeError) as error:
        raise SpecError(f"{what} is damaged: {error}") from None


def read_status(job_dir: str) -> JobStatus | None:
    """The job's status, or None when it has none yet; SpecError when status.json is damaged.

    (``status.read_status``, for the running job and the panel, reads damage with defaults instead.)
    """
    path = os.path.join(job_dir, "status.json")
    if not os.path.exists(path):
        return None
    status = read_json_object(path, path)
    _check_fields(status, STATUS_FIELDS, path, "")
    for lane in status.get("lanes") or []:
        if not isinstance(lane, dict) or not isinstance(lane.get("name"), str):
            raise SpecError(f"{path} is damaged: a lane is not an object with a name")
        _check_fields(lane, LANE_FIELDS, path, f"lane {lane['name']!r}: ")
    for name, value in (status.get("frames") or {}).items():
        if not isinstance(value, NUMBER) or isinstance(value, bool):
            raise SpecError(f"{path} is damaged: frames.{name} is not a number")
    return JobStatus.from_json(status)


def _check_fields(data: dict, fields: dict, path: str, where: str) -> None:
    for name, kind in fields.items():
        value = data.get(name)
        if value is None and name in data and kind in CONTAINERS:
            raise SpecError(f"{path} is damaged: {where}{name} is null")
        if value is not None and (not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)):
            raise SpecError(f"{path} is damaged: {where}{name} is {_kind(value)}, not {_kind(kind)}")


def _kind(value) -> str:
    kinds = value if isinstance(value, tuple) else (value,) if isinstance(value, type) else (type(value),)
    names = {dict: "an object", list: "a list", str: "text", int: "a number", float: "a number", bool: "true/false"}
    return " or ".join(dict.fromkeys(names.get(kind, "null") for kind in kinds))


def _matches(value, hint) -> bool:
    """Whether a JSON value fits a JobSpec annotation (ints pass for floats, lists for tuples)."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        origin = typing.get_origin(option) or option
        if option is type(None) and value is None:
            return True
        if origin is bool and isinstance(value, bool):
            return True
        if origin is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if origin is float and isinstance(value, int | float) and not isinstance(value, bool):
            return True
        if origin is str and isinstance(value, str):
            return True
        if origin in (list, tuple) and isinstance(value, list):
            item = (typing.get_args(option) or (object,))[0]
            return all(isinstance(element, item) and not isinstance(element, bool) for element in value)
        if origin is dict and isinstance(value, dict):
            return True
    return False


def _describe(hint) -> str:
    return str(hint).replace("typing.", "").replace("NoneType", "null")
