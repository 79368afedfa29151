"""Run management: list the CAM runs of a dataset, show one, delete one."""
import fiftyone.operators as foo
import fiftyone.operators.types as types

from . import choices, progress
from .follow import FOLLOW, app_state, follow_in_app


def run_keys(dataset):
    """The CAM runs of a dataset (other run types left out)."""
    import cam_core

    return cam_core.list_cam_runs(dataset)


def run_info(dataset, key):
    """A run's settings and outcome as JSON.

    Returns:
        a dict with ``run_key``, ``timestamp``, the config's settings
        (``model``, ``layers``, ``methods``, ``target``, ``storage``,
        ``output_dir``, ``fields``, ...; the class list as ``num_classes``)
        and its live state from the database (:func:`cam_core.run_status`):
        ``state`` (``queued``, ``running``, ``complete``, ``failed``,
        ``interrupted``; ``unknown`` for a run recorded before run states
        existed), ``error`` (a run queued as jobs: which shards are
        interrupted or failed, and what to do), ``holder``,
        ``num_samples``, ``num_skipped``, ``skipped`` and ``seconds`` so far;
        for a run queued as jobs, ``shards``: per shard its ``state``,
        ``num_samples``, ``holder``, ``op_id`` and ``error``
    """
    import cam_core

    info = dataset.get_run_info(key)
    config = info.config.serialize()
    classes = config.pop("classes", None)
    config.pop("cls", None)
    out = {"run_key": key, "timestamp": info.timestamp.isoformat() if info.timestamp else None}
    out.update(config)
    out["num_classes"] = len(classes) if classes is not None else None
    try:
        results = dataset.load_run_results(key, cache=False)
    except Exception:  # a run still going, or one that failed before its results
        results = None
    if results is not None:
        out.update(
            num_samples=results.num_samples,
            num_skipped=results.num_skipped,
            skipped=list(results.skipped),
            seconds=results.seconds,
        )
    live = cam_core.run_status(dataset, key)
    out["state"] = live.state
    if live.state != "unknown":  # runs recorded before states existed keep their results' counts
        out.update(error=live.error, holder=live.holder, num_samples=live.num_samples,
                   num_skipped=live.num_skipped, skipped=live.skipped, seconds=live.seconds)
    if live.shards:  # a run queued as jobs: each shard's state (which to resume), worker and error
        out["shards"] = live.shards
    return out


class ListCamRuns(foo.Operator):
    """Lists the CAM runs of a dataset with their settings.

    From Python: ``foo.get_operator("@fiftyone-cam/cam/list_cam_runs")(dataset)``
    returns a list of :func:`run_info` dicts; the App shows them as a table
    (:func:`table_row`).
    """

    @property
    def config(self):
        return foo.OperatorConfig(
            name="list_cam_runs",
            label="List CAM runs",
            description="The class activation map runs of this dataset and their settings",
            view_target=False,
        )

    def __call__(self, dataset):
        result = foo.execute_operator(self.uri, ctx={"dataset": dataset._root_dataset})
        return result.result["runs"]

    def execute(self, ctx):
        runs = [run_info(ctx.dataset, key) for key in run_keys(ctx.dataset)]
        # Python callers get the lists and ISO times; the App's table gets text
        return {"runs": runs, "table": [table_row(info) for info in runs]}

    def resolve_output(self, ctx):
        outputs = types.Object()
        # the App's table is at least 650 px wide with 16 px of padding per
        # cell: in the operator's dialog its last columns scroll out of sight
        cell = {"sx": {"px": 1, "fontSize": "0.875rem"}}
        table = types.TableView(componentsProps={"table": {"sx": {"minWidth": 0}}, "tableHeadCell": cell,
                                                 "tableBodyCell": cell})
        for key, label in TABLE_COLUMNS:
            table.add_column(key, label=label)
        outputs.list("table", types.Object(), label="CAM runs", view=table)
        return types.Property(outputs)


# the columns of list_cam_runs' table in the App: (run_info key, label)
TABLE_COLUMNS = (
    ("run_key", "Run key"), ("model", "Model"), ("methods", "Methods"), ("layers", "Layers"),
    ("target", "Target"), ("state", "State"), ("num_samples", "Samples"), ("num_skipped", "Skipped"),
    ("timestamp", "When (UTC)"),
)


def table_row(info):
    """A :func:`run_info` dict as the text of one row of the App's table:
    lists joined with ", " (the table would run them together) and the
    start time as ``YYYY-MM-DD HH:MM`` (UTC), short enough for its column."""
    row = {}
    for key, _ in TABLE_COLUMNS:
        value = info.get(key)
        if key == "timestamp":
            value = when(value)
        elif key == "state" and info.get("shards"):
            value = shards_state(value, info["shards"])
        elif isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        row[key] = value
    return row


def shards_state(state, shards):
    """A run queued as jobs: its state and its shards', e.g.
    ``"interrupted (shard 1 interrupted; 1 complete)"``, so the user sees which to resume."""
    import collections

    needs = [f"shard {s['shard']} {s['state']}" for s in shards if s["state"] in ("interrupted", "failed")]
    others = collections.Counter(s["state"] for s in shards if s["state"] not in ("interrupted", "failed"))
    parts = needs + [f"{n} {state_}" for state_, n in others.items()]
    return f"{state} ({'; '.join(parts)})"


def when(timestamp):
    """``"2026-12-02 01:20"`` for an ISO timestamp (FiftyOne records run times in UTC); None stays None."""
    import datetime

    if not timestamp:
        return None
    return datetime.datetime.fromisoformat(timestamp).strftime("%Y-%m-%d %H:%M")


class GetCamRun(foo.Operator):
    """Shows one CAM run: its settings, fields and outcome.

    From Python: ``foo.get_operator("@fiftyone-cam/cam/get_cam_run")(dataset, "cam")``
    returns the :func:`run_info` dict.
    """

    @property
    def config(self):
        return foo.OperatorConfig(
            name="get_cam_run",
            label="Show a CAM run",
            description="Settings, fields and outcome of one class activation map run",
            dynamic=True,
            view_target=False,
        )

    def __call__(self, dataset, run_key):
        result = foo.execute_operator(self.uri, ctx={"dataset": dataset._root_dataset}, params={"run_key": run_key})
        return result.result["run"]

    def resolve_input(self, ctx):
        inputs = types.Object()
        choices.run_key(ctx, inputs, "Run", preselect=True)
        return types.Property(inputs, view=types.View(label="Show a CAM run"))

    def execute(self, ctx):
        return {"run": run_info(ctx.dataset, ctx.params["run_key"])}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.obj("run", label="CAM run", view=types.JSONView())
        return types.Property(outputs)


class DeleteCamRun(foo.Operator):
    """Deletes a CAM run: its heatmap fields, their PNG files, and its sidebar
    group; in the App, then brings the App up to date (:func:`follow_in_app`).

    From Python: ``foo.get_operator("@fiftyone-cam/cam/delete_cam_run")(dataset, "cam")``
    """

    @property
    def config(self):
        return foo.OperatorConfig(
            name="delete_cam_run",
            label="Delete a CAM run",
            description="Deletes a run's heatmap fields and map files",
            dynamic=True,
            view_target=False,
        )

    def __call__(self, dataset, run_key, delete_saved_views=False):
        params = {"run_key": run_key, "delete_saved_views": delete_saved_views, progress.PYTHON_CALL: True}
        return foo.execute_operator(self.uri, ctx={"dataset": dataset._root_dataset}, params=params).result

    def resolve_input(self, ctx):
        import cam_core

        inputs = types.Object()
        if ctx.params.get(FOLLOW):  # a step after the deletion (see follow_in_app): nothing to ask
            return types.Property(inputs)
        key = choices.run_key(ctx, inputs, "Run to delete")
        if key:
            config = ctx.dataset.get_run_info(key).config
            fields = config.all_fields()
            where = f"and the PNG files under {config.output_dir}" if config.storage == "png" else ""
            inputs.view("deleted", types.Warning(
                label=f"Deletes {len(fields)} field(s) {where}",
                description=", ".join(fields),
            ))
            views = cam_core.checks.saved_views_using(ctx.dataset, key)
            if views:
                inputs.bool(
                    "delete_saved_views", default=False, view=types.CheckboxView(),
                    label=f"Also delete the {len(views)} saved view(s) built on this run",
                    description=f"{', '.join(views)}: they sort or filter by its fields and show nothing "
                                "once it is deleted; unticked, they are kept (empty)",
                )
        return types.Property(inputs, view=types.View(label="Delete a CAM run"))

    def execute(self, ctx):
        import cam_core

        if ctx.params.get(FOLLOW):
            return follow_in_app(ctx, self.uri, ctx.params[FOLLOW])
        key = ctx.params["run_key"]
        dataset = ctx.dataset
        fields = dataset.get_run_info(key).config.all_fields()
        app = None if progress.returns_result(ctx) else app_state(ctx)  # read before the fields go
        views = cam_core.checks.saved_views_using(dataset, key)
        dataset.delete_run(key)  # the run's cleanup removes these fields, the map files and the sidebar group
        deleted = views if ctx.params.get("delete_saved_views") else []
        for name in deleted:
            dataset.delete_saved_view(name)
        if app is not None:
            ctx.trigger(self.uri, {FOLLOW: dict(app, step="leave", run_key=key, fields=fields, deleted_views=deleted)})
        return {"run_key": key, "deleted_fields": fields, "deleted_saved_views": deleted,
                "kept_saved_views": [v for v in views if v not in deleted]}
