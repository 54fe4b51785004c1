"""Add-on preferences: the machine's device mapping, worker program, job folders and backend."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, IntProperty, StringProperty
from bpy.types import AddonPreferences, PropertyGroup

DEVICE_TYPES = [
    ("AUTO", "Automatic", "The fastest backend found: OptiX on NVIDIA RTX, else CUDA; CPU without a GPU"),
    ("OPTIX", "OptiX", "NVIDIA RTX ray tracing cores"),
    ("CUDA", "CUDA", "NVIDIA GPUs"),
    ("HIP", "HIP", "AMD GPUs"),
    ("ONEAPI", "oneAPI", "Intel GPUs"),
    ("METAL", "Metal", "Apple GPUs"),
    ("CPU", "CPU", "Render on the processor only"),
]
BACKENDS = [
    ("LOCAL", "This machine", "Workers run on this computer"),
    ("RAY", "Ray cluster", "Workers run on a Ray cluster (experimental)"),
]


class GRF_DeviceSetting(PropertyGroup):
    """One card of the device mapping, keyed by its NVML UUID."""

    key: StringProperty(name="Key", description="NVML UUID of the card")
    label: StringProperty(name="Name")
    use: BoolProperty(name="Use", description="Render on this card", default=True)
    device_type: EnumProperty(
        name="Device Type", default="INHERIT", description="Backend for this card",
        items=[("INHERIT", "Default", "The device type set for all cards")]
        + [item for item in DEVICE_TYPES if item[0] not in ("AUTO", "CPU")],
    )
    workers: IntProperty(
        name="Workers", min=0, max=16, default=0,
        description="Workers on this card in per-card mode (0: the mode's setting)",
    )


class GpuRenderFarmPreferences(AddonPreferences):
    """GPU Render Farm settings for this machine."""

    bl_idname = __package__

    devices: CollectionProperty(type=GRF_DeviceSetting)
    device_type: EnumProperty(name="Device Type", items=DEVICE_TYPES, default="AUTO")
    threads: IntProperty(
        name="Threads per Worker", min=0, max=1024, default=0,
        description="CPU threads of each worker (0: the cores shared among the workers)",
    )
    blender_binary: StringProperty(
        name="Blender for Workers", subtype="FILE_PATH", default="",
        description="Program that runs the workers (empty: this Blender)",
    )
    persistent_data: BoolProperty(
        name="Persistent Data", default=True,
        description="Keep scene data between frames of a worker (faster, uses more memory)",
    )
    trust_scripts: BoolProperty(
        name="Run Scripts in the File", default=False,
        description="Let drivers and scripts in the .blend run in the workers",
    )
    jobs_dir: StringProperty(
        name="Job Folders", subtype="DIR_PATH", default="",
        description="Where job folders (snapshot, logs, status) live (empty: the extension's user folder)",
    )
    backend: EnumProperty(name="Backend", items=BACKENDS, default="LOCAL")
    ray_address: StringProperty(
        name="Ray Address", default="", description="e.g. ray://head:10001 (empty: local)"
    )

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        col = layout.column(heading="Devices")
        col.prop(self, "device_type")
        col.prop(self, "threads")
        col.prop(self, "persistent_data")
        for device in self.devices:
            row = col.row(align=True)
            row.prop(device, "use", text=device.label or device.key)
            sub = row.row(align=True)
            sub.active = device.use
            sub.prop(device, "device_type", text="")
            sub.prop(device, "workers")
        col = layout.column(heading="Workers")
        col.prop(self, "blender_binary")
        col.prop(self, "trust_scripts")
        col.prop(self, "jobs_dir")
        col = layout.column(heading="Backend")
        col.prop(self, "backend")
        if self.backend == "RAY":
            col.prop(self, "ray_address")


@dataclass
class DefaultPreferences:
    """Stands in for the preferences when the add-on is not enabled as an extension (tests, scripts)."""

    devices: list = field(default_factory=list)
    device_type: str = "AUTO"
    threads: int = 0
    blender_binary: str = ""
    persistent_data: bool = True
    trust_scripts: bool = False
    jobs_dir: str = ""
    backend: str = "LOCAL"
    ray_address: str = ""


def get_preferences(context=None) -> GpuRenderFarmPreferences:
    """This add-on's preferences, or a `DefaultPreferences` when it is not enabled."""
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__)
    if addon is None or addon.preferences is None:
        return DefaultPreferences()
    return addon.preferences


def worker_program(prefs) -> str:
    """The program that runs workers: the preference, else this Blender, else this Python (bpy module)."""
    from .planning import worker_program as program

    return program(prefs, bpy.data.filepath, bpy.app.binary_path)


def jobs_root(prefs) -> str:
    """The folder that holds job folders."""
    if prefs.jobs_dir:
        return bpy.path.abspath(prefs.jobs_dir)
    try:
        return os.path.join(bpy.utils.extension_path_user(__package__, create=True), "jobs")
    except ValueError:  # not loaded as an extension (tests, legacy add-on)
        from .dispatcher import jobs

        return jobs.default_jobs_root()


def sync_devices(prefs, gpus) -> None:
    """Add newly found cards to the device mapping (ticked) and refresh their names."""
    if isinstance(prefs, DefaultPreferences):
        return
    known = {device.key: device for device in prefs.devices}
    for gpu in gpus:
        device = known.get(gpu.uuid)
        if device is None:
            device = prefs.devices.add()
            device.key = gpu.uuid
        device.label = f"{gpu.index}: {gpu.name}"


classes = (GRF_DeviceSetting, GpuRenderFarmPreferences)
register, unregister = bpy.utils.register_classes_factory(classes)
