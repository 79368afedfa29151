"""The operators on a detector, called from Python and as the App calls them.

A private mongod (conftest), a detector with a known answer
(``models.PlantedDetector``: its "fooled" box is found by a red mark outside
it) registered in this process, scenes written as image files.
"""
import asyncio

import pytest
from fiftyone.operators.executor import ExecutionError, resolve_type

import fiftyone as fo
import fiftyone.operators as foo
import cam_core
from models import PlantedDetector, planted_scene

from test_operators import plugins_dir, tiny_resnet, uri  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def planted(plugins_dir):  # noqa: F811 (a fixture)
    """``planted``, the PlantedDetector, registered in this process."""
    det = PlantedDetector()
    cam_core.register_model("planted", det, transforms=det.transforms, classes=PlantedDetector.classes)
    return "planted"


@pytest.fixture
def scenes(dataset, tmp_path):
    """Six scenes (every other one marked) with a Detections ``truth`` and a Classification ``kind`` field."""
    samples = []
    for i in range(6):
        s = fo.Sample(filepath=planted_scene(str(tmp_path / f"scene{i}.png"), marked=i % 2 == 0, seed=i),
                      marked=i % 2 == 0, kind=fo.Classification(label="scene"))
        s["truth"] = fo.Detections(detections=[fo.Detection(label="fooled", bounding_box=[0.11, 0.56, 0.34, 0.34])])
        samples.append(s)
    dataset.add_samples(samples)
    return dataset


def form(dataset, name, params):
    """An operator's form as the App receives it for these parameters."""
    request = {"dataset_name": dataset.name, "params": params, "target": "inputs"}
    return asyncio.run(resolve_type(foo.OperatorRegistry(), uri(name), request)).type.properties


def compute(collection, **kwargs):
    kwargs = dict(dict(methods=["gradcam", "hirescam"], score_threshold=0.0, batch_size=4, device="cpu"), **kwargs)
    return foo.get_operator(uri("compute_cams"))(collection, "planted", **kwargs)


def test_the_compute_cams_operator_explains_a_detector(scenes, planted):
    res = compute(scenes, max_objects=5, run_key="cam")
    assert res.num_samples == 6 and sorted(res.fields) == ["cam_gradcam_features", "cam_hirescam_features"]
    config = scenes.get_run_info("cam").config
    assert config.detections_field == "cam_detections"
    assert config.score_threshold == 0.0 and config.max_objects == 5
    for sample in scenes:
        dets = {d.label: d for d in sample["cam_detections"].detections}
        assert set(dets) == {"honest", "fooled"}
        assert dets["honest"].hirescam_features_inside > 0.9
    # in the App, the run's group holds its maps, their empty flags, then its objects (with their scores as
    # label filters); no group of paths into the objects (it breaks FiftyOne 1.22's sample modal)
    groups = {g.name: g.paths for g in scenes.app_config.sidebar_groups}
    assert groups["cam: cam"] == res.fields + [f"{f}.empty" for f in res.fields] + ["cam_detections"]
    assert not [p for paths in groups.values() for p in paths if p.startswith("cam_detections.detections.")]
    assert not [g for g, paths in groups.items() if g != "cam: cam" and "cam_detections" in paths]
    assert "cam_detections.detections.hirescam_features_inside" in scenes.get_field_schema(flat=True)
    # what a detector cannot take is refused by the form with the engine's words
    with pytest.raises(ExecutionError, match="Path: faithfulness"):
        compute(scenes, faithfulness=True, run_key="f")
    with pytest.raises(ExecutionError, match="Path: methods"):
        compute(scenes, methods=["scorecam"], run_key="f")
    assert "f" not in scenes.list_runs()


def test_the_form_of_a_detector_offers_what_a_detector_takes(scenes, planted):
    base = {"model_source": "registered", "model": "planted", "run_key": "ok"}
    props = form(scenes, "compute_cams", base)
    assert props["model_facts"].view.label.startswith("detector, 3 named classes")
    methods = [c.value for c in props["methods"].view.choices]
    assert methods == [m for m, spec in cam_core.METHODS.items() if spec.fast] and "scorecam" not in methods
    assert props["score_threshold"].default == 0.5 and props["max_objects"].default == 20
    assert props["max_objects"].type.min == 1
    assert "faithfulness" not in props and "aug_smooth" not in props and "eigen_smooth" in props
    target = {c.value: c.description for c in props["target"].view.choices}
    assert target["prediction"] == "Each box of score >= the score threshold (0.5)"
    assert "matched to the detector's boxes" in target["label_field"]
    assert not [n for n, p in props.items() if p.invalid]
    assert "objects in ok_detections" in props["summary"].view.label

    props = form(scenes, "compute_cams", dict(base, target="label_field", score_threshold=0.3))
    assert [c.value for c in props["label_field"].view.choices] == ["truth"]  # Detections only
    assert "(0.3)" in {c.value: c.description for c in props["target"].view.choices}["prediction"]
    props = form(scenes, "compute_cams", dict(base, target="label_field", label_field="kind"))
    assert props["label_field"].invalid and "not a Detections field" in props["label_field"].error_message
    props = form(scenes, "compute_cams", dict(base, target="class", target_class="fooled"))
    assert [c.value for c in props["target_class"].view.choices] == PlantedDetector.classes
    assert not [n for n, p in props.items() if p.invalid]
    props = form(scenes, "compute_cams", dict(base, max_objects=0))
    assert props["max_objects"].invalid


def test_a_classifier_form_keeps_its_inputs(scenes, planted):
    tiny = tiny_resnet()
    cam_core.register_model("tiny-here", tiny.module, transforms=tiny.transforms, classes=tiny.classes)
    props = form(scenes, "compute_cams", {"model_source": "registered", "model": "tiny-here", "run_key": "ok",
                                          "target": "label_field"})
    assert props["model_facts"].view.label.startswith("classifier, 4 named classes")
    assert "faithfulness" in props and "aug_smooth" in props and "score_threshold" not in props
    assert "scorecam" in [c.value for c in props["methods"].view.choices]
    assert [c.value for c in props["label_field"].view.choices] == ["kind"]
    assert not [n for n, p in props.items() if p.invalid]


def test_library_sources_list_detectors(scenes, plugins_dir):  # noqa: F811 (a fixture)
    props = form(scenes, "compute_cams", {"model_source": "torchvision"})
    offered = props["model"].type.values
    assert {"fasterrcnn_mobilenet_v3_large_fpn", "retinanet_resnet50_fpn", "resnet18", "deeplabv3_resnet50"} <= set(offered)
    assert props["model"].view.description == "torchvision.models: classifiers, segmenters and detectors"
    # a torchvision detector with random weights (nothing downloaded): a detector's form
    props = form(scenes, "compute_cams", {"model_source": "torchvision", "model": "fasterrcnn_mobilenet_v3_large_320_fpn",
                                          "pretrained": False, "run_key": "tv"})
    assert props["model_facts"].view.label.startswith("detector, 91 named classes")
    assert "score_threshold" in props and "faithfulness" not in props
    assert not [n for n, p in props.items() if p.invalid]


def test_sort_cam_objects_opens_the_boxes_found_by_their_context_first(scenes, planted):
    compute(scenes, run_key="cam")
    op = foo.get_operator(uri("sort_cam_objects"))
    patches = op(scenes, "cam", score="inside", field="cam_gradcam_features", min_confidence=0.5)
    assert patches._is_patches
    assert patches.values("cam_detections.label")[:3] == ["fooled"] * 3
    assert set(scenes.select(patches.limit(3).values("sample_id")).values("marked")) == {True}
    assert min(patches.values("cam_detections.confidence")) >= 0.5
    # the same view as the engine's
    engine = cam_core.sort_objects_by_score(scenes, "cam", "inside", field="cam_gradcam_features", min_confidence=0.5)
    assert patches.values("id") == engine.values("id")

    # as the App runs it: the view set, a message, the count; saved under a name
    params = {"run_key": "cam", "score": "background", "reverse": True, "label": "fooled", "view_name": "context"}
    result = foo.execute_operator(uri("sort_cam_objects"), ctx={"dataset": scenes, "params": params})
    out = result.result
    assert out["count"] == 6 and out["view_name"] == "context"
    assert out["message"] == "6 object(s) of run 'cam' sorted by background, saved as view 'context'"
    assert scenes.has_saved_view("context")
    saved = scenes.load_saved_view("context")
    backgrounds = saved.values("cam_detections.gradcam_features_background")
    assert backgrounds == sorted(backgrounds, reverse=True)

    # the form: detector runs only, the run's fields, the object scores
    cam_core.compute_cams(scenes, tiny_resnet(), methods="gradcam", layers=["layer4"], run_key="cls",
                          num_workers=0, device="cpu", storage="inline")
    props = form(scenes, "sort_cam_objects", {})
    assert props["run_key"].type.values == ["cam"] and props["run_key"].default == "cam"
    assert props["field"].type.values == ["cam_gradcam_features", "cam_hirescam_features"]
    assert props["score"].type.values == list(cam_core.types.DETECTION_SCORES) and props["score"].default == "inside"
    assert [c.value for c in props["label"].view.choices] == PlantedDetector.classes
    assert not [n for n, p in props.items() if p.invalid]

    # refused with cam_core's words: a classifier's run, an unknown class, bounds that cross
    with pytest.raises(cam_core.CamArgumentError) as engine_error:
        cam_core.checks.check_objects_args(scenes, "cls")
    props = form(scenes, "sort_cam_objects", {"run_key": "cls"})
    assert props["run_key"].invalid and props["run_key"].error_message == engine_error.value.message
    with pytest.raises(ExecutionError, match="Path: run_key"):
        op(scenes, "cls")
    props = form(scenes, "sort_cam_objects", {"run_key": "cam", "label": "cat"})
    assert props["label"].invalid and "not one of the run's classes" in props["label"].error_message
    with pytest.raises(ExecutionError, match="Path: max_value"):
        op(scenes, "cam", min_value=0.8, max_value=0.2)
    with pytest.raises(ExecutionError, match="Path: view_name"):
        op(scenes, "cam", view_name="context")


def test_sort_cam_objects_without_a_detector_run_says_so(scenes, planted):
    props = form(scenes, "sort_cam_objects", {})
    assert props["run_key_error"].invalid
    assert "no detector run" in props["run_key_error"].error_message
