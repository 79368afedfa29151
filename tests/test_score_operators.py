"""The operators that score, sort and summarise an existing run, called from
Python and as the App calls them.

A private mongod (conftest), the real ResNet-18 architecture with random
weights (``test_operators.tiny_resnet``), real photographs with planted boxes.
"""
import asyncio
import base64
import os

import numpy as np
import pytest
from fiftyone.operators.executor import ExecutionContext, ExecutionError, Executor, resolve_type

import fiftyone as fo
import fiftyone.operators as foo
import cam_core
from cam_core.media.mapfiles import load_map

from test_operators import compute, photos, plugins_dir, registered, uri  # noqa: F401 (fixtures)


def op(name):
    return foo.get_operator(uri(name))


def app_form(dataset, name, params, view=None):
    """An operator's form as the App receives it, over ``view`` when one is loaded."""
    request = {"dataset_name": dataset.name, "params": params, "target": "inputs"}
    if view is not None:
        request["view"] = view._serialize()
    return asyncio.run(resolve_type(foo.OperatorRegistry(), uri(name), request)).type.properties


def summaries_dir(dataset):
    """A folder under the App's output root (the dataset directory by default)."""
    return os.path.realpath(os.path.join(fo.config.default_dataset_dir, "summaries", dataset.name))


def scores(dataset, path):
    """{sample id: value} straight from the database."""
    return dict(zip(dataset.values("id"), dataset.values(path)))


@pytest.fixture
def run(photos, registered):  # noqa: F811 (fixtures)
    """A PNG run of GradCAM and EigenCAM on layer4, explaining the ground truth, not scored yet."""
    compute(photos, layers=["layer4"], methods=["gradcam", "eigencam"], target="field:ground_truth", run_key="cam")
    return photos


def test_scoring_later_equals_scoring_in_the_run(run):
    # the same maps, scored in their run: the reference
    compute(run, layers=["layer4"], methods=["gradcam", "eigencam"], target="field:ground_truth", run_key="ref",
            gt_field="objects")
    assert op("score_cam_run")(run, "cam", "objects") == 4
    for method in ("gradcam", "eigencam"):
        # an all-zero map (random weights can give one) has no score
        empty = [load_map(h).max() == 0 for h in run.values(f"cam_{method}_layer4")]
        assert not all(empty)
        for score in ("mass_inside", "pointing_hit", "iou"):
            later = scores(run, f"cam_{method}_layer4.{score}")
            assert later == scores(run, f"ref_{method}_layer4.{score}")
            assert [v is None for v in later.values()] == empty, (method, score, later)
    assert run.get_run_info("cam").config.gt_field == "objects"
    assert run.get_run_info("cam").config.all_objects is True  # the default, as compute_cams'
    # the new scores are declared: the sidebar can filter them
    assert "cam_gradcam_layer4.mass_inside" in run.get_field_schema(flat=True)


def test_scoring_a_view_scores_only_its_samples(run):
    first_two = run.limit(2)
    assert op("score_cam_run")(first_two, "cam", "objects", iou_threshold=0.3) == 2
    values = scores(run, "cam_eigencam_layer4.iou")
    empty = [load_map(h).max() == 0 for h in run.values("cam_eigencam_layer4")]
    assert [values[i] is not None for i in run.values("id")] == [not empty[0], not empty[1], False, False]
    assert run.get_run_info("cam").config.iou_threshold == 0.3


@pytest.mark.parametrize("args,kwargs,message", [
    (("nope", "objects"), {}, "no run 'nope' on this collection; its CAM runs: cam"),
    (("cam", "ground_truth"), {}, "ground-truth field 'ground_truth' holds Classification; it must hold Detections, Polylines or a Segmentation"),
    (("cam", "objects"), {"iou_threshold": 0}, r"the IoU threshold must be a number in \(0, 1\]; got 0"),
    (("cam", "objects"), {"iou_threshold": 1.5}, "got 1.5"),
])
def test_scoring_refuses_bad_input_and_changes_nothing(run, args, kwargs, message):
    op("score_cam_run")(run, "cam", "objects")
    before = scores(run, "cam_gradcam_layer4.mass_inside")
    with pytest.raises(ExecutionError, match=message):
        op("score_cam_run")(run, *args, **kwargs)
    assert scores(run, "cam_gradcam_layer4.mass_inside") == before
    assert run.get_run_info("cam").config.gt_field == "objects"


def test_scoring_from_the_app_streams_progress_then_reloads(run):
    operator = foo.OperatorRegistry().get_operator(uri("score_cam_run"))
    params = {"run_key": "cam", "gt_field": "objects"}
    ctx = ExecutionContext(request_params={"dataset_name": run.name, "params": params}, executor=Executor())
    messages = [m.body for m in operator.execute(ctx)]
    progress = [m.params["progress"] for m in messages if m.operator_uri == "set_progress"]
    assert progress[0] == 0.0 and progress[-1] == 1.0 and progress == sorted(progress)
    assert [m.operator_uri for m in messages[-2:]] == ["reload_dataset", "notify"]
    assert messages[-1].params["message"] == "CAM run 'cam': the maps of 4 sample(s) were scored against 'objects'"
    assert all(v is not None for v in run.values("cam_eigencam_layer4.mass_inside"))


def test_sort_by_cam_score_is_the_view_the_database_gives(run):
    op("score_cam_run")(run, "cam", "objects")
    values = {i: v for i, v in scores(run, "cam_eigencam_layer4.mass_inside").items() if v is not None}
    threshold = float(np.median(list(values.values())))
    expected = sorted((i for i, v in values.items() if v <= threshold), key=values.get)
    view = op("sort_by_cam_score")(run, "cam", score="mass_inside", field="cam_eigencam_layer4", max_value=threshold)
    assert view.values("id") == expected and 0 < len(expected) < len(values)

    highest = op("sort_by_cam_score")(run, "cam", score="peak_x", field="cam_eigencam_layer4", reverse=True)
    peaks = scores(run, "cam_eigencam_layer4.peak_x")
    assert highest.values("id") == sorted(peaks, key=peaks.get, reverse=True)

    # explained class == label: every map of this run explains the ground
    # truth, so relabelling a sample afterwards makes its map "incorrect"
    relabelled = run.first()
    relabelled.ground_truth.label = "rocket" if relabelled.ground_truth.label != "rocket" else "cat"
    relabelled.save()
    correct = op("sort_by_cam_score")(run, "cam", score="mass_inside", field="cam_eigencam_layer4",
                                      correct_field="ground_truth")
    assert sorted(correct.values("id")) == sorted(set(values) - {relabelled.id})


def test_sort_by_cam_score_saves_the_view_and_refuses_bad_input(run):
    op("score_cam_run")(run, "cam", "objects")
    view = op("sort_by_cam_score")(run, "cam", score="border", min_value=0.0, view_name="border-first", reverse=True)
    assert run.has_saved_view("border-first")
    assert run.load_saved_view("border-first").values("id") == view.values("id")

    sort = op("sort_by_cam_score")
    with pytest.raises(ExecutionError, match="a saved view 'border-first' exists"):
        sort(run, "cam", score="border", view_name="border-first")
    with pytest.raises(ExecutionError, match=r"the lower bound min_value \(0.5\) is above the upper bound max_value \(0.1\)"):
        sort(run, "cam", min_value=0.5, max_value=0.1)
    with pytest.raises(ExecutionError, match="maps of 'cam_gradcam_layer4' have no score 'road'"):
        sort(run, "cam", score="road")
    with pytest.raises(ExecutionError, match="'cam_x_layer4' is not a field of run 'cam'"):
        sort(run, "cam", field="cam_x_layer4")
    with pytest.raises(ExecutionError, match="'objects' is not a Classification field"):
        sort(run, "cam", correct_field="objects")
    assert run.list_saved_views() == ["border-first"]


def test_summarize_cam_run_saves_and_shows_the_pictures(run, tmp_path):
    op("score_cam_run")(run, "cam", "objects")
    # the App writes only under its output root (the dataset directory by default)
    with pytest.raises(ExecutionError, match="Path: output_dir"):
        op("summarize_cam_run")(run, "cam", output_dir=str(tmp_path / "elsewhere"))
    assert not (tmp_path / "elsewhere").exists()
    out = os.path.realpath(os.path.join(fo.config.default_dataset_dir, "summaries", run.name))
    paths = op("summarize_cam_run")(run, "cam", label_field="ground_truth", k=2, output_dir=out)
    assert set(paths) == {"mean_heatmaps", "extremes", "histograms"}
    for path in paths.values():
        assert os.path.dirname(path) == out
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"

    # the App gets the same pictures inline
    operator = foo.OperatorRegistry().get_operator(uri("summarize_cam_run"))
    params = {"run_key": "cam", "field": "cam_eigencam_layer4", "output_dir": out}
    ctx = ExecutionContext(request_params={"dataset_name": run.name, "params": params}, executor=Executor())
    shown = operator.execute(ctx)
    with open(shown["paths"]["extremes"], "rb") as f:
        assert shown["extremes"] == "data:image/png;base64," + base64.b64encode(f.read()).decode("ascii")
    assert shown["paths"]["extremes"].endswith("cam_eigencam_layer4_extremes_mass_inside.png")

    with pytest.raises(ExecutionError, match="the grid holds 1 to 50 samples per half; got 0"):
        op("summarize_cam_run")(run, "cam", k=0)
    with pytest.raises(ExecutionError, match="'objects' is not a Classification field"):
        op("summarize_cam_run")(run, "cam", label_field="objects")


def test_the_summary_grid_splits_a_small_view_instead_of_repeating_samples(run):
    from cam_core.runs.summary import extreme_samples

    op("score_cam_run")(run, "cam", "objects")
    field = "cam_eigencam_layer4"
    values = {i: v for i, v in scores(run, f"{field}.mass_inside").items() if v is not None}
    ranked = sorted(values.values(), reverse=True)
    n_low = len(ranked) // 2
    high, low = extreme_samples(run, field, "mass_inside", k=5)
    # ties may come in either order: compare the scores, and that no sample is in both halves
    assert high.values(f"{field}.mass_inside") == ranked[:len(ranked) - n_low]
    assert low.values(f"{field}.mass_inside") == ranked[::-1][:n_low]
    assert sorted(high.values("id") + low.values("id")) == sorted(values)
    high, low = extreme_samples(run, field, "mass_inside", k=1)
    assert (high.values(f"{field}.mass_inside"), low.values(f"{field}.mass_inside")) == ([ranked[0]], [ranked[-1]])


def test_forms_over_a_run_preselect_the_newest_run_its_first_map_and_mass_inside(run):
    import asyncio

    from fiftyone.operators.executor import resolve_type

    # newer than "cam", though listed before it
    compute(run, layers=["layer3"], methods=["eigencam"], run_key="again")
    op("score_cam_run")(run, "again", "objects")
    for name in ("score_cam_run", "sort_by_cam_score", "summarize_cam_run"):
        request = {"dataset_name": run.name, "params": {}, "target": "inputs"}
        props = asyncio.run(resolve_type(foo.OperatorRegistry(), uri(name), request)).type.properties
        assert props["run_key"].default == "again", name
        if name != "score_cam_run":
            assert props["field"].default == "again_eigencam_layer3"
            assert props["score"].default == "mass_inside"
    # delete_cam_run never preselects
    request = {"dataset_name": run.name, "params": {}, "target": "inputs"}
    props = asyncio.run(resolve_type(foo.OperatorRegistry(), uri("delete_cam_run"), request)).type.properties
    assert props["run_key"].default is None


def test_summarize_from_the_app_defaults_to_the_whole_dataset_and_says_what_it_covers(run):
    op("score_cam_run")(run, "cam", "objects")
    out = summaries_dir(run)
    loaded = run.sort_by("filepath", reverse=True).limit(3)  # a view the user happens to have open
    props = app_form(run, "summarize_cam_run", {}, loaded)
    assert props["view_target"].default == "DATASET"
    assert {"DATASET", "CURRENT_VIEW"} <= set(props["view_target"].view.values())
    whole = f"4 sample(s) with a map in 'cam_gradcam_layer4', from the whole dataset '{run.name}'"
    assert props["summarized"].view.label == whole

    # executed with the preselected target (the App sends it): the whole dataset, said in the result
    operator = foo.OperatorRegistry().get_operator(uri("summarize_cam_run"))
    request = {"dataset_name": run.name, "view": loaded._serialize(),
               "params": {"run_key": "cam", "view_target": "DATASET", "output_dir": out}}
    shown = operator.execute(ExecutionContext(request_params=request, executor=Executor()))
    assert shown["num_samples"] == 4 and shown["summarized"] == whole
    shown_ctx = ExecutionContext(request_params=dict(request, results=shown), executor=Executor())
    assert list(operator.resolve_output(shown_ctx).type.properties)[0] == "summarized"

    # the current view when the user picks it, and the form says so
    props = app_form(run, "summarize_cam_run", {"view_target": "CURRENT_VIEW"}, loaded)
    assert props["summarized"].view.label == "3 sample(s) with a map in 'cam_gradcam_layer4', from the current view"
    request["params"]["view_target"] = "CURRENT_VIEW"
    shown = operator.execute(ExecutionContext(request_params=request, executor=Executor()))
    assert shown["num_samples"] == 3

    # a Python call summarises the collection it is given, a view or a dataset
    assert set(op("summarize_cam_run")(loaded, "cam", output_dir=out)) == {"mean_heatmaps", "extremes", "histograms"}
    assert set(op("summarize_cam_run")(run.view(), "cam", output_dir=out)) == {"mean_heatmaps", "extremes", "histograms"}


def test_sort_and_summary_forms_offer_only_scores(run):
    op("score_cam_run")(run, "cam", "objects")
    schema = run.get_field_schema(flat=True)
    # the maps carry other attributes that a form must not offer as scores
    others = {"id", "tags", "map_path", "range", "target_index", "target_label", "target_score", "map_scale"}
    assert {f"cam_gradcam_layer4.{a}" for a in others - {"target_score", "map_scale", "range", "tags"}} <= set(schema)
    for name in ("sort_by_cam_score", "summarize_cam_run"):
        offered = app_form(run, name, {})["score"].view.values()
        assert offered == [s for s in cam_core.types.SCORES if f"cam_gradcam_layer4.{s}" in schema], name
        assert "mass_inside" in offered and not others & set(offered), name


def test_summary_pictures_draw_maps_with_the_apps_colorscale(run):
    import matplotlib
    from PIL import Image

    op("score_cam_run")(run, "cam", "objects")
    paths = op("summarize_cam_run")(run, "cam", field="cam_eigencam_layer4", output_dir=summaries_dir(run))
    picture = np.asarray(Image.open(paths["mean_heatmaps"]).convert("RGB"), dtype=np.int16).reshape(-1, 3)
    # the coloured pixels (not the white paper, not the black or grey text), each colour once with its count
    colours, counts = np.unique(picture[(picture.max(axis=1) - picture.min(axis=1)) > 40], axis=0, return_counts=True)
    assert counts.sum() > 1000
    assert fo.app_config.colorscale == "viridis"
    lut = matplotlib.colormaps[fo.app_config.colorscale](np.linspace(0, 1, 256))[:, :3] * 255
    nearest = np.sqrt(((colours[:, None, :] - lut[None]) ** 2).sum(axis=2)).min(axis=1)
    share = counts[nearest < 12].sum() / counts.sum()  # the rest: edges blended with the paper
    assert share > 0.9, f"{share:.0%} of the map pixels are {fo.app_config.colorscale} colours"
