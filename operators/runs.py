"""Run management: list the CAM runs of a dataset, show one, delete one."""
import fiftyone.operators as foo
import fiftyone.operators.types as types

from . import choices, progress


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
        existed), ``error``, ``holder``,
        ``num_samples``, ``num_skipped``, ``skipped`` and ``seconds`` so far
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
        elif isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        row[key] = value
    return row


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
        choices.run_key(ctx, inputs, "Run")
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

    def __call__(self, dataset, run_key):
        params = {"run_key": run_key, progress.PYTHON_CALL: True}
        return foo.execute_operator(self.uri, ctx={"dataset": dataset._root_dataset}, params=params).result

    def resolve_input(self, ctx):
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
        return types.Property(inputs, view=types.View(label="Delete a CAM run"))

    def execute(self, ctx):
        if ctx.params.get(FOLLOW):
            return follow_in_app(ctx, self.uri, ctx.params[FOLLOW])
        key = ctx.params["run_key"]
        dataset = ctx.dataset
        fields = dataset.get_run_info(key).config.all_fields()
        app = None if progress.returns_result(ctx) else app_state(ctx)  # read before the fields go
        dataset.delete_run(key)  # the run's cleanup removes these fields, the map files and the sidebar group
        if app is not None:
            ctx.trigger(self.uri, {FOLLOW: dict(app, step="leave", run_key=key, fields=fields)})
        return {"run_key": key, "deleted_fields": fields}


# the parameter of the App's steps after a deletion, and the seconds each step waits for the App at most
FOLLOW = "_follow_app"
WAIT_SECONDS = 5.0


def app_state(ctx):
    """What the App shows: the dataset, its saved view's name (or None), its
    stages (a saved view's included), its sidebar filters and shown fields."""
    import json

    from bson import json_util

    name = ctx.request_params.get("view_name")
    stages = ctx.dataset.load_saved_view(name)._serialize() if name else ctx.request_params.get("view") or []
    return {"dataset": ctx.dataset.name, "view_name": name, "stages": json.loads(json_util.dumps(stages)),
            "filters": dict(ctx.request_params.get("filters") or {}),
            "active": [f for f in ctx.active_fields or [] if isinstance(f, str)]}


def follow_in_app(ctx, uri, state):
    """One step of bringing the App up to date after a run was deleted; each
    step runs as its own (queued) execution of the operator and triggers the next.

    FiftyOne 1.22's App keeps the sidebar groups it loaded for as long as it
    shows the dataset (``reload_dataset`` and ``set_view`` do not re-read
    them), so the run's group would stay, empty, until the page is
    reloaded; it reads them again when it opens the dataset anew. So the App
    leaves the dataset for its datasets list (step ``leave``; the form has
    closed by then), opens it again once it has left (``return``), then gets
    back its view, sidebar filters and shown fields without those on the
    run's fields (``restore``): a view on them would show an empty grid; a
    view that did not use them is restored as it was.
    """
    fields, stages, filters = state["fields"], state["stages"], state["filters"]
    step = state["step"]
    if step == "leave":
        ctx.ops.open_dataset(None)
        ctx.trigger(uri, {FOLLOW: dict(state, step="return")})
    elif step == "return":
        _wait_for_the_app(showing=None)
        ctx.ops.open_dataset(state["dataset"])
        ctx.trigger(uri, {FOLLOW: dict(state, step="restore")})
    else:
        _wait_for_the_app(showing=state["dataset"])
        kept = [s for s in stages if not uses_fields(s, fields)]
        kept_filters = {path: f for path, f in filters.items() if not uses_fields(path, fields)}
        if state["view_name"] and len(kept) == len(stages):
            ctx.ops.set_view(name=state["view_name"])
        elif kept:  # as ctx.ops.set_view sends them, the kept stages as the App sent them (their ids too)
            ctx.trigger("set_view", {"view": kept})
        if kept_filters:
            ctx.trigger("set_filters", kept_filters)
        elif filters:
            ctx.ops.clear_sidebar_filters()
        ctx.ops.set_active_fields(fields=[f for f in state["active"] if not uses_fields(f, fields)])
        ctx.ops.notify(f"CAM run '{state['run_key']}' deleted: {len(fields)} field(s)", variant="success")
    return {}


def _wait_for_the_app(showing):
    """Waits until the App's session shows the dataset named ``showing``
    (None: the datasets list), then a moment for its page to load; at most
    :data:`WAIT_SECONDS` in all."""
    import time

    from fiftyone.server.events.state import get_state

    def shown():
        dataset = get_state().dataset
        return dataset.name if dataset is not None else None

    deadline = time.time() + WAIT_SECONDS
    while shown() != showing and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(min(1.0, max(0.0, deadline - time.time())))


def uses_fields(value, fields):
    """Whether a serialized view stage (or a filter's path) names one of
    ``fields`` or a path under one: any string or key in it equal to
    ``field``, ``$field`` or starting with ``field.`` / ``$field.``."""
    if isinstance(value, dict):
        return any(uses_fields(k, fields) or uses_fields(v, fields) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(uses_fields(v, fields) for v in value)
    if isinstance(value, str):
        path = value[1:] if value.startswith("$") else value
        return any(path == f or path.startswith(f + ".") for f in fields)
    return False
