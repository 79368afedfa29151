"""What a run deletes (only what it made), where it writes by default (under
``cam_maps`` whatever the dataset's name), what continuing it accepts (the
same model, target, preprocessing and scoring), and how large a factory's
keyword arguments may be."""
import os
import uuid

import fiftyone as fo
import pytest
import torchvision.transforms as T

import cam_core
import models
from run_checks import PHOTOS, small

KW = dict(methods="gradcam", layers="layer4")


def add_photos(ds, image_dir, n=2):
    ds.add_samples([fo.Sample(filepath=image_dir[p]) for p in PHOTOS[:n]])
    return ds


def compute(ds, run_key, **kwargs):
    kwargs = dict(dict(transforms=small(), **KW), **kwargs)
    return cam_core.compute_cams(ds, kwargs.pop("model", None) or models.resnet18(), run_key=run_key, **kwargs)


def test_delete_run_removes_only_the_folders_the_run_made(dataset, image_dir, tmp_path):
    add_photos(dataset, image_dir)
    projects = tmp_path / "user" / "projects"  # the user's own folders, empty but for the maps
    projects.mkdir(parents=True)
    given = tmp_path / "given"  # a folder the user made for the maps
    given.mkdir()
    compute(dataset, "a", output_dir=str(projects / "maps"))
    compute(dataset, "b", output_dir=str(given))
    dataset.delete_run("a")
    assert not (projects / "maps").exists()  # made by the run: removed with its maps
    assert projects.is_dir() and (tmp_path / "user").is_dir()
    dataset.delete_run("b")
    assert given.is_dir() and os.listdir(given) == []  # the user's folder stays, emptied of the run
    assert tmp_path.is_dir()


def test_delete_run_leaves_another_datasets_maps_in_a_shared_folder(image_dir, tmp_path):
    shared = str(tmp_path / "maps")  # two datasets, one folder, one run key: one field folder
    a, b = add_photos(fo.Dataset(), image_dir), add_photos(fo.Dataset(), image_dir)
    try:
        compute(a, "cam", output_dir=shared)
        compute(b, "cam", output_dir=shared)
        theirs = b.values("cam_gradcam_layer4.map_path")
        a.delete_run("cam")
        assert all(os.path.isfile(p) for p in theirs)
        assert len(os.listdir(os.path.join(shared, "cam_gradcam_layer4"))) == 2
        list(b)
        b.delete_run("cam")
        assert not any(os.path.exists(p) for p in theirs)
    finally:
        a.delete()
        b.delete()


def test_default_output_dir_stays_under_cam_maps_whatever_the_name(image_dir):
    ds = add_photos(fo.Dataset(f"../../cam-escape-{uuid.uuid4().hex[:8]}"), image_dir)  # FiftyOne accepts it
    try:
        compute(ds, "cam")
        root = os.path.realpath(os.path.join(fo.config.default_dataset_dir, "cam_maps"))
        paths = ds.values("cam_gradcam_layer4.map_path")
        assert all(os.path.commonpath([os.path.realpath(p), root]) == root for p in paths), paths
        assert str(ds._doc.id) in paths[0]  # the dataset's own folder
        assert cam_core.checks.default_output_dir(ds.name, "cam") == cam_core.checks.default_output_dir(ds, "cam")
        assert os.path.dirname(os.path.dirname(paths[0])) == cam_core.checks.default_output_dir(ds, "cam")
    finally:
        ds.delete_run("cam")
        ds.delete()


def test_continuing_with_other_settings_is_refused_naming_them(dataset, image_dir):
    add_photos(dataset, image_dir)
    for s in dataset:
        s["objects"] = fo.Detections(detections=[fo.Detection(label="a", bounding_box=[0.2, 0.2, 0.5, 0.5])])
        s.save()
    compute(dataset, "c", storage="inline")
    cam_core.register_model("continued-other", models.resnet18(), transforms=small())
    other = dict(
        model=dict(model="continued-other"),
        transforms=dict(transforms=T.Compose([T.Resize(72), T.CenterCrop(64), T.ToTensor()])),
        target=dict(target=5),
        classes=dict(classes=[f"c{i}" for i in range(1000)]),
        gt_field=dict(gt_field="objects"),
        eigen_smooth=dict(eigen_smooth=True),
    )
    before = dataset.values("c_gradcam_layer4.map")
    for param, kwargs in other.items():
        with pytest.raises(cam_core.CamArgumentError, match="was computed with") as e:
            compute(dataset, "c", skip_existing=True, **kwargs)
        assert e.value.param == param, (param, str(e.value))
        assert "these settings give" in str(e.value)
    dataset.reload()
    after = dataset.values("c_gradcam_layer4.map")
    assert all((x == y).all() for x, y in zip(before, after))  # nothing was written
    assert compute(dataset, "c", skip_existing=True).num_samples == 2  # the same settings continue it


def nested(depth, leaf=1):
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def deep_list(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return {"a": value}


@pytest.mark.parametrize("kwargs, limit", [
    (nested(5000), "nested more than 32 deep"), (deep_list(5000), "nested more than 32 deep"),
    ({"a": list(range(200_000))}, "more than 100000 values"), ({"a": "x" * 1_000_001}, "more than 1000000 characters"),
])
def test_keyword_arguments_are_bounded(kwargs, limit):
    with pytest.raises(cam_core.CamArgumentError, match=limit) as e:
        cam_core.register_factory("x", "models:resnet18", kwargs=kwargs)
    assert e.value.param == "kwargs" and "the limits are 32 levels of nesting" in str(e.value)
    assert "x" not in cam_core.checks.registered_factories()
    assert cam_core.checks.check_kwargs(nested(31)) == nested(31)


def test_the_forms_json_text_is_bounded():
    for text in ['{"a": ' * 5000 + "1" + "}" * 5000, "[" * 100_000 + "]" * 100_000]:
        with pytest.raises(cam_core.CamArgumentError) as e:
            cam_core.checks.parse_kwargs(text)
        assert e.value.param == "kwargs" and "32" in str(e.value)
    with pytest.raises(cam_core.CamArgumentError, match="must be a JSON object"):
        cam_core.checks.parse_kwargs("{size: 64}")
    assert cam_core.checks.parse_kwargs('{"size": [64, 64]}') == {"size": [64, 64]}
    assert cam_core.checks.parse_kwargs("") == {}
