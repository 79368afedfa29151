"""The checks on queued work: which models a run split into jobs may take
(:func:`check_splittable`), and what a worker accepts from a run's stored
arguments before it computes a shard (:func:`stored_arguments`).

What is stored in the database is untrusted for every worker that reads it
(anyone who could write to the database may have written it): a worker
checks it as the App's form checks what a user sends, whatever process
queued it.
"""
import os

from ..errors import CamArgumentError, CamArgumentTypeError
from ..media.mapfiles import check_output_dir, default_output_dir
from ..models import adapters
from ..models.registry import check_shareable, is_factory

# keywords of compute_cams that a queued run never stores (objects, or what queue_cams settles itself)
_NOT_STORED = ("samples", "transforms", "progress", "overwrite", "skip_existing")
_LIBRARIES = ("torchvision", "timm")


def check_splittable(model):
    """Refuses a model that the workers of a run split into jobs
    (:func:`cam_core.queue_cams`, the compute form's "Split into jobs")
    cannot each build the same way.

    Each worker builds the model itself from its name. A registered factory
    (:func:`cam_core.register_factory`) is the one recipe all of them share.
    A library or zoo model is refused: every worker would download its
    weights itself (a worker without internet fails its shard, with a
    traceback), and random weights would differ from worker to worker.

    Args:
        model: the model's name

    Raises:
        CamArgumentError: (``model``) saying why and what to do instead
    """
    if not isinstance(model, str):
        raise CamArgumentTypeError(
            "model", f"a run split into jobs needs a model every worker can build by name: a registered factory "
                     f"(cam_core.register_factory); got a {type(model).__name__}, which cannot be sent to other "
                     f"processes")
    check_shareable(model)
    if is_factory(model):
        return
    source, sep, _ = model.partition(":")
    what = f"the {source} model '{model}'" if sep and source in _LIBRARIES + adapters.prefixes() else f"'{model}' (a zoo model or no registered name)"
    raise CamArgumentError(
        "model",
        f"{what} cannot be split into jobs: every worker would build it itself, downloading its pretrained weights "
        f"(a worker without internet fails its shard), and random weights would differ from worker to worker. "
        f"Register a factory that loads the weights from a file every worker can read (the register_cam_model "
        f"operator, or cam_core.register_factory), or compute the run as one job",
    )


def stored_arguments(doc, parameters, output_root=None):
    """A sharded run's stored arguments, checked as the App's form checks a
    user's: only ``compute_cams`` keywords a queue stores, a model every
    worker builds the same (:func:`check_splittable`; building it later
    imports a factory only from this worker's allowed modules), view stages
    of FiftyOne's own stage classes, and an ``output_dir`` under the output
    root (:func:`cam_core.checks.check_output_dir`).

    Args:
        doc: the run's state document
        parameters: the names ``compute_cams`` takes
        output_root (None): the allowed root of output folders (the plugin
            secret ``FIFTYONE_CAM_OUTPUT_ROOT``; see :func:`cam_core.checks.output_root`)

    Returns:
        a copy of the arguments, ``output_dir`` resolved

    Raises:
        CamArgumentError: naming what is refused
    """
    run_key = doc.get("run_key")
    arguments = doc.get("arguments")
    if not isinstance(arguments, dict) or not isinstance(arguments.get("view"), list):
        raise CamArgumentError("run_key", f"run '{run_key}' holds no arguments a queue stores: {arguments!r}")
    allowed = ["model"] + [p for p in parameters if p not in _NOT_STORED] + ["view"]
    unknown = [k for k in arguments if k not in allowed]
    if unknown:
        raise CamArgumentError(
            "run_key", f"run '{run_key}' holds arguments no queue stores ({', '.join(map(str, unknown))}); "
                       f"a queued run stores {', '.join(allowed)}")
    check_splittable(arguments.get("model"))
    for stage in arguments["view"]:
        _check_stage(stage, run_key)
    arguments = dict(arguments)
    if arguments.get("output_dir") not in (None, ""):
        arguments["output_dir"] = check_output_dir(arguments["output_dir"], output_root)
    return arguments


def check_folder(plan, output_root=None):
    """Refuses a settled shard whose maps would go outside the output root:
    the folder a continued run writes to is the one its stored record names
    (untrusted too), unless it is this worker's own default for the run.

    Raises:
        CamArgumentError: (``output_dir``) naming the folder and the root
    """
    if plan.storage != "png":
        return
    own = default_output_dir(plan.dataset, plan.run_key)
    if os.path.realpath(plan.output_dir) != os.path.realpath(own):
        check_output_dir(plan.output_dir, output_root)


def _check_stage(stage, run_key):
    """Refuses a stored view stage that is not one of FiftyOne's own stage
    classes (FiftyOne builds a stage from any class path it is given)."""
    import fiftyone.core.stages as fos

    path = stage.get("_cls") if isinstance(stage, dict) else None
    module, _, name = path.rpartition(".") if isinstance(path, str) else ("", "", "")
    cls = getattr(fos, name, None) if module == fos.__name__ else None
    if not (isinstance(cls, type) and issubclass(cls, fos.ViewStage)) or not isinstance(stage.get("kwargs"), list):
        raise CamArgumentError(
            "run_key", f"run '{run_key}' holds a view stage that is not one of fiftyone.core.stages: {stage!r}")
