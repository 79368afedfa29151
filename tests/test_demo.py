"""The offline demo's pipeline at a reduced size, on the session's private mongod.

The full demo (``make demo``) runs the same code with 1,500 training scenes;
here 600 scenes and a few epochs keep it to about a minute.
"""
import os

import numpy as np
import pytest

from demo import data as demodata  # the repository root is on sys.path (conftest)
from demo import shortcut


def test_scenes_have_exact_ground_truth_and_the_mark_lies_away_from_the_digit():
    config = demodata.SceneConfig(num_train=40, num_test=30)
    photos = demodata.load_photos()[:3]
    train = demodata.make_scenes(config, "train", photos)
    test = demodata.make_scenes(config, "test", photos)

    assert [s.image.shape for s in train + test] == [(128, 128, 3)] * 70
    # the mark only comes with the shortcut class in training, with any class in test
    assert {s.label for s in train if s.mark_box} == {config.shortcut_class}
    assert any(s.mark_box and s.label != config.shortcut_class for s in test)
    for s in train + test:
        ys, xs = np.nonzero(s.mask)
        x, y, w, h = (np.array(s.box) * 128).round().astype(int)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x, y, x + w, y + h)
        assert set(np.unique(s.mask)) == {0, config.classes.index(s.label) + 1}
        if s.mark_box:
            mx, my, mw, mh = (np.array(s.mark_box) * 128).round().astype(int)
            assert not s.mask[my:my + mh, mx:mx + mw].any()  # the mark never covers the digit
            assert (s.image != s.clean).any(axis=2).sum() == mw * mh  # the clean twin differs only there
    # reproducible from the seed
    again = demodata.make_scenes(config, "test", photos)
    assert all((a.image == b.image).all() and a.box == b.box for a, b in zip(test, again))


def test_precision_and_average_precision_rank_lowest_first():
    scores = [0.9, 0.1, None, 0.2, 0.5]
    relevant = [False, True, True, False, True]
    assert shortcut.ranking(scores) == [1, 3, 4, 0]
    assert shortcut.precision_at(scores, relevant, 1) == 1.0
    assert shortcut.precision_at(scores, relevant, 2) == 0.5
    assert shortcut.precision_at([None, None], [True, False], 2) is None
    # hits at ranks 1 and 3; the unscored relevant sample counts as missed
    assert shortcut.average_precision(scores, relevant) == pytest.approx((1 / 1 + 2 / 3) / 3)
    assert shortcut.average_precision(scores, [False] * 5) is None


def test_the_demo_detector_follows_the_detector_contract():
    import torch

    from demo.detector import DigitDetector, targets
    from demo.boxes import mark_drove_box

    torch.manual_seed(0)
    model = DigitDetector(["0", "1", "2"], score_threshold=0.0, max_detections=5).eval()
    assert model.classes == ["background", "0", "1", "2"]
    x = torch.rand(2, 3, 128, 96)
    out = model(x)
    assert isinstance(out, list) and len(out) == 2
    for o in out:
        n = len(o["boxes"])
        assert 1 <= n <= 5 and o["boxes"].shape == (n, 4) and o["labels"].dtype == torch.int64
        assert o["scores"].shape == (n,) and o["scores"].requires_grad  # differentiable: what a map explains
        assert set(o["labels"].tolist()) <= {1, 2, 3}  # never the background
        b = o["boxes"]
        assert (b[:, 0] <= b[:, 2]).all() and (b[:, 1] <= b[:, 3]).all() and b[:, 2].max() <= 96 and b[:, 3].max() <= 128
    assert model.transforms is not None
    model.train()
    logits, dist = model(x)
    assert logits.shape == (2, 4, 16, 12) and dist.shape == (2, 4, 16, 12)
    # the positive cells: those within 1.5 cells of the box centre (pixel 60: the centre of cell 7)
    t = targets(torch.tensor([[36.0, 36.0, 84.0, 84.0]]), torch.tensor([2]), 16, 16)
    assert t.sum() == 2 * 9 and t[0, 6:9, 6:9].eq(2).all()

    # a box is driven by the mark when its place has another class (or none) without the mark
    clean = {"boxes": torch.tensor([[10.0, 10, 50, 50], [12, 12, 50, 50]]), "labels": torch.tensor([1, 4]),
             "scores": torch.tensor([0.9, 0.2])}
    assert mark_drove_box([11, 11, 50, 50], 4, clean)  # the best-scored overlapping clean box says 1
    assert not mark_drove_box([11, 11, 50, 50], 1, clean)
    assert mark_drove_box([80, 80, 120, 120], 1, clean)  # nothing there without the mark


@pytest.mark.timeout(300)
def test_demo_pipeline_at_reduced_size(tmp_path):
    import fiftyone as fo

    import cam_core
    from demo.report import summary
    from demo.run import BOXES_VIEW, DROVE_VIEW, SUSPECTS_VIEW, TRAIN_MARK_VIEW, run_demo, small_config

    name = "cam-demo-test"
    config = small_config(name=name, cache_dir=str(tmp_path / "models"))
    try:
        result = run_demo(config, log=lambda *a: None)
        ds = fo.load_dataset(name)

        # the dataset: persistent, both splits, ground truth and predictions
        assert ds.persistent
        assert ds.count_sample_tags() == {"train": 600, "test": 90}
        schema = ds.get_field_schema()
        for f in ("ground_truth", "gt_boxes", "gt_mask", "mark", "has_mark", "prediction",
                  "prediction_without_mark", "mark_drove", "vit_prediction", "fcn_prediction",
                  "det_prediction", "det_prediction_without_mark", "det_mark_drove", "det_detections"):
            assert f in schema, f
        assert all(os.path.isfile(p) for p in ds.values("filepath"))
        assert ds.mask_targets["gt_mask"] == {1: "0", 2: "1", 3: "2", 4: "3", 5: "4"}

        # the four model kinds ran, each as its own run, with the ground-truth scores
        assert sorted(cam_core.list_cam_runs(ds)) == ["cnn", "det", "fcn", "vit"]
        assert len(result.runs["cnn"]) == 6 and len(result.runs["fcn"]) == 4 and len(result.runs["vit"]) == 4
        assert sorted(result.runs["det"]) == ["det_gradcam_backbone_4", "det_hirescam_backbone_4"]
        test = ds.match_tags("test")
        for fields in result.runs.values():
            for f in fields:
                # None where a map is all zero (GradCAM's ReLU can leave nothing). The 1e-9:
                # cam_core sums the inside and the whole map in different orders, so a map
                # lying wholly inside can score 1.0000000000000002 (reported to the engine)
                inside = [v for v in test.values(f"{f}.mass_inside") if v is not None]
                assert len(inside) >= 45, f
                assert all(0.0 <= v <= 1.0 + 1e-9 for v in inside), (f, [v for v in inside if not 0 <= v <= 1])
        assert ds.match_tags("train").count(f"{result.main_field}") == 0  # CAMs on the test split only
        assert set(test.distinct("fcn_gradcam_backbone_2.target_label")) <= set(config.scenes.classes)

        # the shortcut was learned by the CNN and not by the control ViT (trained without the mark)
        assert result.counts["drove_cnn"] > 0
        assert result.counts["drove_vit"] == 0
        assert result.trained == {"cnn": "trained", "fcn": "trained", "vit": "trained", "det": "trained"}

        # the detector finds the digits, and the mark drives some of its boxes to the shortcut class
        det = result.detector
        assert det["iou50"] > 0.8, det
        assert det["follows"] > 0.3, det
        # ranking its boxes by their own map's 'inside', lowest first, finds the boxes the mark drove
        ranked = det["rows"][0]
        assert ranked["field"] == config.det_field == "det_hirescam_backbone_4"
        assert 0 < ranked["drove"] < ranked["boxes"] and ranked["base_rate"] < 0.6, ranked
        assert ranked["p_drove"] >= max(0.7, ranked["base_rate"] + 0.3), ranked
        assert ranked["median_drove"] < ranked["median_other"], ranked

        # the detection is computed and sane: precision in [0, 1] for every classifier field;
        # for the main map, better than chance at finding the marked samples
        chance = result.counts["marked"] / result.counts["test"]
        assert len(result.detection) == 10
        for row in result.detection:
            assert 0.0 <= row["p_mark"] <= 1.0 and 0.0 <= row["ap_mark"] <= 1.0
        main = next(r for r in result.detection if r["field"] == result.main_field)
        assert main["ap_mark"] > chance
        assert main["median_marked"] < main["median_unmarked"]

        # saved views and the App's settings
        assert set(ds.list_saved_views()) == {SUSPECTS_VIEW, DROVE_VIEW, TRAIN_MARK_VIEW, BOXES_VIEW}
        boxes = ds.load_saved_view(BOXES_VIEW)  # a patches view, one patch per explained box
        assert len(boxes) == ranked["boxes"]
        inside = boxes.values("det_detections.hirescam_backbone_4_inside")
        assert inside == sorted(inside) and min(boxes.values("det_detections.confidence")) >= 0.5
        first = boxes.limit(config.top_n).values("det_detections.mark_drove")
        assert sum(first) / config.top_n == ranked["p_drove"]
        suspects = ds.load_saved_view(SUSPECTS_VIEW)
        assert len(suspects) == config.top_n
        values = suspects.values(f"{result.main_field}.mass_inside")
        assert values == sorted(values)
        assert len(ds.load_saved_view(DROVE_VIEW)) == result.counts["drove_cnn"]
        assert result.main_field in ds.app_config.active_fields.paths
        text = summary(result, config.scenes)
        assert "P@10 mark" in text and f"detector: {ranked['boxes']} boxes, {ranked['drove']} driven by the mark" in text

        # the summary pictures of the main map, as PNG files
        assert set(result.summaries) == {"mean_heatmaps", "extremes", "histograms"}
        for path in result.summaries.values():
            with open(path, "rb") as f:
                assert f.read(8) == b"\x89PNG\r\n\x1a\n", path

        # a rerun loads the same weights from the cache
        import torch

        from demo.train import train_models

        scenes = demodata.make_scenes(config.scenes, "train")
        again = train_models(scenes, config.scenes, config.train, config.cache_dir, log=lambda *a: None)
        assert {k: t.cached for k, t in again.items()} == {"cnn": True, "fcn": True, "vit": True, "det": True}
        weights = torch.load(again["cnn"].path, weights_only=True)
        assert all(torch.equal(weights[k], v) for k, v in again["cnn"].model.module.state_dict().items())
    finally:
        from demo.dataset import delete_demo_dataset

        delete_demo_dataset(name)
    assert not fo.dataset_exists(name)
