"""Per-scene settings, saved in the .blend: the lane layout, frames, output and the attached job."""

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, PointerProperty, StringProperty
from bpy.types import PropertyGroup

MODES = [
    ("PER_CARD", "One Worker per GPU", "Each card renders its own frames (fastest for most scenes)"),
    ("COMBINED", "All GPUs in One Worker", "One Blender uses every selected card for each frame"),
    ("GROUPS", "GPUs per Worker", "Split the cards into groups of k; each group renders its own frames"),
    ("SHARED", "Workers per GPU", "Run m workers on each card (light scenes that leave a card idle)"),
]


class GRF_SceneSettings(PropertyGroup):
    """How this scene is rendered on the farm, and which job it is attached to."""

    mode: EnumProperty(name="Mode", items=MODES, default="PER_CARD")
    gpus_per_worker: IntProperty(name="GPUs per Worker", min=1, max=64, default=2)
    workers_per_gpu: IntProperty(name="Workers per GPU", min=1, max=16, default=2)
    cpu_lane: BoolProperty(name="CPU Lane", default=False, description="Also render frames on the processor")
    use_scene_range: BoolProperty(name="Scene Frame Range", default=True)
    frames: StringProperty(
        name="Frames", default="", description="Frames to render, e.g. 1-250, 1-100x2, 5,9,12-20"
    )
    output_dir: StringProperty(
        name="Output Folder", subtype="DIR_PATH", default="",
        description="Where frames go (empty: the folder of the scene's output path)",
    )
    job_dir: StringProperty(name="Job Folder", subtype="DIR_PATH", default="", options={"HIDDEN"})


def register():
    bpy.utils.register_class(GRF_SceneSettings)
    bpy.types.Scene.gpu_render_farm = PointerProperty(type=GRF_SceneSettings)


def unregister():
    del bpy.types.Scene.gpu_render_farm
    bpy.utils.unregister_class(GRF_SceneSettings)
