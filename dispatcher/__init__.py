"""GPU Render Farm dispatcher: plans lanes, launches and supervises headless Blender workers.

Never imports bpy: the Blender add-on and the CLI pass everything in.
"""

__version__ = "0.1.0"
