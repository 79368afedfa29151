"""compute_cams runs on real datasets: an existing run refused, overwritten or
continued (skip_existing), deleted from a fresh process, renamed with its
fields, and shown in the App (sidebar groups that follow rename and delete)."""
import os
import subprocess
import sys

import pytest

import cam_core
import models
from inputs import add, small


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
    # each run's group after the labels, in the order shown: its heatmaps, then
    # its agreement values in a group named as their field (the App shows them
    # there by their own names)
    assert names.index("labels") + 1 == names.index("cam: cam")
    assert names.index("cam: cam") + 1 == names.index("cam_agreement") == names.index("cam: one") - 1
    fields = ["cam_gradcam_layer3", "cam_gradcam_layer4", "cam_layercam_layer3", "cam_layercam_layer4"]
    assert groups["cam: cam"] == fields + [f"{f}.empty" for f in fields]  # the maps, then their empty flags
    assert groups["cam_agreement"] == ["cam_agreement.layers_gradcam", "cam_agreement.layers_layercam",
                                       "cam_agreement.methods_layer3", "cam_agreement.methods_layer4"]
    assert groups["cam: one"] == ["one_gradcam_layer4", "one_gradcam_layer4.empty"]  # one map per sample: no agreement
    assert not [p for g, paths in groups.items() if g != "cam_agreement" for p in paths if p.startswith("cam_agreement")]
    # shown again (the App's operator does after each run): the same groups, in the same places
    cam_core.show_run(dataset, "cam")
    assert [g.name for g in dataset.app_config.sidebar_groups] == names
    assert dataset.app_config.color_scheme.color_by == "value"
    assert "cam_gradcam_layer3.peak_x" in dataset.get_field_schema(flat=True)  # a sidebar filter

    dataset.rename_run("cam", "first")
    groups = {g.name: g.paths for g in dataset.app_config.sidebar_groups}
    assert "cam: cam" not in groups and "cam_agreement" not in groups
    assert groups["cam: first"] == ["first" + f[3:] for f in fields] + ["first" + f[3:] + ".empty" for f in fields]
    assert "first_agreement.methods_layer4" in groups["first_agreement"]
    assert [g.name for g in dataset.app_config.sidebar_groups] == [
        n.replace("cam: cam", "cam: first").replace("cam_agreement", "first_agreement") for n in names]

    dataset.delete_run("first")
    names = [g.name for g in dataset.app_config.sidebar_groups]
    assert [n for n in names if n.startswith("cam: ")] == ["cam: one"] and "first_agreement" not in names
