"""Sharded runs: the operation each queued shard is (``compute_cam_shard``,
executed by delegated workers), and the App's way to re-queue the shards a
dead worker left (``resume_cam_run``)."""
import fiftyone.operators as foo
import fiftyone.operators.types as types

from . import progress
from .choices import newest_run, secret


class ComputeCamShard(foo.Operator):
    """Computes one shard of a run queued by :func:`cam_core.queue_cams` (or
    by the compute_cams form's "split into jobs"). Queued, never run by hand:
    a ``fiftyone delegated launch`` worker executes it."""

    @property
    def config(self):
        return foo.OperatorConfig(
            name="compute_cam_shard",
            label="Compute one shard of a CAM run",
            unlisted=True,
            allow_immediate_execution=False,
            allow_delegated_execution=True,
        )

    def resolve_run_name(self, ctx):
        return f"compute_cams ({ctx.params.get('run_key')}, shard {ctx.params.get('shard')})"

    def execute(self, ctx):
        import cam_core

        run_key, shard = ctx.params["run_key"], int(ctx.params["shard"])
        root = secret(ctx, cam_core.checks.OUTPUT_ROOT_ENV)
        # what the database holds is checked as the form checks a user's: a worker builds a registered
        # model only from its own allowed modules and writes maps only under its output root
        with cam_core.checks.allow_factory_modules(secret(ctx, cam_core.checks.FACTORY_MODULES_ENV)):
            done = progress.run(ctx, lambda pb: cam_core.checks.run_shard(ctx.dataset, run_key, shard, progress=pb,
                                                                   output_root=root), 0)
        return {"run_key": run_key, "shard": shard, "num_samples": None if done is None else done.num_samples,
                "state": "complete"}


class ResumeCamRun(foo.Operator):
    """Re-queues the unfinished shards of a sharded CAM run whose workers are gone.

    From Python: ``foo.get_operator("@fiftyone-cam/cam/resume_cam_run")(dataset, "cam")``
    returns the ids of the operations queued.
    """

    @property
    def config(self):
        return foo.OperatorConfig(name="resume_cam_run", label="Resume a sharded CAM run", dynamic=True)

    def __call__(self, dataset, run_key):
        result = foo.execute_operator(self.uri, ctx={"dataset": dataset._root_dataset, "params": {"run_key": run_key}})
        return result.result["queued"]

    def resolve_input(self, ctx):
        import cam_core

        inputs = types.Object()
        keys = [k for k in cam_core.list_cam_runs(ctx.dataset)
                if cam_core.run_status(ctx.dataset, k).shards]
        choices = types.Dropdown()
        for k in keys:
            s = cam_core.run_status(ctx.dataset, k)
            choices.add_choice(k, label=f"{k} ({s.state}; {sum(x['state'] == 'complete' for x in s.shards)}"
                                        f"/{len(s.shards)} shards complete)")
        # the newest run preselected, as every form that picks a run does
        prop = inputs.enum("run_key", choices.values(), default=newest_run(ctx.dataset, keys), required=True,
                           label="Sharded run", view=choices)
        if not keys:
            prop.invalid = True
            prop.error_message = "this dataset has no run queued as several jobs"
        return types.Property(inputs)

    def execute(self, ctx):
        import cam_core

        return {"queued": cam_core.resume_run(ctx.dataset, ctx.params["run_key"])}
