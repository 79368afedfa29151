"""cam_core.explain on a detector against the run's stored maps and objects,
and cam_core.save_explanation: an explanation on demand stored on a run as
its own maps are, filterable, and removed with the run.

A private mongod (conftest), real image files, a detector with a known
answer (models.PlantedDetector) and ResNet-18 with random weights.
"""
import os

import numpy as np
import pytest
from fiftyone import ViewField as F
from PIL import Image

import fiftyone as fo
import cam_core
from cam_core.scoring.names import object_attribute
from models import PlantedDetector, planted_scene
from test_explain import photos, tiny  # noqa: F401 (a fixture)

LEVEL = 1  # a stored value may round the other way: the batch's sums differ in the 7th digit


@pytest.fixture
def scenes(dataset, tmp_path):
    dataset.add_samples([fo.Sample(filepath=planted_scene(str(tmp_path / f"s{i}.png"), marked=i % 2 == 0, seed=i))
                         for i in range(4)])
    return dataset


def _png(sample, field):
    return np.asarray(Image.open(sample[field].map_path), dtype=np.int16)


def test_a_detectors_explanation_is_its_runs_maps_and_objects(scenes):
    det = PlantedDetector()
    methods = ["gradcam", "hirescam"]
    cam_core.compute_cams(scenes, det, methods=methods, score_threshold=0.0, batch_size=4, device="cpu")
    for sample in scenes:
        exp = cam_core.explain(sample, det, methods=methods, score_threshold=0.0)
        stored = sample["cam_detections"].detections
        labels = [o["label"] for o in exp.objects]
        assert labels == [d.label for d in stored] and sorted(labels) == ["fooled", "honest"]
        for o, d in zip(exp.objects, stored):
            assert np.allclose(o["box"], d.bounding_box, atol=1e-6) and o["score"] == pytest.approx(d.confidence)
        for m in methods:
            key, field = (m, "features"), f"cam_{m}_features"
            ours = exp.stored_maps([key])[0].numpy().astype(np.int16)
            assert np.abs(ours - _png(sample, field)).max() <= LEVEL
            for k, d in enumerate(stored):
                for score in ("inside", "on_others", "background"):
                    want = d[object_attribute("cam", field, score)]
                    assert exp.object_scores[key][k][score] == pytest.approx(want, abs=1e-6)
            assert exp.object_map(1, key).shape == (128, 160)
            assert np.abs(exp.object_map(1, key) - exp.object_maps[key][1]).max() == 0
        # the fooled box is found by the red mark outside it: its own HiResCAM map lies there
        if sample.filepath.endswith(("s0.png", "s2.png")):
            scores = exp.object_scores[("hirescam", "features")]
            assert scores[labels.index("fooled")]["inside"] < 0.2 and scores[labels.index("honest")]["inside"] > 0.8


def test_a_saved_explanation_is_stored_as_the_runs_maps_are(photos):
    model, layers, methods = tiny(), ["layer3", "layer4"], ["gradcam", "eigencam"]
    cam_core.compute_cams(photos, model, layers=layers, methods=methods, run_key="cam", batch_size=4)
    cam_core.compute_cams(photos, model, layers=layers, methods=methods, run_key="other", target="coffee",
                          batch_size=4)
    sample = photos.match(F("ground_truth.label") == "cat").first()
    exp = cam_core.explain(sample, model, layers=layers, methods=methods, target="class:coffee")
    fields = cam_core.save_explanation(sample, "cam", exp)
    assert fields[("gradcam", "layer4")] == "cam_gradcam_layer4_coffee"
    config = photos.get_run_info("cam").config
    assert config.explanations["cam_gradcam_layer4_coffee"] == {"method": "gradcam", "layer": "layer4",
                                                                "target": "class:coffee"}
    schema = photos.get_field_schema(flat=True)
    sample = photos[sample.id]
    for (m, l), field in fields.items():
        assert f"{field}.target_label" in schema and f"{field}.spread" in schema  # declared: the App filters them
        heat, twin = sample[field], sample[f"other_{m}_{l}"]
        assert heat.map_path.startswith(config.output_dir) and os.path.isfile(heat.map_path)
        assert np.abs(_png(sample, field) - _png(sample, f"other_{m}_{l}")).max() <= LEVEL
        assert heat.target_label == twin.target_label == "coffee"
        assert heat.spread == pytest.approx(twin.spread, abs=0.02)
    # filterable, and sortable as one of the run's fields
    assert photos.match(F("cam_gradcam_layer4_coffee.target_label") == "coffee").count() == 1
    assert cam_core.sort_by_score(photos, "cam", "spread", field="cam_gradcam_layer4_coffee").count() == 1
    assert "cam_gradcam_layer4_coffee" in [m["field"] for m in cam_core.app.sample_maps(sample, "cam")]
    files = [sample[f].map_path for f in fields.values()]
    photos.delete_run("cam")
    assert not any(f in photos.get_field_schema() for f in fields.values())
    assert not any(os.path.exists(p) for p in files)


def test_a_difference_is_saved_under_both_classes(photos):
    model = tiny()
    cam_core.compute_cams(photos, model, layers=["layer4"], run_key="cam", storage="inline")
    sample = photos.first()
    a = cam_core.explain(sample, model, layers=["layer4"], target="coffee")
    b = cam_core.explain(sample, model, layers=["layer4"], target="cat")
    fields = cam_core.save_explanation(sample, "cam", a.minus(b))
    assert fields == {("gradcam", "layer4"): "cam_gradcam_layer4_coffee_not_cat"}
    sample = photos[sample.id]
    assert sample["cam_gradcam_layer4_coffee_not_cat"].map is not None  # the run stores its maps inline


def test_what_save_explanation_refuses_leaves_the_dataset_unchanged(photos, image_dir):
    model = tiny()
    cam_core.compute_cams(photos, model, layers=["layer4"], run_key="cam")
    sample = photos.first()
    before = sorted(photos.get_field_schema(flat=True))
    other_image = cam_core.explain(image_dir["coffee"], model, layers=["layer4"])
    torch_model = tiny()
    torch_model.name = "another-model"
    cases = [
        (dict(explanation=other_image), "explanation", "not of this sample's image"),
        (dict(explanation=cam_core.explain(sample, torch_model, layers=["layer4"])), "explanation", "another-model"),
        (dict(run_key="nope"), "run_key", "no run 'nope'"),
        (dict(keys=[("gradcam", "layer9")]), "keys", "no map"),
        (dict(explanation="a map"), "explanation", "what cam_core.explain returns"),
        (dict(sample=fo.Sample(filepath=sample.filepath)), "sample", "in a dataset"),
    ]
    for kwargs, param, words in cases:
        args = dict(sample=sample, run_key="cam", explanation=cam_core.explain(sample, model, layers=["layer4"]))
        args.update(kwargs)
        with pytest.raises(cam_core.CamArgumentError) as e:
            cam_core.save_explanation(**args)
        assert e.value.param == param and words in str(e.value), (kwargs, e.value)
    assert sorted(photos.get_field_schema(flat=True)) == before
    assert photos.get_run_info("cam").config.explanations == {}
