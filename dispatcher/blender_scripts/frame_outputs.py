"""Every file a frame makes, named as Blender names them (run inside the worker, loaded beside it).

A plain scene makes one image, which the worker saves itself. A scene with compositor File Output
nodes, or a stereo (multi-view) render saved as individual views, makes several files whose names
Blender only numbers in an animation render (a still render would overwrite ``extra_Image.exr``
every frame). Such a frame is therefore rendered as a one-frame animation into private temporary
folders (``.grf-<lane>-<n>`` beside each real folder, so the final rename stays on one file system);
the worker reports every ``[temporary, final]`` pair, and the dispatcher renames them only when all
decode. Standalone: imports nothing from the dispatcher package.
"""

from __future__ import annotations

import os
import shutil

MAIN_STEM = "f_"  # the main image's temporary name: f_0007.png, f_0007_L.png


def file_output_nodes(tree, seen=None) -> list:
    """File Output nodes of a compositor tree and of the node groups inside it (each group once)."""
    seen = set() if seen is None else seen
    found = []
    for node in getattr(tree, "nodes", []) or []:
        if node.mute:
            continue
        if node.bl_idname == "CompositorNodeOutputFile":
            found.append(node)
        elif getattr(node, "node_tree", None) is not None and node.node_tree.name not in seen:
            seen.add(node.node_tree.name)
            found += file_output_nodes(node.node_tree, seen)
    return found


class FrameOutputs:
    """Redirects a scene's extra outputs to temporary folders and maps what Blender wrote to final names."""

    def __init__(self, bpy, scene, lane: str) -> None:
        render = scene.render
        tree = getattr(scene, "compositing_node_group", None) or getattr(scene, "node_tree", None)
        nodes = file_output_nodes(tree) if render.use_compositing and tree is not None else []
        self.stereo = render.use_multiview and render.image_settings.views_format == "INDIVIDUAL"
        self.needed = bool(nodes) or self.stereo
        self.lane = lane
        self.folders: list[tuple[str, str]] = []  # (temporary folder, final folder)
        for index, node in enumerate(nodes):
            final = os.path.normpath(bpy.path.abspath(node.directory))
            temporary = os.path.join(final, f".grf-{lane}-{index}")
            node.directory = temporary + os.sep
            self.folders.append((temporary, final))

    def facts(self) -> dict:
        return {"extra_outputs": len(self.folders), "stereo": self.stereo,
                "output_folders": sorted({final for _, final in self.folders})}  # fmt: skip

    def render(self, bpy, scene, frame: int, path: str, final: str) -> list[list[str]]:
        """Render ``frame`` as a one-frame animation; [[temporary, final], ...] for every file it made."""
        main_folder = os.path.join(os.path.dirname(path), f".grf-{self.lane}-main")
        for temporary in [main_folder, *(folder for folder, _ in self.folders)]:
            shutil.rmtree(temporary, ignore_errors=True)
            os.makedirs(temporary, exist_ok=True)
        scene.render.filepath = os.path.join(main_folder, MAIN_STEM + "####")
        scene.frame_start = scene.frame_end = frame
        result = bpy.ops.render.render(animation=True, scene=scene.name)
        if "FINISHED" not in result:
            raise RuntimeError(f"render ended with {sorted(result)}")
        pairs = self._main_files(scene, frame, main_folder, path, final)
        for temporary, folder in self.folders:
            for name in sorted(os.listdir(temporary)):
                pairs.append([os.path.join(temporary, name), os.path.join(folder, name)])
        return pairs

    def _main_files(self, scene, frame: int, folder: str, path: str, final: str) -> list[list[str]]:
        if not self.stereo:
            written = scene.render.frame_path(frame=frame)
            if not os.path.exists(written):
                raise RuntimeError(f"Blender wrote no image for frame {frame}")
            os.replace(written, path)
            return [[path, final]]
        pairs = []
        stem, extension = os.path.splitext(final)
        for view in scene.render.views:
            if view.use:
                written = scene.render.frame_path(frame=frame, view=view.name)
                if not os.path.exists(written):
                    raise RuntimeError(f"Blender wrote no {view.name} view for frame {frame}")
                pairs.append([written, f"{stem}{view.file_suffix}{extension}"])
        return pairs
