"""The record of a CAM run on a dataset: its declared config, its results,
and how FiftyOne cleans it up or renames it.

FiftyOne stores a run's config and results with their class path and loads
them by it in every process. That path is part of the stored format, so it
stays ``cam_core.runs.CamRunConfig`` (and ``...CamRun``, ``...CamRunResults``)
wherever the classes are defined: runs recorded by any version load.
"""
import fiftyone.core.runs as fors

from ..errors import CamArgumentError
from ..skips import skipped_reasons
from . import owner, sidebar, state

_STORED_MODULE = "cam_core.runs"


class CamRunConfig(fors.RunConfig):
    """The settings of one :func:`cam_core.compute_cams` call, as recorded (all JSON).

    Args:
        model: the model's name (``"timm:deit_tiny_patch16_224"``, a
            registered name, or the module's class name)
        model_kwargs: how it was loaded (library arguments, or a registered
            factory and its keyword arguments)
        layers: the explained layers' module paths
        methods: the canonical method names
        target: ``"prediction"``, ``"field:<name>"`` or ``"class:<name>"``
        target_class: a segmentation field's explained class, or None
        transforms: the ``repr`` of the preprocessing
        default_transforms: whether ImageNet preprocessing was assumed
        classes: the model's class names, or None
        storage: ``"png"`` or ``"inline"``
        output_dir: where PNG maps are written
        fields: ``{field: [method, layer]}`` of the run's Heatmap fields
            (FullGrad's layer is None)
        agreement_field: the agreement field, or None (one map per sample)
        gt_field: the field the maps were scored against, or None
        all_objects: whether every object counted, not only the target class's
        iou_threshold: the relative map level of ``iou``
        faithfulness: whether ROAD was computed
        eigen_smooth: grad-cam's ``eigen_smooth`` option the maps were made with
        aug_smooth: grad-cam's ``aug_smooth`` option the maps were made with
        scorings: the named scorings added later (:func:`cam_core.score_regions`
            with ``name=``): ``{name: {"gt_field", "all_objects", "iou_threshold"}}``
        assumed_stretch: the preprocessing step whose change of size was
            taken as a stretch (its geometry is unknown), or None
        versions: the library versions that computed the maps
        detections_field: a detector run's ``fo.Detections`` field of the
            objects its maps explain, each with its own scores, or None
        score_threshold: a detector's boxes explained: those of at least this score
        max_objects: the most boxes explained per image
        explanations: maps saved later from explanations on demand
            (:func:`cam_core.save_explanation`): ``{field: {"method", "layer", "target"}}``
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``: the forward and
            backward's (runs recorded before it existed: ``"fp32"``)
    """

    def __init__(self, model=None, model_kwargs=None, layers=None, methods=None, target="prediction",
                 target_class=None, transforms=None, default_transforms=False, classes=None, storage="png",
                 output_dir=None, fields=None, agreement_field=None, gt_field=None, all_objects=False,
                 iou_threshold=0.5, faithfulness=False, assumed_stretch=None, versions=None, scorings=None,
                 eigen_smooth=False, aug_smooth=False, detections_field=None, score_threshold=None,
                 max_objects=None, explanations=None, precision="fp32", **kwargs):
        self.model = model
        self.model_kwargs = dict(model_kwargs or {})
        self.layers = list(layers or [])
        self.methods = list(methods or [])
        self.target = target
        self.target_class = target_class
        self.transforms = transforms
        self.default_transforms = bool(default_transforms)
        self.classes = classes
        self.storage = storage
        self.output_dir = output_dir
        self.fields = dict(fields or {})
        self.agreement_field = agreement_field
        self.gt_field = gt_field
        self.all_objects = bool(all_objects)
        self.iou_threshold = iou_threshold
        self.faithfulness = bool(faithfulness)
        self.assumed_stretch = assumed_stretch
        self.versions = dict(versions or {})
        self.scorings = dict(scorings or {})
        self.eigen_smooth = bool(eigen_smooth)
        self.aug_smooth = bool(aug_smooth)
        self.detections_field = detections_field
        self.score_threshold = score_threshold
        self.max_objects = max_objects
        self.explanations = dict(explanations or {})
        self.precision = precision
        kwargs.setdefault("method", "cam")
        super().__init__(**kwargs)

    def all_fields(self):
        """The run's Heatmap fields, its agreement and detections fields if it
        has them, then the explanations saved on it."""
        return list(self.fields) + [f for f in (self.agreement_field, self.detections_field) if f] + list(
            self.explanations)


class CamRun(fors.Run):
    """Cleans up a CAM run: its Heatmap fields, their PNG files (also those
    a crash left unreferenced, where the run's marker proves the folder its
    own: :mod:`cam_core.runs.owner`), the folders it made once empty, its
    state and its sidebar group; a rename
    renames them. A process still computing the run stops at its next
    batch (its claim is gone)."""

    def get_fields(self, samples, key):
        """The run's Heatmap fields, its agreement and detections fields."""
        return self.config.all_fields()

    def cleanup(self, samples, key):
        dataset = samples._root_dataset
        schema = dataset.get_field_schema()
        fields = list(self.config.fields) + list(self.config.explanations)
        paths = [p for f in fields if f in schema for p in dataset.values(f"{f}.map_path") if p]
        for field in self.get_fields(samples, key):
            if field in schema:
                dataset.delete_sample_field(field)
        if self.config.output_dir:
            # what the run wrote, and no file a sample still references (a clone's); only
            # the folders it made (owner: its marker says which), never a folder above
            owner.remove_run_files(dataset._doc.id, owner.run_uid(dataset, key, create=False),
                                   self.config.output_dir, fields, paths)
        state.forget(dataset, key)
        sidebar.forget_run(dataset, key, self.config)

    def rename(self, samples, key, new_key):
        dataset = samples._root_dataset
        renamed = {f: new_key + f[len(key) :] for f in self.get_fields(samples, key) if f.startswith(key + "_")}
        present = dataset.get_field_schema()
        dataset.rename_sample_fields({f: n for f, n in renamed.items() if f in present})
        self.config.fields = {renamed.get(f, f): v for f, v in self.config.fields.items()}
        self.config.explanations = {renamed.get(f, f): v for f, v in self.config.explanations.items()}
        if self.config.agreement_field:
            self.config.agreement_field = renamed.get(self.config.agreement_field)
        if self.config.detections_field:
            self.config.detections_field = renamed.get(self.config.detections_field)
        fors.Run.update_run_config(samples, key, self.config)
        state.rename(dataset, key, new_key)
        sidebar.rename_run(dataset, key, new_key, renamed)


class CamRunResults(fors.RunResults):
    """What a run did.

    Attributes:
        num_samples: samples that got their maps
        num_skipped: samples skipped
        skipped: a list of ``{"id", "filepath", "kind", "reason"}`` (see
            :mod:`cam_core.skips`)
        fields: the run's Heatmap fields
        seconds: the run's duration
        num_objects: a detector run: the objects its maps explain (matched
            to a box of the detector); None for other runs (and for detector
            runs recorded before objects were counted)
    """

    def __init__(self, samples, config, key, num_samples=0, num_skipped=0, skipped=None, fields=None,
                 seconds=None, num_objects=None, backend=None, **kwargs):
        super().__init__(samples, config, key, backend=backend, **kwargs)
        self.num_samples = num_samples
        self.num_skipped = num_skipped
        self.skipped = list(skipped or [])
        self.fields = list(fields or [])
        self.seconds = seconds
        self.num_objects = num_objects

    def skipped_reasons(self):
        """The skipped samples counted by kind of reason: :func:`cam_core.checks.skipped_reasons`."""
        return skipped_reasons(self)

    def explains_nothing(self):
        """Whether a detector run explained no object at all (its maps say nothing)."""
        return self.num_objects == 0

    def summary(self):
        """The run in words: how many samples got maps (a detector run: how
        many objects they explain), how many were skipped and why."""
        objects = "" if self.num_objects is None else f", explaining {self.num_objects} object(s)"
        lines = [f"run '{self.key}': {self.num_samples} samples got {len(self.fields)} map(s) each{objects}; "
                 f"{self.num_skipped} skipped"]
        lines += [f"  {n} skipped: {kind}" for kind, n in self.skipped_reasons().most_common()]
        if self.explains_nothing():
            lines.append(f"  {NOTHING_EXPLAINED}")
        return "\n".join(lines)


# what a detector run that explains no object says
NOTHING_EXPLAINED = ("no object was explained: no box of the detector scored at least the score threshold, or no "
                     "ground-truth object matched a box; lower score_threshold or choose another target")


for _cls in (CamRunConfig, CamRun, CamRunResults):
    _cls.__module__ = _STORED_MODULE


def list_cam_runs(samples):
    """Keys of the CAM runs on a collection (other run types are left out)."""
    return samples.list_runs(type=CamRun)


def run_config(samples, run_key):
    """The :class:`CamRunConfig` of a CAM run.

    Raises:
        CamArgumentError: (``run_key``) when there is no such CAM run
    """
    keys = list_cam_runs(samples)
    if run_key not in keys:
        known = f"its CAM runs: {', '.join(keys)}" if keys else "it has no CAM run: compute one first (compute_cams)"
        if run_key is None:
            raise CamArgumentError("run_key", f"choose a CAM run; {known}")
        other = run_key in samples.list_runs()
        what = f"run '{run_key}' is not a CAM run" if other else f"no run '{run_key}' on this collection"
        raise CamArgumentError("run_key", f"{what}; {known}")
    return samples.get_run_info(run_key).config
