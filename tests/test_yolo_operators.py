"""The compute form offers Ultralytics YOLO names, with the same probe,
layers and targets as any model: a .yaml name (random weights, the same in
every process), a .pt name that cannot be downloaded here (refused with what
to do), and a run through the operator as the App starts it."""
import sys

import pytest
from fiftyone.operators.executor import ExecutionError

import fiftyone.operators as foo
from plugin import photos, plugins_dir, uri  # noqa: F401 (fixtures)
from test_detector_operators import form


def test_the_form_offers_and_accepts_ultralytics_names(photos, plugins_dir):
    base = {"model_source": "ultralytics", "run_key": "y"}
    props = form(photos, "compute_cams", base)
    assert "ultralytics" in [c.value for c in props["model_source"].view.choices]
    names = [c.value for c in props["model"].view.choices]
    assert {"yolov8n.pt", "yolov8n.yaml", "yolo11n-seg.yaml", "yolov8n-cls.pt", "yolov8n-obb.yaml"} <= set(names)
    assert not [n for n in names if "world" in n or n.startswith("yoloe") or "sem" in n]  # heads it cannot explain

    props = form(photos, "compute_cams", dict(base, model="yolov8n.yaml"))
    assert props["model_facts"].view.label.startswith("detector, 80 named classes")
    assert props["layers"].default == ["model.model.15"]
    layers = [c.value for c in props["layers"].view.choices]
    assert {"model.model.9", "model.model.15", "model.model.18", "model.model.21"} <= set(layers)
    assert "scorecam" not in [c.value for c in props["methods"].view.choices]  # a detector's methods
    assert "pretrained" not in props  # the name says it: .yaml random, .pt its weights
    assert not props["model"].invalid and props["summary"].view.label.endswith("objects in y_detections")

    props = form(photos, "compute_cams", dict(base, model="yolov8n.pt"))
    assert props["model"].invalid and "cannot download the weights" in props["model"].error_message
    assert "ultralytics:/path/to/yolov8n.pt" in props["model"].error_message


def test_a_yolo_run_from_the_operator(photos, plugins_dir):
    import torch

    op = foo.get_operator(uri("compute_cams"))
    res = op(photos.limit(1), "ultralytics:yolov8n-cls.yaml", methods=["gradcam"], run_key="yc")
    assert res.num_samples == 1
    config = photos.get_run_info("yc").config
    assert config.model == "ultralytics:yolov8n-cls.yaml" and config.layers == ["model.model.8"]
    assert "Letterbox" not in config.transforms  # a classifier: its resize and centre crop
    with pytest.raises(ExecutionError, match="random weights would differ from worker to worker"):
        op(photos, "ultralytics:yolov8n.yaml", methods=["gradcam"], run_key="q", num_shards=2)
    assert "q" not in photos.list_runs()
    # random weights: the same model in every process (App server, delegated worker)
    operator = foo.OperatorRegistry().get_operator(uri("compute_cams"))
    models = sys.modules[type(operator).__module__].models
    weights = []
    for seed in (1, 2):
        models._cache.clear()  # a fresh process
        torch.manual_seed(seed)
        facts = models.describe("ultralytics", "yolov8n-cls.yaml")
        weights.append(facts.model.module.model.model[0].conv.weight.detach().clone())
    models._cache.clear()
    assert torch.equal(weights[0], weights[1])
