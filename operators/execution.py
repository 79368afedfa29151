"""How the compute form's run is executed: batch size, workers, jobs, device
and precision, and whether it should leave the App server for a delegated
worker (and why)."""
import fiftyone.operators.types as types

from . import models, params

# views larger than this are offered delegated execution by default
LARGE_VIEW = 100
# a detector explains each object with a backward of its own: its runs leave the App server beyond this many samples
DETECTOR_IMMEDIATE = 16
BATCH_CHOICES = ("auto", "1", "2", "4", "8", "16", "32", "64")
PRECISION_TEXT = {
    "fp32": "Full precision (the default)",
    "bf16": "bfloat16 autocast: less memory, faster on recent GPUs and CPUs with bf16 support",
    "fp16": "float16 autocast with loss scaling: for GPUs (slow on a CPU)",
}


def compute_fields(inputs):
    """The batch size, workers, jobs, device and precision inputs."""
    import torch

    d = params.defaults()
    sizes = types.AutocompleteView(allow_user_input=True)
    for value in BATCH_CHOICES:
        sizes.add_choice(value, label=value)
    inputs.str("batch_size", default=params.FORM_BATCH_SIZE, label="Batch size", view=sizes,
               description="Images per forward and backward. auto: the largest batch that fits half the free memory "
                           "(80% of a GPU's), measured on the first images; or a number (lower it to use less memory)")
    inputs.int("num_workers", default=d["num_workers"], min=0, label="Workers",
               description="DataLoader processes decoding images (delegated runs; immediate runs decode in the App "
                           "server). Empty: one per spare core")
    inputs.int("num_shards", default=1, min=1, label="Split into jobs",
               description="With N > 1 the run is queued as N delegated jobs (shards of the samples) that any "
                           "delegated workers pick up, each on its own device; the model must be a registered "
                           "factory, which every worker builds the same")
    devices = types.RadioGroup()
    # auto: decided where the run executes (a delegated worker uses its own GPU)
    devices.add_choice("auto", label="auto", description="CUDA where the run executes has a GPU, else the CPU")
    devices.add_choice("cpu", label="cpu")
    if torch.cuda.is_available():
        devices.add_choice("cuda", label="cuda", description=torch.cuda.get_device_name(0))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.add_choice("mps", label="mps")
    prop = inputs.enum("device", devices.values(), default="auto", label="Device", view=devices)
    prop.error_message = f"choose one of: {', '.join(devices.values())}"
    precisions = types.RadioGroup()
    for value, text in PRECISION_TEXT.items():
        precisions.add_choice(value, label=value, description=text)
    inputs.enum("precision", precisions.values(), default=d["precision"], label="Precision", view=precisions)


def delegation_reason(ctx, facts, count):
    """Why this run should be delegated rather than run in the App server, or None.

    Args:
        ctx: the operator's context (its ``params``)
        facts: the chosen model's :class:`operators.models.ModelFacts`, or None
        count: the number of samples
    """
    import cam_core

    methods = ctx.params.get("methods") or []
    costly = [m.class_name for m in (cam_core.METHODS.get(cam_core.types.ALIASES.get(str(n).lower(), str(n).lower()))
                                     for n in methods) if m is not None and m.costly]
    if costly:
        return f"{' and '.join(costly)} run one extra forward per channel"
    if facts is not None and facts.detector and count > DETECTOR_IMMEDIATE:
        objects = ctx.params.get("max_objects") or params.defaults()["max_objects"]
        return (f"a detector run over {count} samples (more than {DETECTOR_IMMEDIATE}): up to {objects} objects per "
                f"image, each with a backward of its own, would hold the App server's memory and CPU for the whole "
                f"run. Delegated, it runs in a worker and the App stays free")
    if count > LARGE_VIEW:
        return f"{count} samples (more than {LARGE_VIEW}): the run would hold the App server until its last batch"
    return None


def recommend_delegation(ctx):
    """Whether delegated execution should be preselected (see :func:`delegation_reason`)."""
    try:
        count = ctx.target_view().count()
    except Exception:
        count = 0
    return delegation_reason(ctx, _described(ctx), count) is not None


def _described(ctx):
    """The chosen model's facts when it can be described (the form has
    described it already: cached), else None."""
    import cam_core

    from .choices import secret

    p = ctx.params
    if not p.get("model_source") or not p.get("model"):
        return None
    try:
        with cam_core.checks.allow_factory_modules(secret(ctx, cam_core.checks.FACTORY_MODULES_ENV)):
            return models.describe(p["model_source"], p["model"], bool(p.get("pretrained", True)))
    except Exception:  # the form shows why; this only decides a default
        return None
