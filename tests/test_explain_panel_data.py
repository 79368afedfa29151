"""What the CAM panels draw, from the library: a score's histogram and the
samples of a range of its bins, one sample's maps, the mean map per class,
the maps' agreement, the newest run (cam_core.runs.histograms, .stored).

A private mongod (conftest), crops of real photographs, ResNet-18 with
random weights.
"""
import os

import numpy as np
import pytest
from fiftyone import ViewField as F
from PIL import Image

import fiftyone as fo
import cam_core
from cam_core.media.mapfiles import load_map
from test_explain import CLASSES, tiny


def add_crops(dataset, image_dir, folder):
    """Adds 12 samples to ``dataset``: three crops of each of four photos, labelled by photo."""
    samples = []
    for name, label in zip(["astronaut", "chelsea", "coffee", "rocket"], CLASSES):
        img = Image.open(image_dir[name]).convert("RGB")
        w, h = img.size
        for i, (x, y) in enumerate([(0, 0), (w // 3, h // 4), (w // 2, h // 3)]):
            path = os.path.join(folder, f"{name}{i}.png")
            img.crop((x, y, x + w // 2, y + h // 2)).save(path)
            samples.append(fo.Sample(filepath=path, ground_truth=fo.Classification(label=label)))
    dataset.add_samples(samples)
    return dataset


@pytest.fixture
def crops(dataset, image_dir, tmp_path):
    """12 crops of four photos, and a run "cam" explaining each one's label."""
    add_crops(dataset, image_dir, str(tmp_path))
    cam_core.compute_cams(dataset, tiny(), layers=["layer3", "layer4"], methods=["gradcam", "eigencam"],
                          run_key="cam", target="field:ground_truth", batch_size=6)
    return dataset


def test_histogram_bins_and_the_samples_of_a_range_are_the_databases(crops):
    h = cam_core.app.score_histogram(crops, "cam", "spread", "cam_gradcam_layer4", bins=5)
    assert h["kind"] == "numeric" and len(h["edges"]) == 6 and len(h["counts"]) == 5
    values = [v for v in crops.values("cam_gradcam_layer4.spread") if v is not None]
    assert sum(h["counts"]) == len(values) and h["missing"] == len(crops) - len(values)
    edges = h["edges"]
    assert edges == sorted(edges) and edges[0] == min(values) and edges[-1] > max(values)
    for i, count in enumerate(h["counts"]):  # each bin, [lower, upper), is what the view of that range holds
        view = cam_core.app.score_view(crops, "cam", "spread", "cam_gradcam_layer4", edges[i], edges[i + 1])
        assert view.count() == count == sum(edges[i] <= v < edges[i + 1] for v in values)
    selected = cam_core.app.score_view(crops, "cam", "spread", "cam_gradcam_layer4", edges[1], edges[4])
    assert selected.count() == sum(h["counts"][1:4])
    assert len(selected._serialize()) == 1  # one stage (a panel replaces it on the next selection)
    # counted over a view, the histogram is the view's
    view = crops.match(F("ground_truth.label") == "cat")
    assert sum(cam_core.app.score_histogram(view, "cam", "spread", "cam_gradcam_layer4")["counts"]) == view.count()


def test_a_boolean_score_is_counted_by_value(crops):
    h = cam_core.app.score_histogram(crops, "cam", "empty")
    assert h["kind"] == "boolean" and h["values"] == [False, True]
    assert h["counts"] == [crops.match(F("cam_gradcam_layer3.empty") == v).count() for v in (False, True)]
    assert cam_core.app.score_view(crops, "cam", "empty", value=False).count() == h["counts"][0]


def test_histogram_arguments_are_checked(crops):
    for kwargs, param in [(dict(bins=0), "bins"), (dict(score="nope"), "score"), (dict(field="x"), "field"),
                          (dict(score="mass_inside"), "score"), (dict(run_key="none"), "run_key")]:
        args = dict(samples=crops, run_key="cam", score="spread")
        args.update(kwargs)
        with pytest.raises(cam_core.CamArgumentError) as e:
            cam_core.app.score_histogram(**args)
        assert e.value.param == param
    with pytest.raises(cam_core.CamArgumentError, match="above min_value"):
        cam_core.app.score_view(crops, "cam", "spread", min_value=0.5, max_value=0.5)
    with pytest.raises(cam_core.CamArgumentError) as e:
        cam_core.app.score_view(crops, "cam", "empty", value="yes")
    assert e.value.param == "value"


def test_one_samples_maps_in_the_runs_order(crops):
    sample = crops.first()
    maps = cam_core.app.sample_maps(sample, "cam")
    assert [m["field"] for m in maps] == list(crops.get_run_info("cam").config.fields)
    for m in maps:
        assert np.array_equal(m["map"], load_map(sample[m["field"]]).astype(np.float32))
        assert m["scores"]["target_label"] == sample["ground_truth"].label == m["target"]
        assert m["scores"].get("spread") == sample[m["field"]].spread and not m["saved"]  # None: an empty map


def test_the_mean_map_per_class(crops):
    means = cam_core.app.class_means(crops, "cam", "cam_gradcam_layer4", per_class=2, size=16)
    counts = crops.count_values("cam_gradcam_layer4.target_label")
    assert {m["label"]: m["count"] for m in means} == counts
    for m in means:
        assert m["used"] == min(2, m["count"]) and m["map"].shape == (16, 16)
        heats = cam_core.app.class_view(crops, "cam", m["label"], "cam_gradcam_layer4").limit(2).values("cam_gradcam_layer4")
        want = np.mean([np.asarray(Image.fromarray(load_map(h).astype(np.float32), mode="F").resize((16, 16), Image.BILINEAR))
                        for h in heats], axis=0)
        assert np.abs(m["map"] - np.clip(want, 0, 1)).max() < 1e-5
        assert cam_core.app.class_view(crops, "cam", m["label"], "cam_gradcam_layer4").count() == m["count"]


def test_the_agreement_matrix_of_the_maps(crops):
    a = cam_core.app.agreement_matrix(crops, "cam", max_samples=5)
    fields = list(crops.get_run_info("cam").config.fields)
    assert a["fields"] == fields and a["samples"] == 5
    assert a["labels"] == ["gradcam / layer3", "gradcam / layer4", "eigencam / layer3", "eigencam / layer4"]
    m = np.array([[np.nan if v is None else v for v in row] for row in a["matrix"]])
    assert np.allclose(np.diag(m), 1.0) and np.allclose(m, m.T, equal_nan=True)
    # a pair's value: the mean over the samples read of the two maps' correlation
    first = crops.limit(5)
    r = [np.corrcoef(load_map(x).ravel(), load_map(y).ravel())[0, 1]
         for x, y in zip(first.values(fields[0]), first.values(fields[1]))]
    assert m[0, 1] == pytest.approx(np.nanmean(r), abs=1e-9)
    assert a["groups"]["methods_layer4"] == pytest.approx(crops.mean("cam_agreement.methods_layer4"))


def test_the_latest_run_is_the_newest(crops):
    cam_core.compute_cams(crops.limit(2), tiny(), layers=["layer4"], run_key="later")
    assert cam_core.app.latest_run(crops) == "later"
    assert cam_core.app.latest_run(fo.Dataset()) is None
