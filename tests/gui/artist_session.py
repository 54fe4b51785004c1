"""A scripted artist session in a real Blender window (tests/gui/run.sh starts it under Xvfb).

Blender opens the saved scene; a timer drives the session step by step: one real mouse click (xdotool) on
the panel's Render button, found by hovering until Blender says the button under the pointer is ours, then
the panel's and the Render menu's operators. Each step waits for what the panel itself drew
(``ui.job_view.last_drawn``, written by its draw code), asserts on it and takes a screenshot.
Blender is then closed mid-render; run.sh starts a new one on the file (GRF_GUI_PHASE=reopen), which must
show the job that kept rendering. Results go to $GRF_GUI_OUT/session-<phase>.json; the exit status is 0
only when every check passed.
"""

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import traceback

import bpy

OUT = os.environ["GRF_GUI_OUT"]
EXT = os.environ.get("GRF_GUI_MODULE", "bl_ext.user_default.gpu_render_farm")
FRAMES = 24
PHASE = os.environ.get("GRF_GUI_PHASE", "main")  # main: the session; reopen: a new Blender after closing
steps: list[dict] = []


def view():
    return importlib.import_module(EXT + ".ui.job_view")


def drawn() -> dict:
    """What the panel drew last (empty before its first draw)."""
    return dict(view().last_drawn)


def check(condition, what: str) -> None:
    if not condition:
        raise AssertionError(f"{what}; the panel shows {drawn()}")


def xdotool(*args) -> str:
    return subprocess.run(["xdotool", *map(str, args)], capture_output=True, text=True, check=True).stdout


def properties():
    """(window, area, region) of the Properties editor."""
    window = bpy.context.window_manager.windows[0]
    area = next(area for area in window.screen.areas if area.type == "PROPERTIES")
    return window, area, next(region for region in area.regions if region.type == "WINDOW")


def region_rect() -> tuple[int, int, int, int]:
    """The Properties editor's main region in X screen pixels: x, y (top), width, height."""
    window, _area, region = properties()
    top = window.y + window.height - (region.y + region.height)
    return window.x + region.x, top, region.width, region.height


def op(name: str, **props) -> set:
    window, area, region = properties()
    with bpy.context.temp_override(window=window, area=area, region=region):
        return getattr(bpy.ops.grf, name)(**props)


def shot(name: str, kind: str) -> None:
    """A screenshot of the screen and one of the Properties editor; neither may be blank."""
    full = os.path.join(OUT, f"{name}.png")
    subprocess.run(["import", "-window", "root", full], check=True)
    x, y, width, height = region_rect()
    crop = os.path.join(OUT, f"panel-{name}.png")
    subprocess.run(["convert", full, "-crop", f"{width}x{min(height, 420)}+{x}+{y}", "+repage", crop], check=True)
    for path in (full, crop):
        spread = float(subprocess.run(["convert", path, "-format", "%[fx:standard_deviation]", "info:"],
                                      capture_output=True, text=True, check=True).stdout)
        check(spread > 0.02, f"{path} is blank (standard deviation {spread:.3f})")
    steps.append({"step": name, "kind": kind, "screenshot": full, "panel": drawn(), "at": time.time()})
    print(f"GUI step {name}: {drawn().get('bar')!r} | {drawn().get('lines')}", flush=True)


def until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; the panel shows {drawn()}")
        yield 0.25


def find_button(*commands: str):
    """Hover down the Properties editor until Blender reports the button under the pointer runs one of
    `commands`."""
    x0, top, width, _height = region_rect()
    window, area, region = properties()
    for dy in range(8, 360, 5):
        x, y = x0 + width // 3, top + dy
        xdotool("mousemove", x, y)
        yield 0.12
        bpy.context.window_manager.clipboard = ""
        with bpy.context.temp_override(window=window, area=area, region=region):
            if bpy.ops.ui.copy_python_command_button.poll():
                bpy.ops.ui.copy_python_command_button()
        if bpy.context.window_manager.clipboard in commands:
            return x, y
    raise AssertionError(f"no button running {' or '.join(commands)} under the pointer in the Properties editor")


def job_dir() -> str:
    return bpy.context.scene.gpu_render_farm.job_dir


def kind_is(*kinds, busy=None):
    return lambda: drawn().get("kind") in kinds and (busy is None or drawn().get("busy") == busy)


def start_with_a_real_click():
    window, area, _region = properties()
    area.spaces.active.context = "RENDER"  # the artist opens the Render tab
    area.tag_redraw()
    yield from until(lambda: drawn().get("where") == "render", 30, "the panel in the Render tab")
    check(drawn()["kind"] == "idle" and drawn()["bar"] == "No render yet", "an idle panel before the render")
    shot("01-ready", "idle")
    x, y = yield from find_button("bpy.ops.grf.render_all()")
    xdotool("mousemove", x, y, "click", "1")
    yield from until(lambda: job_dir(), 20, "the click on Render Animation on All GPUs to start a job")
    xdotool("mousemove", 600, 500)  # the artist's pointer moves on, off the button
    yield from until(kind_is("starting", "running", busy=True), 20, "the panel to show the new job")
    if drawn()["kind"] == "starting":
        check(drawn()["bar"].startswith("Starting — "), "the starting headline")
        shot("02-starting", "starting")


def message() -> str:
    """The message lines under the headline, joined back into one text."""
    return " ".join(line for line in drawn().get("lines", []) if line).replace(" …", "")


def frames_done() -> int:
    match = re.search(rf"(\d+)/{FRAMES} frames", drawn().get("bar", ""))
    return int(match.group(1)) if match else -1


def render_cancel_resume():
    yield from until(lambda: drawn()["kind"] == "running" and frames_done() >= 2, 240, "rendering with progress")
    check(re.fullmatch(r"Rendering — \d+/24 frames(, \d+:\d\d left)?", drawn()["bar"]), "the rendering headline")
    check(drawn()["buttons"]["Cancel"] and drawn()["busy"], "Cancel enabled, Render disabled while rendering")
    check(0 < drawn()["factor"] < 1, "a partly filled progress bar")
    shot("03-rendering", "running")
    started = time.monotonic()
    check(op("cancel_job") == {"FINISHED"}, "Cancel pressed")
    check(time.monotonic() - started < 0.5, f"Cancel returned in {time.monotonic() - started:.2f} s")
    yield from until(kind_is("cancelled", busy=False), 60, "the job cancelled and its dispatcher gone")
    check(re.fullmatch(r"Cancelled — \d+/24 frames done", drawn()["bar"]), "the cancelled headline")
    check(drawn()["buttons"]["Resume"], "Resume offered")
    check(re.match(r"Resume renders the snapshot of \d\d:\d\d", message()),
          "Resume says which snapshot it renders")
    shot("04-cancelled", "cancelled")
    check(op("resume_job") == {"FINISHED"}, "Resume pressed")
    yield from until(lambda: drawn().get("busy"), 5, "the panel to follow the resumed job at once")
    yield from until(kind_is("running"), 120, "the resumed job rendering")
    shot("05-resumed", "running")
    yield from until(kind_is("done", busy=False), 400, "the resumed job done and its dispatcher gone")
    check(re.fullmatch(r"Done — \d+ frames in \d+:\d\d \(\d+ frames/min\)", drawn()["bar"]), "the done headline")
    check(re.match(r"\d+ more were already there and kept", message()), "the frames kept from before the cancel")
    shot("06-done", "done")


def open_output_without_a_file_browser():
    """The chroot has no xdg-open: Open Output must say so on screen, not only in the console."""
    if shutil.which("xdg-open"):
        return
    bpy.context.window_manager.clipboard = ""
    xdotool("mousemove", 900, 400)
    try:
        op("open_output")
        raise AssertionError("Open Output claimed success without a file browser")
    except RuntimeError as error:
        check("no file browser opener" in str(error), f"Open Output's reason: {error}")
    check(bpy.context.window_manager.clipboard.endswith("render"), "the output path copied for the artist")
    yield 1.0
    shot("07b-open-output-error", "done")
    xdotool("mousemove", 600, 900)
    yield 0.5


def encode_and_menu():
    check(drawn()["buttons"].get("Encode Video"), "Encode Video offered for a PNG render")
    check(op("play_video") == {"FINISHED"}, "Encode Video pressed")
    yield from until(lambda: drawn()["buttons"].get("Play Video"), 180, "Play Video once the MP4 is written")
    check(not drawn()["buttons"].get("Cancel"), "no Cancel next to a finished video")
    shot("07-video", "done")
    yield from open_output_without_a_file_browser()
    window, _area, _region = properties()
    xdotool("mousemove", 600, 500)
    yield 0.3
    with bpy.context.temp_override(window=window):
        bpy.ops.wm.call_menu(name="TOPBAR_MT_render")  # opens with its first item under the pointer
    yield 0.5
    xdotool("mousemove", 675, 560)  # just off the menu's right edge: it stays open, no item's tooltip
    yield 1.0
    shot("08-render-menu", "done")
    xdotool("key", "Escape")
    yield 0.5
    bpy.context.scene.render.filepath = "//still/shot_"  # a fresh folder: the frame is rendered, not kept
    check(op("render_all", still=True) == {"FINISHED"}, "Render Image on All GPUs pressed")
    yield from until(lambda: drawn().get("busy"), 10, "the still render to start")
    yield from until(kind_is("done", busy=False), 300, "the still frame done")
    check(re.fullmatch(r"Done — 1 frame in \d+:\d\d.*", drawn()["bar"]), "one frame rendered")
    check(message().startswith("Automatic — "), "the automatic choice shown")
    shot("09-still", "done")


def denoise_without_oidn():
    """Debian's Blender has no OpenImageDenoise: with Denoising on, the panel says what to turn off."""
    scene = bpy.context.scene
    import _cycles

    if _cycles.with_openimagedenoise:
        print("GUI step skipped: this Blender has OpenImageDenoise", flush=True)
        return
    scene.cycles.use_denoising = True
    scene.render.filepath = "//denoised/shot_"
    check(op("render_all", still=True) == {"FINISHED"}, "Render Image on All GPUs pressed, denoising on")
    yield from until(lambda: drawn().get("busy"), 10, "the denoised still to start")
    yield from until(kind_is("failed", busy=False), 300, "the denoised still to stop")
    check(re.fullmatch(r"Stopped — frame \d+ failed( on every card)?", drawn()["bar"]), "the stopped headline")
    check(message().startswith("This Blender has no OpenImageDenoise; turn off Denoising in Render Properties"),
          "the hint for a Blender without OpenImageDenoise")
    shot("10-stopped-hint", "failed")
    scene.cycles.use_denoising = False
    yield from output_tab_details()


def output_tab_details():
    """The Output tab's panel: the same block, then one bar per lane and each error once with its hint."""
    window, area, _region = properties()
    area.spaces.active.context = "OUTPUT"
    area.tag_redraw()
    x, top, width, height = region_rect()
    xdotool("mousemove", x + width // 2, top + height // 2)
    for _ in range(40):  # scroll to the end of the Output tab, as an artist would
        xdotool("click", "5")
    yield from until(lambda: drawn().get("where") == "output", 10, "the panel drawn in the Output tab")
    yield 1.0
    problems = drawn().get("problems", [])
    check(len(problems) == 1 and "OpenImageDenoise" in problems[0][0] and problems[0][1],
          "the error shown once, with its hint, in the Output tab")
    check(drawn().get("lanes") and all("stopped" in text for _name, text in drawn()["lanes"]),
          "each lane's bar says it stopped")
    shot("10b-output-details", drawn().get("kind", ""))
    for _ in range(40):  # and back to the top, so the block is in view again
        xdotool("click", "4")
    yield 0.5
    area.spaces.active.context = "RENDER"
    area.tag_redraw()
    yield from until(lambda: drawn().get("where") == "render", 10, "the Render tab again")


def reopen_mid_render():
    scene = bpy.context.scene
    scene.render.filepath = "//render_again/shot_"  # a fresh folder: nothing to skip
    check(op("render_all") == {"FINISHED"}, "Render Animation pressed again")
    job = job_dir()
    yield from until(lambda: drawn()["kind"] == "running" and frames_done() >= 1, 240, "the second render")
    bpy.ops.wm.open_mainfile(filepath=bpy.data.filepath)  # the artist reopens the file
    yield 1.0
    check(job_dir() == job, "the reopened file is attached to its job")
    window, area, _region = properties()
    area.tag_redraw()
    yield from until(lambda: drawn().get("job_dir") == job and drawn()["kind"] == "running", 30,
                     "the reopened file's panel following the running job")
    shot("11-reopened", "running")
    yield from until(kind_is("done", busy=False), 400, "the re-attached job done")
    shot("12-reopened-done", "done")


def close_mid_render():
    """Start one more render and quit Blender while it runs; the next phase reopens the file."""
    bpy.context.scene.render.filepath = "//render_closed/shot_"
    check(op("render_all") == {"FINISHED"}, "Render Animation pressed before closing Blender")
    yield from until(lambda: drawn()["kind"] == "running" and frames_done() >= 1, 240, "the render to close on")
    with open(os.path.join(OUT, "closed-job.txt"), "w", encoding="utf-8") as handle:
        handle.write(job_dir())


def reopened_after_restart():
    """A new Blender opens the file: the panel shows the job that kept rendering, and follows it to the end."""
    with open(os.path.join(OUT, "closed-job.txt"), encoding="utf-8") as handle:
        job = handle.read()
    check(job_dir() == job, "the file saved with its job")
    window, area, _region = properties()
    area.spaces.active.context = "RENDER"
    area.tag_redraw()
    yield from until(lambda: drawn().get("job_dir") == job and drawn()["kind"] in ("running", "done"), 30,
                     "the reopened Blender's panel showing the job")
    if drawn()["kind"] == "running":
        check(drawn()["busy"] and drawn()["buttons"]["Cancel"], "Cancel offered for the job still rendering")
        shot("13-restarted", "running")
        # on screen, not scrolled away: Cancel, or Render again if the job ended meanwhile
        yield from find_button("bpy.ops.grf.cancel_job()", "bpy.ops.grf.render_all()")
        xdotool("mousemove", 600, 500)
    yield from until(kind_is("done", busy=False), 400, "the job done in the reopened Blender")
    check(drawn()["bar"].startswith("Done — "), "the done headline after the restart")
    shot("14-restarted-done", "done")


def session():
    yield 2.0
    if PHASE == "reopen":
        yield from reopened_after_restart()
        return
    yield from start_with_a_real_click()
    yield from render_cancel_resume()
    yield from encode_and_menu()
    yield from denoise_without_oidn()
    yield from reopen_mid_render()
    yield from close_mid_render()


def finish(code: int, error: str = "") -> None:
    if code:
        jobs = importlib.import_module(EXT + ".dispatcher.jobs")
        if job_dir() and jobs.is_running(job_dir()):
            jobs.cancel_job(job_dir())
    with open(os.path.join(OUT, f"session-{PHASE}.json"), "w", encoding="utf-8") as handle:
        json.dump({"ok": code == 0, "error": error, "blender": bpy.app.version_string, "python": sys.version,
                   "steps": steps}, handle, indent=1, ensure_ascii=False)
    print(f"GUI session in Blender {bpy.app.version_string}, Python {sys.version.split()[0]}:",
          "passed" if code == 0 else f"FAILED: {error}", flush=True)
    os._exit(code)


def main():
    os.makedirs(OUT, exist_ok=True)
    if PHASE == "main":
        shutil.rmtree(os.path.join(os.path.dirname(bpy.data.filepath), "render"), ignore_errors=True)
    steps_left = session()

    def tick():
        try:
            return next(steps_left)
        except StopIteration:
            finish(0)
        except Exception as error:  # an assertion or a broken step: record it, end the session
            traceback.print_exc()
            finish(1, f"{type(error).__name__}: {error}")
        return None

    bpy.app.timers.register(tick, first_interval=1.0, persistent=True)


main()
