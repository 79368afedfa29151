"""Ground-truth, agreement and faithfulness scores on stored maps, with known answers
from the planted scene of test_known_answer (the score depends on the red square only)."""
import numpy as np
import pytest
from PIL import Image

import cam_core
from test_known_answer import BLUE, H, RED, W, RegionNet, transforms, write_scene


def box(rect, label):
    import fiftyone as fo

    x0, y0, x1, y1 = rect
    return fo.Detection(label=label, bounding_box=[x0 / W, y0 / H, (x1 - x0) / W, (y1 - y0) / H])


def polygon(rect, label):
    import fiftyone as fo

    x0, y0, x1, y1 = rect
    pts = [(x0 / W, y0 / H), (x1 / W, y0 / H), (x1 / W, y1 / H), (x0 / W, y1 / H)]
    return fo.Polyline(label=label, points=[pts], closed=True, filled=True)


@pytest.fixture
def scene_dataset(dataset, tmp_path):
    import fiftyone as fo

    path = write_scene(str(tmp_path / "scene.png"))
    mask = np.zeros((H // 4, W // 4), np.uint8)  # a quarter-size mask, stretched over the image
    mask[RED[1] // 4 : RED[3] // 4, RED[0] // 4 : RED[2] // 4] = 1
    mask[BLUE[1] // 4 : BLUE[3] // 4, BLUE[0] // 4 : BLUE[2] // 4] = 2
    dataset.add_samples([
        fo.Sample(filepath=path, boxes=fo.Detections(detections=[box(RED, "red"), box(BLUE, "blue")]),
                  polys=fo.Polylines(polylines=[polygon(RED, "red")]), seg=fo.Segmentation(mask=mask),
                  wrong=fo.Detections(detections=[box(BLUE, "red")]), other=fo.Detections(detections=[box(RED, "blue")])),
    ])
    dataset.mask_targets = {"seg": {1: "red", 2: "blue"}}
    dataset.save()
    return dataset


def run(dataset, **kw):
    return cam_core.compute_cams(dataset, RegionNet(), layers=["features"], target=0, classes=["red", "blue"],
                                 transforms=transforms(), **kw)


@pytest.mark.parametrize("gt", ["boxes", "polys", "seg"])
def test_region_scores_against_boxes_polylines_and_masks(scene_dataset, gt):
    # the red object alone (target-class scoring: the scene also holds a blue box)
    run(scene_dataset, methods=["hirescam", "layercam"], gt_field=gt, all_objects=False)
    for field in ("cam_hirescam_features", "cam_layercam_features"):
        heat = scene_dataset.first()[field]
        # HiResCAM and LayerCAM are non-zero only where the score's window
        # sees red: nearly all the mass lies on the red square
        assert heat.mass_inside > 0.9 and heat.pointing_hit is True, (gt, field, heat.mass_inside)
        assert 0.5 < heat.iou <= 1
    assert scene_dataset.get_run_info("cam").config.gt_field == gt
    # declared in the schema, so the App's sidebar can filter them
    flat = scene_dataset.get_field_schema(flat=True)
    assert {"cam_hirescam_features.mass_inside", "cam_hirescam_features.peak_x", "cam_agreement.methods_features"} <= set(flat)


def test_objects_of_another_class_or_none(scene_dataset):
    run(scene_dataset, methods=["hirescam"], gt_field="wrong", run_key="wrong")
    heat = scene_dataset.first()["wrong_hirescam_features"]
    assert heat.mass_inside < 0.05 and heat.pointing_hit is False and heat.iou == 0
    # target-class scoring, no object of the target class: no score rather than a made-up one
    run(scene_dataset, methods=["hirescam"], gt_field="other", all_objects=False, run_key="other")
    heat = scene_dataset.first()["other_hirescam_features"]
    assert heat.mass_inside is None and heat.pointing_hit is None and heat.iou is None
    # the default: every object counts, whatever the target class (the blue-labelled box around the red square)
    run(scene_dataset, methods=["hirescam"], gt_field="other", run_key="anyobj")
    assert scene_dataset.first()["anyobj_hirescam_features"].mass_inside > 0.9
    assert scene_dataset.get_run_info("anyobj").config.all_objects is True


def test_named_scorings_beside_the_runs_own(scene_dataset, caplog):
    import logging

    run(scene_dataset, methods=["hirescam"], gt_field="other")  # the run's own scoring: all objects
    cam_core.score_regions(scene_dataset, "cam", "other", all_objects=False, name="target_class")
    cam_core.score_regions(scene_dataset, "cam", "wrong", name="wrong_box")
    heat = scene_dataset.first()["cam_hirescam_features"]
    assert heat.mass_inside > 0.9  # untouched by the named scorings
    f = "cam_hirescam_features"
    assert scene_dataset.values(f"{f}.mass_inside_target_class") == [None]
    assert scene_dataset.values(f"{f}.pointing_hit_target_class") == [None]
    assert scene_dataset.values(f"{f}.mass_inside_wrong_box")[0] < 0.05
    config = scene_dataset.get_run_info("cam").config
    assert config.gt_field == "other" and config.all_objects is True
    assert config.scorings == {"target_class": {"gt_field": "other", "all_objects": False, "iou_threshold": 0.5},
                               "wrong_box": {"gt_field": "wrong", "all_objects": True, "iou_threshold": 0.5}}
    assert len(cam_core.sort_by_score(scene_dataset, "cam", "mass_inside")) == 1
    assert len(cam_core.sort_by_score(scene_dataset, "cam", "mass_inside", scoring="wrong_box")) == 1
    # a view that drops samples says how many and why
    with caplog.at_level(logging.WARNING, logger="cam_core.runs.views"):
        assert len(cam_core.sort_by_score(scene_dataset, "cam", "mass_inside", scoring="target_class")) == 0
    count, why = cam_core.checks.missing_scores(scene_dataset, "cam", "mass_inside", scoring="target_class")
    assert count == 1 and "target class" in why and "all_objects=True" in why
    assert "1 sample(s) have no mass_inside and are left out" in caplog.text
    with pytest.raises(cam_core.CamArgumentError, match="has no scoring 'nope'; its named scorings: target_class, wrong_box"):
        cam_core.sort_by_score(scene_dataset, "cam", "mass_inside", scoring="nope")
    with pytest.raises(cam_core.CamArgumentError, match="a scoring's name must be a Python identifier"):
        cam_core.score_regions(scene_dataset, "cam", "other", name="not a name")


def test_ties_are_ordered_by_a_second_score(dataset, tmp_path):
    import fiftyone as fo

    path = write_scene(str(tmp_path / "scene.png"))
    x0, y0, x1, y1 = RED
    # boxes holding the red square's peak (pointing_hit ties) but more or less of its mass
    boxes = [(x0, y0, x1, y1), (x0 - 8, y0 - 8, x1 + 8, y1 + 8), (0, 0, W, H)]
    dataset.add_samples([fo.Sample(filepath=path, boxes=fo.Detections(detections=[box(b, "red")])) for b in boxes]
                        + [fo.Sample(filepath=path, boxes=fo.Detections(detections=[box(BLUE, "red")]))])
    run(dataset, methods=["hirescam"], gt_field="boxes")
    view = cam_core.sort_by_score(dataset, "cam", "pointing_hit", then_by="iou", reverse=True)
    keys = [(h.pointing_hit, h.iou) for h in view.values("cam_hirescam_features")]
    assert keys == sorted(keys, reverse=True) and len(set(keys)) == 4
    assert [k[0] for k in keys] == [True, True, True, False]
    with pytest.raises(cam_core.CamArgumentError, match="unknown score 'nope'") as e:
        cam_core.sort_by_score(dataset, "cam", "pointing_hit", then_by="nope")
    assert e.value.param == "then_by"


def test_score_regions_later_equals_scores_in_the_run(scene_dataset):
    run(scene_dataset, methods=["hirescam", "gradcam"], gt_field="boxes", run_key="now")
    run(scene_dataset, methods=["hirescam", "gradcam"], run_key="later")
    assert not scene_dataset.first()["later_hirescam_features"].has_field("mass_inside")
    assert cam_core.score_regions(scene_dataset, "later", "boxes") == 1
    sample = scene_dataset.first()
    for m in ("hirescam", "gradcam"):
        now, later = sample[f"now_{m}_features"], sample[f"later_{m}_features"]
        assert later.mass_inside == pytest.approx(now.mass_inside, abs=1e-9)
        assert later.pointing_hit == now.pointing_hit and later.iou == pytest.approx(now.iou, abs=1e-9)
    assert scene_dataset.get_run_info("later").config.gt_field == "boxes"
    with pytest.raises(ValueError, match="ground-truth field 'polys2' does not exist"):
        cam_core.score_regions(scene_dataset, "later", "polys2")
    with pytest.raises(ValueError, match="no run 'nope'"):
        cam_core.score_regions(scene_dataset, "nope", "boxes")


def test_gt_field_of_the_wrong_type_is_refused(scene_dataset):
    import fiftyone as fo

    scene_dataset.set_values("label", [fo.Classification(label="red")])
    with pytest.raises(ValueError, match="ground-truth field 'label' holds Classification; it must hold Detections"):
        run(scene_dataset, methods=["hirescam"], gt_field="label")
    assert scene_dataset.list_runs() == []


def test_agreement_between_methods_and_layers(scene_dataset):
    run(scene_dataset, methods=["hirescam", "layercam", "randomcam"])
    doc = scene_dataset.first()["cam_agreement"]
    # HiResCAM and LayerCAM agree on the red square; a random map does not
    assert -1 <= doc["methods_features"] <= 1
    from cam_core.scoring import agreement

    sample = scene_dataset.first()
    maps = {m: cam_core.load_map(sample[f"cam_{m}_features"]) for m in ("hirescam", "layercam", "randomcam")}
    pairs = [("hirescam", "layercam"), ("hirescam", "randomcam"), ("layercam", "randomcam")]
    corr = [agreement([maps[a], maps[b]]) for a, b in pairs]
    expected = np.mean([c for c in corr if c is not None])  # a constant map correlates with nothing
    assert doc["methods_features"] == pytest.approx(expected, abs=1e-9)
    assert agreement([maps["hirescam"], maps["layercam"]]) > 0.9
    assert "cam_agreement" in scene_dataset.get_run_info("cam").config.agreement_field


def test_faithfulness_road(scene_dataset):
    run(scene_dataset, methods=["hirescam"], faithfulness=True, run_key="road")
    heat = scene_dataset.first()["road_hirescam_features"]
    # removing the red square (HiResCAM's most relevant pixels) takes class 0's
    # score (0.24 = mean of the red channel over the window) down; removing
    # the least relevant pixels leaves it: road = (0 - (-drop)) / 2 > 0
    assert heat.road > 0.05
    # class 1 falls with red: GradCAM's map for it is empty, and an empty map
    # ranks no pixel, so it gets no faithfulness score
    cam_core.compute_cams(scene_dataset, RegionNet(), layers=["features"], methods=["gradcam"], target=1,
                          transforms=transforms(), faithfulness=True, run_key="empty")
    heat = scene_dataset.first()["empty_gradcam_features"]
    assert heat.peak == 0 and heat.road is None


def test_sort_by_score_and_summary(scene_dataset, image_dir, tmp_path):
    import fiftyone as fo

    dataset = scene_dataset
    dataset.add_samples([fo.Sample(filepath=image_dir[n], boxes=fo.Detections(detections=[box((0, 0, 100, 100), "red")]))
                         for n in ("astronaut", "coffee")])
    run(dataset, methods=["hirescam", "layercam"], gt_field="boxes")
    view = cam_core.sort_by_score(dataset, "cam", "mass_inside")
    values = view.values("cam_hirescam_features.mass_inside")
    assert values == sorted(values) and len(values) == dataset.count("cam_hirescam_features.mass_inside")
    top = cam_core.sort_by_score(dataset, "cam", "mass_inside", reverse=True, min_value=0.9)
    assert [s.filepath.endswith("scene.png") for s in top] == [True]
    with pytest.raises(ValueError, match="unknown score 'mass'"):
        cam_core.sort_by_score(dataset, "cam", "mass")
    paths = cam_core.summarize_run(dataset, "cam", str(tmp_path / "summary"), k=2)
    for path in paths.values():
        img = Image.open(path)
        assert img.size[0] > 200 and img.size[1] > 150
