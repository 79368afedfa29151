"""``compute_cams``: maps for every sample of a dataset or view, stored as Heatmap fields."""
import logging
import os
import time

import numpy as np
import torch
from PIL import Image

from . import scores as camscores
from .data import groups_by_shape, loader
from .engine import CamEngine
from .geometry import apply_transforms, transform_steps
from .layers import probe_model, resolve_layers
from .methods import METHODS, field_name, resolve_methods
from .regions import check_gt_field, region_mask
from .models import resolve_model
from .runs import NO_LABEL, CamRunConfig, CamRunResults, skipped_reasons
from .storage import STORAGE, default_output_dir, make_heatmap, to_uint8
from .targets import (
    TargetSpec,
    background_index,
    class_index,
    class_name,
    classifier_targets,
    segmenter_targets,
)

logger = logging.getLogger(__name__)


def compute_cams(
    samples,
    model,
    layers=None,
    methods="gradcam",
    target="prediction",
    run_key="cam",
    transforms=None,
    classes=None,
    target_class=None,
    batch_size=16,
    num_workers=0,
    device="cpu",
    output_dir=None,
    storage="png",
    overwrite=False,
    skip_existing=False,
    progress=None,
    gt_field=None,
    all_objects=False,
    iou_threshold=0.5,
    faithfulness=False,
):
    """Computes class activation maps for every sample and stores each as an ``fo.Heatmap``.

    One field per (method, layer), named ``f"{run_key}_{method}_{layer}"`` with
    the layer path's dots replaced by underscores (FullGrad, which ignores
    layers: ``f"{run_key}_fullgrad"``). Maps line up with the original image:
    when preprocessing crops or pads, the map is placed back in the full frame
    (zero outside the crop). Each Heatmap carries ``target_index``,
    ``target_label``, ``target_score`` (the explained logit, or the class score
    summed over the region for segmenters), ``target_confidence`` (softmax,
    classifiers) and shape scores (``peak``, ``peak_x``, ``peak_y``,
    ``centroid_x``, ``centroid_y``, ``spread``, ``entropy``, ``border``).
    The call is recorded as a run (``samples.list_runs()``); ``delete_run``
    removes its fields and PNG files.

    Args:
        samples: a ``fo.Dataset`` or view of images
        model: a ``torch.nn.Module``, a FiftyOne ``TorchImageModel``, a
            :class:`cam_core.CamModel`, or a name such as
            ``"torchvision:resnet50"`` / ``"timm:deit_small_patch16_224"``
        layers (None): module paths as in ``model.named_modules()``; None for
            :func:`cam_core.default_layers`
        methods ("gradcam"): a name or list of names from
            :data:`cam_core.METHODS` (``"gradcam++"`` is accepted)
        target ("prediction"): what each map explains: ``"prediction"`` (top
            class; for segmenters the most frequent predicted class other than
            background, over its predicted region), ``"field:<name>"`` (an
            ``fo.Classification`` field mapped by class name, or for segmenters
            an ``fo.Segmentation`` field whose region is used), or a fixed class
            (name, index, or ``"class:<name>"``; for segmenters its predicted region)
        run_key ("cam"): the run's key and the fields' prefix
        transforms (None): PIL image -> (3, H, W) tensor; by default the
            model's own (torchvision weights, timm data config, zoo model)
        classes (None): class names for the model's outputs, if it has none
        target_class (None): with a ``fo.Segmentation`` target field, the class
            whose ground-truth region is explained (default: the most frequent
            non-background class of each mask)
        batch_size (16): images per forward/backward
        num_workers (0): DataLoader workers decoding images
        device ("cpu"): torch device
        output_dir (None): where PNG maps are written; default
            ``<fo.config.default_dataset_dir>/cam_maps/<dataset>/<run_key>``
        storage ("png"): ``"png"`` (8-bit files, ``map_path``) or ``"inline"``
        overwrite (False): replace an existing run with this key
        skip_existing (False): continue an existing run with this key,
            computing only the samples still missing one of its fields
        progress (None): FiftyOne's progress option (bool, or a callback)
        gt_field (None): an ``fo.Detections``, ``fo.Polylines`` or
            ``fo.Segmentation`` field; each Heatmap then also gets
            ``mass_inside`` (share of the map's mass inside the objects),
            ``pointing_hit`` (the maximum lies inside an object) and ``iou``
            (the map thresholded at ``iou_threshold`` x its max against the
            objects), None where the sample has no such object
        all_objects (False): score against every object of ``gt_field``
            instead of those of the map's target class
        iou_threshold (0.5): the threshold, relative to the map's max, for ``iou``
        faithfulness (False): also compute ``road`` per Heatmap: grad-cam's ROAD
            confidence change when the least relevant 20% of pixels are removed
            minus when the most relevant 20% are (halved, as ``ROADCombined``);
            two extra forwards per map and batch

    With several methods or layers, the sample field ``f"{run_key}_agreement"``
    holds the mean Pearson correlation between the maps of the methods for each
    layer (``methods_<layer>``) and between the layers for each method
    (``layers_<method>``).

    Returns:
        a :class:`cam_core.runs.CamRunResults` with ``num_samples``,
        ``num_skipped``, ``skipped`` and ``fields``

    Raises:
        ValueError / TypeError: for misuse, before anything is computed or written
    """
    started = time.time()
    plan = _Plan.build(
        samples, model, layers, methods, target, run_key, transforms, classes, target_class,
        batch_size, num_workers, device, output_dir, storage, overwrite, skip_existing,
    )
    plan.add_scoring(gt_field, all_objects, iou_threshold, faithfulness)
    return plan.run(progress, started)


class _Plan:
    """Everything checked and decided before the first image is read."""

    @classmethod
    def build(cls, samples, model, layers, methods, target, run_key, transforms, classes,
              target_class, batch_size, num_workers, device, output_dir, storage, overwrite,
              skip_existing):
        import fiftyone.core.collections as foc

        p = cls()
        if not isinstance(samples, foc.SampleCollection):
            raise TypeError(f"samples must be a fo.Dataset or view; got {type(samples).__name__}")
        if samples.media_type != "image":
            raise ValueError(f"cam_core explains images; this collection's media type is '{samples.media_type}'")
        if not isinstance(run_key, str) or not run_key.isidentifier():
            raise ValueError(f"run_key must be a valid Python identifier (letters, digits, underscores); got {run_key!r}")
        if storage not in STORAGE:
            raise ValueError(f"storage must be one of {STORAGE}; got {storage!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be an integer >= 0; got {num_workers!r}")
        p.device = _check_device(device)
        p.methods = resolve_methods(methods)
        p.dataset = samples._root_dataset
        p.samples, p.run_key, p.storage = samples, run_key, storage
        p.batch_size, p.num_workers = batch_size, num_workers

        existing = run_key in p.dataset.list_runs()
        if existing and not (overwrite or skip_existing):
            raise ValueError(
                f"run key '{run_key}' already exists on dataset '{p.dataset.name}'; pass overwrite=True "
                f"to replace it, skip_existing=True to fill in the samples it is missing, or another run_key"
            )
        if len(samples) == 0:
            raise ValueError("the collection is empty: there is no sample to explain")

        p.model = resolve_model(model, transforms, classes)
        p.steps = transform_steps(p.model.transforms)
        probe_x, _ = apply_transforms(p.steps, Image.new("RGB", (224, 224), (128, 128, 128)))
        module = p.model.module
        p.home = _module_device(module)
        try:
            p.probe = probe_model(module.to(p.device), probe_x[None].to(p.device))
            p.layers = resolve_layers(p.probe, module, layers)
        except Exception:
            module.to(p.home)  # the model is left as found
            raise
        p.segmenter = p.probe.is_segmenter
        p.num_outputs = p.probe.output_shape[1]
        p.classes = p.model.classes
        if p.classes is not None and len(p.classes) != p.num_outputs:
            raise ValueError(f"{len(p.classes)} class names given, but the model has {p.num_outputs} outputs")
        if p.segmenter and "finercam" in p.methods:
            raise ValueError("finercam compares classifier scores; it does not apply to segmentation models")
        p.target = _parse_target(target, samples, p.classes, p.num_outputs, p.segmenter)
        p.target_class = None if target_class is None else class_index(p.classes, target_class, p.num_outputs)
        if p.target_class is not None and not (p.segmenter and p.target.kind == "field"):
            raise ValueError("target_class applies only to segmentation models with a target='field:<Segmentation field>'")

        p.fields = {}
        for m in p.methods:
            for info in ([None] if m == "fullgrad" else p.layers):
                p.fields[field_name(run_key, m, None if info is None else info.name)] = [m, None if info is None else info.name]
        p.output_dir = os.path.abspath(output_dir or default_output_dir(p.dataset.name, run_key))

        schema = p.dataset.get_field_schema()
        old = p.dataset.get_run_info(run_key).config if existing else None
        old_fields = set(getattr(old, "fields", {}) or {})
        taken = [f for f in p.fields if f in schema and f not in old_fields]
        if taken:
            raise ValueError(f"fields {taken} already exist and do not belong to run '{run_key}'; choose another run_key")
        p.resume = existing and skip_existing and not overwrite
        if p.resume:
            if not isinstance(old, CamRunConfig):
                raise ValueError(f"run '{run_key}' is not a CAM run; choose another run_key")
            if set(p.fields) != old_fields:
                raise ValueError(
                    f"skip_existing continues run '{run_key}', which has fields {sorted(old_fields)}; "
                    f"these settings give {sorted(p.fields)}. Use the same methods and layers, or overwrite=True"
                )
            p.output_dir, p.storage = old.output_dir, old.storage
        p.replace = existing and overwrite
        return p

    def add_scoring(self, gt_field, all_objects, iou_threshold, faithfulness):
        """Checks and records the optional scores (before any work)."""
        if gt_field is not None:
            check_gt_field(self.samples, gt_field)
        if not isinstance(iou_threshold, (int, float)) or not 0 < iou_threshold <= 1:
            raise ValueError(f"iou_threshold must be a number in (0, 1]; got {iou_threshold!r}")
        self.gt_field, self.all_objects, self.iou_threshold = gt_field, bool(all_objects), float(iou_threshold)
        self.faithfulness = bool(faithfulness)
        if self.faithfulness and self.segmenter:
            raise ValueError("faithfulness (ROAD) is computed for classifiers only")
        groups = _agreement_groups(self.fields)
        self.agreement_field = f"{self.run_key}_agreement" if groups else None
        if self.agreement_field and self.agreement_field in self.dataset.get_field_schema() and not self.resume and not self.replace:
            raise ValueError(f"field '{self.agreement_field}' already exists and does not belong to run '{self.run_key}'")
        self.agreement_groups = groups

    def config(self):
        import fiftyone as fo
        from importlib.metadata import version

        def v(name):
            try:
                return version(name)
            except Exception:
                return None

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
            versions={"fiftyone": fo.__version__, "torch": torch.__version__, "torchvision": v("torchvision"),
                      "grad-cam": v("grad-cam"), "timm": v("timm")},
        )

    def run(self, progress, started):
        import fiftyone as fo
        import fiftyone.core.utils as fou

        dataset = self.dataset
        if self.replace:
            dataset.delete_run(self.run_key)  # its fields and map files
        if not self.resume:
            dataset.register_run(self.run_key, self.config(), overwrite=False)
        for f in self.fields:
            if f not in dataset.get_field_schema():
                dataset.add_sample_field(f, fo.EmbeddedDocumentField, embedded_doc_type=fo.Heatmap)
        if self.agreement_field and self.agreement_field not in dataset.get_field_schema():
            dataset.add_sample_field(self.agreement_field, fo.EmbeddedDocumentField, embedded_doc_type=fo.DynamicEmbeddedDocument)

        todo = self.samples
        if self.resume:
            from fiftyone import ViewField as F

            todo = todo.match(F.any([~F(f).exists() for f in self.fields]))
        ids, paths = todo.values(["id", "filepath"]) if len(todo) else ([], [])
        labels = self._field_labels(todo) if self.target.kind == "field" and not self.segmenter else None

        engine = CamEngine(self.model.module, self.layers, self.methods, self.device, self.batch_size)
        done, skipped = 0, []
        module = self.model.module
        try:
            with fou.ProgressBar(total=len(ids), progress=progress) as pb:
                for items in loader(paths, self.steps, self.batch_size, self.num_workers):
                    good = []
                    for it in items:
                        reason = it.error
                        if reason is None and labels is not None and labels[it.index] is None:
                            reason = f"{NO_LABEL} '{self.target.field}'"
                        if reason is None:
                            good.append(it)
                        else:
                            skipped.append({"id": ids[it.index], "filepath": paths[it.index], "reason": reason})
                    updates = {}
                    for group in groups_by_shape(good):
                        updates.update(self._explain(engine, group, ids, labels))
                    _write(dataset, updates)
                    done += len(updates)
                    pb.update(len(items))
        finally:
            module.to(self.home)
            engine.close()

        # scores are dynamic attributes of the maps: declared, the App's sidebar filters them
        dataset.add_dynamic_sample_fields(fields=list(self.fields) + ([self.agreement_field] if self.agreement_field else []))
        results = CamRunResults(
            dataset, dataset.get_run_info(self.run_key).config, self.run_key,
            num_samples=done, num_skipped=len(skipped), skipped=skipped, fields=list(self.fields),
            seconds=round(time.time() - started, 3),
        )
        dataset.save_run_results(self.run_key, results, overwrite=True)
        _print_summary(self.run_key, done, skipped, len(self.fields))
        return results

    def _field_labels(self, todo):
        names = todo.values(f"{self.target.field}.label")
        return [None if n is None else class_index(self.classes, n, self.num_outputs) for n in names]

    def _explain(self, engine, group, ids, labels):
        x = torch.stack([it.tensor for it in group])
        in_hw = tuple(x.shape[-2:])
        spec = self.target

        def make_targets(out):
            if not self.segmenter:
                if spec.kind == "prediction":
                    indices = None
                elif spec.kind == "class":
                    indices = [spec.class_index] * len(group)
                else:
                    indices = [labels[it.index] for it in group]
                return classifier_targets(out, indices)
            regions = [None] * len(group)
            indices = [spec.class_index if spec.kind == "class" else None] * len(group)
            if spec.kind == "field":
                regions = self._gt_regions(group, ids, tuple(out.shape[-2:]), in_hw)
                indices = [self.target_class] * len(group)
            return segmenter_targets(out, indices, regions, background_index(self.classes))

        res = engine.explain(x, make_targets)
        road = self._road(engine, x, res) if self.faithfulness else {}
        gts = self._gt_labels(group, ids) if self.gt_field else [None] * len(group)
        updates = {}
        for b, it in enumerate(group):
            c = res.indices[b]
            base = {
                "target_index": int(c),
                "target_label": class_name(self.classes, c),
                "target_score": res.scores[b],
                "target_confidence": res.confidences[b],
            }
            labels_out, placed, region = {}, {}, False
            for f, (method, layer) in self.fields.items():
                # scores describe the stored 8-bit map, so scoring it later gives the same values
                cam = placed[f] = to_uint8(it.frame.place(res.maps[(method, layer)][b])) / 255.0
                path = os.path.join(self.output_dir, f, ids[it.index] + ".png")
                attrs = dict(base, **camscores.shape_scores(cam, raw_peak=float(res.peaks[(method, layer)][b])))
                if self.gt_field:
                    if region is False:  # one region per sample, shared by its maps
                        region = region_mask(gts[b], cam.shape, base["target_label"], c, self.all_objects, self._mask_targets())
                    attrs.update(camscores.region_scores(cam, region, self.iou_threshold))
                if (method, layer) in road:
                    attrs["road"] = road[(method, layer)][b]
                labels_out[f] = make_heatmap(cam, self.storage, path, **attrs)
            if self.agreement_field:
                labels_out[self.agreement_field] = _agreement(placed, self.agreement_groups)
            updates[ids[it.index]] = labels_out
        return updates

    def _gt_labels(self, group, ids):
        return self.dataset.select([ids[it.index] for it in group], ordered=True).values(self.gt_field)

    def _mask_targets(self):
        return self.dataset.mask_targets.get(self.gt_field) or self.dataset.default_mask_targets or {}

    def _road(self, engine, x, res):
        """grad-cam's ROAD: confidence change when the least relevant pixels
        are removed minus when the most relevant are, halved (ROADCombined at
        one percentile); the unperturbed scores come from the shared forward."""
        from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirst, ROADMostRelevantFirst

        base = np.float32(res.scores)
        out = {}
        with torch.no_grad():
            for key, cams in res.maps.items():
                # ROAD removes pixels by their rank in the map: a map with no
                # mass ranks nothing, so its score is left out (None)
                empty = cams.reshape(len(cams), -1).max(axis=1) <= 0
                most = ROADMostRelevantFirst(80)(x, cams, res.targets, engine.adapter, return_diff=False)
                least = ROADLeastRelevantFirst(20)(x, cams, res.targets, engine.adapter, return_diff=False)
                score = ((least - base) - (most - base)) / 2
                out[key] = [None if e else float(v) for e, v in zip(empty, score)]
        return out

    def _gt_regions(self, group, ids, out_hw, in_hw):
        import fiftyone as fo

        field = self.target.field
        segs = self.dataset.select([ids[it.index] for it in group], ordered=True).values(field)
        mask_targets = self.dataset.mask_targets.get(field) or self.dataset.default_mask_targets or {}
        lookup = _value_to_class(mask_targets, self.classes)
        regions = []
        for it, seg in zip(group, segs):
            mask = None if seg is None else seg.get_mask()
            if mask is None:
                regions.append(np.full(out_hw, -1))
                continue
            if mask.ndim == 3:
                mask = mask[..., 0]
            mapped = lookup(mask)
            regions.append(it.frame.sample_mask(mapped, out_hw, in_hw, fill=-1))
        return regions


def _agreement_groups(fields):
    """Which maps are compared: the methods of each layer, the layers of each method."""
    by_layer, by_method = {}, {}
    for f, (method, layer) in fields.items():
        if layer is None:
            continue
        by_layer.setdefault(layer, []).append(f)
        by_method.setdefault(method, []).append(f)
    groups = {f"methods_{l.replace('.', '_')}": fs for l, fs in by_layer.items() if len(fs) > 1}
    groups.update({f"layers_{m}": fs for m, fs in by_method.items() if len(fs) > 1})
    return groups


def _agreement(placed, groups):
    import fiftyone as fo
    from itertools import combinations

    values = {}
    for name, fields in groups.items():
        corr = [camscores.agreement([placed[a], placed[b]]) for a, b in combinations(fields, 2)]
        corr = [c for c in corr if c is not None]
        values[name] = float(np.mean(corr)) if corr else None
    return fo.DynamicEmbeddedDocument(**values)


def _value_to_class(mask_targets, classes):
    """Maps ground-truth mask values to model class indices by class name
    (values without a matching class become -1); without mask targets,
    values are taken as class indices."""
    if not mask_targets or classes is None:
        return lambda m: m.astype(np.int64)
    names = {str(c): i for i, c in enumerate(classes)}
    table = {int(v): names.get(str(n), -1) for v, n in mask_targets.items() if str(v).isdigit()}

    def lookup(m):
        out = np.full(m.shape, -1, dtype=np.int64)
        for v, c in table.items():
            out[m == v] = c
        return out

    return lookup


def _parse_target(target, samples, classes, num_outputs, segmenter):
    import fiftyone as fo

    if target is None or target == "prediction":
        return TargetSpec("prediction")
    if isinstance(target, str) and target.startswith("field:"):
        name = target[len("field:"):]
        schema = samples.get_field_schema()
        if name not in schema:
            raise ValueError(f"target field '{name}' does not exist; label fields: {_label_fields(samples)}")
        doc_type = getattr(schema[name], "document_type", None)
        want = fo.Segmentation if segmenter else fo.Classification
        if doc_type is not want:
            kind = "segmentation" if segmenter else "classification"
            raise ValueError(
                f"target field '{name}' holds {getattr(doc_type, '__name__', type(schema[name]).__name__)}; "
                f"a {kind} model needs an {want.__name__} field: {_label_fields(samples, want)}"
            )
        if not segmenter:
            if classes is None:
                raise ValueError(f"target '{target}' maps labels to classes by name, but the model has no class names; pass classes=[...]")
            unknown = sorted(set(samples.distinct(f"{name}.label")) - {str(c) for c in classes})
            if unknown:
                raise ValueError(f"labels {unknown[:10]} of field '{name}' are not among the model's classes")
        return TargetSpec("field", field=name)
    if isinstance(target, str) and target.startswith("class:"):
        target = target[len("class:"):]
    return TargetSpec("class", class_index=class_index(classes, target, num_outputs))


def _label_fields(samples, doc_type=None):
    import fiftyone as fo

    types = (doc_type,) if doc_type else (fo.Classification, fo.Segmentation)
    names = [n for n, f in samples.get_field_schema().items() if getattr(f, "document_type", None) in types]
    return ", ".join(names) or "none"


def _check_device(device):
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'mps'; got {device!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch sees no CUDA device; use device='cpu'")
    return device


def _module_device(module):
    for t in list(module.parameters()) + list(module.buffers()):
        return t.device
    return torch.device("cpu")


def _write(dataset, updates):
    """Writes each sample's fields in one update, so no sample holds half a run."""
    if not updates:
        return
    view = dataset.select(list(updates), ordered=True)
    for sample in view.iter_samples(autosave=True, batch_size=len(updates)):
        for field, label in updates[sample.id].items():
            sample[field] = label


def _print_summary(run_key, done, skipped, num_fields):
    print(f"cam_core: run '{run_key}': {done} samples got {num_fields} map(s) each; {len(skipped)} skipped")
    for reason, n in skipped_reasons(skipped).most_common():
        print(f"  {n} skipped: {reason}")
