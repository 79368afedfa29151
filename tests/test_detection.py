"""compute_cams on detectors, on real datasets: a detector with a known
answer (a box found by its context), ground-truth objects as targets,
torchvision's Faster R-CNN on photographs of several sizes, bad input."""
import os

import numpy as np
import pytest

import cam_core
import models
from models import PlantedDetector, planted_scene


def scenes(dataset, tmp_path, n=6):
    import fiftyone as fo

    dataset.add_samples([fo.Sample(filepath=planted_scene(str(tmp_path / f"scene{i}.png"), marked=i % 2 == 0, seed=i),
                                   marked=i % 2 == 0) for i in range(n)])
    return dataset


def test_a_box_found_by_its_context_is_found(dataset, tmp_path):
    from fiftyone import ViewField as F

    scenes(dataset, tmp_path)
    res = cam_core.compute_cams(dataset, PlantedDetector(), methods=["gradcam", "hirescam"], score_threshold=0.0,
                                batch_size=4, num_workers=0, device="cpu", output_dir=str(tmp_path / "maps"))
    assert res.num_samples == 6 and sorted(res.fields) == ["cam_gradcam_features", "cam_hirescam_features"]
    config = dataset.get_run_info("cam").config
    assert config.detections_field == "cam_detections" and config.score_threshold == 0.0 and config.max_objects == 20
    flat = dataset.get_field_schema(flat=True)
    for name in ("gradcam_features_inside", "hirescam_features_background", "gradcam_features_peak_inside"):
        assert f"cam_detections.detections.{name}" in flat  # declared: the App's label filters offer them

    for sample in dataset:
        heat = sample["cam_hirescam_features"]
        assert heat.num_objects == 2 and not hasattr(heat, "target_label") or heat.get_field("target_label") is None
        assert os.path.exists(heat.map_path)
        dets = {d.label: d for d in sample["cam_detections"].detections}
        assert set(dets) == {"honest", "fooled"}
        np.testing.assert_allclose(dets["honest"].bounding_box, [0.55, 0.55, 0.35, 0.35], atol=1e-6)
        honest, fooled = dets["honest"], dets["fooled"]
        # the honest box is explained by what is inside it
        assert honest.hirescam_features_inside > 0.95 and honest.hirescam_features_peak_inside
        if sample.marked:
            # the fooled box by the red mark outside it
            assert fooled.hirescam_features_background > 0.95 and not fooled.hirescam_features_peak_inside
            assert fooled.gradcam_features_background > 0.8
            assert fooled.confidence > 0.8

    # the patches of the boxes found by their context come first
    patches = cam_core.sort_objects_by_score(dataset, "cam", "inside", field="cam_gradcam_features", min_confidence=0.5)
    assert patches.values("cam_detections.label")[:3] == ["fooled"] * 3
    assert set(dataset.select(patches.limit(3).values("sample_id")).values("marked")) == {True}
    confidences = patches.values("cam_detections.confidence")
    assert len(patches) >= 3 and min(confidences) >= 0.5  # the unmarked scenes' fooled boxes score low: left out
    with pytest.raises(cam_core.CamArgumentError, match="unknown object score 'mass_inside'"):
        cam_core.sort_objects_by_score(dataset, "cam", "mass_inside")
    # the fooled box always reads the mark's place (background > 0.9), but scores high only where the mark is
    found = dataset.filter_labels("cam_detections", (F("hirescam_features_background") > 0.9) & (F("confidence") > 0.5))
    assert found.count("cam_detections.detections") == 3 and set(found.values("marked")) == {True}

    dataset.delete_run("cam")
    assert "cam_detections" not in dataset.get_field_schema()
    left = [f for _, _, files in os.walk(tmp_path / "maps") for f in files]
    assert left == []


def test_ground_truth_objects_are_explained_and_matched(dataset, tmp_path):
    import fiftyone as fo

    scenes(dataset, tmp_path, n=2)
    for sample in dataset:
        sample["truth"] = fo.Detections(detections=[
            fo.Detection(label="fooled", bounding_box=[0.11, 0.56, 0.34, 0.34]),  # IoU > 0.5 with the fooled box
            fo.Detection(label="honest", bounding_box=[0.45, 0.05, 0.15, 0.1]),  # overlaps no output box
            fo.Detection(label="cat", bounding_box=[0.55, 0.55, 0.35, 0.35]),  # not a class of the model
        ])
        sample.save()
    cam_core.compute_cams(dataset, PlantedDetector(), methods="hirescam", target="field:truth", num_workers=0,
                          device="cpu", gt_field="truth", output_dir=str(tmp_path / "maps"))
    marked = dataset.match({"marked": True}).first()
    truth = {d.id: d for d in marked.truth.detections}
    dets = marked.cam_detections.detections
    assert [d.gt_id for d in dets] == list(truth)  # one copy per ground-truth object, in order
    assert not marked.truth.detections[0].has_field("hirescam_features_inside")  # the user's labels untouched
    fooled, unmatched, unknown = dets
    assert fooled.label == "fooled" and fooled.confidence > 0.8 and fooled.hirescam_features_background > 0.95
    for d in (unmatched, unknown):  # no output box matches: no score, an empty map
        assert d.confidence is None and d.hirescam_features_inside is None
    assert marked.cam_hirescam_features.mass_inside is not None  # the sample map scored against gt_field


def test_torchvision_faster_rcnn_on_photographs(dataset, image_dir, tmp_path):
    import fiftyone as fo
    from PIL import Image

    names = ["astronaut", "coffee", "chelsea"]  # three sizes, in one batch: resized and padded inside
    dataset.add_samples([fo.Sample(filepath=image_dir[n]) for n in names])
    model = cam_core.CamModel(models.small_fasterrcnn(), None, ["background", "a", "b", "c"], "fasterrcnn")
    description = cam_core.describe_model(model)
    assert description.detector and description.kind == "detector" and description.num_outputs == 4
    assert description.default_layers == ["backbone.body.16"]  # the stage before the feature pyramid
    assert "backbone.fpn:pool" in description.layer_names  # a pyramid level no submodule returns
    res = cam_core.compute_cams(dataset, model, methods=["gradcam", "eigencam"], score_threshold=0.0, max_objects=3,
                                batch_size=2, num_workers=0, device="cpu", output_dir=str(tmp_path / "maps"))
    assert res.num_samples == 3
    for sample, name in zip(dataset, names):
        w, h = Image.open(image_dir[name]).size
        for field in res.fields:
            heat = sample[field]
            assert np.array(Image.open(heat.map_path)).shape == (h, w)  # the whole image, as the App draws it
        dets = sample.cam_detections.detections
        assert 1 <= len(dets) <= 3 and all(0 <= v <= 1 for d in dets for v in d.bounding_box)
        confidences = [d.confidence for d in dets]
        assert confidences == sorted(confidences, reverse=True)
        for d in dets:
            assert 0 <= d.gradcam_backbone_body_16_inside <= 1
            total = d.gradcam_backbone_body_16_inside + d.gradcam_backbone_body_16_on_others + d.gradcam_backbone_body_16_background
            assert abs(total - 1) < 1e-6


@pytest.mark.parametrize("kwargs, param, words", [
    (dict(methods="scorecam"), "methods", "cannot explain a detector"),
    (dict(aug_smooth=True), "aug_smooth", "moves every box"),
    (dict(faithfulness=True), "faithfulness", "does not apply to detectors"),
    (dict(max_objects=0), "max_objects", "integer >= 1"),
    (dict(score_threshold="high"), "score_threshold", "must be a number"),
    (dict(target="field:marked"), "target", "not a Detections field"),
    (dict(target="class:zebra"), "target", "not one of the model's 3 classes"),
    (dict(all_objects=False), "all_objects", "explains all its objects together"),
])
def test_bad_detector_input_is_refused_before_anything_is_stored(dataset, tmp_path, kwargs, param, words):
    scenes(dataset, tmp_path, n=1)
    with pytest.raises(cam_core.CamArgumentError) as e:
        cam_core.compute_cams(dataset, PlantedDetector(), device="cpu", **kwargs)
    assert e.value.param == param and words in str(e.value)
    assert dataset.list_runs() == [] and "cam_detections" not in dataset.get_field_schema()


def test_a_detector_run_continues_with_its_own_settings(dataset, tmp_path):
    import fiftyone as fo

    scenes(dataset, tmp_path, n=2)
    kwargs = dict(methods="hirescam", score_threshold=0.0, num_workers=0, device="cpu", output_dir=str(tmp_path / "m"))
    cam_core.compute_cams(dataset, PlantedDetector(), **kwargs)
    first = {s.id: s.cam_detections.detections[0].id for s in dataset}
    dataset.add_sample(fo.Sample(filepath=planted_scene(str(tmp_path / "late.png"), marked=True, seed=9), marked=True))
    with pytest.raises(cam_core.CamArgumentError) as e:
        cam_core.compute_cams(dataset, PlantedDetector(), skip_existing=True, **dict(kwargs, score_threshold=0.3))
    assert e.value.param == "score_threshold" and "score_threshold=0.0" in str(e.value)
    res = cam_core.compute_cams(dataset, PlantedDetector(), skip_existing=True, **kwargs)
    assert res.num_samples == 3 and len(dataset.exists("cam_detections")) == 3
    assert {s.id: s.cam_detections.detections[0].id for s in dataset if s.id in first} == first  # kept, not recomputed


def test_images_of_different_sizes_share_a_batch_and_get_their_own_maps(image_dir):
    import torch
    from PIL import Image
    from torchvision.transforms.functional import to_tensor

    from cam_core.engine.detection import predicted_objects
    from cam_core.engine.detector import DetectorEngine

    model = models.small_fasterrcnn()
    probe = cam_core.describe_model(model)
    layer = probe.layer(probe.default_layers[0])
    engine = DetectorEngine(model, [layer], ["gradcam"])
    images = [to_tensor(Image.open(image_dir[n]).convert("RGB")) for n in ("coffee", "chelsea")]  # HxW 400x600, 300x451

    def choose(outputs):
        return [predicted_objects(o, 0.0, 2) for o in outputs]

    both = engine.explain(images, choose)
    key = ("gradcam", layer.name)
    assert [tuple(m.shape) for m in both.maps[key]] == [(400, 600), (300, 451)]
    for i, image in enumerate(images):
        alone = engine.explain(image[None], choose)
        np.testing.assert_allclose([o.box for o in alone.objects[0]], [o.box for o in both.objects[i]], atol=1e-2)
        # each image's map is cropped from the batch's padded grid: the same as alone
        torch.testing.assert_close(both.object_maps[key][i], alone.object_maps[key][0], atol=1e-5, rtol=0)


def test_a_detector_run_is_rescored_sorted_and_summarised(dataset, tmp_path):
    import fiftyone as fo

    scenes(dataset, tmp_path, n=4)
    for sample in dataset:
        sample["truth"] = fo.Detections(detections=[fo.Detection(label="fooled", bounding_box=[0.1, 0.55, 0.35, 0.35])])
        sample.save()
    cam_core.compute_cams(dataset, PlantedDetector(), methods="hirescam", score_threshold=0.0, num_workers=0,
                          device="cpu", output_dir=str(tmp_path / "maps"))
    assert cam_core.score_regions(dataset, "cam", "truth", name="boxes") == 4
    assert len(cam_core.sort_by_score(dataset, "cam", "mass_inside", scoring="boxes")) == 4
    with pytest.raises(cam_core.CamArgumentError) as e:
        cam_core.score_regions(dataset, "cam", "truth", all_objects=False)
    assert e.value.param == "all_objects" and "explained a detector" in str(e.value)
    pictures = cam_core.summarize_run(dataset, "cam", output_dir=str(tmp_path / "summary"), score="spread")
    assert all(os.path.getsize(p) > 0 for p in pictures.values())
