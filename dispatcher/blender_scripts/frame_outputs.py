"""Every file a frame makes, named as Blender names them (run inside the worker, loaded beside it).

A plain scene makes one image, which the worker saves itself. A scene with compositor File Output
nodes, or a stereo (multi-view) render saved as individual views, makes several files whose names
Blender only numbers in an animation render (a still render would overwrite ``extra_Image.exr``
every frame). Such a frame is therefore rendered as a one-frame animation into private temporary
folders, ``.grf-<lane>-p<pid>-<n>-<frame>`` beside each real folder (so the final rename stays on one
file system; the pid tells another job's cleanup that a live worker still owns it). The worker reports
every ``[temporary, final]`` pair and goes on with its next frame while the dispatcher checks them and
renames them only when all decode, so each frame has folders of its own.
Standalone: imports nothing from the dispatcher package.
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
        self.nodes = nodes
        self.finals = [os.path.normpath(bpy.path.abspath(node.directory)) for node in nodes]
        self.folders: list[tuple[str, str]] = []  # this frame's (temporary folder, final folder)

    def facts(self) -> dict:
        return {"extra_outputs": len(self.finals), "stereo": self.stereo, "output_folders": sorted(set(self.finals))}

    def render(self, bpy, scene, frame: int, path: str, final: str) -> list[list[str]]:
        """Render ``frame`` as a one-frame animation; [[temporary, final], ...] for every file it made."""
        owner = f".grf-{self.lane}-p{os.getpid()}"
        main_folder = os.path.join(os.path.dirname(path), f"{owner}-main-{frame}")
        self.folders = [(os.path.join(final, f"{owner}-{index}-{frame}"), final)
                        for index, final in enumerate(self.finals)]  # fmt: skip
        for node, (temporary, _final) in zip(self.nodes, self.folders, strict=True):
            node.directory = temporary + os.sep
        for temporary in [main_folder, *(folder for folder, _ in self.folders)]:
            _remove_emptied_folders(temporary)
            shutil.rmtree(temporary, ignore_errors=True)  # an earlier try of this frame
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


def _remove_emptied_folders(folder: str) -> None:
    """This lane's folders of earlier frames once the dispatcher has moved their files out (only empty ones:
    a frame still being checked keeps its folder)."""
    parent, name = os.path.split(folder)
    prefix = name.rsplit("-", 1)[0] + "-"
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for other in names:
        if other.startswith(prefix) and other != name and other[len(prefix):].lstrip("-").isdigit():
            try:
                os.rmdir(os.path.join(parent, other))
            except OSError:
                pass
