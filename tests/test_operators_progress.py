"""What compute_cams tells the App while it runs: progress streamed from the
first step (the model loaded, the run declared) to the last batch, the App
reloaded and told what was skipped, a long step repeated with its elapsed
time, and the run's summary kept in an output dialog.

The setup of test_operators (tests/plugin.py): a private mongod, ``tiny-resnet``
registered through the operator, four photos.
"""
import os
import re
import time

import fiftyone as fo
import fiftyone.operators as foo
from fiftyone.operators.executor import ExecutionContext, Executor

from plugin import REPO, photos, plugins_dir, registered, uri  # noqa: F401 (fixtures)


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
