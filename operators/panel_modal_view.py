"""The layout of the sample panel (:mod:`operators.panel_modal`): what its state holds, drawn."""
import fiftyone.operators.types as types

from . import panel_common as pc

WIDTH = pc.TILE_WIDTH


def _tile_row(panel, name, tiles, on_click=None, params=None):
    """A row of pictures (their images are the panel data ``name.t<i>``)."""
    row = types.Object()
    for j, t in enumerate(tiles):
        extra = {}
        if on_click is not None:
            extra = dict(operator=on_click, params=params(t) if params else {})
        row.str(f"t{j}", label=t["label"], view=types.ImageView(width=WIDTH, caption=t["caption"], **extra))
    # columns: a grid of equal columns (a horizontal grid sizes each child to the whole width)
    panel.define_property(name, row, view=pc.row(max(len(tiles), 2), gap=1))


def _message(panel, state):
    msg = state.get("message")
    if msg:
        view = types.Error(label=msg["text"]) if msg.get("error") else types.Notice(label=msg["text"])
        panel.view("message_view", view)


def layout(owner, ctx):
    """The panel: the run picker, the stored maps, explanations on demand, a detector's objects."""
    state = {k: ctx.panel.get_state(k) for k in ("runs", "run_key", "message", "rows", "classes", "objects",
                                                   "extra", "object", "selected")}
    panel = types.Object()
    if not state["runs"]:
        panel.md(pc.NO_RUN, name="no_run")
        _message(panel, state)
        panel.btn("compute", label="Compute class activation maps", variant="contained", on_click=owner.open_compute)
        return types.Property(panel, view=pc.column(gap=2))
    # (not named run_key: the App writes a dropdown's value to the state of its name before on_change)
    panel.enum("run_choice", state["runs"], default=state["run_key"], label="CAM run", view=types.DropdownView(),
               on_change=owner.on_run)
    _message(panel, state)
    if not ctx.current_sample:
        panel.md("Open a sample to see its maps.", name="no_sample")
        return types.Property(panel, view=pc.column(gap=2))

    rows = state["rows"] or []
    panel.md(f"**Stored maps** ({sum(len(r) for r in rows)}): click one to show it on the image", name="grid_title")
    grid = types.Object()
    for i, row in enumerate(rows):
        _tile_row(grid, f"r{i}", row, owner.show_field, lambda t: {"field": t["field"]})
    panel.define_property("grid", grid, view=pc.column(gap=1))

    if state["selected"]:
        panel.md(f"**{state['selected']['field']}** ({state['selected']['caption']}): now the grid's shown map; "
                 f"tick it in the sidebar beside the image to draw it there too", name="selected_title")
        panel.str("selected_map", view=types.ImageView(width=pc.LARGE_WIDTH))
    objects = state["objects"] or []
    if objects:
        panel.md("**Objects**: click a box on the image, or one here, to see its own map", name="objects_title")
        buttons = types.Object()
        for i, o in enumerate(objects):
            buttons.btn(f"o{i}", label=f"{o['label']} {o['confidence'] or 0:.2f}", on_click=owner.show_object,
                        params={"index": i}, variant="outlined")
        panel.define_property("object_buttons", buttons, view=pc.row(min(len(objects), 4), gap=1))
    if state["object"]:
        panel.md(f"**Object {state['object']['title']}**: its own map; inside / on_others as stored",
                 name="object_title")
        _tile_row(panel, "object_maps", state["object"]["tiles"])

    panel.md("**Explain another class** (computed now, not stored unless saved)", name="explain_title")
    choices = state["classes"] or []
    picker = types.Object()
    picker.enum("explain_class", choices, label="Class", view=_choices(choices))
    picker.enum("explain_not", [pc.NONE] + choices, label="Not (optional)", default=pc.NONE,
                view=_choices([pc.NONE] + choices))
    picker.btn("explain", label="Explain", variant="contained", on_click=owner.explain_class)
    panel.define_property("picker", picker, view=pc.row(3, gap=1, align_y="end"))
    for i, entry in enumerate(state["extra"] or []):
        head = types.Object()
        head.md(f"**{entry['target']}** ({entry['label']})", name="title")
        if entry.get("saved"):
            head.md(f"saved as {entry['saved']}", name="saved")
        else:
            head.btn("save", label="Save to run", on_click=owner.save_extra, params={"index": i}, variant="outlined")
        panel.define_property(f"extra_head{i}", head, view=pc.row(3, gap=1, align_y="center"))
        rows = types.Object()
        for k, row in enumerate(entry["rows"]):
            _tile_row(rows, f"r{k}", row)
        panel.define_property(f"extra{i}", rows, view=pc.column(gap=1))
    return types.Property(panel, view=pc.column(gap=2))


def _choices(values, **kwargs):
    return types.AutocompleteView(choices=[types.Choice(v, label=v) for v in values], **kwargs)
