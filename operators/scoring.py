"""The ``score_cam_run`` operator: ground-truth scores for a run that exists,
from its stored maps (see :func:`cam_core.score_regions`)."""
import fiftyone.operators as foo
import fiftyone.operators.types as types

from . import choices, progress
from .compute import _context


class ScoreCamRun(foo.Operator):
    """Scores the maps of a CAM run against objects: ``mass_inside``,
    ``pointing_hit`` and ``iou`` on every heatmap, filterable in the sidebar.

    From Python::

        op = foo.get_operator("@fiftyone-cam/cam/score_cam_run")
        op(dataset, "cam", "ground_truth_boxes")            # -> samples scored
        op(dataset.match_tags("val"), "cam", "masks", iou_threshold=0.3)
    """

    @property
    def config(self):
        return foo.OperatorConfig(
            name="score_cam_run",
            label="Score a CAM run against objects",
            description="How much of each map falls inside the objects of a Detections, Polylines or Segmentation field",
            dynamic=True,
            execute_as_generator=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def __call__(self, sample_collection, run_key, gt_field, all_objects=True, iou_threshold=0.5,
                 delegate=False, delegation_target=None):
        """Runs :func:`cam_core.score_regions` through this operator.

        Args:
            sample_collection: the run's dataset or a view of it
            run_key: a CAM run's key
            gt_field: an ``fo.Detections``, ``fo.Polylines`` or ``fo.Segmentation`` field
            all_objects (True): every object of the sample, whatever each map's
                target class; False: only the objects of each map's target class
            iou_threshold (0.5): the map's relative level for ``iou``, in (0, 1]
            delegate (False): queue the scoring for a delegated worker
            delegation_target (None): the orchestrator to queue it on

        Returns:
            the number of samples scored, or the queued operation's
            ``ExecutionResult`` when delegated

        Raises:
            ``fiftyone.operators.executor.ExecutionError``: when the form
            refuses the parameters (the message names the parameter and why)
        """
        params = {"run_key": run_key, "gt_field": gt_field, "all_objects": bool(all_objects),
                  "iou_threshold": iou_threshold, progress.PYTHON_CALL: True}
        result = foo.execute_operator(self.uri, ctx=dict(_context(sample_collection), params=params),
                                      request_delegation=delegate, delegation_target=delegation_target)
        return result if delegate else result.result["num_samples"]

    def resolve_input(self, ctx):
        import cam_core

        inputs = types.Object()
        inputs.view_target(ctx, action_description="Score the maps of")
        key = choices.run_key(ctx, inputs, "Run", preselect=True)
        if key:
            view = ctx.target_view()
            choices.label_field(
                inputs, "gt_field", cam_core.checks.object_fields(view), label="Objects", required=True,
                description="Each map gets mass_inside, pointing_hit and iou against this field's objects",
            )
            inputs.bool("all_objects", default=True, label="All objects",
                        description="Score against every object of the sample, whatever class the map explains "
                                    "(untick: only the objects of each map's explained class)")
            inputs.float("iou_threshold", default=0.5, label="IoU threshold",
                         description="The map's level, relative to its maximum, whose region is compared with the objects (0 to 1]")
            p = ctx.params
            gt = p.get("gt_field")
            if gt:
                _, ok = choices.engine_check(inputs, {}, cam_core.checks.check_score_args, view, key, gt,
                                             bool(p.get("all_objects", True)), p.get("iou_threshold", 0.5))
                old = ctx.dataset.get_run_info(key).config.gt_field
                if ok and old and old != gt:
                    inputs.view("replaces", types.Warning(
                        label=f"The run's maps were scored against '{old}': these scores replace those"))
        return types.Property(inputs, view=types.View(label="Score a CAM run against objects"))

    def execute(self, ctx):
        import cam_core

        view = ctx.target_view()
        p = ctx.params
        key, gt = p["run_key"], p["gt_field"]

        def work(callback):
            return cam_core.score_regions(view, key, gt, all_objects=bool(p.get("all_objects", True)),
                                          iou_threshold=p.get("iou_threshold", 0.5), progress=callback)

        if progress.returns_result(ctx):
            return _outcome(key, gt, progress.run(ctx, work, len(view)))
        return self._immediate(ctx, work, len(view), key, gt)

    def _immediate(self, ctx, work, total, key, gt):
        out = _outcome(key, gt, (yield from progress.run(ctx, work, total)))
        yield ctx.ops.reload_dataset()
        yield ctx.ops.notify(out["message"], variant="success" if out["num_samples"] else "warning")

    def resolve_output(self, ctx):
        if not isinstance(ctx.results, dict) or "message" not in ctx.results:
            return None
        outputs = types.Object()
        outputs.str("message", label="Summary", view=types.MarkdownView(read_only=True))
        return types.Property(outputs)


def _outcome(run_key, gt_field, n):
    return {
        "run_key": run_key,
        "gt_field": gt_field,
        "num_samples": n,
        "message": f"CAM run '{run_key}': the maps of {n} sample(s) were scored against '{gt_field}'",
    }
