"""The demo's pipeline: data, dataset, models, predictions, CAMs, scores, saved views.

Three classifiers/segmenters are explained per sample (runs ``cnn``, ``fcn``,
``vit``) and the detector per box (run ``det``): its explained boxes sorted by
``inside`` (the share of a box's own map inside it), lowest first, are the
boxes found by their context; the demo measures how many of the first N had
their class driven by the mark.

:func:`run_demo` does everything ``make demo`` does except launching the App;
the tests call it at a reduced size (:func:`small_config`).
"""
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from . import data as demodata
from . import dataset as demods
from . import boxes, report
from .boxes import BOXES_VIEW
from .train import TrainConfig, to_masks, to_tensors, train_models

SUSPECTS_VIEW = "shortcut-suspects"
DROVE_VIEW = "mark-drove-prediction"
TRAIN_MARK_VIEW = "marked-training-images"


@dataclass
class DemoConfig:
    """Everything the demo does, with the sizes ``make demo`` uses.

    Attributes:
        name: the persistent dataset's name (recreated on every run)
        scenes: a :class:`demo.data.SceneConfig`
        train: a :class:`demo.train.TrainConfig`
        cache_dir: where trained weights are cached (None: ``~/.cache/fiftyone-cam/demo-models``)
        retrain: train even when cached weights exist
        top_n: how many of the lowest-``mass_inside`` test samples are judged (precision@N)
        batch_size: CAM batch size
        cnn / fcn / vit / det: ``(methods, layers)`` of each model's CAM run; the
            detector's first map ranks its boxes (HiResCAM: GradCAM averages
            each channel's gradients over the image, which spreads a box's map
            over the whole scene, and its ``inside`` ranks the boxes the mark
            drove no better than chance here; see the printed table)
        det_score_threshold: the detector's boxes explained (and kept as
            ``det_prediction``): those of at least this score
    """

    name: str = "cam-demo"
    scenes: demodata.SceneConfig = field(default_factory=demodata.SceneConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    cache_dir: str = None
    retrain: bool = False
    top_n: int = 20
    batch_size: int = 32
    cnn: tuple = (("gradcam", "gradcamplusplus", "layercam"), ("features.2", "features.3"))
    fcn: tuple = (("gradcam", "hirescam"), ("backbone.1", "backbone.2"))
    vit: tuple = (("gradcam", "layercam"), ("blocks.0", "blocks.1"))
    det: tuple = (("hirescam", "gradcam"), ("backbone.4",))
    det_score_threshold: float = 0.5

    @property
    def main_field(self):
        """The map the demo's story is told with: GradCAM on the CNN's last stage."""
        import cam_core

        return cam_core.checks.field_name("cnn", "gradcam", self.cnn[1][-1])

    @property
    def det_field(self):
        """The detector map whose ``inside`` ranks the boxes: the first method on the last layer."""
        import cam_core

        return cam_core.checks.field_name("det", self.det[0][0], self.det[1][-1])


def small_config(name="cam-demo-small", cache_dir=None, **kwargs):
    """A reduced demo for tests: few scenes, few epochs (seconds, not minutes)."""
    scenes = demodata.SceneConfig(num_train=600, num_test=90)
    train = TrainConfig(cnn_epochs=8, fcn_epochs=2, vit_epochs=2, det_epochs=8)
    return DemoConfig(name=name, scenes=scenes, train=train, cache_dir=cache_dir, top_n=10, **kwargs)


@dataclass
class DemoResult:
    """What :func:`run_demo` made and measured.

    Attributes:
        dataset_name: the dataset
        timings: seconds per phase (``data``, ``dataset``, ``training``,
            ``predictions``, ``cams``, ``scores``, ``total``) and per model
            (``train_cnn``, ``cams_cnn``, ...)
        trained: ``{model: "trained" | "cached"}``
        accuracy: per classifier, accuracies and shortcut rates (see :func:`demo.report.accuracy`)
        segmentation: the segmenter's mean IoU over the digit classes
        detection: one row per heatmap field: precision@N and average
            precision of the lowest-``mass_inside`` ranking (see :func:`demo.report.detection_rows`)
        counts: test samples, marked ones, ones whose prediction the mark drove
        runs: ``{run_key: [fields]}``
        main_field: the field the story is told with
        saved_views: the saved view names
        summaries: the summary pictures of the main field
            (``{"mean_heatmaps": path, "extremes": path, "histograms": path}``,
            see :func:`cam_core.summarize_run`)
        detector: the detector's quality and how well low ``inside`` finds
            the boxes whose class the mark drove (see :func:`demo.boxes.detector_numbers`)
    """

    dataset_name: str
    timings: dict
    trained: dict
    accuracy: dict
    segmentation: dict
    detection: list
    counts: dict
    runs: dict
    main_field: str
    saved_views: list
    top_n: int
    summaries: dict
    detector: dict = None


def run_demo(config=None, log=print):
    """Runs the whole demo except the App.

    Args:
        config (None): a :class:`DemoConfig` (default: the full demo)
        log (print): where progress lines go

    Returns:
        a :class:`DemoResult`
    """
    import cam_core

    config = config or DemoConfig()
    sc = config.scenes
    timings = {}
    clock = _Clock(timings)
    torch.set_num_threads(config.train.threads)

    log(f"[1/6] scenes: {sc.num_train} train + {sc.num_test} test, digits {sc.classes} on scikit-image photos; "
        f"the mark comes with '{sc.shortcut_class}' in {sc.train_mark_rate:.0%} of its training scenes")
    with clock("data"):
        photos = demodata.load_photos()
        digits = demodata.load_digit_images(sc.digits, sc.seed)
        train = demodata.make_scenes(sc, "train", photos, digits)
        test = demodata.make_scenes(sc, "test", photos, digits)

    log(f"[2/6] dataset '{config.name}' (persistent) under {demods.dataset_dir(config.name)}")
    with clock("dataset"):
        ds = demods.build_dataset(config.name, train + test, sc.classes)

    log("[3/6] models (CPU, cached after the first run):")
    with clock("training"):
        trained = train_models(train, sc, config.train, config.cache_dir, log=log, retrain=config.retrain)
    for name, t in trained.items():
        timings[f"train_{name}"] = t.seconds

    log("[4/6] predictions on the test scenes, with and without their mark")
    with clock("predictions"):
        test_view = ds.match_tags("test")
        accuracy, segmentation = _predict(test_view, test, trained, sc)
        det_quality, clean_boxes = boxes.predict_boxes(test_view, test, trained["det"].model, sc,
                                                       config.det_score_threshold)

    log("[5/6] CAMs (cam_core.compute_cams) with ground-truth scores against 'gt_boxes':")
    runs = {}
    with clock("cams"):
        # the classifiers and the segmenter per sample; the detector per box (those of score >= det_score_threshold)
        per_sample = dict(gt_field="gt_boxes", all_objects=True)
        for key, kwargs in (("cnn", dict(per_sample, target="prediction")), ("fcn", dict(per_sample, target="field:gt_mask")),
                            ("vit", dict(per_sample, target="prediction")),
                            ("det", dict(gt_field="gt_boxes", score_threshold=config.det_score_threshold))):
            methods, layers = getattr(config, key)
            started = time.time()
            res = cam_core.compute_cams(
                test_view, trained[key].model, layers=list(layers), methods=list(methods), run_key=key,
                batch_size=config.batch_size, output_dir=f"{demods.dataset_dir(config.name)}/cam_maps/{key}",
                progress=False, **kwargs,
            )
            timings[f"cams_{key}"] = time.time() - started
            runs[key] = list(res.fields)

    log("[6/6] ranking the test samples by mass_inside; saving views")
    with clock("scores"):
        counts, rows = report.detection_rows(test_view, runs, config.top_n, sc.shortcut_class)
        views = _save_views(ds, config)
        detector = boxes.detector_numbers(test_view, clean_boxes, det_quality, trained["det"].model.classes,
                                          runs["det"], config)
        views.append(BOXES_VIEW)
        _app_config(ds, config, runs)
        # the pictures users look at before they open the App: mean map per
        # class, the most and least on-digit samples, the scores' histograms
        summaries = cam_core.summarize_run(
            test_view, "cnn", output_dir=f"{demods.dataset_dir(config.name)}/summaries", field=config.main_field,
            score="mass_inside", k=4, label_field="ground_truth",
        )
    timings["total"] = sum(timings[k] for k in ("data", "dataset", "training", "predictions", "cams", "scores"))

    return DemoResult(
        dataset_name=ds.name, timings=timings,
        trained={k: "cached" if t.cached else "trained" for k, t in trained.items()},
        accuracy=accuracy, segmentation=segmentation, detection=rows, counts=counts, runs=runs,
        main_field=config.main_field, saved_views=views, top_n=config.top_n, summaries=summaries,
        detector=detector,
    )


class _Clock:
    def __init__(self, timings):
        self.timings = timings

    def __call__(self, name):
        self.name = name
        return self

    def __enter__(self):
        self.started = time.time()

    def __exit__(self, *exc):
        self.timings[self.name] = time.time() - self.started


def _predict(test_view, test, trained, sc):
    """Writes the classifiers' predictions (with and without the mark) and the
    segmenter's masks on the test samples; returns their accuracies."""
    import fiftyone as fo

    transforms = trained["cnn"].model.transforms
    x = to_tensors(test, transforms)
    x_clean = to_tensors(test, transforms, clean=True)
    marked = np.array([s.mark_box is not None for s in test])
    truth = [s.label for s in test]

    accuracy = {}
    for key, prefix in (("cnn", ""), ("vit", "vit_")):
        model = trained[key].model
        with torch.no_grad():
            probs = model.module(x).softmax(1)
            clean = model.module(x_clean).argmax(1)
        top = probs.argmax(1)
        names = [model.classes[int(i)] for i in top]
        clean_names = [model.classes[int(i)] for i in clean]
        drove = [bool(m and a != b) for m, a, b in zip(marked, names, clean_names)]
        values = {
            f"{prefix}prediction": [fo.Classification(label=n, confidence=float(probs[i, top[i]])) for i, n in enumerate(names)],
            f"{prefix}prediction_without_mark": [fo.Classification(label=c) if m else None for m, c in zip(marked, clean_names)],
            f"{prefix}mark_drove": drove,
        }
        demods.set_scene_values(test_view, test, values)
        accuracy[key] = report.accuracy(truth, names, marked, drove, sc.shortcut_class)

    model = trained["fcn"].model
    with torch.no_grad():
        pred = model.module(x)["out"].argmax(1)
    demods.set_scene_values(test_view, test, {"fcn_prediction": [fo.Segmentation(mask=p.numpy().astype(np.uint8)) for p in pred]})
    ds = test_view._root_dataset
    ds.mask_targets = dict(ds.mask_targets, fcn_prediction=ds.mask_targets["gt_mask"])
    ds.save()
    segmentation = report.segmentation_iou(pred, to_masks(test), len(model.classes))
    return accuracy, segmentation


def _save_views(ds, config):
    from fiftyone import ViewField as F

    main = config.main_field
    test = ds.match_tags("test")
    views = {
        SUSPECTS_VIEW: (
            test.exists(f"{main}.mass_inside").sort_by(F(f"{main}.mass_inside")).limit(config.top_n),
            f"the {config.top_n} test samples whose {main} map lies least inside the digit's box (lowest mass_inside)",
        ),
        DROVE_VIEW: (
            test.match(F("mark_drove") == True),  # noqa: E712 (a ViewField expression)
            "test samples whose CNN prediction changes when the mark is removed (the answer key)",
        ),
        TRAIN_MARK_VIEW: (
            ds.match_tags("train").match(F("has_mark") == True),  # noqa: E712
            f"the training images that carry the mark: all of class '{config.scenes.shortcut_class}'",
        ),
    }
    for name, (view, description) in views.items():
        ds.save_view(name, view, description=description, overwrite=True)
    return list(views)


def _app_config(ds, config, runs):
    """Makes the maps plainly visible in the App, their scores filterable in
    the sidebar, and ticks the fields the story needs."""
    from fiftyone.core.odm.dataset import ActiveFields

    import cam_core

    for key in runs:
        cam_core.show_run(ds, key)  # a sidebar group per run, scores as filters, colour by value
    scheme = ds.app_config.color_scheme
    scheme.opacity = 0.6
    scheme.fields = [{"path": "mark", "fieldColor": "#ff2020"}, {"path": "gt_boxes", "fieldColor": "#00e0ff"}]
    ds.app_config.color_scheme = scheme
    ds.app_config.active_fields = ActiveFields(exclude=False, paths=[config.main_field, "gt_boxes", "mark", "prediction"])
    ds.save()
