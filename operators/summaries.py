"""The ``summarize_cam_run`` operator: the pictures of
:func:`cam_core.summarize_run`, saved and shown in the App."""
import base64

import fiftyone.operators as foo
import fiftyone.operators.types as types

from . import choices
from .compute import _context

PICTURES = (
    ("mean_heatmaps", "Mean heatmap per explained class"),
    ("extremes", "Most and least on-object samples"),
    ("histograms", "Scores"),
)
# what the form summarises unless the user picks the current view or the selection
TARGET = "DATASET"


class SummarizeCamRun(foo.Operator):
    """Saves and shows a run's summary: the mean heatmap of each class, a grid
    of the samples with the highest and lowest score with their maps, and
    histograms of the scores. The App's form summarises the whole dataset
    unless the current view or the selected samples are chosen, and says how
    many samples the summary covers (so does its result).

    From Python (the collection passed is the one summarised)::

        op = foo.get_operator("@fiftyone-cam/cam/summarize_cam_run")
        paths = op(dataset, "cam", label_field="ground_truth")
        # {"mean_heatmaps": ".../cam_mean_heatmaps.png", "extremes": ..., "histograms": ...}
    """

    @property
    def config(self):
        return foo.OperatorConfig(
            name="summarize_cam_run",
            label="Summarize a CAM run",
            description="Mean heatmap per class, the most and least on-object samples, score histograms",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def __call__(self, sample_collection, run_key, field=None, score="mass_inside", k=5, label_field=None,
                 output_dir=None, delegate=False, delegation_target=None):
        """Runs :func:`cam_core.summarize_run` through this operator.

        The arguments are those of :func:`cam_core.summarize_run`.

        Returns:
            ``{"mean_heatmaps": path, "extremes": path or None, "histograms": path}``,
            or the queued operation's ``ExecutionResult`` when delegated

        Raises:
            ``fiftyone.operators.executor.ExecutionError``: when the form
            refuses the parameters (the message names the parameter and why)
        """
        params = {"run_key": run_key, "field": field, "score": score, "k": k, "label_field": label_field,
                  "output_dir": output_dir, "view_target": choices.collection_target(sample_collection)}
        params = {k: v for k, v in params.items() if v is not None}
        result = foo.execute_operator(self.uri, ctx=dict(_context(sample_collection), params=params),
                                      request_delegation=delegate, delegation_target=delegation_target)
        return result if delegate else result.result["paths"]

    def resolve_input(self, ctx):
        import cam_core

        inputs = types.Object()
        # the whole dataset unless the user picks the current view or the selection:
        # a summary of whatever view happens to be loaded (a sorted, bounded one) misleads
        view, key, field, score = choices.run_map_score(ctx, inputs, "Summarize",
                                                        "The grid shows the samples with the highest and the lowest score",
                                                        default_target=TARGET)
        if field:
            if field in cam_core.checks.run_config(view, key).fields:  # a stale choice is refused below
                inputs.view("summarized", types.Notice(label=_what(ctx, view, field)))
            inputs.int("k", default=5, label="Samples per half of the grid")
            choices.label_field(inputs, "label_field", cam_core.checks.label_fields(view, "Classification"), label="Label shown",
                                description="Optional: a Classification field shown above each sample of the grid")
            root = cam_core.checks.output_root(choices.secret(ctx, cam_core.checks.OUTPUT_ROOT_ENV))
            inputs.str("output_dir", label="Output directory",
                       description=f"Where the pictures go, under {root} (a relative path is taken from there); "
                                   f"default {cam_core.checks.default_summary_dir(ctx.dataset.name, key)}")
            p = ctx.params
            # the App's users choose a folder under the root only: the server writes the files
            choices.engine_check(inputs, {}, cam_core.checks.check_output_dir, p.get("output_dir"), root)
            choices.engine_check(inputs, {}, cam_core.checks.check_summary_args, view, key, field=field, score=score,
                                 k=p.get("k", 5), label_field=p.get("label_field") or None)
        return types.Property(inputs, view=types.View(label="Summarize a CAM run"))

    def execute(self, ctx):
        import cam_core

        p = ctx.params
        # checked again here: a delegated worker runs what was queued, whatever form queued it
        output_dir = cam_core.checks.check_output_dir(p.get("output_dir"), choices.secret(ctx, cam_core.checks.OUTPUT_ROOT_ENV))
        choices.preselect_target(ctx, TARGET)
        view = ctx.target_view()
        field = p.get("field") or next(iter(cam_core.checks.run_config(view, p["run_key"]).fields))
        paths = cam_core.summarize_run(
            view, p["run_key"], output_dir=output_dir, field=field,
            score=p.get("score") or "mass_inside", k=int(p.get("k", 5)), label_field=p.get("label_field") or None,
        )
        out = {"paths": paths, "num_samples": view.exists(field).count(), "summarized": _what(ctx, view, field),
               "saved": "\n".join(f"- {path}" for path in paths.values() if path)}
        if not ctx.delegated:
            # the App shows the pictures inline: data URLs need no file route
            for name, _ in PICTURES:
                out[name] = _data_url(paths[name]) if paths[name] else None
        return out

    def resolve_output(self, ctx):
        results = ctx.results or {}
        if "paths" not in results:
            return None
        outputs = types.Object()
        if results.get("summarized"):
            outputs.str("summarized", label="Summarized", view=types.MarkdownView(read_only=True))
        for name, label in PICTURES:
            if results.get(name):
                outputs.str(name, label=label, view=types.ImageView(alt=label))
        outputs.str("saved", label="Saved", view=types.MarkdownView(read_only=True))
        return types.Property(outputs, view=types.View(label="CAM run summary"))


def _what(ctx, view, field):
    """What the summary covers, in words, with its count of samples."""
    n = view.exists(field).count()
    return f"{n} sample(s) with a map in '{field}', from {choices.target_description(ctx, view)}"


def _data_url(path):
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode("ascii")
