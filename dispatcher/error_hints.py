"""Known Blender and worker errors -> what the artist should change. A table of patterns; no bpy.

``hint(error)`` returns the short cause-and-fix sentence for the first pattern that matches, or None.
Patterns are case-insensitive regular expressions searched anywhere in the error text.
"""

from __future__ import annotations

import re

# (pattern, hint): first match wins, so the more specific patterns come first.
HINTS: list[tuple[str, str]] = [
    (r"no openimagedenoise|failed to denoise",
     "this Blender has no OpenImageDenoise; turn off Denoising in Render Properties › Sampling"),
    (r"optix.*(not|no ).*(support|available|found)|optix_error|failed to (create|load) optix",
     "OptiX does not work on this card or driver; set Device Type to CUDA in the add-on's preferences"),
    (r"out of (gpu |device )?memory|cuda_error_out_of_memory|failed to allocate",
     "the scene does not fit in the card's memory; lower texture sizes or use Simplify in Render Properties"),
    (r"illegal (memory )?address|cuda_error_launch_failed|launch failed",
     "the card crashed while rendering; update the NVIDIA driver, or render this frame on the CPU lane"),
    (r"no (compatible |cuda |optix )?(gpus?|devices?) (found|available)|cuda_error_no_device",
     "Cycles found no usable GPU; check the NVIDIA driver, or set Device Type to CPU in the preferences"),
    (r"nvml.*(not found|unavailable)|library not found",
     "no NVIDIA driver was found, so frames render on the processor; install the driver to use the GPUs"),
    (r"no space left|disk (is )?full|not enough (free )?space",
     "the disk is full; free some space or choose another Output Folder, then press Resume"),
    (r"permission denied|read-only file system|not writable",
     "the output folder cannot be written; choose another Output Folder"),
    (r"no camera|has no active camera",
     "the scene has no camera; set one in Scene Properties"),
    (r"(cannot|can't|unable to|failed to) (open|read|load).*\.blend|not a blend file|file format is not supported",
     "the saved copy of the file could not be opened; save the file and press Render again"),
    (r"auto.?exec|scripts? (are )?disabled|python (script|driver)s? (disabled|blocked)",
     "the file uses scripts or drivers; allow 'Run Scripts in the File' in the add-on's preferences"),
    (r"kernel.*(compil|build|load).*fail|failed to (compile|build|load).*kernel|nvrtc|ptx",
     "the GPU kernels could not be built; update the NVIDIA driver or set Device Type to CUDA"),
    (r"no progress|stopped responding|timed? ?out",
     "a worker stopped responding; press Resume, and lower the samples if it happens again"),
]
_COMPILED = [(re.compile(pattern, re.IGNORECASE), text) for pattern, text in HINTS]

# Noise in front of the message itself: "cpu0: ", "Error: ", "RuntimeError: ", "frame 7: ".
_SENTENCE = re.compile(r"\s(?:RuntimeError|Error):\s*")  # Blender's capitalised "Error:" starts a new message
_PREFIX = re.compile(r"^\s*(?:(?:[a-z]+\d+|frame \d+|lane \S+)\s*:\s*|(?:runtime)?error\s*:\s*)", re.IGNORECASE)


def hint(error: str | None) -> str | None:
    """The fix for a known error, or None."""
    if not error:
        return None
    for pattern, text in _COMPILED:
        if pattern.search(error):
            return text
    return None


def clean(error: str) -> str:
    """The error without lane, frame and 'Error:' prefixes, on one line, each of its sentences once."""
    text = " ".join(str(error).split())
    while True:
        stripped = _PREFIX.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped
    parts = [part.strip(" .;") for part in _SENTENCE.split(text)]  # "X Error: X" -> "X"
    text = "; ".join(dict.fromkeys(part for part in parts if part))
    half = len(text) // 2
    for cut in range(half - 1, half + 2):  # "X. X." or "X X": a message doubled within a line
        left, right = text[:cut].strip(" .;:"), text[cut:].strip(" .;:")
        if left and left == right:
            return left
    return text


def distinct(errors) -> list[str]:
    """Each different error once (after ``clean``), in first-seen order; empty ones dropped."""
    seen: dict[str, None] = {}
    for error in errors:
        if error:
            seen.setdefault(clean(error), None)
    return list(seen)
