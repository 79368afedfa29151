"""The ``sort_by_cam_score`` operator: a run's samples ordered by one score of
one heatmap field, with bounds (see :func:`cam_core.sort_by_score`)."""
import fiftyone.operators as foo
import fiftyone.operators.types as types

from . import choices
from .compute import _context


class SortByCamScore(foo.Operator):
    """Opens the samples of a CAM run sorted by a score of its maps, e.g.
    the correct predictions where the model looked outside the object, least
    on-object first.

    From Python::

        op = foo.get_operator("@fiftyone-cam/cam/sort_by_cam_score")
        view = op(dataset, "cam", score="mass_inside", max_value=0.3, correct_field="ground_truth")
        op(dataset, "cam", score="border", reverse=True, view_name="looks-at-the-border")
    """

    @property
    def config(self):
        return foo.OperatorConfig(
            name="sort_by_cam_score",
            label="Sort samples by a CAM score",
            description="A run's samples ordered by a score of its maps, within bounds; optionally saved as a view",
            dynamic=True,
        )

    def __call__(self, sample_collection, run_key, score="mass_inside", field=None, min_value=None,
                 max_value=None, reverse=False, correct_field=None, view_name=None):
        """The view this operator opens in the App.

        The arguments are those of :func:`cam_core.sort_by_score`.

        Args:
            sample_collection: the run's dataset or a view of it
            view_name (None): also save the view on the dataset under this name

        Returns:
            a ``DatasetView``

        Raises:
            ``fiftyone.operators.executor.ExecutionError``: when the form
            refuses the parameters (the message names the parameter and why)
        """
        import fiftyone.core.view as fov

        params = {"run_key": run_key, "score": score, "field": field, "min_value": min_value,
                  "max_value": max_value, "reverse": bool(reverse), "correct_field": correct_field,
                  "view_name": view_name}
        params = {k: v for k, v in params.items() if v is not None}
        result = foo.execute_operator(self.uri, ctx=dict(_context(sample_collection), params=params))
        dataset = sample_collection._root_dataset
        return fov.DatasetView._build(dataset, result.result["view"])

    def resolve_input(self, ctx):
        import fiftyone as fo

        inputs = types.Object()
        view, key, field = choices.run_map_score(ctx, inputs, "Sort", "The score the samples are sorted by")
        if field:
            lo = inputs.float("min_value", label="At least", description="Keep samples whose score is at least this")
            hi = inputs.float("max_value", label="At most", description="Keep samples whose score is at most this")
            low, high = ctx.params.get("min_value"), ctx.params.get("max_value")
            if low is not None and high is not None and low > high:
                choices.invalid(hi, f"'At most' ({high}) is below 'At least' ({low}): no sample could match")
                choices.invalid(lo, f"'At least' ({low}) is above 'At most' ({high})")
            inputs.bool("reverse", default=False, label="Highest first")
            choices.label_field(
                ctx, inputs, view, "correct_field", (fo.Classification,), label="Correct predictions of",
                description="Optional: keep samples whose explained class equals this field's label",
            )
            name = inputs.str("view_name", label="Save as view",
                              description="Optional: save the sorted view on the dataset under this name")
            wanted = ctx.params.get("view_name")
            if wanted and ctx.dataset.has_saved_view(wanted):
                choices.invalid(name, f"a saved view '{wanted}' exists: choose another name")
        return types.Property(inputs, view=types.View(label="Sort samples by a CAM score"))

    def execute(self, ctx):
        import cam_core

        p = ctx.params
        key, score = p["run_key"], p.get("score") or "mass_inside"
        view = cam_core.sort_by_score(
            ctx.target_view(), key, score=score, field=p.get("field"),
            min_value=p.get("min_value"), max_value=p.get("max_value"), reverse=bool(p.get("reverse")),
            correct_field=p.get("correct_field") or None,
        )
        name = p.get("view_name") or None
        if name:
            ctx.dataset.save_view(name, view, description=f"CAM run '{key}' sorted by {score}")
        # the view itself, also when saved: FiftyOne's own save_view operator
        # avoids set_view(name=...) after saving, an App bug in 1.22
        ctx.ops.set_view(view=view)
        n = len(view)
        message = f"{n} sample(s) sorted by {score}" + (f", saved as view '{name}'" if name else "")
        ctx.ops.notify(message, variant="success" if n else "warning")
        return {"count": n, "view": view._serialize(), "view_name": name, "message": message}
