"""compute_cams on real datasets: fields, storage, runs, targets, bad input, misuse."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

import cam_core
import models

GOOD = ["astronaut", "chelsea", "coffee", "rocket", "camera_gray", "chelsea_rgba", "camera16",
        "coffee_palette", "tiny", "huge"]
BAD = ["truncated", "notanimage", "missing"]


def small():
    return T.Compose([T.Resize(64), T.CenterCrop(64), T.ToTensor()])


def add(dataset, image_dir, names, **fields):
    import fiftyone as fo

    dataset.add_samples([fo.Sample(filepath=image_dir[n], **{k: v[i] for k, v in fields.items()}) for i, n in enumerate(names)])
    return dataset


def classes(n=1000):
    return [f"class{i}" for i in range(n)]


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


def assert_nothing_written(dataset, before):
    assert dataset.get_field_schema().keys() == before
    assert dataset.list_runs() == []


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(methods=["gradcam", "gradkam"]), r"unknown method 'gradkam'; valid methods: gradcam, hirescam"),
        (dict(layers=["layer9"]), r"unknown layer 'layer9'.*Closest layers"),
        (dict(layers=["fc"]), r"layer 'fc' cannot be explained"),
        (dict(target="class:zebra", classes=classes()), r"class 'zebra' is not one of the model's 1000 classes"),
        (dict(target="zebra"), r"class 'zebra' given by name, but the model has no class names"),
        (dict(target=1000), r"class index 1000 is out of range"),
        (dict(target="field:nope"), r"target field 'nope' does not exist; label fields: ground_truth, mask"),
        (dict(target="field:mask"), r"target field 'mask' holds Segmentation; a classification model needs an Classification field"),
        (dict(target="field:ground_truth", classes=classes()), r"labels \['zebra'\] of field 'ground_truth' are not among"),
        (dict(run_key="bad key"), r"run_key must be a valid Python identifier"),
        (dict(storage="jpeg"), r"storage must be one of"),
        (dict(batch_size=0), r"batch_size must be an integer >= 1"),
        (dict(device="cuda"), r"torch sees no CUDA device"),
        (dict(classes=["a", "b"]), r"2 class names given, but the model has 1000 outputs"),
    ],
)
def test_misuse_is_refused_before_any_work(dataset, image_dir, kwargs, message):
    import fiftyone as fo

    add(dataset, image_dir, ["astronaut"], ground_truth=[fo.Classification(label="zebra")],
        mask=[fo.Segmentation(mask=np.zeros((4, 4), np.uint8))])
    before = dataset.get_field_schema().keys()
    with pytest.raises(ValueError, match=message):
        cam_core.compute_cams(dataset, models.resnet18(), transforms=small(), **kwargs)
    assert_nothing_written(dataset, before)


def test_empty_view_and_non_images_are_refused(dataset, image_dir):
    import fiftyone as fo

    add(dataset, image_dir, ["astronaut"])
    with pytest.raises(ValueError, match="the collection is empty"):
        cam_core.compute_cams(dataset.limit(0), models.resnet18(), transforms=small())
    videos = fo.Dataset()
    try:
        videos.add_sample(fo.Sample(filepath="/tmp/clip.mp4"))
        with pytest.raises(ValueError, match="media type is 'video'"):
            cam_core.compute_cams(videos, models.resnet18())
    finally:
        videos.delete()
    with pytest.raises(TypeError, match="samples must be a fo.Dataset or view"):
        cam_core.compute_cams([image_dir["astronaut"]], models.resnet18())


def test_existing_run_overwrite_and_skip_existing(dataset, image_dir, tmp_path):
    add(dataset, image_dir, ["astronaut", "chelsea", "coffee"])
    model = models.resnet18()
    kw = dict(transforms=small(), methods=["gradcam", "layercam"], output_dir=str(tmp_path))
    cam_core.compute_cams(dataset, model, **kw)
    old_files = dataset.values("cam_gradcam_layer4.map_path")
    with pytest.raises(ValueError, match="run key 'cam' already exists"):
        cam_core.compute_cams(dataset, model, **kw)
    assert all(os.path.isfile(f) for f in old_files)  # refusing lost nothing

    # skip_existing: only the sample missing a field is computed; the results count the whole run
    sample = dataset.first()
    sample["cam_layercam_layer4"] = None
    sample.save()
    untouched = {f: os.stat(f).st_mtime_ns for f in old_files[1:]}
    res = cam_core.compute_cams(dataset, model, skip_existing=True, **kw)
    assert res.num_samples == 3 and dataset.count("cam_layercam_layer4") == 3
    assert {f: os.stat(f).st_mtime_ns for f in old_files[1:]} == untouched
    with pytest.raises(ValueError, match="skip_existing continues run 'cam'"):
        cam_core.compute_cams(dataset, model, skip_existing=True, **dict(kw, methods=["gradcam"]))

    res = cam_core.compute_cams(dataset, model, overwrite=True, **dict(kw, methods=["eigencam"]))
    assert res.num_samples == 3
    schema = dataset.get_field_schema()
    assert "cam_eigencam_layer4" in schema and "cam_gradcam_layer4" not in schema
    assert not any(os.path.exists(f) for f in old_files)


def test_fields_of_others_are_never_overwritten(dataset, image_dir):
    import fiftyone as fo

    add(dataset, image_dir, ["astronaut"], cam_gradcam_layer4=[fo.Classification(label="mine")])
    with pytest.raises(ValueError, match=r"fields \['cam_gradcam_layer4'\] already exist and do not belong"):
        cam_core.compute_cams(dataset, models.resnet18(), transforms=small())
    assert dataset.first()["cam_gradcam_layer4"].label == "mine"


def test_delete_run_from_a_fresh_process(dataset, image_dir, tmp_path):
    add(dataset, image_dir, ["astronaut", "coffee"])
    dataset.persistent = True
    cam_core.compute_cams(dataset, models.resnet18(), methods=["gradcam", "layercam", "fullgrad"], transforms=small(),
                          output_dir=str(tmp_path / "maps"))
    files = dataset.values("cam_gradcam_layer4.map_path") + dataset.values("cam_fullgrad.map_path")
    assert len(files) == 4 and all(os.path.isfile(f) for f in files)
    assert dataset.count("cam_agreement") == 2
    code = (
        "import fiftyone as fo; ds = fo.load_dataset(%r); "
        "print(type(ds.get_run_info('cam').config).__module__); ds.delete_run('cam')" % dataset.name
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "cam_core.runs"
    dataset.reload()
    assert dataset.list_runs() == []
    assert not {"cam_gradcam_layer4", "cam_layercam_layer4", "cam_fullgrad", "cam_agreement"} & set(dataset.get_field_schema())
    assert not any(os.path.exists(f) for f in files) and not os.path.exists(tmp_path / "maps")


def test_library_model_names_and_view(dataset, image_dir):
    add(dataset, image_dir, ["astronaut", "chelsea", "coffee"])
    torch.manual_seed(0)
    model = cam_core.load_model("timm:deit_tiny_distilled_patch16_224", pretrained=False)
    assert model.transforms is not None and model.name == "timm:deit_tiny_distilled_patch16_224"
    view = dataset.skip(1)
    res = cam_core.compute_cams(view, model, methods=["gradcam", "eigencam"], run_key="vit")
    assert res.num_samples == 2
    assert dataset.count("vit_gradcam_blocks_11_norm1") == 2 and dataset.first()["vit_gradcam_blocks_11_norm1"] is None
    config = dataset.get_run_info("vit").config
    assert config.model == "timm:deit_tiny_distilled_patch16_224" and config.model_kwargs == {"pretrained": False}
    tv = cam_core.load_model("torchvision:resnet18", weights=None)
    assert len(tv.classes) == 1000 and tv.classes[0] == "tench"  # names of the architecture's outputs
    with pytest.raises(ValueError, match="unknown model 'resnet18'"):
        cam_core.load_model("resnet18")


def test_segmentation_ground_truth_region(dataset, image_dir):
    import fiftyone as fo

    # a ground-truth mask smaller than the image, stretched over it as the App draws it
    mask = np.zeros((30, 45), np.uint8)
    mask[10:20, 5:20] = 2
    mask[0:5, 30:45] = 1
    add(dataset, image_dir, ["chelsea", "coffee"], gt=[fo.Segmentation(mask=mask), fo.Segmentation(mask=mask)])
    dataset.mask_targets = {"gt": {1: "cat", 2: "dog"}}
    dataset.save()
    names = ["background"] + [f"c{i}" for i in range(1, 21)]
    names[8], names[12] = "cat", "dog"
    res = cam_core.compute_cams(dataset, models.deeplab(), methods=["gradcam", "hirescam"], target="field:gt",
                                classes=names, transforms=small())
    assert res.num_samples == 2
    heat = dataset.first()["cam_hirescam_backbone_16"]
    assert heat.target_label == "dog" and heat.target_index == 12  # the larger region, mapped by name
    cam_core.compute_cams(dataset, models.deeplab(), methods="gradcam", target="field:gt", target_class="cat",
                          classes=names, transforms=small(), run_key="cat")
    assert dataset.values("cat_gradcam_backbone_16.target_label") == ["cat", "cat"]
    with pytest.raises(ValueError, match="a segmentation model needs an Segmentation field"):
        dataset.set_values("label", [fo.Classification(label="x")] * 2)
        cam_core.compute_cams(dataset, models.deeplab(), target="field:label", transforms=small(), run_key="x")


def test_fiftyone_torch_image_model(dataset, image_dir):
    """A zoo-style TorchImageModel: its _model, transforms and classes are used,
    also inside its `with` block, which turns gradients off."""
    import torchvision
    import fiftyone.utils.torch as fout

    torch.manual_seed(0)
    config = fout.TorchImageModelConfig(dict(
        entrypoint_fcn="torchvision.models.resnet18", entrypoint_args={"weights": None},
        transforms=small(), output_processor_cls="fiftyone.utils.torch.ClassifierOutputProcessor",
        classes=classes(), ragged_batches=False,
    ))
    model = fout.TorchImageModel(config)
    add(dataset, image_dir, ["astronaut", "chelsea"])
    with model:
        assert not torch.is_grad_enabled()
        res = cam_core.compute_cams(dataset, model, methods=["gradcam", "layercam"])
        assert not torch.is_grad_enabled()  # the caller's state is kept
    assert res.num_samples == 2
    heat = dataset.first()["cam_layercam_layer4"]
    assert heat.target_label == f"class{heat.target_index}"
    assert np.asarray(Image.open(heat.map_path)).shape == (64, 64)
    assert dataset.get_run_info("cam").config.model == "TorchImageModel"


def test_dataloader_workers_with_a_torchvision_preset(dataset, image_dir):
    """Images decoded in 2 worker processes through the weights' own preset
    (resize 256, crop 224), bad files still skipped, order kept."""
    import torchvision

    names = ["astronaut", "truncated", "chelsea", "coffee", "missing", "rocket"]
    add(dataset, image_dir, names)
    preset = torchvision.models.ResNet18_Weights.DEFAULT.transforms()
    res = cam_core.compute_cams(dataset, models.resnet18(), methods="gradcam", transforms=preset,
                                batch_size=2, num_workers=2)
    assert res.num_samples == 4 and res.num_skipped == 2
    have = [p is not None for p in dataset.values("cam_gradcam_layer4.map_path")]
    assert have == [True, False, True, True, False, True]
    w, h = Image.open(image_dir["chelsea"]).size
    arr = np.asarray(Image.open(dataset.skip(2).first()["cam_gradcam_layer4"].map_path))
    # the whole image at the scale the model saw: resized to a short side of 256, the 224 crop inside
    assert arr.shape == (256, int(256 * w / h))
    assert arr[:, :16].max() == 0 and arr[:, -16:].max() == 0  # outside the crop


def test_rename_run_renames_its_fields(dataset, image_dir):
    add(dataset, image_dir, ["astronaut"])
    cam_core.compute_cams(dataset, models.resnet18(), methods=["gradcam", "layercam"], transforms=small())
    dataset.rename_run("cam", "first")
    schema = dataset.get_field_schema()
    assert {"first_gradcam_layer4", "first_layercam_layer4", "first_agreement"} <= set(schema)
    assert not {"cam_gradcam_layer4", "cam_agreement"} & set(schema)
    config = dataset.get_run_info("first").config
    assert set(config.fields) == {"first_gradcam_layer4", "first_layercam_layer4"} and config.agreement_field == "first_agreement"
    dataset.delete_run("first")
    assert not [f for f in dataset.get_field_schema() if f.startswith("first_")]


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
    assert cam_core.skipped_reasons(res) == expected
    # each kind is how the real reason starts, without its per-sample part (path, decoder message)
    for s in res.skipped:
        (kind,) = cam_core.skipped_reasons([s["reason"]])
        assert s["reason"].startswith(kind)
    # the same from the results loaded back, from the skipped list, and as a method
    loaded = dataset.load_run_results("cam")
    assert cam_core.skipped_reasons(loaded) == cam_core.skipped_reasons(loaded.skipped) == expected
    assert loaded.skipped_reasons().most_common(2)[0][1] == 2
    assert cam_core.skipped_reasons([]) == {}
    # a reason cam_core does not write counts by its text before ': '
    assert cam_core.skipped_reasons(["out of memory: 3 GB", "out of memory: 4 GB"]) == {"out of memory": 2}


def test_show_run_gives_the_app_look_and_follows_rename_and_delete(dataset, image_dir):
    add(dataset, image_dir, ["astronaut", "coffee"])
    cam_core.compute_cams(dataset, models.resnet18(), layers=["layer3", "layer4"], methods=["gradcam", "layercam"],
                          transforms=small(), run_key="cam")
    cam_core.compute_cams(dataset, models.resnet18(), methods="gradcam", transforms=small(), run_key="one")
    with pytest.raises(ValueError, match="cam_x_layer4 are not fields of run 'cam'"):
        cam_core.show_run(dataset, "cam", ["cam_x_layer4"])
    cam_core.show_run(dataset, "cam")
    cam_core.show_run(dataset.limit(1), "one")  # a view: its dataset is changed
    groups = {g.name: g.paths for g in dataset.app_config.sidebar_groups}
    names = [g.name for g in dataset.app_config.sidebar_groups]
    # each run's group after the labels, in the order shown; heatmaps, then the agreement values
    assert names.index("labels") + 1 == names.index("cam: cam") == names.index("cam: one") - 1
    fields = ["cam_gradcam_layer3", "cam_gradcam_layer4", "cam_layercam_layer3", "cam_layercam_layer4"]
    assert groups["cam: cam"][:4] == fields
    assert sorted(groups["cam: cam"][4:]) == ["cam_agreement.layers_gradcam", "cam_agreement.layers_layercam",
                                              "cam_agreement.methods_layer3", "cam_agreement.methods_layer4"]
    assert groups["cam: one"] == ["one_gradcam_layer4"]  # one map per sample: no agreement
    assert dataset.app_config.color_scheme.color_by == "value"
    assert "cam_gradcam_layer3.peak_x" in dataset.get_field_schema(flat=True)  # a sidebar filter

    dataset.rename_run("cam", "first")
    groups = {g.name: g.paths for g in dataset.app_config.sidebar_groups}
    assert "cam: cam" not in groups
    assert groups["cam: first"][:4] == ["first" + f[3:] for f in fields]
    assert "first_agreement.methods_layer4" in groups["cam: first"]

    dataset.delete_run("first")
    assert [g.name for g in dataset.app_config.sidebar_groups if g.name.startswith("cam: ")] == ["cam: one"]


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
