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
        params = {"run_key": run_key, "score": score, "field": field, "min_value": min_value,
                  "max_value": max_value, "reverse": bool(reverse), "correct_field": correct_field,
                  "view_name": view_name}
        return opened_view(self.uri, sample_collection, params)

    def resolve_input(self, ctx):
        import cam_core

        inputs = types.Object()
        view, key, field, score = choices.run_map_score(ctx, inputs, "Sort", "The score the samples are sorted by")
        if field:
            inputs.float("min_value", label="At least", description="Keep samples whose score is at least this (min_value)")
            inputs.float("max_value", label="At most", description="Keep samples whose score is at most this (max_value)")
            inputs.bool("reverse", default=False, label="Highest first")
            choices.label_field(
                inputs, "correct_field", cam_core.checks.label_fields(view, "Classification"), label="Correct predictions of",
                description="Optional: keep samples whose explained class equals this field's label",
            )
            inputs.str("view_name", label="Save as view",
                       description="Optional: save the sorted view on the dataset under this name")
            choices.engine_check(inputs, {}, cam_core.checks.check_sort_args, view, key, **_arguments(ctx.params, score))
        return types.Property(inputs, view=types.View(label="Sort samples by a CAM score"))

    def execute(self, ctx):
        import cam_core

        p = ctx.params
        key, score = p["run_key"], p.get("score") or "mass_inside"
        arguments = _arguments(p, score)
        name = arguments["view_name"]
        target = ctx.target_view()
        view = cam_core.sort_by_score(target, key, **arguments)
        # the view itself, also when saved: FiftyOne's own save_view operator
        # avoids set_view(name=...) after saving, an App bug in 1.22
        ctx.ops.set_view(view=view)
        n = len(view)
        message = f"{n} sample(s) sorted by {score}" + (f", saved as view '{name}'" if name else "")
        # what was left out, and why: an empty map is not a weak one
        missing, why = cam_core.checks.missing_scores(target, key, score, arguments["field"])
        if missing:
            message += f"; {missing} left out for no {score}: {why}"
        outside = target.count() - missing - n
        if outside:
            message += f"; {outside} outside the bounds" + (" or not correct" if arguments["correct_field"] else "")
        ctx.ops.notify(message, variant="success" if n and not missing else "warning")
        return {"count": n, "left_out": missing + outside, "view": view._serialize(), "view_name": name,
                "message": message}


def opened_view(uri, sample_collection, params):
    """Runs a view operator as the App does (its form checks ``params``; None
    values are left out) and returns the view it opens."""
    import fiftyone.core.view as fov

    params = {k: v for k, v in params.items() if v is not None}
    result = foo.execute_operator(uri, ctx=dict(_context(sample_collection), params=params))
    return fov.DatasetView._build(sample_collection._root_dataset, result.result["view"])


def _arguments(p, score):
    """:func:`cam_core.sort_by_score`'s keyword arguments from the form's parameters."""
    return {"score": score, "field": p.get("field"), "min_value": p.get("min_value"), "max_value": p.get("max_value"),
            "reverse": bool(p.get("reverse")), "correct_field": p.get("correct_field") or None,
            "view_name": p.get("view_name") or None}
