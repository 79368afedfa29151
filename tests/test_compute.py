"""compute_cams on real datasets: fields, maps and storage, targets, skipped samples, smoothing.

The runs (overwrite, delete, rename, show), the models and the refused
misuse have files of their own (test_compute_runs.py, test_compute_models.py,
test_compute_misuse.py); the helpers are in tests/inputs.py.
"""
import os

import numpy as np
import pytest
from PIL import Image
from torchvision import transforms as T

import cam_core
import models
# also imported from here by test_factories
from inputs import add, classes, small


GOOD = ["astronaut", "chelsea", "coffee", "rocket", "camera_gray", "chelsea_rgba", "camera16",
        "coffee_palette", "tiny", "huge"]
BAD = ["truncated", "notanimage", "missing"]


def test_fields_runs_and_maps(dataset, image_dir, tmp_path, caplog):
    caplog.set_level("INFO", logger="cam_core")
    add(dataset, image_dir, GOOD + BAD)
    res = cam_core.compute_cams(
        dataset, models.resnet18(), layers=["layer3", "layer4"], methods=["gradcam", "gradcam++", "eigencam"],
        transforms=small(), classes=classes(), batch_size=4, output_dir=str(tmp_path / "maps"),
    )
    fields = ["cam_gradcam_layer3", "cam_gradcam_layer4", "cam_gradcamplusplus_layer3",
              "cam_gradcamplusplus_layer4", "cam_eigencam_layer3", "cam_eigencam_layer4"]
    assert sorted(res.fields) == sorted(fields)
    assert res.num_samples == len(GOOD) and res.num_skipped == len(BAD)
    assert sorted(os.path.basename(s["filepath"]).split(".")[0] for s in res.skipped) == ["does-not-exist", "notanimage", "truncated"]
    # the summary is a log record (nothing printed) and the results' own text
    out = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("cam_core"))
    assert res.summary() in out
    assert "10 samples got 6 map(s) each; 3 skipped" in out and "file not found" in out

    assert dataset.list_runs() == ["cam"]
    config = dataset.get_run_info("cam").config
    assert type(config).__name__ == "CamRunConfig"
    assert config.layers == ["layer3", "layer4"] and config.methods == ["gradcam", "gradcamplusplus", "eigencam"]
    assert config.target == "prediction" and "Resize" in config.transforms and config.versions["grad-cam"] == "1.5.7"
    loaded = dataset.load_run_results("cam")
    assert loaded.num_skipped == 3

    for sample in dataset:
        name = os.path.basename(sample.filepath).split(".")[0]
        heat = sample["cam_gradcam_layer4"]
        if sample.filepath in [image_dir[b] for b in BAD]:
            assert all(sample[f] is None for f in fields)  # skipped, nothing half-written
            continue
        assert heat.range == [1, 255] and heat.map is None  # 0 is left for what the model never saw
        assert heat.map_path.startswith(str(tmp_path / "maps" / "cam_gradcam_layer4"))
        arr = np.asarray(Image.open(heat.map_path))
        assert arr.dtype == np.uint8 and arr.max() == 255
        # the map covers the whole original image, at the model's scale (short side 64)
        w, h = Image.open(sample.filepath).size
        assert abs(arr.shape[1] / arr.shape[0] - w / h) < 0.05 * max(1, w / h), name
        assert min(arr.shape) == 64
        assert 0 <= heat.target_index < 1000 and heat.target_label == f"class{heat.target_index}"
        assert 0 < heat.target_confidence <= 1
        assert 0 <= heat.peak_x <= 1 and 0 <= heat.spread <= 1


def test_inline_storage(dataset, image_dir):
    add(dataset, image_dir, ["chelsea", "coffee"])
    cam_core.compute_cams(dataset, models.resnet18(), methods="hirescam", transforms=small(), storage="inline")
    heat = dataset.first()["cam_hirescam_layer4"]
    assert heat.map_path is None and heat.map.dtype == np.uint8 and heat.map.shape == (64, 96)


def test_targets_from_a_label_field_and_a_fixed_class(dataset, image_dir):
    import fiftyone as fo

    names = ["astronaut", "chelsea", "coffee", "rocket"]
    labels = [fo.Classification(label=l) for l in ["class7", "class100", "class7", "class999"]]
    add(dataset, image_dir, names, ground_truth=labels)
    model = models.resnet18()
    cam_core.compute_cams(dataset, model, methods="gradcam", target="field:ground_truth", transforms=small(),
                          classes=classes(), batch_size=3, run_key="gt")
    assert dataset.values("gt_gradcam_layer4.target_index") == [7, 100, 7, 999]
    assert dataset.values("gt_gradcam_layer4.target_label") == ["class7", "class100", "class7", "class999"]
    cam_core.compute_cams(dataset, model, methods="gradcam", target="class42", transforms=small(),
                          classes=classes(), run_key="fixed")
    assert dataset.values("fixed_gradcam_layer4.target_index") == [42] * 4
    cam_core.compute_cams(dataset, model, methods="gradcam", target=5, transforms=small(), run_key="byindex")
    assert dataset.values("byindex_gradcam_layer4.target_index") == [5] * 4
    # the same images alone (batch of 1) get the same maps as in batches of 3;
    # LayerCAM keeps positive gradients of post-ReLU features, so it is never empty
    for key, bs in (("three", 3), ("single", 1)):
        cam_core.compute_cams(dataset, model, methods="layercam", target="field:ground_truth", transforms=small(),
                              classes=classes(), batch_size=bs, run_key=key)
    for a, b in zip(dataset.values("three_layercam_layer4.map_path"), dataset.values("single_layercam_layer4.map_path")):
        diff = np.abs(np.asarray(Image.open(a), float) - np.asarray(Image.open(b), float))
        assert diff.max() <= 1 and np.asarray(Image.open(a)).max() == 255


def test_missing_label_is_skipped_not_fatal(dataset, image_dir):
    import fiftyone as fo

    add(dataset, image_dir, ["astronaut", "chelsea"], ground_truth=[fo.Classification(label="class1"), None])
    res = cam_core.compute_cams(dataset, models.resnet18(), target="field:ground_truth", transforms=small(), classes=classes())
    assert res.num_samples == 1 and res.skipped[0]["reason"] == "no label in field 'ground_truth'"


def test_skipped_reasons_group_a_run_by_kind(dataset, image_dir, tmp_path):
    import shutil

    import fiftyone as fo

    # two missing files, two unreadable ones, a transform that raises, a sample without its label
    tiny_copy = str(tmp_path / "tiny-copy.png")
    shutil.copy(image_dir["tiny"], tiny_copy)
    paths = [image_dir["astronaut"], image_dir["missing"], str(tmp_path / "gone.jpg"), image_dir["truncated"],
             image_dir["notanimage"], tiny_copy, image_dir["chelsea"]]
    labels = [fo.Classification(label="class1")] * 6 + [None]
    dataset.add_samples([fo.Sample(filepath=p, ground_truth=l) for p, l in zip(paths, labels)])

    def refuse_tiny(img):
        if min(img.size) < 8:
            raise ValueError(f"{img.size} is too small")
        return img

    res = cam_core.compute_cams(dataset, models.resnet18(), target="field:ground_truth", classes=classes(),
                                transforms=T.Compose([T.Lambda(refuse_tiny), small()]))
    assert res.num_samples == 1 and res.num_skipped == 6
    expected = {"file not found": 2, "cannot read image": 2, "preprocessing failed": 1,
                "no label in field 'ground_truth'": 1}
    assert cam_core.checks.skipped_reasons(res) == expected
    # each kind is how the real reason starts, without its per-sample part (path, decoder message)
    for s in res.skipped:
        (kind,) = cam_core.checks.skipped_reasons([s["reason"]])
        assert s["reason"].startswith(kind)
    # the same from the results loaded back, from the skipped list, and as a method
    loaded = dataset.load_run_results("cam")
    assert cam_core.checks.skipped_reasons(loaded) == cam_core.checks.skipped_reasons(loaded.skipped) == expected
    assert loaded.skipped_reasons().most_common(2)[0][1] == 2
    assert cam_core.checks.skipped_reasons([]) == {}
    # a reason cam_core does not write counts by its text before ': '
    assert cam_core.checks.skipped_reasons(["out of memory: 3 GB", "out of memory: 4 GB"]) == {"out of memory": 2}


def test_maps_are_drawn_where_the_model_looked_and_empty_maps_are_marked(dataset, image_dir, tmp_path):
    """The App draws 0 transparent: 0 is stored only outside the crop, the
    map's own zeros are stored as 1 (range [1, 255]); a map with no mass is
    marked ``empty``."""
    import numpy as np
    import torch
    from PIL import Image
    from torch import nn

    class Dark(nn.Module):  # its 'dark' layer is all zeros: every map of it is empty
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            nn.init.constant_(self.conv.weight, -1.0)
            nn.init.constant_(self.conv.bias, -1.0)
            self.dark = nn.ReLU()
            self.bright = nn.Conv2d(3, 4, 3, padding=1)
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            a = self.dark(self.conv(x)).mean((2, 3))
            b = torch.relu(self.bright(x)).mean((2, 3))
            return self.head(torch.cat([a, b], 1))

    torch.manual_seed(0)
    add(dataset, image_dir, ["chelsea"])  # 451x300: the 64x64 centre crop leaves both sides unseen
    cam_core.compute_cams(dataset, Dark(), layers=["dark", "bright"], methods="gradcam", transforms=small(),
                          classes=["a", "b", "c"], output_dir=str(tmp_path))
    sample = dataset.first()
    dark, bright = sample["cam_gradcam_dark"], sample["cam_gradcam_bright"]
    assert dark.range == [1, 255] and bright.range == [1, 255]
    assert dark.empty is True and bright.empty is False
    for heat in (dark, bright):
        stored = np.asarray(Image.open(heat.map_path))
        h, w = stored.shape  # the canvas at the model's scale: 96x64
        left, right = stored[:, : (w - h) // 2 - 1], stored[:, (w + h) // 2 + 1 :]
        assert (left == 0).all() and (right == 0).all()  # unseen: transparent
        assert (stored[:, (w - h) // 2 + 1 : (w + h) // 2 - 1] >= 1).all()  # seen: drawn, zeros too
    assert (np.asarray(Image.open(dark.map_path))[:, 20:60] == 1).all()
    loaded = cam_core.load_map(bright)
    assert loaded.min() == 0.0 and loaded.max() == 1.0
    assert dataset.count_values("cam_gradcam_dark.empty") == {True: 1}  # filterable


def test_smoothing_options_are_run_and_recorded(dataset, image_dir, tmp_path):
    import numpy as np

    add(dataset, image_dir, ["astronaut", "coffee"])
    kw = dict(transforms=small(), methods="gradcam", layers="layer4", storage="inline")
    cam_core.compute_cams(dataset, models.resnet18(), run_key="plain", **kw)
    cam_core.compute_cams(dataset, models.resnet18(), run_key="smooth", eigen_smooth=True, aug_smooth=True, **kw)
    config = dataset.get_run_info("smooth").config
    assert config.eigen_smooth is True and config.aug_smooth is True
    assert dataset.get_run_info("plain").config.aug_smooth is False
    plain = [cam_core.load_map(h) for h in dataset.values("plain_gradcam_layer4")]
    smooth = [cam_core.load_map(h) for h in dataset.values("smooth_gradcam_layer4")]
    assert all(np.abs(a - b).mean() > 0.01 for a, b in zip(plain, smooth))
    with pytest.raises(cam_core.CamArgumentError, match="was computed with aug_smooth=True") as e:
        cam_core.compute_cams(dataset, models.resnet18(), run_key="smooth", eigen_smooth=True, skip_existing=True, **kw)
    assert e.value.param == "aug_smooth"
