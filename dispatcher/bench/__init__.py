"""``python -m dispatcher bench``: render a benchmark scene of its own in every approach and compare.

Builds a procedural scene (``bench_scene.py``: ~775k triangles, glass/metal/emission, a moving camera; and a
``deforming`` variant whose meshes change every frame), renders it with Blender's own multi-GPU mode, the
manual per-GPU methods and this product's layouts, prints a table (wall time, frames/min, speed-up over
Blender's combined default, share of the ideal bound, overhead between frames) and draws a PNG (per-lane
timelines and throughput). Without a GPU it runs a tiny variant on CPU lanes. Results are kept per approach
under ``--out`` so a long GPU benchmark can be run in pieces and tabulated with ``--collect``.
Never imports bpy.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from .. import chart
from .analysis import TARGETS, analyse, first_frame_seconds, format_variant, ideal, targets
from .approaches import ALL_APPROACHES, Run, Settings, build_scene, run_approach, warm_up
from .common import DEFAULT_APPROACHES

__all__ = ["TARGETS", "analyse", "first_frame_seconds", "format_variant", "ideal", "main", "targets"]

VARIANTS = ("static", "deforming")
QUICK: dict[str, Any] = {"frames": 8, "resolution": "32x32", "samples": 4, "triangles": 20_000}
FULL: dict[str, Any] = {"frames": 64, "resolution": "1280x720", "samples": 128, "triangles": 750_000}


def add_arguments(parser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--gpu", action="store_true", help="render on the GPUs (fail when there is none)")
    where.add_argument("--cpu", action="store_true", help="render on CPU lanes even when GPUs are present")
    parser.add_argument("--quick", action="store_true", help="tiny scene: 8 frames, 32x32, 4 samples, ~20k triangles")
    parser.add_argument("--variant", choices=(*VARIANTS, "both"), default="both")
    parser.add_argument(
        "--approaches",
        help=f"comma list (default: {', '.join(DEFAULT_APPROACHES)}; also blender-1gpu, per-card-threads); "
        "'single' gives the ideal bound",
    )
    parser.add_argument("--combined-frames", type=int, default=0,
                        help="Blender combined (defaults) renders only this many frames; its wall is extrapolated")
    parser.add_argument("--budget", type=float, default=0.0,
                        help="seconds for the whole benchmark: approaches not started by then are skipped")  # fmt: skip
    parser.add_argument("--frames", type=int, help="frames per approach (GPU default: max(64, 8 x GPUs))")
    parser.add_argument("--resolution", help="WxH (default 1280x720; quick 32x32)")
    parser.add_argument("--samples", type=int, help="Cycles samples (default 128; quick 4)")
    parser.add_argument("--triangles", type=int, help="triangle budget of the scene (default 750000; quick 20000)")
    parser.add_argument("--device", type=str.upper, help="OPTIX or CUDA on GPUs (default: the best there is)")
    parser.add_argument("--gpus", help="comma list of GPU indices to use (default: all)")
    parser.add_argument("--cpu-lanes", type=int, help="CPU lanes standing in for GPUs (default: 2, or cores/8)")
    parser.add_argument("--workers-per-gpu", type=int, default=2, help="m for the 'm workers per GPU' approach")
    parser.add_argument("--out", default="bench_out", help="folder for scenes, results and the chart")
    parser.add_argument("--png", help="chart path (default: OUT/bench.png)")
    parser.add_argument("--blender", help="Blender binary or Python with bpy (default: as the render command)")
    parser.add_argument("--no-warmup", action="store_true", help="time kernel compilation too")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per approach before it is killed")
    parser.add_argument("--keep-frames", action="store_true", help="keep the rendered images")
    parser.add_argument("--collect", action="store_true", help="render nothing: tabulate the results under --out")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")


# -- settings ----------------------------------------------------------------------------------------------


def make_settings(args) -> Settings:
    from ..devices import best_device_type, cpu_info, detect_gpus, select_gpus
    from ..lanes import default_cpu_lanes
    from .approaches import default_program

    devices = detect_gpus()
    cores = cpu_info().get("usable_cores") or os.cpu_count() or 1
    use_gpu = bool(devices.gpus) and not args.cpu
    if args.gpu and not devices.gpus:
        raise SystemExit(f"error: --gpu given but this machine has no NVIDIA GPU ({devices.reason})")
    size: dict[str, Any] = dict(QUICK if (args.quick or not use_gpu) else FULL)
    program = args.blender or default_program()
    if not program:
        raise SystemExit("error: no Blender found: pass --blender PATH (a Blender binary or a Python with bpy)")
    if use_gpu:
        gpus = select_gpus(devices, args.gpus.split(",") if args.gpus else None)
        lanes = len(gpus)
        if not args.quick:
            size["frames"] = max(size["frames"], 8 * lanes)
        device = args.device or best_device_type(devices)
        label = (
            f"{lanes} x {gpus[0].name} ({device})"
            if len(set(g.name for g in gpus)) == 1
            else (" + ".join(gpu.name for gpu in gpus) + f" ({device})")
        )
        threads, total = 0, cores
        uuids, names = [gpu.uuid for gpu in gpus], [gpu.name for gpu in gpus]
    else:
        # the product's CPU-lane rule, but at least two lanes (they stand in for GPUs) when two cores allow
        lanes = args.cpu_lanes or (max(2, default_cpu_lanes(cores)) if cores >= 2 else 1)
        threads = max(1, cores // lanes)
        total = cores
        device = "CPU"
        reason = "--cpu" if devices.gpus else f"no GPU: {devices.reason}"
        label = f"{lanes} CPU lanes x {threads} thread{'s' if threads > 1 else ''} standing in for GPUs ({reason})"
        uuids, names = [], []
    for key in ("frames", "resolution", "samples", "triangles"):
        if getattr(args, key) is not None:
            size[key] = getattr(args, key)
    return Settings(
        device=device,
        lanes=lanes,
        threads=threads,
        total_threads=total,
        frames=size["frames"],
        resolution=size["resolution"],
        samples=size["samples"],
        triangles=size["triangles"],
        workers_per_gpu=max(1, args.workers_per_gpu),
        program=program,
        out=os.path.abspath(args.out),
        gpu_uuids=uuids,
        gpu_names=names,
        timeout=args.timeout,
        keep_frames=args.keep_frames,
        label=label,
        combined_frames=max(0, args.combined_frames or 0),
    )


def load_runs(out: str, variant: str) -> dict[str, Run]:
    runs = {}
    for name in ALL_APPROACHES:
        folder = os.path.join(out, variant, name)
        if os.path.exists(os.path.join(folder, "result.json")):
            runs[name] = Run.load(folder)
    return runs


def draw(out_png: str, per_variant: dict[str, dict[str, Run]], analyses: dict[str, dict], header: str) -> str:
    """One chart per variant, stacked into one PNG (timelines share each variant's time axis)."""
    from PIL import Image

    parts = []
    for variant, runs in per_variant.items():
        jobs = [runs[name].job() for name in ALL_APPROACHES if name in runs]
        bound = analyses[variant]["ideal"]
        path = out_png + f".{variant}.png"
        chart.draw_chart(
            jobs, path, title=f"{variant} scene - {header}", ideal_fpm=bound["frames_per_minute"] if bound else None
        )
        parts.append(path)
    images = [Image.open(path) for path in parts]
    if not images:
        return out_png
    width = max(image.width for image in images)
    sheet = Image.new("RGB", (width, sum(image.height for image in images)), "white")
    y = 0
    for image in images:
        sheet.paste(image, (0, y))
        y += image.height
    sheet.save(out_png)
    for path in parts:
        os.remove(path)
    return out_png


def main(args) -> int:
    settings_path = os.path.join(os.path.abspath(args.out), "settings.json")
    variants = VARIANTS if args.variant == "both" else (args.variant,)
    if args.collect:
        try:
            with open(settings_path, encoding="utf-8") as handle:
                saved = json.load(handle)
        except OSError:
            print(f"error: no benchmark results under {args.out}")
            return 2
        settings = Settings(**saved)
        settings.out = os.path.abspath(args.out)  # a copy of the results may have moved
    else:
        settings = make_settings(args)
        names = [name.strip() for name in (args.approaches or ",".join(DEFAULT_APPROACHES)).split(",") if name.strip()]
        unknown = [name for name in names if name not in ALL_APPROACHES]
        if unknown:
            print(f"error: unknown approach {', '.join(unknown)} (choose from {', '.join(ALL_APPROACHES)})")
            return 2
        run_all(settings, settings_path, variants, names, warm=not args.no_warmup, budget=args.budget)
    return report_results(settings, variants, args)


def run_all(settings: Settings, settings_path: str, variants: tuple, names: list[str], warm: bool,
            budget: float = 0.0) -> None:  # fmt: skip
    """Build each variant's scene, warm up, and run every approach on it (results saved per run); an
    approach not started ``budget`` seconds in (when given) is skipped."""
    began_all = time.time()
    os.makedirs(settings.out, exist_ok=True)
    with open(settings_path, "w", encoding="utf-8") as handle:
        json.dump(settings.__dict__, handle, indent=1)
    print(f"benchmark on {settings.label}", flush=True)
    print(
        f"{settings.frames} frames, {settings.resolution}, {settings.samples} samples, "
        f"~{settings.triangles} triangle budget, worker program {settings.program}",
        flush=True,
    )
    for variant in variants:
        blend, facts = build_scene(settings, variant, lambda text: print(text, flush=True))
        print(f"[{variant}] scene {blend}: {facts.get('triangles')} triangles", flush=True)
        if warm:
            seconds = warm_up(settings, blend, os.path.join(settings.out, variant, "warmup"))
            print(f"[{variant}] warm-up (kernels, caches; not timed): {seconds:.1f} s", flush=True)
        for name in names:
            if budget and time.time() - began_all > budget:
                print(f"[{variant}] {name}: skipped (the --budget of {budget:.0f} s is spent)", flush=True)
                continue
            began = time.time()
            print(f"[{variant}] {name} ...", end=" ", flush=True)
            run = run_approach(settings, name, variant, blend)
            state = "ok" if run.ok else f"FAILED: {run.error}"
            took = time.time() - began
            print(f"{run.wall:.1f} s, {run.job().frames_done} frames ({state}; {took:.0f} s)", flush=True)


def report_results(settings: Settings, variants: tuple, args) -> int:
    """Tables, chart and results.json from the saved runs; 1 when a run failed."""
    header = (
        f"{settings.label}; {settings.frames} frames {settings.resolution} {settings.samples} samples; "
        f"{time.strftime('%Y-%m-%d')}"
    )
    per_variant, analyses, texts = {}, {}, []
    for variant in variants:
        runs = load_runs(settings.out, variant)
        if not runs:
            continue
        per_variant[variant] = runs
        analyses[variant] = analyse(runs, settings.lanes, settings.frames)
        texts.append(format_variant(variant, analyses[variant], header))
    if not texts:
        print("no results to show")
        return 1
    print()
    print("\n\n".join(texts))
    try:
        png = draw(args.png or os.path.join(settings.out, "bench.png"), per_variant, analyses, settings.label)
        print(f"\nchart: {png}")
    except ImportError as error:  # a GPU host without Pillow: chart later with --collect on a copy of --out
        print(f"\nchart skipped ({error})")
    with open(os.path.join(settings.out, "results.json"), "w", encoding="utf-8") as handle:
        json.dump({"settings": settings.__dict__, "variants": analyses}, handle, indent=1, default=str)
    if args.json:
        print(json.dumps({"settings": settings.__dict__, "variants": analyses}, indent=1, default=str))
    failed = any(not row["ok"] for analysis in analyses.values() for row in analysis["rows"])
    return 1 if failed else 0
