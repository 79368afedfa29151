"""The CAM panel beside an opened sample: its stored maps as a grid of methods
x layers (click one to show it on the image), another class explained on
demand ("A, not B" too), a detector's box explained when it is clicked, and
an explanation saved to the run. Layout and callbacks only: ``cam_core``
computes and reads everything (see :mod:`operators.panel_common`)."""
import functools

import fiftyone.operators as foo

from . import panel_common as pc

WIDTH = pc.TILE_WIDTH


def reported(method):
    """Runs a callback; what it refuses (a model that cannot be loaded, a
    class it does not have, an image that cannot be read) becomes the
    panel's message instead of an error (nothing stored changes)."""

    @functools.wraps(method)
    def run(self, ctx):
        try:
            ctx.panel.set_state("message", None)
            return method(self, ctx)
        except Exception as e:  # shown to the user, who can act on it
            text = getattr(e, "message", None) or str(e)
            param = getattr(e, "param", None)
            ctx.panel.set_state("message", {"error": True, "text": f"{param}: {text}" if param else text})

    return run


class CamSamplePanel(foo.Panel):
    @property
    def config(self):
        return foo.PanelConfig(name="cam_sample_panel", label="CAM: this sample", surfaces="modal", icon="grid_view",
                               help_markdown="The class activation maps of the opened sample, and more on demand")

    def on_load(self, ctx):
        self._refresh(ctx)

    def on_change_current_sample(self, ctx):
        ctx.panel.set_state("extra", [])
        ctx.panel.set_state("object", None)
        ctx.panel.set_state("selected", None)
        self._refresh(ctx)

    @reported
    def _refresh(self, ctx):
        import cam_core

        keys = pc.run_keys(ctx.dataset)
        ctx.panel.set_state("runs", keys)
        run_key = pc.chosen_run(ctx)
        ctx.panel.set_state("run_key", run_key)
        if run_key is None or not ctx.current_sample:
            return
        sample = ctx.dataset[ctx.current_sample]
        tiles = pc.stored_tiles(sample, run_key, WIDTH)
        config = cam_core.checks.run_config(ctx.dataset, run_key)
        rows = pc.rows_of(tiles, "row")  # a row per method (and per saved explanation's target)
        ctx.panel.set_state("rows", [[{k: t[k] for k in ("field", "label", "caption")} for t in r] for r in rows])
        ctx.panel.set_data("grid", {f"r{i}": {f"t{j}": t["uri"] for j, t in enumerate(r)} for i, r in enumerate(rows)})
        ctx.panel.set_state("classes", self._classes(ctx.dataset, sample, config))
        ctx.panel.set_state("objects", [{"id": o["id"], "label": o["label"], "confidence": o["confidence"],
                                         "scores": o["scores"]} for o in cam_core.app.sample_objects(sample, run_key)])

    @staticmethod
    def _classes(dataset, sample, config):
        """The class picker's choices: the sample's own labels first, then the model's classes."""
        import cam_core

        classes = [str(c) for c in config.classes or []]
        own = []
        for field in cam_core.checks.label_fields(dataset, "Classification", "Detections"):
            value = sample[field] if sample.has_field(field) else None
            labels = [value.label] if hasattr(value, "label") else [d.label for d in getattr(value, "detections", [])]
            own += [str(l) for l in labels if str(l) in classes and str(l) not in own]
        return own + [c for c in classes if c not in own]

    def on_run(self, ctx):
        if ctx.params.get("value") == ctx.panel.get_state("run_key"):
            return  # the App also calls on_change when it shows the value given
        ctx.panel.set_state("run_key", ctx.params.get("value"))
        ctx.panel.set_state("extra", [])
        ctx.panel.set_state("object", None)
        ctx.panel.set_state("selected", None)
        self._refresh(ctx)

    def open_compute(self, ctx):
        ctx.prompt(pc.COMPUTE_URI)

    @reported
    def show_field(self, ctx):
        """Shows one map large in the panel, and makes it the shown heatmap
        field (the run's other maps are hidden)."""
        import cam_core
        from cam_core.media.overlay import overlay

        run_key, field = ctx.panel.get_state("run_key"), ctx.params["field"]
        sample = ctx.dataset[ctx.current_sample]
        config = cam_core.checks.run_config(ctx.dataset, run_key)
        own = set(config.all_fields())
        keep = [f for f in ctx.active_fields or [] if isinstance(f, str) and f.split(".")[0] not in own]
        # FiftyOne 1.22.1's set_active_fields reaches the grid's shown fields
        # only (it reads a modal atom the App no longer sets); the modal's own
        # are its sidebar's: so the map is also drawn here, large
        ctx.ops.set_active_fields(fields=keep + [field] + ([config.detections_field] if config.detections_field else []))
        chosen = next(m for m in cam_core.app.sample_maps(sample, run_key) if m["field"] == field)
        image = pc.thumbnail_source(sample.filepath, pc.LARGE_WIDTH)
        ctx.panel.set_state("selected", {"field": field, "caption": pc.score_line(chosen["scores"])})
        ctx.panel.set_data("selected_map", pc.data_uri(overlay(image, chosen["map"], pc.LARGE_WIDTH)))

    @reported
    def explain_class(self, ctx):
        """The picked class explained on demand (minus the second class's
        map when one is picked), added below the stored maps."""
        from cam_core.compute.ondemand import read_image

        run_key, sample = ctx.panel.get_state("run_key"), ctx.dataset[ctx.current_sample]
        wanted, other = ctx.panel.get_state("picker.explain_class"), ctx.panel.get_state("picker.explain_not")
        if not wanted:
            raise ValueError("pick a class to explain")
        exp = pc.explain_for_run(sample, ctx.dataset, run_key, f"class:{wanted}")
        if other and other != pc.NONE:
            exp = exp.minus(pc.explain_for_run(sample, ctx.dataset, run_key, f"class:{other}"))
            pc.keep(ctx.dataset, sample.id, run_key, exp)
        rows = pc.rows_of(pc.explanation_tiles(exp, read_image(sample.filepath)[0], WIDTH))
        extra = ctx.panel.get_state("extra") or []
        entry = {"target": exp.target, "label": f"{exp.target_label} {exp.target_confidence or 0:.2f}",
                 "rows": [[{k: t[k] for k in ("label", "caption")} for t in r] for r in rows], "saved": None}
        at = next((i for i, e in enumerate(extra) if e["target"] == exp.target), len(extra))
        extra[at:at + 1] = [entry]
        ctx.panel.set_state("extra", extra)
        ctx.panel.set_data(f"extra{at}", {f"r{k}": {f"t{j}": t["uri"] for j, t in enumerate(r)} for k, r in enumerate(rows)})

    @reported
    def save_extra(self, ctx):
        """Stores an explanation on demand as fields of the run (filterable)."""
        import cam_core

        run_key, sample = ctx.panel.get_state("run_key"), ctx.dataset[ctx.current_sample]
        extra = ctx.panel.get_state("extra") or []
        entry = extra[int(ctx.params["index"])]
        exp = pc.kept_explanation(ctx.dataset, sample.id, run_key, entry["target"])
        if exp is None:
            raise ValueError("this explanation is no longer held by the App server: explain it again, then save")
        fields = cam_core.save_explanation(sample, run_key, exp)
        entry["saved"] = ", ".join(fields.values())
        ctx.panel.set_state("extra", extra)
        ctx.ops.reload_dataset()  # the new fields, in the sidebar
        self._refresh(ctx)  # the saved maps join the stored ones
        ctx.panel.set_state("message", {"error": False, "text": f"saved to run '{run_key}' as {entry['saved']}"})

    def on_change_selected_labels(self, ctx):
        objects = ctx.panel.get_state("objects") or []
        ids = [o["id"] for o in objects]
        for label in ctx.selected_labels or []:
            if label.get("label_id") in ids:
                ctx.params["index"] = ids.index(label["label_id"])
                self.show_object(ctx)
                return

    @reported
    def show_object(self, ctx):
        """A detector's object explained alone: its own maps, its stored
        ``inside`` / ``on_others`` scores (the run's objects are explained
        again, as the run explained them, and matched by their box)."""
        import cam_core
        from cam_core.compute.ondemand import read_image

        index = int(ctx.params["index"])
        run_key, sample = ctx.panel.get_state("run_key"), ctx.dataset[ctx.current_sample]
        config = cam_core.checks.run_config(ctx.dataset, run_key)
        stored = cam_core.app.sample_objects(sample, run_key)[index]
        exp = pc.explain_for_run(sample, ctx.dataset, run_key, config.target)
        k = pc.matching_object(exp.objects, stored)
        tiles = pc.explanation_tiles(exp, read_image(sample.filepath)[0], WIDTH, index=k)
        for tile, field in zip(tiles, config.fields):
            tile["caption"] = pc.score_line(stored["scores"].get(field, {}))
        ctx.panel.set_state("object", {"title": f"{stored['label']} ({stored['confidence'] or 0:.2f})",
                                       "tiles": [{k: t[k] for k in ("label", "caption")} for t in tiles]})
        ctx.panel.set_data("object_maps", {f"t{j}": t["uri"] for j, t in enumerate(tiles)})

    def render(self, ctx):
        from .panel_modal_view import layout

        return layout(self, ctx)
