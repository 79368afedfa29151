"""The ``sort_cam_objects`` operator: a detector run's explained objects as
patches, ordered by one of their own scores, with bounds and filters (see
:func:`cam_core.sort_objects_by_score`)."""
import fiftyone.operators as foo
import fiftyone.operators.types as types

from . import choices
from .views import opened_view

DEFAULT_SCORE = "inside"
_SCORE_TEXT = {
    "inside": "share of the object's own map inside its box",
    "on_others": "share of its map in the other explained objects' boxes",
    "background": "share of its map outside every box",
    "peak_inside": "its map's maximum lies inside its box",
}


class SortCamObjects(foo.Operator):
    """Opens the objects a detector run explained, one patch each, sorted by
    a score of the object's own map, e.g. the confident boxes found by their
    context (least of their map inside the box) first.

    From Python::

        op = foo.get_operator("@fiftyone-cam/cam/sort_cam_objects")
        patches = op(dataset, "cam", score="inside", min_confidence=0.5)
        op(dataset, "cam", score="background", reverse=True, label="person", view_name="context-people")
    """

    @property
    def config(self):
        return foo.OperatorConfig(
            name="sort_cam_objects",
            label="Sort detected objects by a CAM score",
            description="A detector run's explained objects as patches, ordered by a score of their own maps",
            dynamic=True,
        )

    def __call__(self, sample_collection, run_key, score=DEFAULT_SCORE, field=None, min_value=None, max_value=None,
                 reverse=False, min_confidence=None, label=None, view_name=None):
        """The patches view this operator opens in the App.

        The arguments are those of :func:`cam_core.sort_objects_by_score`.

        Args:
            sample_collection: the run's dataset or a view of it
            view_name (None): also save the view on the dataset under this name

        Returns:
            a patches view (one patch per explained object)

        Raises:
            ``fiftyone.operators.executor.ExecutionError``: when the form
            refuses the parameters (the message names the parameter and why)
        """
        params = {"run_key": run_key, "score": score, "field": field, "min_value": min_value,
                  "max_value": max_value, "reverse": bool(reverse), "min_confidence": min_confidence,
                  "label": None if label is None else str(label), "view_name": view_name}
        return opened_view(self.uri, sample_collection, params)

    def resolve_input(self, ctx):
        import cam_core

        inputs = types.Object()
        inputs.view_target(ctx, action_description="Sort the objects of")
        view = ctx.target_view()
        keys = detector_runs(ctx.dataset)
        if not keys and not ctx.params.get("run_key"):
            message = "this dataset has no detector run: compute one with compute_cams on a detector"
            choices.invalid(inputs.view("run_key_error", types.Error(label=message)), message)
            return types.Property(inputs, view=types.View(label="Sort detected objects by a CAM score"))
        key = choices.run_key(ctx, inputs, "Detector run", preselect=True, keys=keys)
        if key:
            choices.run_field(ctx, inputs, key)
            inputs.enum("score", list(cam_core.types.DETECTION_SCORES), default=DEFAULT_SCORE, required=True,
                        label="Score", description="The object score the patches are sorted by: " + "; ".join(
                            f"{k}: {v}" for k, v in _SCORE_TEXT.items()),
                        view=choices.dropdown(cam_core.types.DETECTION_SCORES))
            inputs.float("min_value", label="At least", description="Keep objects whose score is at least this (min_value)")
            inputs.float("max_value", label="At most", description="Keep objects whose score is at most this (max_value)")
            inputs.bool("reverse", default=False, label="Highest first")
            inputs.float("min_confidence", label="Confidence at least",
                         description="Optional: keep objects the detector scored at least this")
            classes = ctx.dataset.get_run_info(key).config.classes
            inputs.str("label", label="Class", description="Optional: keep objects of this class",
                       view=choices.dropdown([str(c) for c in classes]) if classes is not None else types.View())
            inputs.str("view_name", label="Save as view",
                       description="Optional: save the sorted patches on the dataset under this name")
            choices.engine_check(inputs, {}, cam_core.checks.check_objects_args, view, key, **_arguments(ctx.params))
        return types.Property(inputs, view=types.View(label="Sort detected objects by a CAM score"))

    def execute(self, ctx):
        import cam_core

        key, arguments = ctx.params["run_key"], _arguments(ctx.params)
        view = cam_core.sort_objects_by_score(ctx.target_view(), key, **arguments)
        # the view itself, also when saved (as sort_by_cam_score: an App bug in 1.22 with set_view(name=...))
        ctx.ops.set_view(view=view)
        n, name = len(view), arguments["view_name"]
        message = f"{n} object(s) of run '{key}' sorted by {arguments['score']}" + (
            f", saved as view '{name}'" if name else "")
        if not n:  # say why there is nothing to see
            message += ": " + cam_core.checks.why_no_patches(ctx.target_view(), key, arguments["score"], arguments["field"])
        ctx.ops.notify(message, variant="success" if n else "warning")
        return {"count": n, "view": view._serialize(), "view_name": name, "message": message}


def detector_runs(dataset):
    """The dataset's CAM runs that explained a detector (whose config names a
    ``detections_field``)."""
    import cam_core

    return [k for k in cam_core.list_cam_runs(dataset)
            if getattr(dataset.get_run_info(k).config, "detections_field", None)]


def _arguments(p):
    """:func:`cam_core.sort_objects_by_score`'s keyword arguments from the form's parameters."""
    return {"score": p.get("score") or DEFAULT_SCORE, "field": p.get("field") or None,
            "min_value": p.get("min_value"), "max_value": p.get("max_value"), "reverse": bool(p.get("reverse")),
            "min_confidence": p.get("min_confidence"), "label": p.get("label") or None,
            "view_name": p.get("view_name") or None}
