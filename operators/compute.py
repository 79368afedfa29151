"""The ``compute_cams`` operator: the form, then one :func:`cam_core.compute_cams` call."""
import fiftyone.operators as foo
import fiftyone.operators.types as types

from . import execution, form, models, params, progress
from .choices import secret


class ComputeCams(foo.Operator):
    """Computes class activation maps for a dataset, a view or the selected
    samples, and stores them as ``fo.Heatmap`` fields of a CAM run.

    From Python::

        op = foo.get_operator("@fiftyone-cam/cam/compute_cams")
        results = op(dataset.take(100), "my-classifier", layers=["layer3", "layer4"],
                     methods=["gradcam", "eigencam"], run_key="cam")
        op(dataset, "my-classifier", delegate=True)  # queued for a delegated worker
        op(dataset, "my-classifier", num_shards=4)  # queued as 4 jobs, for any workers
    """

    @property
    def config(self):
        return foo.OperatorConfig(
            name="compute_cams",
            label="Compute class activation maps",
            description="GradCAM and its family for every sample, stored as heatmap fields",
            dynamic=True,
            execute_as_generator=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def __call__(self, sample_collection, model, delegate=False, delegation_target=None, **kwargs):
        """Runs :func:`cam_core.compute_cams` through this operator.

        The keyword arguments are those of :func:`cam_core.compute_cams`
        (``layers``, ``methods``, ``target``, ``run_key``, ``overwrite``, ...;
        read from its signature: see :func:`operators.params.params_from_args`), except that ``model``
        is a name (``"torchvision:resnet50"``, ``"timm:<name>"``,
        ``"ultralytics:yolov8n.pt"``, ``"hf:<hub repository or save_pretrained folder>"``, a FiftyOne
        zoo model, or a registered name) and ``pretrained=False`` gives a
        library model random weights.

        Args:
            sample_collection: a ``fo.Dataset`` or view
            model: the model's name
            delegate (False): queue the run for a delegated worker
                (``fiftyone delegated launch``) instead of running it now
            delegation_target (None): the orchestrator to queue it on

        Returns:
            the run's :class:`cam_core.types.CamRunResults` when run now; the
            queued operation's ``ExecutionResult`` when delegated

        Raises:
            ``fiftyone.operators.executor.ExecutionError``: when the form
            refuses the parameters (the message names the parameter and why)
        """
        p = params.params_from_args(model, **kwargs)
        if p["num_shards"] > 1:
            p[progress.PYTHON_CALL] = True  # the queued operations' ids come back as the result
        result = foo.execute_operator(
            self.uri,
            ctx=_context(sample_collection),
            params=p,
            request_delegation=delegate,
            delegation_target=delegation_target,
        )
        if delegate:
            return result
        if p["num_shards"] > 1:
            if result.error:
                raise RuntimeError(result.error)
            return result.result  # what was queued: {"run_key", "queued": [operation ids], "message"}
        return sample_collection._root_dataset.load_run_results(p["run_key"], cache=False)

    def resolve_input(self, ctx):
        import cam_core

        inputs = types.Object()
        # a registered model is built here: from the deployment's modules only
        with cam_core.checks.allow_factory_modules(secret(ctx, cam_core.checks.FACTORY_MODULES_ENV)):
            form.build(ctx, inputs)
        return types.Property(inputs, view=types.View(label="Compute class activation maps"))

    def resolve_execution_options(self, ctx):
        from fiftyone.operators.executor import ExecutionOptions

        return ExecutionOptions(
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            default_choice_to_delegated=execution.recommend_delegation(ctx),
        )

    def resolve_run_name(self, ctx):
        return f"compute_cams ({ctx.params.get('run_key') or params.defaults()['run_key']})"

    def execute(self, ctx):
        if int(ctx.params.get("num_shards") or 1) > 1:
            job = _Job(ctx)
            value = job.queue(int(ctx.params["num_shards"]))
            return value if progress.returns_result(ctx) else _notify(ctx, value)
        if ctx.delegated:
            # a worker: progress is saved on the operation, the summary is its result
            job = _Job(ctx)
            return progress.run(ctx, job.run, len(job.view))
        # refused at once, before the stream starts (the model is loaded in its thread, later)
        _check_output_dir(ctx)
        return _immediate(ctx)

    def resolve_output(self, ctx):
        results = ctx.results or {}
        if not isinstance(results, dict) or "message" not in results:
            return None
        return summary_output()


def _check_output_dir(ctx):
    """The App's output folder must lie under the output root (a CamArgumentError fails the operation)."""
    import cam_core

    if ctx.params.get("output_dir"):
        cam_core.checks.check_output_dir(ctx.params["output_dir"], secret(ctx, cam_core.checks.OUTPUT_ROOT_ENV))


def summary_output():
    """How a run's :func:`summary` is shown: the operator's output for a
    delegated run, the App's output dialog for one run from the App."""
    outputs = types.Object()
    outputs.str("message", label="Summary", view=types.MarkdownView(read_only=True))
    return types.Property(outputs, view=types.View(label="Class activation maps computed"))


def _context(sample_collection, selected=None):
    """The ``ctx`` of a Python call on a dataset or a view."""
    import fiftyone.core.view as fov

    ctx = {"dataset": sample_collection._root_dataset}
    if isinstance(sample_collection, fov.DatasetView):
        ctx["view"] = sample_collection
    if selected:
        ctx["selected"] = list(selected)
    return ctx


class _Job:
    """One compute_cams call, settled from the checked form parameters.

    What the App sent is checked again here, as the form checks it: a
    delegated worker runs what was queued, whatever form queued it, so it
    builds a registered model only from its own allowed modules and writes
    maps only under the allowed output root.
    """

    def __init__(self, ctx):
        import cam_core

        self.ctx = ctx
        p = ctx.params
        with cam_core.checks.allow_factory_modules(secret(ctx, cam_core.checks.FACTORY_MODULES_ENV)):
            self.facts = models.describe(p["model_source"], p["model"], bool(p.get("pretrained", True)))
        self.kwargs = params.compute_kwargs(p, self.facts)
        if self.kwargs.get("output_dir"):
            # a CamArgumentError fails the operation with its message
            self.kwargs["output_dir"] = cam_core.checks.check_output_dir(
                self.kwargs["output_dir"], secret(ctx, cam_core.checks.OUTPUT_ROOT_ENV))
        if not ctx.delegated:
            # DataLoader processes are not forked from the App server
            self.kwargs["num_workers"] = 0
        self.view = ctx.target_view()
        self.dataset = self.view._root_dataset

    def queue(self, num_shards):
        """Queues the run as ``num_shards`` delegated jobs (:func:`cam_core.queue_cams`)."""
        import cam_core

        if self.kwargs["skip_existing"]:
            raise ValueError("a run queued as jobs is continued with the resume_cam_run operator")
        # a library model (downloads in every worker, or random weights) is refused by queue_cams
        model = params.model_name(self.ctx.params)
        kwargs = {k: v for k, v in self.kwargs.items() if k not in ("model", "skip_existing")}
        with cam_core.checks.allow_factory_modules(secret(self.ctx, cam_core.checks.FACTORY_MODULES_ENV)):
            op_ids = cam_core.queue_cams(self.view, model, num_shards=num_shards, **kwargs)
        key = self.kwargs["run_key"]
        message = (f"CAM run '{key}' queued as {len(op_ids)} delegated jobs: start `fiftyone delegated launch` "
                   f"workers to compute them; `list_cam_runs` shows its state")
        return {"run_key": key, "queued": op_ids, "num_samples": 0, "num_skipped": 0, "skipped_reasons": {},
                "fields": [], "message": message}

    def run(self, reporter):
        """Computes the run, telling ``reporter`` (a :class:`operators.progress.Reporter`) how it goes."""
        import cam_core

        key, batch = self.kwargs["run_key"], self.kwargs["batch_size"]
        reporter.batch_size = batch if isinstance(batch, int) else None  # "auto": sized by the run
        # what compute_cams does before its first batch ends: the run declared, then a batch (and the warm-up)
        first = f"of {batch}" if isinstance(batch, int) else "(measured to size the others)"
        reporter.step(f"Declaring run '{key}' ({len(self.view)} samples), then computing its first batch {first}")
        with self.facts.lock:
            results = cam_core.compute_cams(self.view, progress=reporter, **self.kwargs)
        cam_core.show_run(self.dataset, key, list(results.fields))
        return summary(key, results)


def summary(run_key, results):
    """What the App tells the user when a run ends (JSON)."""
    import cam_core

    reasons = cam_core.checks.skipped_reasons(results)
    n_maps = len(results.fields)
    num_objects = getattr(results, "num_objects", None)
    message = f"CAM run '{run_key}': {results.num_samples} sample(s) got {n_maps} map(s) each"
    if num_objects is not None:  # a detector run: what its maps explain
        message += f", explaining {num_objects} object(s)"
    if results.num_skipped:
        why = ", ".join(f"{n} {reason}" for reason, n in reasons.most_common())
        message += f"; {results.num_skipped} skipped ({why})"
    else:
        message += "; none skipped"
    if num_objects == 0:
        from cam_core.runs.record import NOTHING_EXPLAINED

        message += f". Warning: {NOTHING_EXPLAINED}"
    return {
        "run_key": run_key,
        "num_samples": results.num_samples,
        "num_skipped": results.num_skipped,
        "skipped_reasons": dict(reasons),
        "fields": list(results.fields),
        "num_objects": num_objects,
        "message": message,
    }


def _notify(ctx, value):
    """Tells the App what was queued."""
    yield ctx.ops.notify(value["message"], variant="info")
    return value


def _immediate(ctx):
    """Streams the run's progress to the App from its first step (the model
    loaded and probed in the work's thread, then the run declared, then each
    batch), then reloads the dataset and says what happened: a toast, and the
    summary in the App's output dialog, which stays until closed."""
    name = params.model_name(ctx.params)

    def work(reporter):
        job = _Job(ctx)  # loads and probes the model (once per process)
        return job.run(reporter)

    value = yield from progress.run(ctx, work, 0, first=f"Loading and probing model '{name}'")
    yield ctx.ops.reload_dataset()
    # the open App keeps the colour scheme it loaded; the dataset's new one
    # (colour by value) applies to later sessions, this to the current one
    yield ctx.trigger("set_color_scheme", {"color_by": "value"})
    if value["fields"]:
        # show the run's first map: new label fields are not shown until ticked
        active = [f for f in (ctx.active_fields or []) if isinstance(f, str)]
        yield ctx.ops.set_active_fields(fields=active + [f for f in value["fields"][:1] if f not in active])
    variant = "success" if not value["num_skipped"] and value.get("num_objects") != 0 else "warning"
    yield ctx.ops.notify(value["message"], variant=variant)
    # a generator's return value never reaches the App: the summary is shown
    # as the operator's output would be, in the dialog the progress used
    yield ctx.ops.show_output(summary_output().to_json(), {"message": value["message"]})
