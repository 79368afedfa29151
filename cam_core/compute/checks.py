"""The checks of :func:`cam_core.compute_cams`' arguments, in one place.

Each refusal is a :class:`cam_core.CamArgumentError` naming the parameter,
raised before anything is computed or written; the App's form shows the same
message on the same parameter. What passes is settled into a :class:`Plan`.
"""
import logging
import os

import fiftyone as fo
import fiftyone.core.collections as foc
import torch
from PIL import Image

from ..engine.methods import resolve_methods
from ..engine.precision import check_precision
from ..engine.targets import TargetSpec, class_index
from ..errors import CamArgumentError, CamArgumentTypeError
from ..labels import check_gt_field, check_iou_threshold, label_fields
from ..media.geometry import apply_transforms, transform_steps
from ..media.mapfiles import STORAGE, default_output_dir
from ..models.describe import ModelDescription, describe_model
from ..models.sources import resolve_model
from ..runs.record import CamRunConfig
from ..runs.state import stored_run_keys
from . import detect
from .budget import UNMEASURED
from .continuation import check_continuation
from .plan import Plan, agreement_groups, run_fields

logger = logging.getLogger(__name__)


def settle(a):
    """Checks ``compute_cams``' arguments (a dict of every parameter but
    ``progress``) and settles them into a :class:`Plan`.

    Raises:
        CamArgumentError: for the first argument refused, naming it
    """
    samples, run_key = a["samples"], a["run_key"]
    check_samples(samples)
    if not isinstance(run_key, str) or not run_key.isidentifier():
        raise CamArgumentError(
            "run_key", f"run_key must be a valid Python identifier (letters, digits, underscores); got {run_key!r}")
    if a["storage"] not in STORAGE:
        raise CamArgumentError("storage", f"storage must be one of {STORAGE}; got {a['storage']!r}")
    if a["batch_size"] != "auto":
        _check_count("batch_size", a["batch_size"], 1, "or 'auto' (the largest batch that fits the memory budget)")
    if a["num_workers"] is not None:
        _check_count("num_workers", a["num_workers"], 0)
    device = _check_device(a["device"])
    check_precision(a["precision"], device)  # before the model is loaded; its layers below
    methods = resolve_methods(a["methods"])
    dataset = samples._root_dataset

    # the runs as stored now: another process may have added one since this one loaded the dataset
    stored = stored_run_keys(dataset)
    if set(stored) != set(dataset.list_runs()):
        dataset.reload()
    existing = run_key in stored
    overwrite, skip_existing = bool(a["overwrite"]), bool(a["skip_existing"])
    if existing and not (overwrite or skip_existing):
        raise CamArgumentError(
            "run_key",
            f"run key '{run_key}' already exists on dataset '{dataset.name}': overwrite it (overwrite=True), "
            f"continue it (skip_existing=True: only the samples missing one of its maps), or choose another key",
        )
    count = exact_count(samples)
    if count == 0:
        raise CamArgumentError("samples", "the collection is empty: there is no sample to explain")

    old = dataset.get_run_info(run_key).config if existing else None
    model, transforms, classes = with_text_target(a["model"], a["transforms"], a["classes"], a["target"])
    description = describe_model(model, transforms=transforms, classes=classes)
    model = description.model
    layers = description.resolve_layers(a["layers"])
    precision = check_precision(a["precision"], device, methods, layers)
    classes, num_outputs, segmenter = model.classes, description.num_outputs, description.segmenter
    target, target_class, detector = settle_target(
        a, samples, description, methods, run_key, dataset.get_field_schema(), _owned(old))

    fields = run_fields(run_key, methods, [i.name for i in layers])
    resume = existing and skip_existing and not overwrite
    output_dir, storage = os.path.abspath(a["output_dir"] or default_output_dir(dataset, run_key)), a["storage"]
    if resume:
        if not isinstance(old, CamRunConfig):
            raise CamArgumentError("run_key", f"run '{run_key}' is not a CAM run; choose another run_key")
        if set(fields) != set(old.fields):
            raise CamArgumentError(
                "skip_existing",
                f"skip_existing continues run '{run_key}', which has fields {sorted(old.fields)}; "
                f"these settings give {sorted(fields)}. Use the same methods and layers, or overwrite=True",
            )
        if a["output_dir"] is not None and old.output_dir and os.path.abspath(a["output_dir"]) != old.output_dir:
            raise CamArgumentError(
                "output_dir",
                f"run '{run_key}' writes its maps to '{old.output_dir}'; continuing it (skip_existing) writes there "
                f"too. Leave output_dir unset to continue it, or start it again in the new folder (overwrite=True)",
            )
        output_dir, storage = old.output_dir, old.storage
    owned = _owned(old)
    schema = dataset.get_field_schema()
    taken = [f for f in fields if f in schema and f not in owned]
    if taken:
        raise CamArgumentError("run_key", f"fields {taken} already exist and do not belong to run '{run_key}'; choose another run_key")

    groups = agreement_groups(fields)
    agreement_field = f"{run_key}_agreement" if groups else None
    if agreement_field and agreement_field in schema and agreement_field not in owned:
        raise CamArgumentError("run_key", f"field '{agreement_field}' already exists and does not belong to run '{run_key}'")
    gt_field = a["gt_field"]
    if gt_field is not None:
        check_gt_field(samples, gt_field)
    iou_threshold = check_iou_threshold(a["iou_threshold"])
    if a["faithfulness"] and segmenter:
        raise CamArgumentError("faithfulness", "faithfulness (ROAD) is computed for classifiers only")

    steps = transform_steps(model.transforms)
    plan = Plan(
        samples=samples, dataset=dataset, run_key=run_key, model=model, steps=steps, layers=layers,
        methods=methods, target=target, target_class=target_class, classes=classes, num_outputs=num_outputs,
        segmenter=segmenter, device=device, batch_size=a["batch_size"],
        num_workers=_workers(a["num_workers"], count, a["batch_size"]),
        storage=storage, output_dir=output_dir, fields=fields, agreement_field=agreement_field,
        agreement_groups=groups, gt_field=gt_field, all_objects=bool(a["all_objects"]), iou_threshold=iou_threshold,
        faithfulness=bool(a["faithfulness"]), eigen_smooth=bool(a["eigen_smooth"]), aug_smooth=bool(a["aug_smooth"]),
        resume=resume, replace=existing and overwrite, precision=precision,
        assumed_stretch=_assumed_stretch(steps), **detector,
    )
    if resume:  # the same model, target, preprocessing and scoring as the run it continues
        check_continuation(run_key, old, plan.config())
    return plan


def settle_target(a, samples, description, methods, run_key, schema, owned):
    """The checks of the model against the methods, and what each map explains.

    Args:
        a: the arguments (``target``, ``target_class``; a detector's
            ``score_threshold``, ``max_objects``, ``faithfulness``,
            ``all_objects``, ``aug_smooth``)
        samples: the collection a ``"field:<name>"`` target is read from
        description: the model's :class:`cam_core.types.ModelDescription`
        methods: canonical method names
        run_key, schema, owned: a detector run's key, the dataset's fields
            and those the run owns (its detections field must be free)

    Returns:
        ``(target, target_class, detector)``: the parsed
        :class:`cam_core.engine.targets.TargetSpec`, a segmentation field's
        class index or None, and a detector's Plan settings (``{}`` otherwise)

    Raises:
        CamArgumentError: naming the refused parameter
    """
    classes, num_outputs, segmenter = description.model.classes, description.num_outputs, description.segmenter
    if classes is not None and num_outputs is not None and len(classes) != num_outputs:
        raise CamArgumentError("classes", f"{len(classes)} class names given, but the model has {num_outputs} outputs")
    if segmenter and "finercam" in methods:
        raise CamArgumentError("methods", "finercam compares classifier scores; it does not apply to segmentation models")
    detector = {}
    if description.detector:
        detector = detect.settle(a, samples, description, methods, run_key, schema, owned)
        target = detector.pop("target")
    else:
        target = _parse_target(a["target"], samples, classes, num_outputs, segmenter, description.model.vocabulary)
    target_class = a["target_class"]
    if target_class is not None:
        if not (segmenter and target.kind == "field"):
            raise CamArgumentError(
                "target_class",
                "target_class applies only to segmentation models with a target='field:<Segmentation field>'")
        target_class = class_index(classes, target_class, num_outputs, param="target_class")
    return target, target_class, detector


def _owned(old):
    """The fields of the run being replaced or continued (none for a new key)."""
    return set(old.all_fields()) if isinstance(old, CamRunConfig) else set()


def exact_count(samples):
    """The number of samples, counted (a dataset's ``len`` is MongoDB's
    estimate, which can say 0 after an unclean restart)."""
    if isinstance(samples, fo.Dataset):
        return samples._sample_collection.count_documents({})
    return samples.count()


def check_samples(samples):
    if not isinstance(samples, foc.SampleCollection):
        raise CamArgumentTypeError("samples", f"samples must be a fo.Dataset or view; got {type(samples).__name__}")
    if samples.media_type != "image":
        raise CamArgumentError(
            "samples", f"cam_core explains images; this collection's media type is '{samples.media_type}'")


def _check_count(name, value, least, alternative=""):
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise CamArgumentError(name, f"{name} must be an integer >= {least}{' ' + alternative if alternative else ''}; "
                                     f"got {value!r}")


def _workers(asked, count, batch_size):
    """DataLoader workers: as asked, or one per core beyond the model's (at
    most 4), none when there is one core or a single batch (starting a
    worker costs more than it saves)."""
    if asked is not None:
        return asked
    if count <= (UNMEASURED if batch_size == "auto" else batch_size):  # an automatic batch counts as 16 here
        return 0
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def _check_device(device):
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise CamArgumentError("device", f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; got {device!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CamArgumentError("device", "device 'cuda' was asked for, but torch sees no CUDA device; use device='cpu'")
    return device


def with_text_target(model, transforms, classes, target):
    """What to probe for ``target``: for ``"text:<prompt>"``, a zero-shot
    model (a copy: the caller's keeps its classes) with the prompt among its
    classes, as ``(model, None, None)``; else the arguments as given.

    Raises:
        CamArgumentError: (``target``) for a text target on a model whose
            classes are fixed, or an empty prompt
    """
    if not (isinstance(target, str) and target.startswith("text:")):
        return model, transforms, classes
    prompt = target[len("text:"):].strip()
    if isinstance(model, ModelDescription):  # probed already (the App's form)
        model = model.model
    model = resolve_model(model, transforms, classes)  # a copy, named models loaded
    if model.vocabulary is None:
        raise CamArgumentError(
            "target", f"target '{target}' explains a text prompt, which needs a zero-shot model (OpenCLIP, CLIP, "
                      f"SigLIP); this model's classes are fixed: give a class ('class:<name>', a name or an index)")
    if not prompt:
        raise CamArgumentError("target", "target 'text:' has no prompt: write the text after it ('text:a photo of a dog')")
    model.vocabulary.add_text(prompt)
    model.classes = list(model.vocabulary.classes)
    return model, None, None


def _parse_target(target, samples, classes, num_outputs, segmenter, vocabulary=None):
    if target is None or target == "prediction":
        return TargetSpec("prediction")
    if isinstance(target, str) and target.startswith("text:") and vocabulary is not None:
        prompt = target[len("text:"):].strip()  # a class since with_text_target
        return TargetSpec("class", class_index=vocabulary.index(prompt), text=prompt)
    if isinstance(target, str) and target.startswith("field:"):
        name = target[len("field:"):]
        schema = samples.get_field_schema()
        if name not in schema:
            listed = ", ".join(label_fields(samples, "Classification", "Segmentation")) or "none"
            raise CamArgumentError("target", f"target field '{name}' does not exist; label fields: {listed}")
        want = "Segmentation" if segmenter else "Classification"
        held = getattr(getattr(schema[name], "document_type", None), "__name__", None)
        if held != want:
            kind = "segmentation" if segmenter else "classification"
            raise CamArgumentError(
                "target",
                f"target field '{name}' holds {held or type(schema[name]).__name__}; a {kind} model needs an "
                f"{want} field: {', '.join(label_fields(samples, want)) or 'none'}",
            )
        if not segmenter:
            if classes is None:
                raise CamArgumentError(
                    "target", f"target '{target}' maps labels to classes by name, but the model has no class names; "
                              f"pass classes=[...]")
            unknown = sorted(set(samples.distinct(f"{name}.label")) - {str(c) for c in classes})
            if unknown:
                raise CamArgumentError("target", f"labels {unknown[:10]} of field '{name}' are not among the model's classes")
        return TargetSpec("field", field=name)
    if isinstance(target, str) and target.startswith("class:"):
        target = target[len("class:"):]
    return TargetSpec("class", class_index=class_index(classes, target, num_outputs))


def _assumed_stretch(steps):
    """The preprocessing step whose change of size had to be taken as a
    stretch (its geometry is unknown), said once per run; None when every
    step is understood."""
    _, frame = apply_transforms(steps, Image.new("RGB", (224, 224), (128, 128, 128)))
    if frame.assumed:
        logger.warning("preprocessing step '%s' changes the image size in a way cam_core does not know: "
                       "maps are placed as if it stretched the image", frame.assumed)
    return frame.assumed
