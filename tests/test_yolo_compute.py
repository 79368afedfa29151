"""compute_cams on YOLO models, on real datasets of image files: a detector
trained to find a red square (the map lands on it, through the letterbox of
non-square images), the three objects a user may pass (YOLO, FiftyOne's
FiftyOneYOLOModel, the bare DetectionModel), the boxes a user stored with
apply_model as targets, and every task (segment, classify, pose, OBB)."""
import numpy as np
import pytest
from PIL import Image

import cam_core
import yolo_models as ym


def red_scenes(dataset, tmp_path):
    """Landscape, portrait and square photos of noise, each with a red square
    (16 px once letterboxed to 64, as the model learnt them), away from the
    centre: ``{filepath: square (x1, y1, x2, y2)}``."""
    import fiftyone as fo

    squares = {}
    for i, ((w, h), (x, y, side)) in enumerate([((160, 96), (100, 40, 40)), ((96, 160), (16, 100, 40)),
                                                 ((128, 128), (16, 72, 32))]):
        img = np.random.default_rng(i).integers(60, 200, (h, w, 1), dtype=np.uint8).repeat(3, axis=2)
        img[y:y + side, x:x + side] = ym.RED
        path = str(tmp_path / f"red{i}.png")
        Image.fromarray(img).save(path)
        squares[path] = (x, y, x + side, y + side)
    dataset.add_samples([fo.Sample(filepath=p) for p in squares])
    return squares


def test_the_map_lands_on_the_red_square(dataset, tmp_path):
    squares = red_scenes(dataset, tmp_path)
    model = ym.red_finder()
    res = cam_core.compute_cams(dataset, model, methods=["gradcam", "layercam"], score_threshold=0.3, max_objects=1,
                                num_workers=0, output_dir=str(tmp_path / "maps"))
    assert res.num_samples == 3 and sorted(res.fields) == ["cam_gradcam_model_model_15", "cam_layercam_model_model_15"]
    for sample in dataset:
        x1, y1, x2, y2 = squares[sample.filepath]
        w, h = Image.open(sample.filepath).size
        cell = 8 * max(w, h) / ym.SIZE  # one cell of P3 in the image's pixels
        [det] = sample["cam_detections"].detections
        assert det.label == "0" and det.confidence > 0.3
        for field in res.fields:
            heat = np.asarray(Image.open(sample[field].map_path), dtype=np.float32)
            assert abs(heat.shape[1] / heat.shape[0] - w / h) < 0.05  # the whole image: no strip of padding
            heat = np.asarray(Image.fromarray(heat).resize((w, h), Image.BILINEAR))
            py, px = np.unravel_index(heat.argmax(), heat.shape)
            assert x1 - cell <= px < x2 + cell and y1 - cell <= py < y2 + cell, (field, sample.filepath, (px, py))
            assert heat[y1:y2, x1:x2].mean() > 2 * heat.mean(), (field, sample.filepath)


def test_the_objects_a_user_passes(dataset, image_dir, tmp_path):
    import fiftyone as fo
    from fiftyone.utils.ultralytics import convert_ultralytics_model

    dataset.add_samples([fo.Sample(filepath=image_dir[n]) for n in ("chelsea", "rocket", "astronaut")])
    yolo = ym.yolo("detect", imgsz=96, seed=5)
    fo_model = convert_ultralytics_model(yolo)
    runs = {"yolo": yolo, "fo": fo_model, "task": yolo.model}
    for key, model in runs.items():
        res = cam_core.compute_cams(dataset, model, run_key=key, methods=["gradcam", "eigencam"], score_threshold=0.0,
                                    max_objects=2, batch_size=2, num_workers=0, output_dir=str(tmp_path / key))
        assert res.num_samples == 3 and res.num_skipped == 0
        assert sorted(res.fields) == [f"{key}_eigencam_model_model_15", f"{key}_gradcam_model_model_15"]
    for sample in dataset:
        for key in runs:
            dets = sample[f"{key}_detections"].detections
            assert len(dets) == 2 and all(d.label in yolo.model.names.values() for d in dets)
            assert all(0 <= v <= 1 for d in dets for v in d.bounding_box)
            assert all(d["gradcam_model_model_15_inside"] is not None for d in dets)
        yolo_boxes = [d.bounding_box for d in sample["yolo_detections"].detections]
        task_boxes = [d.bounding_box for d in sample["task_detections"].detections]
        np.testing.assert_allclose(yolo_boxes, task_boxes, atol=1e-6)  # the same model, the same letterbox
    config = dataset.get_run_info("fo").config
    assert "auto=False" in config.transforms and "auto=True" in dataset.get_run_info("yolo").config.transforms


def test_boxes_stored_by_apply_model_are_explained(dataset, image_dir, tmp_path):
    import fiftyone as fo
    from fiftyone.utils.ultralytics import convert_ultralytics_model

    dataset.add_samples([fo.Sample(filepath=image_dir[n]) for n in ("coffee", "rocket")])
    yolo = ym.yolo("detect", imgsz=96, seed=6)
    fo_model = convert_ultralytics_model(yolo)
    dataset.apply_model(fo_model, label_field="predicted", confidence_thresh=0.9)
    stored = dataset.values("predicted.detections")
    assert all(1 <= len(d) <= 300 for d in stored)
    cam_core.compute_cams(dataset, fo_model, target="field:predicted", methods=["gradcam"], max_objects=300,
                          num_workers=0, output_dir=str(tmp_path / "maps"))
    for sample in dataset:
        ours = sample["cam_detections"].detections
        theirs = sample["predicted"].detections
        assert [d.gt_id for d in ours] == [d.id for d in theirs]
        for mine, truth in zip(ours, theirs):  # each one matched to the model's own box: its score
            assert mine.label == truth.label and mine.confidence == pytest.approx(truth.confidence, abs=1e-4)
            assert mine.gradcam_model_model_15_inside is not None
    # a class: every image's boxes of that class
    label = stored[0][0].label
    res = cam_core.compute_cams(dataset, fo_model, run_key="cls", target=label, methods=["gradcam"],
                                score_threshold=0.9, num_workers=0, output_dir=str(tmp_path / "cls"))
    explained = [dets for dets in dataset.values("cls_detections.detections") if dets is not None]
    assert explained and {d.label for dets in explained for d in dets} == {label}
    # an image with no box of that class is skipped as such, not given an empty map
    assert res.num_skipped == len(dataset) - len(explained)


@pytest.mark.parametrize("task", ["segment", "pose", "obb", "classify"])
def test_every_task(dataset, image_dir, tmp_path, task):
    import fiftyone as fo

    dataset.add_samples([fo.Sample(filepath=image_dir[n]) for n in ("chelsea", "rocket")])
    yolo = ym.yolo(task, imgsz=96, seed=7)
    res = cam_core.compute_cams(dataset, yolo, methods=["gradcam"], score_threshold=0.0, max_objects=3,
                                num_workers=0, output_dir=str(tmp_path / "maps"))
    layer = "model_model_8" if task == "classify" else "model_model_15"
    assert list(res.fields) == [f"cam_gradcam_{layer}"] and res.num_skipped == 0
    for sample in dataset:
        heat = sample[f"cam_gradcam_{layer}"]
        w, h = Image.open(sample.filepath).size
        shape = np.asarray(Image.open(heat.map_path)).shape
        if task == "classify":  # resize and centre crop: the map covers the crop, placed in the image
            assert heat.target_label in yolo.model.names.values()
            continue
        assert abs(shape[1] / shape[0] - w / h) < 0.05
        dets = sample["cam_detections"].detections
        assert len(dets) == 3
        if task == "segment":  # each object scored against its own mask too, the mask stored
            for d in dets:
                assert d.mask is not None and d.mask.dtype == bool and d.mask.any()
                inside, mask_inside = d.gradcam_model_model_15_inside, d.gradcam_model_model_15_mask_inside
                assert (inside is None) == (mask_inside is None)  # None: an empty map
                assert mask_inside is None or 0 <= mask_inside <= inside + 0.05  # the mask lies in the box
            assert any(d.gradcam_model_model_15_mask_inside is not None for d in dets)
    flat = dataset.get_field_schema(flat=True)
    masks = "cam_detections.detections.gradcam_model_model_15_mask_inside" in flat
    assert masks == (task == "segment")
