"""A run settled before its first image is read: every argument checked and
turned into what the runner needs (see :func:`cam_core.checks.check_compute_args`)."""
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

import fiftyone as fo
import torch

from ..engine.targets import class_name
from ..runs.record import CamRunConfig


def layer_part(layer):
    """A layer's name as a field name part: ``blocks.11.norm1`` -> ``blocks_11_norm1``,
    a pyramid level ``backbone.fpn:pool`` -> ``backbone_fpn_pool``."""
    return layer.replace(".", "_").replace(":", "_")


def field_name(run_key, method, layer):
    """The Heatmap field of one (method, layer): ``cam_gradcam_blocks_11_norm1``.

    FullGrad ignores layers, so its field has no layer part.
    """
    if method == "fullgrad":
        return f"{run_key}_{method}"
    return f"{run_key}_{method}_{layer_part(layer)}"


def run_fields(run_key, methods, layer_names):
    """``{field: [method, layer]}`` of a run, methods first (FullGrad's layer is None)."""
    fields = {}
    for m in methods:
        for layer in [None] if m == "fullgrad" else layer_names:
            fields[field_name(run_key, m, layer)] = [m, layer]
    return fields


def agreement_groups(fields):
    """Which maps are compared: the methods of each layer, the layers of each method."""
    by_layer, by_method = {}, {}
    for f, (method, layer) in fields.items():
        if layer is None:
            continue
        by_layer.setdefault(layer, []).append(f)
        by_method.setdefault(method, []).append(f)
    groups = {f"methods_{layer_part(l)}": fs for l, fs in by_layer.items() if len(fs) > 1}
    groups.update({f"layers_{m}": fs for m, fs in by_method.items() if len(fs) > 1})
    return groups


@dataclass
class Plan:
    """Everything checked and decided for one run.

    Attributes:
        samples: the collection explained; ``dataset`` its dataset
        run_key: the run's key
        model: the :class:`cam_core.CamModel`; ``steps`` its transform steps
        layers: :class:`cam_core.types.LayerInfo` of each explained layer
        methods: canonical method names
        target: the parsed :class:`cam_core.engine.targets.TargetSpec`
        target_class: a segmentation field's explained class index, or None
        classes / num_outputs / segmenter: what the model scores
        device, batch_size, num_workers: how it is computed (``batch_size``:
            an integer or ``"auto"``, see :mod:`cam_core.compute.budget`)
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (:mod:`cam_core.engine.precision`)
        storage, output_dir: where the maps go
        fields: ``{field: [method, layer]}``
        agreement_field / agreement_groups: the agreement values, if any
        gt_field, all_objects, iou_threshold: scoring against objects
        faithfulness: whether ROAD is computed
        eigen_smooth, aug_smooth: grad-cam's smoothing options
        resume: continue the existing run (``skip_existing``)
        replace: delete the existing run first (``overwrite``)
        assumed_stretch: a preprocessing step whose geometry is unknown
            (taken as a stretch), or None
        detector: whether the model is a detector; then ``detections_field``
            holds the explained objects, the predictions of score at least
            ``score_threshold`` (at most ``max_objects`` per image) or the
            ground truth's (``target`` ``"field"``); ``object_masks``: whether
            it gives instance masks (its objects are scored against them)
    """

    samples: object
    dataset: object
    run_key: str
    model: object
    steps: list
    layers: list
    methods: list
    target: object
    target_class: int
    classes: list
    num_outputs: int
    segmenter: bool
    device: torch.device
    batch_size: object
    num_workers: int
    storage: str
    output_dir: str
    fields: dict
    agreement_field: str = None
    agreement_groups: dict = field(default_factory=dict)
    gt_field: str = None
    all_objects: bool = False
    iou_threshold: float = 0.5
    faithfulness: bool = False
    eigen_smooth: bool = False
    aug_smooth: bool = False
    resume: bool = False
    replace: bool = False
    assumed_stretch: str = None
    detector: bool = False
    detections_field: str = None
    score_threshold: float = None
    max_objects: int = None
    object_masks: bool = False
    precision: str = "fp32"

    def all_fields(self):
        """The Heatmap fields, then the agreement and detections fields if there are."""
        return list(self.fields) + [f for f in (self.agreement_field, self.detections_field) if f]

    def config(self):
        """The :class:`cam_core.runs.CamRunConfig` recorded for this run."""
        return CamRunConfig(
            model=self.model.name,
            model_kwargs=self.model.kwargs,
            layers=[i.name for i in self.layers],
            methods=self.methods,
            target=self.target.to_str(self.classes),
            target_class=None if self.target_class is None else class_name(self.classes, self.target_class),
            transforms=repr(self.model.transforms),
            default_transforms=self.model.default_transforms,
            classes=None if self.classes is None else [str(c) for c in self.classes],
            storage=self.storage,
            output_dir=self.output_dir,
            fields=self.fields,
            agreement_field=self.agreement_field,
            gt_field=self.gt_field,
            all_objects=self.all_objects,
            iou_threshold=self.iou_threshold,
            faithfulness=self.faithfulness,
            eigen_smooth=self.eigen_smooth,
            aug_smooth=self.aug_smooth,
            assumed_stretch=self.assumed_stretch,
            detections_field=self.detections_field,
            score_threshold=self.score_threshold,
            max_objects=self.max_objects,
            precision=self.precision,
            versions={"fiftyone": fo.__version__, "torch": torch.__version__, "torchvision": _version("torchvision"),
                      "grad-cam": _version("grad-cam"), "timm": _version("timm")},
        )


def _version(name):
    try:
        return version(name)
    except PackageNotFoundError:
        return None
