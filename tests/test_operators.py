"""The plugin's operators, called the way Python users, the App and delegated workers call them.

A private mongod (conftest), the real ResNet-18 architecture with random
weights (64 px inputs), real photographs written as files. Delegated runs are
executed by a ``fiftyone delegated launch`` process that knows the model only
through its registration in the database.
"""
import asyncio
import http.server
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

import numpy as np
import pytest
import yaml

import fiftyone as fo
import fiftyone.operators as foo
from fiftyone.operators.executor import ExecutionContext, ExecutionError, Executor

import cam_core

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
PLUGIN = "@fiftyone-cam/cam"
CLASSES = ["astronaut", "cat", "coffee", "rocket"]
PHOTOS = {"astronaut": "astronaut", "chelsea": "cat", "coffee": "coffee", "rocket": "rocket"}


def tiny_resnet(forward_delay=0.0):
    """The factory registered for the App and the workers (``test_operators:tiny_resnet``):
    ResNet-18 with random weights, 4 classes, 64 px inputs; with
    ``forward_delay``, every forward first sleeps that many seconds (a slow
    model, for what the App shows while a run is long)."""
    import torch
    import torchvision
    from torchvision import transforms as T

    torch.manual_seed(0)
    module = torchvision.models.resnet18(weights=None, num_classes=len(CLASSES)).eval()
    if forward_delay:
        module.register_forward_pre_hook(lambda *_: time.sleep(forward_delay))
    transforms = T.Compose([T.Resize(64), T.CenterCrop(64), T.ToTensor()])
    return cam_core.CamModel(module, transforms, list(CLASSES))


def uri(name):
    return f"{PLUGIN}/{name}"


def plugin_env(plugins_dir):
    """The environment of a process that must see this session's database,
    the plugin and the factory module."""
    env = dict(os.environ)
    env["FIFTYONE_PLUGINS_DIR"] = plugins_dir
    env["PYTHONPATH"] = os.pathsep.join([TESTS] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


@pytest.fixture(scope="module")
def plugins_dir():
    """A plugins directory holding this repository (as a symlink)."""
    folder = tempfile.mkdtemp(prefix="cam-plugins-")
    os.symlink(REPO, os.path.join(folder, "fiftyone-cam"))
    old_env, old_config = os.environ.get("FIFTYONE_PLUGINS_DIR"), fo.config.plugins_dir
    os.environ["FIFTYONE_PLUGINS_DIR"] = folder
    fo.config.plugins_dir = folder
    yield folder
    fo.config.plugins_dir = old_config
    if old_env is None:
        os.environ.pop("FIFTYONE_PLUGINS_DIR", None)
    else:
        os.environ["FIFTYONE_PLUGINS_DIR"] = old_env


@pytest.fixture(scope="module")
def registered(plugins_dir):
    """``tiny-resnet`` registered through the operator, as a factory in the database."""
    out = foo.get_operator(uri("register_cam_model"))("tiny-resnet", "test_operators:tiny_resnet", overwrite=True)
    yield out
    foo.get_operator(uri("unregister_cam_model"))("tiny-resnet")


@pytest.fixture
def photos(dataset, image_dir):
    """Four photos with a Classification ``ground_truth`` and a Detections ``objects`` field."""
    samples = []
    for name, label in PHOTOS.items():
        s = fo.Sample(filepath=image_dir[name], ground_truth=fo.Classification(label=label))
        s["objects"] = fo.Detections(detections=[fo.Detection(label=label, bounding_box=[0.2, 0.2, 0.5, 0.5])])
        samples.append(s)
    dataset.add_samples(samples)
    return dataset


def compute(collection, **kwargs):
    kwargs.setdefault("layers", ["layer3", "layer4"])
    return foo.get_operator(uri("compute_cams"))(collection, "tiny-resnet", **kwargs)


def test_plugin_registers_every_listed_operator_without_errors(plugins_dir):
    registry = foo.OperatorRegistry()
    assert registry.list_errors() == []
    with open(os.path.join(REPO, "fiftyone.yml")) as f:
        listed = yaml.safe_load(f)["operators"]
    found = {op.uri for op in registry.list_operators()}
    assert {uri(name) for name in listed} <= found
    assert uri("compute_cams") in found and uri("delete_cam_run") in found


def test_immediate_run_stores_what_compute_cams_stores(photos, registered):
    res = compute(photos, methods=["gradcam", "gradcam++"], target="field:ground_truth",
                  run_key="app", storage="inline")
    assert (res.num_samples, res.num_skipped) == (4, 0)
    engine = cam_core.compute_cams(photos, tiny_resnet(), layers=["layer3", "layer4"],
                                   methods=["gradcam", "gradcam++"], target="field:ground_truth",
                                   run_key="py", storage="inline")
    assert sorted(f[len("app"):] for f in res.fields) == sorted(f[len("py"):] for f in engine.fields)
    peaks = []
    for field in res.fields:
        twin = "py" + field[len("app"):]
        for ours, theirs in zip(photos.values(field), photos.values(twin)):
            assert ours.map.shape == theirs.map.shape
            assert np.array_equal(ours.map, theirs.map)
            assert ours.target_label == theirs.target_label
            peaks.append(ours.map.max())
    assert sum(p > 0 for p in peaks) >= len(peaks) // 2  # maps, not blanks
    assert photos.values(f"{res.fields[0]}.target_label") == photos.values("ground_truth.label")

    config = photos.get_run_info("app").config
    assert config.model == "tiny-resnet"
    assert config.model_kwargs["factory"] == "test_operators:tiny_resnet"

    # the App shows the run's maps together (then their agreement), coloured
    # by value, with their scores declared (sidebar filters)
    groups = {g.name: g.paths for g in photos.app_config.sidebar_groups}
    assert groups["cam: app"] == res.fields + [
        "app_agreement.layers_gradcam", "app_agreement.layers_gradcamplusplus",
        "app_agreement.methods_layer3", "app_agreement.methods_layer4",
    ]
    assert "app_agreement" not in groups
    schema = photos.get_field_schema(flat=True)
    assert {f"{res.fields[0]}.{a}" for a in ("peak", "centroid_x", "target_label")} <= set(schema)
    assert not [f for g, paths in groups.items() if g != "cam: app" for f in paths if f in res.fields]
    assert photos.app_config.color_scheme.color_by == "value"


def test_execute_operator_on_a_view_and_on_selected_samples(photos, registered):
    base = {"model_source": "registered", "model": "tiny-resnet", "methods": ["eigencam"]}
    foo.execute_operator(uri("compute_cams"), ctx={"view": photos.skip(2), "params": dict(base, run_key="v")})
    assert sorted(photos.exists("v_eigencam_layer4").values("id")) == sorted(photos.skip(2).values("id"))

    chosen = [photos.first().id]
    foo.execute_operator(
        uri("compute_cams"),
        ctx={"dataset": photos, "selected": chosen, "params": dict(base, run_key="s", view_target="SELECTED_SAMPLES")},
    )
    assert photos.exists("s_eigencam_layer4").values("id") == chosen
    # layers=None in a Python call: the model's suggested layer
    assert photos.get_run_info("s").config.layers == ["layer4"]


def test_immediate_run_streams_progress_then_reloads_and_says_what_was_skipped(photos, registered, image_dir):
    photos.add_sample(fo.Sample(filepath=image_dir["missing"]))
    photos.add_sample(fo.Sample(filepath=image_dir["notanimage"]))
    op = foo.OperatorRegistry().get_operator(uri("compute_cams"))
    params = {"model_source": "registered", "model": "tiny-resnet", "methods": ["gradcam"], "run_key": "stream",
              "batch_size": 2}
    ctx = ExecutionContext(request_params={"dataset_name": photos.name, "params": params}, executor=Executor())
    messages = [m.body for m in op.execute(ctx)]
    names = [m.operator_uri for m in messages]
    progress = [m.params["progress"] for m in messages if m.operator_uri == "set_progress"]
    assert progress[0] == 0.0 and progress[-1] == 1.0 and len(progress) >= 4
    assert progress == sorted(progress)
    assert names[-5:] == ["reload_dataset", "set_color_scheme", "set_active_fields", "notify", "show_output"]
    assert messages[-4].params == {"color_by": "value"}
    assert messages[-3].params["fields"] == ["stream_gradcam_layer4"]
    note = messages[-2].params
    assert note["variant"] == "warning"
    assert note["message"] == (
        "CAM run 'stream': 4 sample(s) got 1 map(s) each; 2 skipped (1 file not found, 1 cannot read image)"
    )


def test_immediate_run_reports_its_steps_before_the_first_batch_and_keeps_its_summary(photos, registered):
    """The App hears from the run from its start (the model, the run declared),
    then batch by batch; the summary is shown in an output dialog (which stays
    until closed), the same output a delegated run's result gets."""
    op = foo.OperatorRegistry().get_operator(uri("compute_cams"))
    params = {"model_source": "registered", "model": "tiny-resnet", "methods": ["gradcam"], "run_key": "steps",
              "batch_size": 2}
    ctx = ExecutionContext(request_params={"dataset_name": photos.name, "params": params}, executor=Executor())
    stream = op.execute(ctx)
    first = next(stream).body
    # the first message comes before anything is loaded or recorded
    assert first.operator_uri == "set_progress" and first.params["progress"] == 0.0
    assert first.params["label"] == "Loading and probing model 'tiny-resnet'"
    photos.reload()
    assert "steps" not in photos.list_runs()
    messages = [first] + [m.body for m in stream]
    labels = [m.params["label"] for m in messages if m.operator_uri == "set_progress"]
    labels = [re.sub(r" \(\d+ s\)$", "", text) for text in labels]  # the repeats of a long step
    steps = list(dict.fromkeys(labels))
    assert steps == [
        "Loading and probing model 'tiny-resnet'",
        "Declaring run 'steps' (4 samples), then computing its first batch of 2",
        *(["0 / 4 samples, computing batch 1 of 2"] if "0 / 4 samples, computing batch 1 of 2" in steps else []),
        "2 / 4 samples, computing batch 2 of 2",
        "4 / 4 samples",
    ]
    shown = messages[-1]
    assert shown.operator_uri == "show_output"
    message = "CAM run 'steps': 4 sample(s) got 1 map(s) each; none skipped"
    assert shown.params["results"] == {"message": message}
    # the output a delegated run's result gets, for the same summary
    out_ctx = ExecutionContext(request_params={"dataset_name": photos.name, "params": params,
                                               "results": {"message": message}}, executor=Executor())
    assert shown.params["outputs"] == op.resolve_output(out_ctx).to_json()
    assert shown.params["outputs"]["view"]["label"] == "Class activation maps computed"


def test_streamed_progress_repeats_a_long_step_with_its_elapsed_time(monkeypatch):
    """A step that takes long (a first batch, a slow model load) is repeated
    to the App every TICK seconds, so its progress dialog never sits silent."""
    import importlib.util

    # the plugin's module, loaded on its own (FiftyOne loads the plugin under a made-up name)
    spec = importlib.util.spec_from_file_location("cam_plugin_progress", os.path.join(REPO, "operators", "progress.py"))
    progress_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(progress_module)
    monkeypatch.setattr(progress_module, "TICK", 0.2)

    class Bar:  # what FiftyOne hands a progress callback
        iteration, total, progress = 3, 3, 1.0

    def work(reporter):
        reporter.step("Warming up")
        time.sleep(0.9)
        reporter(Bar())
        return "result"

    ctx = ExecutionContext(request_params={"params": {}}, executor=Executor())
    stream = progress_module.run(ctx, work, 3)
    labels = []
    try:
        while True:
            labels.append(next(stream).body.params["label"])
    except StopIteration as stop:
        assert stop.value == "result"
    assert labels[0] == "0 / 3 samples" and labels[1] == "Warming up" and labels[-1] == "3 / 3 samples"
    repeats = labels[2:-1]
    assert len(repeats) >= 3 and all(re.fullmatch(r"Warming up \(\d+ s\)", r) for r in repeats), labels


def test_delegated_run_is_executed_by_a_worker_process(photos, registered, plugins_dir):
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionRunState

    photos.persistent = True  # the worker is another process
    queued = compute(photos, methods=["gradcam", "eigencam"], run_key="queued", delegate=True)
    op_id = queued.result["id"]
    assert "queued" not in photos.list_runs()
    assert "queued_gradcam_layer4" not in photos.get_field_schema()

    dos = DelegatedOperationService()
    assert dos.get(op_id).run_state == ExecutionRunState.QUEUED
    log = run_worker(plugins_dir, op_id)
    doc = dos.get(op_id)
    assert doc.run_state == ExecutionRunState.COMPLETED, (doc.result and doc.result.error, open(log).read())
    assert doc.status.progress == 1.0 and doc.status.label == "4 / 4 samples"
    summary = doc.result.result
    assert summary["num_samples"] == 4 and summary["num_skipped"] == 0
    assert summary["fields"] == ["queued_gradcam_layer3", "queued_gradcam_layer4",
                                 "queued_eigencam_layer3", "queued_eigencam_layer4"]

    photos.reload()
    assert photos.get_run_info("queued").config.model == "tiny-resnet"
    for field in summary["fields"]:
        maps = photos.values(field)
        assert all(m is not None and os.path.isfile(m.map_path) for m in maps)
    assert "cam: queued" in [g.name for g in photos.app_config.sidebar_groups]


def run_worker(plugins_dir, op_id, timeout=240):
    """Runs a real ``fiftyone delegated launch`` worker until the operation
    ``op_id`` has completed or failed (at most ``timeout`` seconds), then stops it.

    Returns:
        the path of the worker's log
    """
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionRunState

    dos = DelegatedOperationService()
    fiftyone_cli = os.path.join(os.path.dirname(sys.executable), "fiftyone")
    log = tempfile.NamedTemporaryFile(prefix="cam-worker-", suffix=".log", delete=False)
    worker = subprocess.Popen([fiftyone_cli, "delegated", "launch"], env=plugin_env(plugins_dir),
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if dos.get(op_id).run_state in (ExecutionRunState.COMPLETED, ExecutionRunState.FAILED):
                break
            assert worker.poll() is None, open(log.name).read()
            time.sleep(1)
    finally:
        worker.send_signal(signal.SIGINT)  # the worker's own way out (KeyboardInterrupt)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    return log.name


def _form(dataset, params):
    """The compute_cams form as the App receives it for these parameters."""
    from fiftyone.operators.executor import resolve_type

    request = {"dataset_name": dataset.name, "params": params, "target": "inputs"}
    prop = asyncio.run(resolve_type(foo.OperatorRegistry(), uri("compute_cams"), request))
    return prop.type.properties


@pytest.mark.parametrize(
    "bad, field, message",
    [
        ({"run_key": "bad key!"}, "run_key", "run_key must be a valid Python identifier (letters, digits, underscores); got 'bad key!'"),
        ({"layers": []}, "layers", "choose at least one layer (suggested: layer4)"),
        ({"layers": ["layer9"]}, "layers", "unknown layer 'layer9': the model has no module at that path. Closest layers: layer"),
        ({"methods": []}, "methods", "choose at least one method"),
        ({"target": "label_field", "label_field": "objects"}, "label_field",
         "target field 'objects' holds Detections; a classification model needs an Classification field: ground_truth"),
        ({"target": "class", "target_class": "dog"}, "target_class", "class 'dog' is not one of the model's 4 classes"),
    ],
)
def test_the_form_refuses_bad_input_before_execution(photos, registered, bad, field, message):
    params = {"model_source": "registered", "model": "tiny-resnet", "methods": ["gradcam"], "run_key": "ok"}
    params.update(bad)
    props = _form(photos, params)
    invalid = {n: p.error_message for n, p in props.items() if p.invalid}
    assert list(invalid) == [field]
    assert invalid[field].startswith(message)
    with pytest.raises(ExecutionError, match=f"Path: {field}"):
        foo.execute_operator(uri("compute_cams"), ctx={"dataset": photos, "params": params})
    assert photos.list_runs() == []
    assert not [f for f in photos.get_field_schema() if f.startswith("ok_")]


def test_the_form_offers_only_matching_fields_and_existing_runs(photos, registered):
    props = _form(photos, {"model_source": "registered", "model": "tiny-resnet", "target": "label_field"})
    assert [c.value for c in props["label_field"].view.choices] == ["ground_truth"]
    layers = props["layers"]
    assert layers.default == ["layer4"]
    assert "layer3" in [c.value for c in layers.view.choices] and "fc" not in [c.value for c in layers.view.choices]
    labels = {c.value: c.label for c in props["methods"].view.choices}
    assert "costly" in labels["scorecam"] and "costly" in labels["ablationcam"] and "costly" not in labels["gradcam"]
    assert props["device"].view.values() == ["auto", "cpu"] + (["cuda"] if __import__("torch").cuda.is_available() else [])

    compute(photos, methods=["gradcam"], run_key="cam")
    props = _form(photos, {"model_source": "registered", "model": "tiny-resnet", "run_key": "cam"})
    assert props["run_key"].invalid and "already exists" in props["run_key"].error_message
    assert props["existing_run"].view.values() == ["overwrite", "continue"]
    props = _form(photos, {"model_source": "registered", "model": "tiny-resnet", "run_key": "cam",
                           "existing_run": "overwrite"})
    assert not [n for n, p in props.items() if p.invalid]
    # a new form proposes a free key
    assert _form(photos, {"model_source": "registered", "model": "tiny-resnet"})["run_key"].default == "cam_2"


def test_the_layer_picker_offers_suggested_then_stage_layers_and_keeps_typed_names(photos, registered):
    props = _form(photos, {"model_source": "registered", "model": "tiny-resnet"})
    view = props["layers"].view
    offered = [c.value for c in view.choices]
    forward = [info.name for info in cam_core.candidate_layers(tiny_resnet())]
    # 40: the batch norms whose output an in-place ReLU or addition changes are not layers
    assert sorted(offered) == sorted(forward) and len(offered) == 40
    # the suggested layer, then the model's stages (forward order), then what is inside them
    assert offered[:7] == ["layer4", "conv1", "relu", "maxpool", "layer1", "layer2", "layer3"]
    assert offered.index("layer3.0") < offered.index("layer3.0.conv1")
    # the App filters the labels as the user types, in this order: the stage first
    typed = [c.value for c in view.choices if "layer3" in c.label]
    assert typed[0] == "layer3" and len(typed) == 10
    assert view.choices[0].label == "layer4 [512x2x2] (suggested)"
    # a typed name reaches the form (the App drops it unless user input is allowed) ...
    assert view.to_json()["allow_user_input"] is True
    # ... where an unknown one is refused, naming the closest layers
    params = {"model_source": "registered", "model": "tiny-resnet", "methods": ["gradcam"], "run_key": "ok",
              "layers": ["layer4", "layer33"]}
    layers = _form(photos, params)["layers"]
    assert layers.invalid
    assert layers.error_message.startswith("unknown layer 'layer33': the model has no module at that path. "
                                           "Closest layers: layer3")


def test_delegation_is_preselected_for_costly_methods(photos, registered):
    from fiftyone.operators.executor import resolve_execution_options

    def preselected(methods):
        request = {"dataset_name": photos.name,
                   "params": {"model_source": "registered", "model": "tiny-resnet", "methods": methods}}
        options = asyncio.run(resolve_execution_options(foo.OperatorRegistry(), uri("compute_cams"), request))
        assert options.allow_immediate_execution and options.allow_delegated_execution
        return options.default_choice_to_delegated

    assert preselected(["gradcam"]) is False  # four samples, one cheap method
    assert preselected(["gradcam", "scorecam"]) is True
    photos.add_samples([fo.Sample(filepath=photos.first().filepath) for _ in range(97)])  # 101 samples
    assert preselected(["gradcam"]) is True


def test_overwrite_and_run_management(photos, registered):
    compute(photos, methods=["gradcam", "eigencam"], run_key="m")
    with pytest.raises(ExecutionError, match="already exists"):
        compute(photos, methods=["gradcam"], run_key="m")
    res = compute(photos, methods=["gradcam", "eigencam"], run_key="m", overwrite=True)
    files = [m.map_path for f in res.fields for m in photos.values(f)]
    assert len(files) == 16 and all(os.path.isfile(p) for p in files)

    runs = foo.get_operator(uri("list_cam_runs"))(photos)
    assert [r["run_key"] for r in runs] == ["m"]
    assert runs[0]["methods"] == ["gradcam", "eigencam"] and runs[0]["layers"] == ["layer3", "layer4"]
    assert runs[0]["num_samples"] == 4 and runs[0]["model"] == "tiny-resnet"

    info = foo.get_operator(uri("get_cam_run"))(photos, "m")
    assert sorted(info["fields"]) == sorted(res.fields) and info["storage"] == "png"
    assert info["num_classes"] == 4 and info["num_skipped"] == 0

    out = foo.get_operator(uri("delete_cam_run"))(photos, "m")
    assert out["run_key"] == "m"
    schema = photos.get_field_schema()
    assert not [f for f in schema if f.startswith("m_")]
    assert not any(os.path.exists(p) for p in files)
    assert photos.list_runs() == []
    assert "cam: m" not in [g.name for g in photos.app_config.sidebar_groups]
    assert out["deleted_fields"] == res.fields + ["m_agreement"]


def _delete_from_the_app(dataset, run_key, **app_state):
    """Runs delete_cam_run as the App does, with the App's view / filters /
    saved view name, and then each execution of itself it triggers, as the
    App's queue does; returns the App operations asked for: ``[(name, params)]``."""
    op = foo.OperatorRegistry().get_operator(uri("delete_cam_run"))
    op.execute.__globals__["WAIT_SECONDS"] = 0.0  # no App to wait for
    request = dict(app_state, dataset_name=dataset.name)
    todo, ops = [{"run_key": run_key}], []
    while todo:
        ctx = ExecutionContext(request_params=dict(request, params=todo.pop(0)), executor=Executor())
        assert op.resolve_input(ctx) is not None  # what the App checks first
        op.execute(ctx)
        for r in ctx.executor._requests:
            if r.operator_uri == op.uri:
                todo.append(r.params)
            else:
                ops.append((r.operator_uri, r.params))
    return ops


def _stages(view):
    """A view's stages as the App sends them (JSON)."""
    import json

    from bson import json_util

    return json.loads(json_util.dumps(view._serialize()))


def test_deleting_the_run_of_the_loaded_view_resets_the_apps_view_filters_and_sidebar(photos, registered):
    compute(photos, methods=["gradcam"], layers=["layer4"], run_key="m")
    compute(photos, methods=["gradcam"], layers=["layer4"], run_key="other")
    # the App shows m's samples sorted by a score (as sort_by_cam_score opens them),
    # after a stage of the user's own, with a sidebar filter on m's score and one on the labels
    sorted_view = cam_core.sort_by_score(photos.exists("ground_truth"), "m", "peak")
    sent = _stages(sorted_view)
    assert sent[0]["_cls"] == "fiftyone.core.stages.Exists" and len(sent) > 1
    filters = {"m_gradcam_layer4.peak": {"range": [0.0, 1.0], "_CLS": "numeric", "exclude": False, "isMatching": False},
               "ground_truth.label": {"values": ["cat"], "exclude": False, "isMatching": False}}
    ops = _delete_from_the_app(photos, "m", view=sent, filters=filters,
                               active_fields=["tags", "m_gradcam_layer4", "ground_truth"])
    # the App leaves the dataset and opens it again (so that it reads the sidebar
    # groups again: the run's is gone); the stages on m's fields are dropped, the
    # user's stage kept (as sent); the filter on m is dropped, the other kept; the
    # shown fields but m's shown again
    assert [name for name, _ in ops] == ["open_dataset", "open_dataset", "set_view", "set_filters",
                                         "set_active_fields", "notify"]
    assert ops[0][1] == {"dataset": None} and ops[1][1] == {"dataset": photos.name}
    assert ops[2][1]["view"] == sent[:1]
    assert ops[3][1] == {"ground_truth.label": filters["ground_truth.label"]}
    assert ops[4][1] == {"fields": ["tags", "ground_truth"]}
    assert ops[5][1]["message"] == "CAM run 'm' deleted: 1 field(s)"
    photos.reload()
    assert "m" not in photos.list_runs() and "cam: m" not in [g.name for g in photos.app_config.sidebar_groups]

    # a saved view of the run, loaded by its name: back to the dataset's samples
    cam_core.sort_by_score(photos, "other", "peak", view_name="other-sorted")
    ops = _delete_from_the_app(photos, "other", view=[], view_name="other-sorted",
                               filters={"other_gradcam_layer4.peak": filters["m_gradcam_layer4.peak"]})
    assert [name for name, _ in ops] == ["open_dataset", "open_dataset", "clear_sidebar_filters", "set_active_fields",
                                         "notify"]

    # a view that does not use the run is restored as it was, a saved one by its name
    compute(photos, methods=["gradcam"], layers=["layer4"], run_key="m")
    sent = _stages(photos.limit(2))
    ops = _delete_from_the_app(photos, "m", view=sent, filters={})
    assert [name for name, _ in ops] == ["open_dataset", "open_dataset", "set_view", "set_active_fields", "notify"]
    assert ops[2][1]["view"] == sent
    photos.save_view("two", photos.limit(2))
    compute(photos, methods=["gradcam"], layers=["layer4"], run_key="m")
    ops = _delete_from_the_app(photos, "m", view=[], view_name="two", filters={})
    assert ops[2] == ("set_view", {"name": "two"})

    # from Python: the result, and nothing for an App
    compute(photos, methods=["gradcam"], layers=["layer4"], run_key="m")
    out = foo.get_operator(uri("delete_cam_run"))(photos, "m")
    assert out == {"run_key": "m", "deleted_fields": ["m_gradcam_layer4"]}


def test_list_cam_runs_shows_lists_and_times_readably_in_the_app(photos, registered):
    compute(photos, methods=["gradcam", "layercam"], layers=["layer4", "layer3"], run_key="m")
    operator = foo.OperatorRegistry().get_operator(uri("list_cam_runs"))
    ctx = ExecutionContext(request_params={"dataset_name": photos.name, "params": {}}, executor=Executor())
    out = operator.execute(ctx)
    # the App's table: its columns, each a cell of text
    table = operator.resolve_output(ctx).type.properties["table"].view
    assert [c.key for c in table.columns] == ["run_key", "model", "methods", "layers", "target", "state",
                                              "num_samples", "num_skipped", "timestamp"]
    assert table.columns[-1].label == "When (UTC)"
    row, = out["table"]
    assert row["methods"] == "gradcam, layercam" and row["layers"] == "layer4, layer3"
    assert row["state"] == "complete" and row["num_samples"] == 4
    started = photos.get_run_info("m").timestamp  # UTC
    assert row["timestamp"] == started.strftime("%Y-%m-%d %H:%M")
    # Python callers keep the lists and the full time
    info, = out["runs"]
    assert info["methods"] == ["gradcam", "layercam"] and info["timestamp"] == started.isoformat()


def test_a_model_registered_in_this_process_only_is_refused_for_delegation(photos, plugins_dir):
    tiny = tiny_resnet()
    cam_core.register_model("here-only", tiny.module, transforms=tiny.transforms, classes=tiny.classes)
    op = foo.get_operator(uri("compute_cams"))
    with pytest.raises(ExecutionError, match="in this process only: delegated workers cannot build it"):
        op(photos, "here-only", methods=["eigencam"], run_key="d", delegate=True)
    assert "d" not in photos.list_runs()
    assert op(photos, "here-only", methods=["eigencam"], run_key="h").num_samples == 4  # run here, it works


def test_library_model_with_random_weights(photos, plugins_dir):
    op = foo.get_operator(uri("compute_cams"))
    res = op(photos.limit(1), "torchvision:resnet18", pretrained=False, methods=["eigencam"], run_key="tv")
    assert res.num_samples == 1
    config = photos.get_run_info("tv").config
    assert config.model == "torchvision:resnet18" and config.model_kwargs == {"weights": None}
    assert config.layers == ["layer4"]


def test_random_weights_are_the_same_at_every_load(plugins_dir):
    """A library model with random weights is the same model in every App
    server start and worker: its maps can be compared and reproduced."""
    import torch

    # the plugin's own models module, as the App server loads it
    operator = foo.OperatorRegistry().get_operator(uri("compute_cams"))
    models = sys.modules[type(operator).__module__].models
    weights = []
    for seed in (1, 2):  # whatever the process's random state was
        models._cache.clear()  # a fresh process
        torch.manual_seed(seed)
        state = torch.random.get_rng_state()
        facts = models.describe("torchvision", "resnet18", pretrained=False)
        weights.append(facts.model.module.conv1.weight.detach().clone())
        assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random state is left alone
    models._cache.clear()
    assert torch.equal(weights[0], weights[1])


def test_registration_refuses_what_workers_could_not_build(plugins_dir):
    op = foo.get_operator(uri("register_cam_model"))
    with pytest.raises(ExecutionError, match="cannot import module 'no_such_module'"):
        op("broken", "no_such_module:build")
    with pytest.raises(ExecutionError, match="has no attribute 'nothing'"):
        op("broken", "test_operators:nothing")
    with pytest.raises(ExecutionError, match="':' marks library models"):
        op("torchvision:resnet18", "test_operators:tiny_resnet")
    from fiftyone.operators.store import ExecutionStore

    assert not ExecutionStore.create("fiftyone_cam_models").has("broken")
    with pytest.raises(ExecutionError, match="Path: kwargs"):
        foo.execute_operator(uri("register_cam_model"),
                             params={"name": "broken", "factory": "test_operators:tiny_resnet", "kwargs": "[1, 2]"})
    out = op("tiny-again", "test_operators:tiny_resnet")
    assert out["suggested"] == ["layer4"] and not out["segmenter"]
    with pytest.raises(ExecutionError, match="already registered"):
        op("tiny-again", "test_operators:tiny_resnet")
    assert foo.get_operator(uri("unregister_cam_model"))("tiny-again")["removed"] is True


def _plugin_archive(folder):
    """The plugin as GitHub serves a repository archive: one top folder."""
    path = os.path.join(folder, "fiftyone-cam-main.zip")
    with zipfile.ZipFile(path, "w") as z:
        for top in ["fiftyone.yml", "__init__.py", "requirements.txt", "README.md", "operators", "cam_core"]:
            full = os.path.join(REPO, top)
            walk = [(full, [], [])] if os.path.isfile(full) else os.walk(full)
            for root, dirs, files in walk:
                dirs[:] = [d for d in dirs if d != "__pycache__"]
                for name in files or [None]:
                    src = root if name is None else os.path.join(root, name)
                    if os.path.isfile(src):
                        z.write(src, os.path.join("fiftyone-cam-main", os.path.relpath(src, REPO)))
    return path


def test_plugin_installs_with_fiftyone_plugins_download(photos, registered):
    """``fiftyone plugins download`` of an archive; the installed copy works in a
    process where cam_core is not pip-installed (the plugin finds its own)."""
    served = tempfile.mkdtemp(prefix="cam-archive-")
    _plugin_archive(served)
    handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(*a, directory=served, **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    installed = tempfile.mkdtemp(prefix="cam-installed-")
    env = plugin_env(installed)
    cli = os.path.join(os.path.dirname(sys.executable), "fiftyone")
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/fiftyone-cam-main.zip"
        out = subprocess.run([cli, "plugins", "download", url], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
    finally:
        server.shutdown()
        server.server_close()
    copies = [root for root, _, files in os.walk(installed) if "fiftyone.yml" in files]
    assert len(copies) == 1 and os.path.isfile(os.path.join(copies[0], "cam_core", "compute", "api.py"))
    reqs = subprocess.run([cli, "plugins", "requirements", PLUGIN, "--print"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert reqs.returncode == 0 and "grad-cam" in reqs.stdout, reqs.stdout + reqs.stderr

    photos.persistent = True
    script = f"""
import sys
# as if cam_core had never been pip-installed: drop the editable install's finder
sys.meta_path = [f for f in sys.meta_path if "editable" not in type(f).__module__ and "editable" not in getattr(f, "__module__", "")]
import importlib.util
assert importlib.util.find_spec("cam_core") is None
import fiftyone as fo, fiftyone.operators as foo
assert foo.OperatorRegistry().list_errors() == []
ds = fo.load_dataset({photos.name!r})
res = foo.get_operator("{uri('compute_cams')}")(ds.limit(1), "tiny-resnet", methods=["eigencam"], run_key="installed")
import cam_core
print(res.num_samples, cam_core.__file__)
"""
    # run from elsewhere: the current directory would put this checkout's cam_core on sys.path
    run = subprocess.run([sys.executable, "-c", script], env=env, cwd=installed, capture_output=True, text=True,
                         timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    count, where = run.stdout.strip().splitlines()[-1].split(" ", 1)
    assert count == "1" and where.startswith(os.path.realpath(installed))
