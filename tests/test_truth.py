"""The truth of a result: a run stores no map that says nothing and no score
that is not a number, and says so, as the App's operators run it.

- a detector run whose maps explain no object (no box over the threshold,
  or no box of the target class) skips those samples with their own kind of
  reason, counts the objects it explains, and warns when it explains none;
  sorting its objects then says why there is no patch;
- a model whose outputs are NaN has its samples skipped with the reason; one
  whose outputs are integers is refused at the probe, before anything is recorded;
- sorting samples by a score says how many were left out, and why (no map,
  an empty map, no value).

A private mongod (conftest), the PlantedDetector (its "fooled" box scores
high only in marked scenes), a ResNet-18 whose scores are broken, scenes
and photos written as files.
"""
import logging

import numpy as np
import pytest
from PIL import Image
from fiftyone.operators.executor import ExecutionError

import fiftyone as fo
import fiftyone.operators as foo
import cam_core
import models
from models import PlantedDetector

from test_detector_operators import compute, form, planted, scenes  # noqa: F401 (fixtures)
from test_operators import photos, plugins_dir, registered, uri  # noqa: F401 (fixtures)


def _summary_message(key, results):
    """What the compute form's App run says when it ends (operators/compute.py summary)."""
    op = foo.OperatorRegistry().get_operator(uri("compute_cams"))
    return op.execute.__globals__["summary"](key, results)["message"]


def test_a_detector_run_that_explains_no_object_says_so(scenes, planted, caplog):
    # no box can score 2: nothing is explained, so nothing is stored and the run says why
    with caplog.at_level(logging.WARNING, logger="cam_core.compute.runner"):
        res = compute(scenes, score_threshold=2.0, run_key="none")
    assert (res.num_samples, res.num_skipped, res.num_objects) == (0, 6, 0)
    assert dict(res.skipped_reasons()) == {"no object explained": 6}
    assert all(s["reason"] == "no object explained: no box scored at least the score threshold 2.0"
               for s in res.skipped)
    assert "explaining 0 object(s)" in res.summary() and "no object was explained" in res.summary()
    assert "no object was explained" in caplog.text  # a warning, not a line of info
    message = _summary_message("none", res)
    assert message.startswith("CAM run 'none': 0 sample(s) got 2 map(s) each, explaining 0 object(s); 6 skipped "
                              "(6 no object explained). Warning: no object was explained")
    for field in res.fields + ["none_detections"]:
        assert scenes.values(field) == [None] * 6  # no empty map tints any image

    # its objects: 0 patches, and the operator says why
    assert len(cam_core.sort_objects_by_score(scenes, "none")) == 0
    params = {"run_key": "none", "score": "inside"}
    out = foo.execute_operator(uri("sort_cam_objects"), ctx={"dataset": scenes, "params": params}).result
    assert out["count"] == 0
    assert out["message"].startswith("0 object(s) of run 'none' sorted by inside: run 'none' explains no object in "
                                     "these samples: no object was explained")
    assert "(6 sample(s) skipped: no object explained)" in out["message"]


def test_only_the_images_whose_maps_explain_an_object_get_maps(scenes, planted):
    # the fooled box scores over 0.8 only where its mark is (every other scene)
    res = compute(scenes, target="class:fooled", score_threshold=0.8, run_key="fooled")
    marked = scenes.values("marked")
    assert (res.num_samples, res.num_skipped, res.num_objects) == (3, 3, 3)
    assert [m is not None for m in scenes.values("fooled_gradcam_features")] == marked
    skipped = {s["id"]: s["reason"] for s in res.skipped}
    assert sorted(skipped) == sorted(scenes.match(fo.ViewField("marked") == False).values("id"))  # noqa: E712
    assert set(skipped.values()) == {
        "no object explained: no box of class 'fooled' scored at least the score threshold 0.8"}
    assert "explaining 3 object(s); 3 skipped (3 no object explained)" in _summary_message("fooled", res)

    # ground-truth objects none of which matches a box of the detector: skipped too
    for sample in scenes:
        sample["far"] = fo.Detections(detections=[fo.Detection(label="fooled", bounding_box=[0.8, 0.0, 0.1, 0.1])])
        sample.save()
    res = compute(scenes, target="field:far", run_key="far")
    assert (res.num_samples, res.num_objects) == (0, 0)
    assert {s["reason"] for s in res.skipped} == {
        "no object explained: none of its 1 object(s) in 'far' matched a box of the detector (same label, IoU over "
        "0.5)"}


def _whiten_corner(path):
    img = np.asarray(Image.open(path)).copy()
    img[:8, :8] = 255
    Image.fromarray(img).save(path)


def test_nan_outputs_skip_their_samples_with_the_reason(photos, plugins_dir):  # noqa: F811
    broken = models.broken_classifier("nan")
    cam_core.register_model("nan-classifier", broken.module, transforms=broken.transforms, classes=broken.classes)
    res = foo.get_operator(uri("compute_cams"))(photos, "nan-classifier", layers=["model.layer4"], run_key="nan")
    assert (res.num_samples, res.num_skipped) == (0, 4)
    assert dict(res.skipped_reasons()) == {"model output not finite": 4}
    assert res.skipped[0]["reason"].startswith("model output not finite: the model's scores hold NaN or infinity")
    assert photos.values("nan_gradcam_model_layer4") == [None] * 4  # no empty map, no NaN score stored


def test_a_detector_whose_scores_are_nan_on_some_images_skips_those(scenes, plugins_dir):  # noqa: F811
    for path in scenes.values("filepath")[:2]:
        _whiten_corner(path)  # its scores are NaN there
    det = models._NanDetector()
    cam_core.register_model("nan-detector", det, transforms=det.transforms, classes=PlantedDetector.classes)
    res = foo.get_operator(uri("compute_cams"))(scenes, "nan-detector", score_threshold=0.0, run_key="nandet",
                                                methods=["gradcam"], device="cpu")
    assert (res.num_samples, res.num_skipped, res.num_objects) == (4, 2, 8)
    assert dict(res.skipped_reasons()) == {"model output not finite": 2}
    assert res.skipped[0]["reason"].startswith("model output not finite: the detector's boxes or scores hold NaN")
    assert [v is None for v in scenes.values("nandet_gradcam_features")] == [True, True, False, False, False, False]


def test_integer_outputs_are_refused_at_the_probe(photos, registered, plugins_dir):  # noqa: F811
    with pytest.raises(cam_core.CamArgumentError, match="returned its scores as torch.int64") as e:
        cam_core.compute_cams(photos, models.broken_classifier("int"), run_key="ints", num_workers=0)
    assert e.value.param == "model" and "floating-point scores" in e.value.message
    photos.reload()
    assert photos.list_runs() == []  # refused before anything was recorded
    # the App: registering it is refused with the same words, and nothing is registered
    with pytest.raises(ExecutionError, match="returned its scores as torch.int64"):
        foo.execute_operator(uri("register_cam_model"), params={
            "name": "ints", "factory": "models:broken_classifier", "kwargs": '{"how": "int"}'})
    assert "ints" not in cam_core.checks.registered_factories()


def test_sorting_by_a_score_says_how_many_samples_it_left_out_and_why(photos, registered):  # noqa: F811
    cam_core.compute_cams(photos, "tiny-resnet", layers=["layer4"], run_key="cam", num_workers=0, storage="inline")
    field = "cam_gradcam_layer4"
    maps = photos.values(field)
    # one map empty (no mass: its shape scores are None), one sample without its map (as a skipped one)
    maps[1].set_field("empty", True)
    maps[1].set_field("spread", None)
    maps[2] = None
    photos.set_values(field, maps)

    params = {"run_key": "cam", "score": "spread", "field": field}
    out = foo.execute_operator(uri("sort_by_cam_score"), ctx={"dataset": photos, "params": params}).result
    assert out["count"] == 2 and out["left_out"] == 2
    assert out["message"] == ("2 sample(s) sorted by spread; 2 left out for no spread: 1 have no map (skipped, or "
                              "not computed); 1 have an empty map (no mass: it explains nothing)")
    # bounds that leave samples out say so too
    low = min(v for v in photos.values(f"{field}.spread") if v is not None)
    out = foo.execute_operator(uri("sort_by_cam_score"), ctx={"dataset": photos, "params": dict(
        params, max_value=low)}).result
    assert out["count"] == 1 and out["message"].endswith("; 1 outside the bounds")
    with pytest.raises(ExecutionError):  # a score the maps do not carry is refused, as before
        foo.execute_operator(uri("sort_by_cam_score"), ctx={"dataset": photos, "params": dict(params, score="iou")})
