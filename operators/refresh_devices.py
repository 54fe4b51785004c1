"""Refresh the device list (NVML, and Cycles' own list when NVML has no GPU)."""

import bpy

from .. import monitor
from ..preferences import get_preferences, sync_devices

GPU_BACKENDS = ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL")


def cycles_devices(context) -> list[tuple[str, str]]:
    """(name, type) of the GPUs Cycles sees, without changing the user's Cycles settings."""
    addon = context.preferences.addons.get("cycles")
    if addon is None:
        return []
    cycles = addon.preferences
    found = []
    for backend in GPU_BACKENDS:
        try:
            listed = cycles.get_devices_for_type(backend)
        except Exception:  # backend not compiled in
            continue
        found.extend((device.name, device.type) for device in listed if device.type != "CPU")
    return found


def kernel_status(report) -> list[dict]:
    """Which cards have compiled Cycles kernels for this Blender (dispatcher/kernels.py)."""
    import os

    import cycles

    from ..dispatcher.kernels import kernel_status as status

    lib_dir = os.path.join(os.path.dirname(cycles.__file__), "lib")
    return status(report, lib_dir=lib_dir) if report.gpus else []


class GRF_OT_refresh_devices(bpy.types.Operator):
    """Look for GPUs and read their memory, load and temperature"""

    bl_idname = "grf.refresh_devices"
    bl_label = "Refresh Devices"
    bl_options = {"REGISTER"}

    def execute(self, context):
        from ..dispatcher.devices import detect_gpus

        report = detect_gpus()
        monitor.set_devices(report, [] if report.gpus else cycles_devices(context))
        monitor.kernels = kernel_status(report)
        sync_devices(get_preferences(context), report.gpus)
        for area in context.screen.areas if context.screen else ():
            area.tag_redraw()
        found = len(report.gpus) or len(monitor.cycles_devices)
        self.report({"INFO"}, f"{found} GPU(s) found" if found else f"No GPU found: {report.reason}")
        return {"FINISHED"}
