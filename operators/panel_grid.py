"""The CAM panel of the sample grid, for one run: a histogram per score
whose selected bins filter the grid (as the Embeddings panel's lasso does,
by one match stage on the App's view), the mean map per class (click one to see
its samples), the methods x layers agreement, and the run's live state
(with a resume button for a run queued as shards). Layout and callbacks
only: every number comes from ``cam_core`` (database aggregations)."""
import fiftyone.operators as foo

from . import panel_common as pc
from .panel_modal import reported

BINS = 20
MEAN_WIDTH = 96


def base_view(ctx):
    """The App's view without the stage this panel added (what the
    histogram counts, so selecting bins does not change the bins)."""
    import fiftyone.server.view as fosv

    name = ctx.request_params.get("view_name")
    if name:
        return ctx.dataset.load_saved_view(name)
    mine = ctx.panel.get_state("applied_stage")
    stages = [s for s in ctx.request_params.get("view") or [] if not (mine and s.get("_uuid") == mine)]
    return fosv.get_view(ctx.dataset, stages=stages, filters=ctx.request_params.get("filters") or {})


class CamRunPanel(foo.Panel):
    @property
    def config(self):
        return foo.PanelConfig(name="cam_run_panel", label="CAM: run overview", surfaces="grid", icon="insights",
                               help_markdown="A CAM run's scores, mean maps per class, agreement and live state")

    def on_load(self, ctx):
        self._refresh(ctx)

    def on_change_dataset(self, ctx):
        for key in ("run_key", "field", "score", "selection", "applied_stage", "message"):
            ctx.panel.set_state(key, None)
        self._refresh(ctx)

    # (the App also calls a dropdown's on_change when it shows the value it was given)
    def on_run(self, ctx):
        if ctx.params.get("value") == ctx.panel.get_state("run_key"):
            return
        ctx.panel.set_state("run_key", ctx.params.get("value"))
        ctx.panel.set_state("field", None)
        self._refresh(ctx)

    def on_field(self, ctx):
        if ctx.params.get("value") == ctx.panel.get_state("field"):
            return
        ctx.panel.set_state("field", ctx.params.get("value"))
        self._histogram(ctx)

    def on_score(self, ctx):
        if ctx.params.get("value") == ctx.panel.get_state("score"):
            return
        ctx.panel.set_state("score", ctx.params.get("value"))
        self._histogram(ctx)

    def open_compute(self, ctx):
        ctx.prompt(pc.COMPUTE_URI)

    @reported
    def _refresh(self, ctx):
        import cam_core

        keys = pc.run_keys(ctx.dataset)
        run_key = pc.chosen_run(ctx)
        ctx.panel.set_state("runs", keys)
        ctx.panel.set_state("run_key", run_key)
        if run_key is None:
            return
        self._status(ctx)
        config = cam_core.checks.run_config(ctx.dataset, run_key)
        fields = list(config.fields) + list(config.explanations)
        field = ctx.panel.get_state("field")
        ctx.panel.set_state("fields", fields)
        ctx.panel.set_state("field", field if field in fields else fields[0])
        self._histogram(ctx)
        view = base_view(ctx)
        means = cam_core.app.class_means(view, run_key, ctx.panel.get_state("field"))
        from cam_core.media.overlay import heat_image

        ctx.panel.set_state("mean_list", [{k: m[k] for k in ("label", "count", "used")} for m in means])
        ctx.panel.set_data("means", {f"m{i}": pc.data_uri(heat_image(m["map"], MEAN_WIDTH)) for i, m in enumerate(means)})
        ctx.panel.set_state("agreement_note", None)
        if len(config.fields) > 1:
            a = cam_core.app.agreement_matrix(view, run_key, max_samples=16)
            ctx.panel.set_data("agreement", [{"type": "heatmap", "z": a["matrix"], "x": a["labels"], "y": a["labels"],
                                              "zmin": -1, "zmax": 1, "colorscale": "Viridis"}])
            ctx.panel.set_state("agreement_note", f"mean Pearson correlation of each pair of maps over {a['samples']} "
                                                  f"samples; stored per sample: " + ", ".join(
                                                      f"{g} {v:.2f}" for g, v in a["groups"].items() if v is not None))

    @reported
    def refresh_status(self, ctx):
        self._status(ctx)

    def _status(self, ctx):
        import cam_core

        s = cam_core.run_status(ctx.dataset, ctx.panel.get_state("run_key"))
        ctx.panel.set_state("status", {
            "state": s.state, "num_samples": s.num_samples, "num_skipped": s.num_skipped, "error": s.error,
            "holder": s.holder, "shards": [{k: d[k] for k in ("shard", "state", "num_samples", "holder")}
                                           for d in s.shards]})

    @reported
    def _histogram(self, ctx):
        import cam_core
        from cam_core.scoring.names import HISTOGRAM_SCORES

        run_key, field = ctx.panel.get_state("run_key"), ctx.panel.get_state("field")
        view = base_view(ctx)
        scores = [s for s in cam_core.checks.map_scores(view, field) if s in HISTOGRAM_SCORES]
        scores += ["empty"]
        score = ctx.panel.get_state("score")
        score = score if score in scores else ("mass_inside" if "mass_inside" in scores else "spread")
        ctx.panel.set_state("scores", scores)
        ctx.panel.set_state("score", score)
        h = cam_core.app.score_histogram(view, run_key, score, field, bins=BINS)
        ctx.panel.set_state("hist", {k: h.get(k) for k in ("kind", "edges", "values", "counts", "missing")})
        self._draw(ctx, [])

    def _draw(self, ctx, selected):
        """The histogram's bars, those of the selection shown in the grid highlighted."""
        h, score = ctx.panel.get_state("hist"), ctx.panel.get_state("score")
        if h["kind"] == "boolean":
            x, width = ["false", "true"], None
        else:
            e = h["edges"]
            x, width = [(a + b) / 2 for a, b in zip(e[:-1], e[1:])], [b - a for a, b in zip(e[:-1], e[1:])]
        colours = ["#e07b39" if i in selected else "#3b6ea5" for i in range(len(h["counts"]))]
        ctx.panel.set_data("histogram", [{"type": "bar", "x": x, "y": h["counts"], "width": width,
                                          "ids": [str(i) for i in range(len(h["counts"]))], "name": score,
                                          "marker": {"color": colours}}])

    @reported
    def on_hist_selected(self, ctx):
        """The selected bins' samples shown in the grid: one match stage added
        to the App's view (the previous selection's replaced)."""
        import cam_core

        points = ctx.params.get("data") or []
        hist, run_key = ctx.panel.get_state("hist"), ctx.panel.get_state("run_key")
        field, score = ctx.panel.get_state("field"), ctx.panel.get_state("score")
        bins = sorted({int(p["idx"]) for p in points if p.get("idx") is not None})
        if not bins:  # plotly reports an empty selection when the chart is drawn again: kept ("Show all" clears)
            return
        if hist["kind"] == "boolean":
            values = sorted({hist["values"][b] for b in bins})
            if len(values) > 1:  # both values: every sample with one
                return self.clear_selection(ctx)
            view = cam_core.app.score_view(base_view(ctx), run_key, score, field, value=values[0])
            what = f"{score} = {values[0]}"
        else:
            lo, hi = hist["edges"][bins[0]], hist["edges"][bins[-1] + 1]
            view = cam_core.app.score_view(base_view(ctx), run_key, score, field, min_value=lo, max_value=hi)
            what = f"{score} in [{lo:.3f}, {hi:.3f})"
            bins = list(range(bins[0], bins[-1] + 1))
        self._select(ctx, view, what)
        self._draw(ctx, bins)

    def _select(self, ctx, view, what):
        # FiftyOne 1.22.1's set_extended_selection (the Embeddings panel's
        # lasso) does not filter the grid when a Python panel sets it: the
        # view gets one match stage instead, replaced by the next selection
        # the panel's state first, then the view: the App draws the grid (and the panel) again when
        # the view changes, and a state sent after it was lost on a loaded machine
        ctx.panel.set_state("applied_stage", view._serialize()[-1]["_uuid"])
        ctx.panel.set_state("selection", f"{view.count()} samples with {what}")
        ctx.ops.set_view(view)

    @reported
    def clear_selection(self, ctx):
        view = base_view(ctx)
        ctx.panel.set_state("applied_stage", None)
        ctx.panel.set_state("selection", None)
        ctx.ops.set_view(view)
        if ctx.panel.get_state("hist"):
            self._draw(ctx, [])

    @reported
    def show_class(self, ctx):
        import cam_core

        label = ctx.params["label"]
        view = cam_core.app.class_view(base_view(ctx), ctx.panel.get_state("run_key"), label, ctx.panel.get_state("field"))
        self._select(ctx, view, f"maps explaining '{label}'")

    @reported
    def resume(self, ctx):
        import cam_core

        queued = cam_core.resume_run(ctx.dataset, ctx.panel.get_state("run_key"))
        text = f"queued {len(queued)} shard(s) again for delegated workers" if queued else "no shard needed resuming"
        ctx.panel.set_state("message", {"error": False, "text": text})
        self._status(ctx)

    def render(self, ctx):
        from .panel_grid_view import layout

        return layout(self, ctx)
