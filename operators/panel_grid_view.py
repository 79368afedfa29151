"""The layout of the run panel (:mod:`operators.panel_grid`): what its state holds, drawn."""
import fiftyone.operators.types as types

from . import panel_common as pc
from .panel_grid import MEAN_WIDTH

STATE = ("runs", "run_key", "message", "status", "fields", "field", "scores", "score", "hist", "selection", "mean_list",
         "agreement_note")


def _message(panel, msg):
    if msg:
        panel.view("message_view", types.Error(label=msg["text"]) if msg.get("error") else types.Notice(label=msg["text"]))


def _status(owner, panel, status):
    """The run's live state, its shards, and a resume button for a sharded run that did not complete."""
    if not status:
        return
    line = f"**State:** {status['state']} · {status['num_samples']} samples with maps · {status['num_skipped']} skipped"
    if status.get("holder") and status["state"] == "running":
        line += f" · computing in {status['holder']}"
    if status.get("error"):
        line += f"\n\n**Error:** {status['error']}"
    if status["shards"]:
        line += "\n\n| shard | state | samples | worker |\n|---|---|---|---|\n" + "\n".join(
            f"| {d['shard']} | {d['state']} | {d['num_samples']} | {d['holder'] or '-'} |" for d in status["shards"])
    panel.md(line, name="status_text")
    buttons = types.Object()
    buttons.btn("refresh", label="Refresh", on_click=owner.refresh_status, variant="outlined")
    if status["shards"] and status["state"] != "complete":
        buttons.btn("resume", label="Resume the shards left", on_click=owner.resume, variant="contained")
    panel.define_property("status_buttons", buttons, view=pc.row(4, gap=1))


def layout(owner, ctx):
    state = {k: ctx.panel.get_state(k) for k in STATE}
    panel = types.Object()
    if not state["runs"]:
        panel.md(pc.NO_RUN, name="no_run")
        _message(panel, state["message"])
        panel.btn("compute", label="Compute class activation maps", variant="contained", on_click=owner.open_compute)
        return types.Property(panel, view=pc.column(gap=2))
    head = types.Object()
    head.enum("run_key", state["runs"], default=state["run_key"], label="CAM run", view=types.DropdownView(),
              on_change=owner.on_run)
    head.enum("field", state["fields"] or [], default=state["field"], label="Maps", view=types.DropdownView(),
              on_change=owner.on_field)
    head.enum("score", state["scores"] or [], default=state["score"], label="Score", view=types.DropdownView(),
              on_change=owner.on_score)
    panel.define_property("head", head, view=pc.row(3, gap=2))
    _message(panel, state["message"])
    _status(owner, panel, state["status"])

    hist = state["hist"] or {}
    missing = f" ({hist['missing']} without a value)" if hist.get("missing") else ""
    panel.md(f"**{state['score']}** of {state['field']}: drag over bars to show their samples in the grid{missing}",
             name="hist_title")
    panel.plot("histogram", on_selected=owner.on_hist_selected, height=32,
               layout={"dragmode": "select", "selectdirection": "h", "bargap": 0.05, "height": 260,
                       "margin": {"t": 10, "b": 40, "l": 50, "r": 10},
                       "xaxis": {"title": state["score"]}, "yaxis": {"title": "samples"}})
    if state["selection"]:
        sel = types.Object()
        sel.md(f"Shown in the grid: **{state['selection']}**", name="text")
        sel.btn("clear", label="Show all", on_click=owner.clear_selection, variant="outlined")
        panel.define_property("selection_row", sel, view=pc.row(2, gap=1, align_y="center"))

    means = state["mean_list"] or []
    if means:
        panel.md("**Mean map per explained class** (click one to see its samples)", name="means_title")
        row = types.Object()
        for i, m in enumerate(means):
            row.str(f"m{i}", label=f"{m['label']}", view=types.ImageView(
                width=MEAN_WIDTH, caption=f"n={m['count']}" + (f", mean of {m['used']}" if m["used"] < m["count"] else ""),
                operator=owner.show_class, params={"label": m["label"]}))
        panel.define_property("means", row, view=pc.row(min(max(len(means), 2), 8), gap=1))
    if state["agreement_note"]:
        panel.md(f"**Agreement of the maps** ({state['agreement_note']})", name="agreement_title")
        panel.plot("agreement", height=40, layout={"height": 360, "margin": {"t": 10, "b": 120, "l": 160, "r": 10}})
    return types.Property(panel, view=pc.column(gap=2))
