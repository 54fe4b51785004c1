"""Show a message in full: its tooltip is the whole text, a click opens it in a popup and the Info log."""

import bpy

from ..dispatcher.job_text import wrap


class GRF_OT_show_message(bpy.types.Operator):
    """Show the whole message"""

    bl_idname = "grf.show_message"
    bl_label = "Show Message"
    bl_options = {"INTERNAL"}

    text: bpy.props.StringProperty(name="Text", options={"SKIP_SAVE"})

    @classmethod
    def description(cls, context, properties):
        return properties.text or cls.__doc__

    def execute(self, context):
        self.report({"INFO"}, self.text)
        lines = [line for paragraph in self.text.split("\n") for line in wrap(paragraph, 70)]

        def draw(menu, _context):
            for line in lines:
                menu.layout.label(text=line)

        if not bpy.app.background:  # a popup needs a window (it crashes the bpy module)
            context.window_manager.popup_menu(draw, title="GPU Render Farm", icon="INFO")
        return {"FINISHED"}
