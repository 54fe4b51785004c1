"""GPU Render Farm: render an animation on every GPU of this machine, one headless worker per lane.

The engine (``dispatcher/``) never imports bpy. The Blender side (preferences, properties, operators,
ui, monitor) is imported inside ``register()`` so that importing this package has no bpy side effects.
"""

_registered_modules = []


def _modules():
    from . import monitor, operators, preferences, properties, ui

    return [preferences, properties, operators, ui, monitor]


def register():
    """Register classes, the scene settings and the load handler (no device probing here)."""
    for module in _modules():
        module.register()
        _registered_modules.append(module)


def unregister():
    """Undo ``register()`` in reverse order."""
    while _registered_modules:
        _registered_modules.pop().unregister()
