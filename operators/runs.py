"""Run management: list the CAM runs of a dataset, show one, delete one."""
import fiftyone.operators as foo
import fiftyone.operators.types as types

from . import choices


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
        and its live state from the database: ``state`` (``running``,
        ``complete``, ``failed``, ``interrupted``), ``error``, ``holder``,
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
    returns a list of :func:`run_info` dicts.
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
        runs = []
        for key in run_keys(ctx.dataset):
            info = run_info(ctx.dataset, key)
            runs.append(info)
        return {"runs": runs}

    def resolve_output(self, ctx):
        outputs = types.Object()
        table = types.TableView()
        for key, label in [
            ("run_key", "Run key"), ("model", "Model"), ("methods", "Methods"), ("layers", "Layers"),
            ("target", "Target"), ("state", "State"), ("num_samples", "Samples"), ("num_skipped", "Skipped"),
            ("timestamp", "When"),
        ]:
            table.add_column(key, label=label)
        outputs.list("runs", types.Object(), label="CAM runs", view=table)
        return types.Property(outputs)


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
    """Deletes a CAM run: its heatmap fields, their PNG files, and its sidebar group.

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
        result = foo.execute_operator(self.uri, ctx={"dataset": dataset._root_dataset}, params={"run_key": run_key})
        return result.result

    def resolve_input(self, ctx):
        inputs = types.Object()
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
        key = ctx.params["run_key"]
        dataset = ctx.dataset
        fields = dataset.get_run_info(key).config.all_fields()
        dataset.delete_run(key)  # the run's cleanup removes these fields, the map files and the sidebar group
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return {"run_key": key, "deleted_fields": fields}
