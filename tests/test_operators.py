"""The plugin's operators, called the way Python users, the App and delegated workers call them:
the plugin registers every operator it lists, an immediate run stores what
compute_cams stores (on a view, on selected samples), a delegated run is
executed by a worker, and the plugin installs with ``fiftyone plugins download``.

A private mongod (conftest), the real ResNet-18 architecture with random
weights (64 px inputs: ``tiny_resnet``, the factory every operator test
registers), real photographs written as files (the fixtures are in
tests/plugin.py). Delegated runs are executed by a ``fiftyone delegated launch``
process that knows the model only through its registration in the database.
"""
import http.server
import os
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

import numpy as np
import yaml

import fiftyone.operators as foo

import cam_core
# the plugin's fixtures and helpers, also imported from here by other test modules
from plugin import PLUGIN, REPO, compute, photos, plugin_env, plugins_dir, registered, run_worker, uri  # noqa: F401 (fixtures)


CLASSES = ["astronaut", "cat", "coffee", "rocket"]


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

    # the App shows the run's maps together (then their agreement, in a group
    # of its own), coloured by value, with their scores declared (sidebar filters)
    groups = {g.name: g.paths for g in photos.app_config.sidebar_groups}
    assert groups["cam: app"] == res.fields + [f"{f}.empty" for f in res.fields]  # maps, then their empty flags
    assert groups["app_agreement"] == [
        "app_agreement.layers_gradcam", "app_agreement.layers_gradcamplusplus",
        "app_agreement.methods_layer3", "app_agreement.methods_layer4",
    ]
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
