"""What a release needs, short of publishing it (docs/development.md, "Releasing"):

- one version: ``cam_core.__version__``, which pyproject.toml reads, and which
  fiftyone.yml and the newest release of CHANGELOG.md repeat;
- one repository address, pyproject.toml's, wherever the docs name it;
- ``python -m build`` gives a wheel holding ``cam_core`` and nothing else of the
  repository, which ``pip install`` puts in a fresh virtual environment from
  where ``import cam_core`` works;
- the plugin archive of scripts/release_archive.py installs with FiftyOne's
  own ``fiftyone plugins download``, served over http as a release would be.
"""
import ast
import email
import glob
import http.server
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
import tomllib
import zipfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import release_archive  # noqa: E402

PLUGIN = "@fiftyone-cam/cam"
GITHUB = re.compile(r"https://github\.com/[A-Za-z0-9_.-]+/fiftyone-cam(?=[/\s)\"'`]|$)")


def pyproject():
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def test_one_version_everywhere():
    import cam_core

    version = release_archive.package_version()
    assert version == cam_core.__version__ and re.fullmatch(r"\d+\.\d+\.\d+", version)
    project = pyproject()
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "cam_core.__version__"}
    assert release_archive.plugin_version() == version
    with open(os.path.join(REPO, "CHANGELOG.md")) as f:
        releases = re.findall(r"^## (\S+)", f.read(), re.MULTILINE)
    assert releases[0] == "Unreleased" and releases[1] == version, releases


def test_a_version_that_disagrees_is_refused(tmp_path):
    for top in ("cam_core", "operators"):
        shutil.copytree(os.path.join(REPO, top), tmp_path / top, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("__init__.py", "requirements.txt"):
        shutil.copy(os.path.join(REPO, name), tmp_path / name)
    with open(os.path.join(REPO, "fiftyone.yml")) as f:
        (tmp_path / "fiftyone.yml").write_text(re.sub(r"^version: .*$", "version: 9.9.9", f.read(), flags=re.M))
    with pytest.raises(SystemExit, match="fiftyone.yml says version 9.9.9"):
        release_archive.build(str(tmp_path), str(tmp_path / "dist"))
    assert not (tmp_path / "dist").exists() or not os.listdir(tmp_path / "dist")


def test_one_repository_address():
    address = pyproject()["project"]["urls"]["Repository"]
    assert GITHUB.fullmatch(address), address
    found = {}
    files = ["mkdocs.yml", "fiftyone.yml", "README.md", "CHANGELOG.md"] + [
        os.path.join("docs", f) for f in sorted(os.listdir(os.path.join(REPO, "docs"))) if f.endswith(".md")]
    for rel in files:
        with open(os.path.join(REPO, rel)) as f:
            text = f.read()
        assert "<owner>" not in text or rel == "README.md", f"{rel}: a placeholder address"
        for url in GITHUB.findall(text):
            found.setdefault(url, []).append(rel)
    assert set(found) == {address}, found
    assert "mkdocs.yml" in found[address] and "fiftyone.yml" in found[address]


@pytest.mark.timeout(600)
def test_the_wheel_brings_cam_core_into_a_fresh_environment(tmp_path):
    # a copy: building writes an egg-info folder into the source tree
    src = tmp_path / "src"
    shutil.copytree(os.path.join(REPO, "cam_core"), src / "cam_core", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(REPO, name), src / name)
    dist = tmp_path / "dist"
    # --no-isolation: the build backend (setuptools) of this environment, nothing downloaded
    built = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(src)],
                           capture_output=True, text=True, timeout=500)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    version = release_archive.package_version()
    wheel = dist / f"fiftyone_cam-{version}-py3-none-any.whl"
    assert sorted(os.listdir(dist)) == [wheel.name, f"fiftyone_cam-{version}.tar.gz"]

    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        metadata = email.message_from_bytes(z.read(f"fiftyone_cam-{version}.dist-info/METADATA"))
    modules = sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "cam_core", "**", "*.py"),
                                                                 recursive=True))
    assert sorted(n for n in names if not n.startswith("fiftyone_cam-")) == modules  # cam_core, whole and alone
    assert metadata["Name"] == "fiftyone-cam" and metadata["Version"] == version
    assert any(r.startswith("grad-cam") for r in metadata.get_all("Requires-Dist"))
    assert f"Repository, {pyproject()['project']['urls']['Repository']}" in metadata.get_all("Project-URL")

    # pip installs it (--no-deps: nothing downloaded) into a fresh environment
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps",
                                "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-3000:]
    # its dependencies (torch, fiftyone, ...) from this environment, after the fresh one's own packages;
    # that folder's .pth files are not read, so this checkout's editable install cannot answer
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(purelib, "dependencies.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = ("import importlib.metadata as m, cam_core; "
             "print(cam_core.__file__); print(cam_core.__version__, m.version('fiftyone-cam')); "
             "print(callable(cam_core.compute_cams))")
    out = subprocess.run([python, "-c", probe], cwd=str(tmp_path), env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    where, versions, callable_ = out.stdout.strip().splitlines()[-3:]
    assert where.startswith(purelib) and versions == f"{version} {version}" and callable_ == "True", out.stdout


@pytest.mark.timeout(600)
def test_the_plugin_archive_installs_with_fiftyone_plugins_download(tmp_path):
    import fiftyone as fo
    import fiftyone.plugins as fop

    path = release_archive.build(REPO, str(tmp_path / "dist"))
    version = release_archive.package_version()
    assert os.path.basename(path) == f"fiftyone-cam-{version}.zip"
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    assert {n.split("/")[0] for n in names} == {f"fiftyone-cam-{version}"}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    for required in ("fiftyone.yml", "__init__.py", "requirements.txt", "operators/compute.py",
                     "cam_core/compute/api.py"):
        assert f"fiftyone-cam-{version}/{required}" in names, required
    assert not [n for n in names if n.split("/")[1] in ("tests", "demo", "docs", "benchmarks", "notebooks")]
    with open(path, "rb") as f:
        first = f.read()
    assert open(release_archive.build(REPO, str(tmp_path / "again")), "rb").read() == first  # reproducible

    # served over http, as a release asset is (FiftyOne reads no file:// address)
    folder = os.path.dirname(path)
    handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(*a, directory=folder, **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    plugins = tmp_path / "plugins"
    env = dict(os.environ, FIFTYONE_PLUGINS_DIR=str(plugins))
    cli = os.path.join(os.path.dirname(sys.executable), "fiftyone")
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{os.path.basename(path)}"
        out = subprocess.run([cli, "plugins", "download", url], env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    finally:
        server.shutdown()
        server.server_close()

    # FiftyOne's own loader finds it there, with the release's version and every operator
    old = fo.config.plugins_dir
    fo.config.plugins_dir = str(plugins)
    try:
        plugin = fop.get_plugin(PLUGIN)
    finally:
        fo.config.plugins_dir = old
    assert plugin.version == version and plugin.url == pyproject()["project"]["urls"]["Repository"]
    with open(os.path.join(REPO, "fiftyone.yml")) as f:
        yml = f.read()
    # FiftyOne lists a plugin's panels among its operators (a panel is an operator)
    listed = "".join(re.search(rf"^{part}:\n((?:  - .+\n)+)", yml, re.M).group(1) for part in ("operators", "panels"))
    assert plugin.operators == [line.strip()[2:] for line in listed.splitlines()]
    assert os.path.isfile(os.path.join(plugin.directory, "cam_core", "__init__.py"))
    with open(os.path.join(plugin.directory, "cam_core", "__init__.py")) as f:
        assert ast.parse(f.read())  # the engine's copy is whole
