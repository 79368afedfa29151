"""What a user of the App can make the server (and every worker) do, and what not.

A private mongod (conftest), real processes: registrations that would run a
command (``os:system`` writing a marker file) are refused through Python,
the operator, its form and its execute; a registration written straight
into the database is refused by another Python process and by a real
``fiftyone delegated launch`` worker; an output directory outside the
allowed root is refused. The tests allow ``test_operators``, ``models`` and
``no_such_module`` (conftest's ``FIFTYONE_CAM_FACTORY_MODULES``); ``os`` is
never allowed.
"""
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from os import system  # noqa: F401 (re-exported on purpose: `test_security:system` must be refused)

import pytest

import fiftyone as fo
import fiftyone.operators as foo
from fiftyone.operators.executor import ExecutionContext, ExecutionError, Executor

import cam_core
from cam_core.models import allowlist
from test_operators import photos, plugin_env, plugins_dir, registered, run_worker, tiny_resnet, uri  # noqa: F401 (fixtures)

TESTS = os.path.dirname(os.path.abspath(__file__))
STORE = "fiftyone_cam_models"
ENV = "FIFTYONE_CAM_FACTORY_MODULES"


@pytest.fixture
def marker(tmp_path):
    """A file that exists only if a refused factory ran anyway."""
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "a refused factory ran"


def _store():
    from fiftyone.operators.store import ExecutionStore

    return ExecutionStore.create(STORE)


def _poison(name, factory, kwargs):
    """Writes a registration straight into the database, as anyone with
    database access (or an older, unchecked version) could."""
    _store().set(name, {"factory": factory, "kwargs": kwargs})


def _resolve_inputs(operator, params, dataset=None):
    """An operator's form as the App receives it for these parameters."""
    from fiftyone.operators.executor import resolve_type

    request = {"params": params, "target": "inputs"}
    if dataset is not None:
        request["dataset_name"] = dataset.name
    prop = asyncio.run(resolve_type(foo.OperatorRegistry(), uri(operator), request))
    return prop.type.properties


def test_prefixes_allow_a_module_and_its_submodules_only():
    prefixes = allowlist.parse(" my_models, lab.cams ,,not a name, ../x")
    assert prefixes == ("my_models", "lab.cams")
    assert allowlist.is_allowed("my_models", prefixes) and allowlist.is_allowed("my_models.sub.deep", prefixes)
    assert allowlist.is_allowed("lab.cams.birds", prefixes)
    assert not allowlist.is_allowed("my_models_evil", prefixes)
    assert not allowlist.is_allowed("lab", prefixes) and not allowlist.is_allowed("lab.camsx", prefixes)
    assert not allowlist.is_allowed("os", prefixes) and not allowlist.is_allowed(None, prefixes)
    assert allowlist.is_allowed("models") and not allowlist.is_allowed("os")  # conftest's environment


def test_registering_os_system_from_python_runs_nothing(marker):
    command = {"command": f"touch {marker}"}
    with pytest.raises(cam_core.CamArgumentError,
                       match=r"module 'os' is not an allowed factory module .*FIFTYONE_CAM_FACTORY_MODULES=os") as e:
        cam_core.register_factory("x", "os:system", kwargs=command)
    assert e.value.param == "factory"
    # an allowed module does not lend its imports: modules, re-exports, private names
    with pytest.raises(cam_core.CamArgumentError, match="'os' is a module"):
        cam_core.register_factory("x", "test_operators:os.system", kwargs=command)
    with pytest.raises(cam_core.CamArgumentError, match="'subprocess' is a module"):
        cam_core.register_factory("x", "test_operators:subprocess.run", kwargs={"args": ["touch", str(marker)]})
    with cam_core.checks.allow_factory_modules("test_security") as now:
        assert "test_security" in now and "test_security" in cam_core.checks.allowed_factory_modules()
        with pytest.raises(cam_core.CamArgumentError, match="defined in module 'posix', not in an allowed module"):
            cam_core.register_factory("x", "test_security:system", kwargs=command)
    assert "test_security" not in cam_core.checks.allowed_factory_modules()  # the block's prefixes end with it
    with pytest.raises(cam_core.CamArgumentError, match="'__builtins__' is not a public name"):
        cam_core.register_factory("x", "models:__builtins__.exec", kwargs={"source": "open('x', 'w')"})
    with pytest.raises(cam_core.CamArgumentError, match="module 'os' is not an allowed factory module"):
        cam_core.checks.resolve_factory("os:system")
    assert cam_core.checks.resolve_factory("os:system", trusted=True) is os.system  # a Python user's own choice
    assert "x" not in cam_core.checks.registered_factories()
    assert not marker.exists()


@pytest.mark.parametrize("kwargs", [
    {"size": (64, 64)}, {1: "a"}, {"size": float("nan")}, {"f": object()}, {"f": {1, 2}}, [("size", 64)],
])
def test_keyword_arguments_are_plain_json_values(kwargs):
    with pytest.raises(cam_core.CamArgumentError) as e:
        cam_core.register_factory("x", "models:resnet18", kwargs=kwargs)
    assert e.value.param == "kwargs"
    assert "x" not in cam_core.checks.registered_factories()
    assert cam_core.checks.check_kwargs({"a": [1, 2.5, None, True, {"b": "c"}]}) == {"a": [1, 2.5, None, True, {"b": "c"}]}


def test_the_operator_its_form_and_its_execute_run_nothing(plugins_dir, marker):
    kwargs = {"command": f"touch {marker}"}
    op = foo.get_operator(uri("register_cam_model"))
    with pytest.raises(ExecutionError, match=r"Path: factory.*module 'os' is not an allowed factory module"):
        op("x", "os:system", kwargs=kwargs)

    props = _resolve_inputs("register_cam_model", {"name": "x", "factory": "os:system", "kwargs": json.dumps(kwargs)})
    invalid = {n: p.error_message for n, p in props.items() if p.invalid}
    assert list(invalid) == ["factory"]
    assert "set the environment variable FIFTYONE_CAM_FACTORY_MODULES" in invalid["factory"]

    # execute checks on its own: it may be reached without the form
    real = foo.OperatorRegistry().get_operator(uri("register_cam_model"))
    ctx = ExecutionContext(request_params={"params": {"name": "x", "factory": "os:system", "kwargs": json.dumps(kwargs)}},
                           executor=Executor())
    with pytest.raises(cam_core.CamArgumentError, match="module 'os' is not an allowed factory module"):
        real.execute(ctx)
    assert "x" not in cam_core.checks.registered_factories()
    assert not marker.exists()


def test_with_no_allowlist_the_app_cannot_register_and_says_how_to_allow(plugins_dir, monkeypatch):
    monkeypatch.delenv(ENV)
    op = foo.get_operator(uri("register_cam_model"))
    with pytest.raises(ExecutionError, match=r"allowed here: none is set\). .*FIFTYONE_CAM_FACTORY_MODULES=test_operators"):
        op("x", "test_operators:tiny_resnet")
    with pytest.raises(cam_core.CamArgumentError, match="none is set"):
        cam_core.register_factory("x", "test_operators:tiny_resnet")
    assert "x" not in cam_core.checks.registered_factories()
    # a Python user allows modules for their own process
    with cam_core.checks.allow_factory_modules("test_operators"):
        assert cam_core.register_factory("x", "test_operators:tiny_resnet").default_layers == ["layer4"]
    try:
        with pytest.raises(cam_core.CamArgumentError, match="model 'x' cannot be built in this process"):
            cam_core.checks.build_factory("x")  # stored, but this process (outside the block) refuses it
    finally:
        cam_core.unregister_factory("x")


def test_a_poisoned_registration_is_refused_by_another_process(photos, marker):
    photos.persistent = True  # the other process loads it
    _poison("poisoned", "os:system", {"command": f"touch {marker}"})
    _poison("through-allowed", "test_operators:subprocess.run", {"args": ["touch", str(marker)]})
    code = (
        "import sys, fiftyone as fo, cam_core\n"
        f"ds = fo.load_dataset({photos.name!r})\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        cam_core.compute_cams(ds, name, methods='gradcam', run_key='p')\n"
        "    except cam_core.CamArgumentError as e:\n"
        "        print(name, e.param, e.message)\n"
        "    else:\n"
        "        print(name, 'RAN')\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")]))
    try:
        out = subprocess.run([sys.executable, "-c", code, "poisoned", "through-allowed"], capture_output=True,
                             text=True, env=env, timeout=300)
    finally:
        _store().delete("poisoned")
        _store().delete("through-allowed")
    assert out.returncode == 0, out.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in out.stdout.strip().splitlines()[-2:])
    assert lines["poisoned"].startswith(
        "model model 'poisoned' cannot be built in this process: factory 'os:system' is refused: "
        "module 'os' is not an allowed factory module")
    assert "FIFTYONE_CAM_FACTORY_MODULES" in lines["poisoned"]
    assert lines["through-allowed"].startswith("model model 'through-allowed' cannot be built")
    assert "'subprocess' is a module" in lines["through-allowed"]
    photos.reload()
    assert "p" not in photos.list_runs()
    assert not marker.exists()


def test_a_poisoned_registration_fails_the_delegated_job(photos, plugins_dir, marker):
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionRunState

    photos.persistent = True  # the worker is another process
    cam_core.register_factory("to-poison", "test_operators:tiny_resnet", overwrite=True)
    try:
        # queued while the registration is sound (the form refuses a poisoned
        # one), then replaced before a worker picks the run up
        queued = foo.get_operator(uri("compute_cams"))(photos, "to-poison", methods=["gradcam"], layers=["layer4"],
                                                       run_key="victim", delegate=True)
        op_id = queued.result["id"]
        _poison("to-poison", "os:system", {"command": f"touch {marker}"})

        dos = DelegatedOperationService()
        assert dos.get(op_id).run_state == ExecutionRunState.QUEUED
        log = run_worker(plugins_dir, op_id)
    finally:
        cam_core.unregister_factory("to-poison")
    doc = dos.get(op_id)
    assert doc.run_state == ExecutionRunState.FAILED, open(log).read()
    error = doc.result.error
    assert "cannot load model 'to-poison'" in error
    assert "factory 'os:system' is refused: module 'os' is not an allowed factory module" in error
    assert "FIFTYONE_CAM_FACTORY_MODULES" in error
    photos.reload()
    assert "victim" not in photos.list_runs()
    assert not marker.exists()


def _maps_under(folder):
    return [os.path.join(r, f) for r, _, files in os.walk(folder) for f in files]


def test_output_dir_from_the_app_stays_under_the_root(photos, registered):
    root = os.path.realpath(fo.config.default_dataset_dir)
    outside = tempfile.mkdtemp(prefix="cam-outside-")
    os.makedirs(root, exist_ok=True)
    link = os.path.join(root, "link-out")
    os.symlink(outside, link)
    compute_cams = foo.get_operator(uri("compute_cams"))
    base = {"layers": ["layer4"], "methods": ["gradcam"], "run_key": "esc"}
    try:
        for escape in [outside, "/tmp/elsewhere", os.path.join(root, "..", "up"), "../up", "a/../../up",
                       link, os.path.join(link, "maps"), "link-out/maps"]:
            with pytest.raises(ExecutionError, match="Path: output_dir"):
                compute_cams(photos, "tiny-resnet", output_dir=escape, **base)
        props = _form_props(photos, {"output_dir": "link-out/maps"})
        invalid = {n: p.error_message for n, p in props.items() if p.invalid}
        assert list(invalid) == ["output_dir"] and "outside the allowed root" in invalid["output_dir"]
        assert f"resolves to '{os.path.join(outside, 'maps')}'" in invalid["output_dir"]

        # execute checks on its own (a queued run is executed without this process's form)
        op = foo.OperatorRegistry().get_operator(uri("compute_cams"))
        params = {"model_source": "registered", "model": "tiny-resnet", "methods": ["gradcam"], "layers": ["layer4"],
                  "run_key": "esc", "output_dir": "../up"}
        ctx = ExecutionContext(request_params={"dataset_name": photos.name, "params": params}, executor=Executor())
        with pytest.raises(cam_core.CamArgumentError, match="outside the allowed root"):
            op.execute(ctx)
        assert _maps_under(outside) == [] and not os.path.exists(os.path.join(os.path.dirname(root), "up"))
        assert "esc" not in photos.list_runs()

        # under the root: relative to it, or absolute
        res = compute_cams(photos, "tiny-resnet", output_dir="mine/maps", **base)
        paths = [m.map_path for m in photos.values(res.fields[0])]
        assert len(paths) == 4 and all(p.startswith(os.path.join(root, "mine", "maps") + os.sep) for p in paths)
        assert all(os.path.isfile(p) for p in paths)
        res = compute_cams(photos, "tiny-resnet", output_dir=os.path.join(root, "abs"), **dict(base, run_key="abs"))
        assert all(m.map_path.startswith(os.path.join(root, "abs") + os.sep) for m in photos.values(res.fields[0]))
    finally:
        os.unlink(link)
    # Python callers of the engine choose any folder, as before
    res = cam_core.compute_cams(photos.limit(1), tiny_resnet(), layers=["layer4"], methods="gradcam",
                                run_key="py", output_dir=outside)
    assert len([p for p in _maps_under(outside) if p.endswith(".png")]) == 1  # and the run's marker


def test_a_configured_output_root_replaces_the_dataset_dir(photos, registered, monkeypatch):
    other = os.path.realpath(tempfile.mkdtemp(prefix="cam-root-"))
    monkeypatch.setenv("FIFTYONE_CAM_OUTPUT_ROOT", other)
    compute_cams = foo.get_operator(uri("compute_cams"))
    base = {"layers": ["layer4"], "methods": ["gradcam"]}
    with pytest.raises(ExecutionError, match="Path: output_dir"):
        compute_cams(photos, "tiny-resnet", output_dir=os.path.join(fo.config.default_dataset_dir, "x"),
                     run_key="r1", **base)
    res = compute_cams(photos, "tiny-resnet", output_dir="here", run_key="r2", **base)
    assert all(m.map_path.startswith(os.path.join(other, "here") + os.sep) for m in photos.values(res.fields[0]))
    assert cam_core.checks.check_output_dir(None) is None  # the default folder stays the default


def _form_props(dataset, extra):
    params = {"model_source": "registered", "model": "tiny-resnet", "methods": ["gradcam"], "run_key": "f"}
    params.update(extra)
    return _resolve_inputs("compute_cams", params, dataset)


def test_an_allowed_module_registered_through_the_operator_works_end_to_end(photos, registered):
    assert registered["factory"] == "test_operators:tiny_resnet" and registered["suggested"] == ["layer4"]
    assert cam_core.checks.registered_factories()["tiny-resnet"] == {"factory": "test_operators:tiny_resnet", "kwargs": {}}
    res = foo.get_operator(uri("compute_cams"))(photos, "tiny-resnet", methods=["gradcam"], layers=["layer4"],
                                                run_key="ok", output_dir="ok-maps")
    assert (res.num_samples, res.num_skipped) == (4, 0)
    maps = photos.values(res.fields[0])
    assert all(os.path.isfile(m.map_path) for m in maps)
    assert sum(cam_core.load_map(m).max() > 0 for m in maps) >= 1  # maps, not blanks
    assert photos.get_run_info("ok").config.model_kwargs == {"factory": "test_operators:tiny_resnet", "kwargs": {}}
