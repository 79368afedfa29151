"""What the compute form says about running a run in the background: whether
FiftyOne offers "Schedule" (delegated execution) here, and whether the model
can be split into jobs."""
from .choices import engine_check
from .params import model_name

# FiftyOne's setting that makes its open-source App offer "Schedule"
LEGACY_ORCHESTRATORS_ENV = "FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS"


def schedule_available():
    """Whether this FiftyOne offers "Schedule" for an operation without a
    registered orchestrator. FiftyOne 1.22's open-source App does so only
    with ``allow_legacy_orchestrators`` (``FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=true``
    where the App server runs); by default it expects registered
    orchestrators (an Enterprise feature) and shows "Schedule" as NOT AVAILABLE."""
    import fiftyone as fo

    return bool(fo.config.allow_legacy_orchestrators)


def schedule_notice(inputs):
    """A notice saying how to enable "Schedule" when this App cannot offer it."""
    import fiftyone.operators.types as types

    if schedule_available():
        return
    inputs.view("schedule_notice", types.Notice(
        label=f"To run in the background (Schedule), start the App with {LEGACY_ORCHESTRATORS_ENV}=true "
              f"and run `fiftyone delegated launch` workers",
        description=("FiftyOne's open-source App offers delegated execution only with allow_legacy_orchestrators "
                     "(the environment variable, or in ~/.fiftyone/config.json); otherwise its 'Schedule' "
                     "reads NOT AVAILABLE. 'Split into jobs' queues its jobs either way"),
    ))


def split(ctx, inputs):
    """With "Split into jobs" > 1, the engine's check that every worker can
    build the model (a library model's weights would be downloaded by each,
    random weights would differ), marked on the "Split into jobs" input.
    Returns whether it passed."""
    import cam_core

    if int(ctx.params.get("num_shards") or 1) <= 1:
        return True
    return engine_check(inputs, {"model": "num_shards"}, cam_core.checks.check_splittable, model_name(ctx.params))[1]
