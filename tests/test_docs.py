"""The docs cannot drift from the code: every page's code runs, and the site
builds with ``mkdocs build --strict``.

How a page's code runs (the *prelude*, also in docs/development.md, "These docs"):

- the fenced blocks of each page of ``mkdocs.yml``'s nav, in order; the
  ```` ```python ```` blocks of a page run in one namespace, in a fresh
  working folder that is also on ``sys.path``;
- the namespace starts with one name, ``dataset``: a fresh ``fo.Dataset`` of
  four scikit-image photographs (tests/images.py) with ``ground_truth``
  (``fo.Classification``, ImageNet class names), ``detections``
  (``fo.Detections``, one box each, COCO class names) and the tag
  ``validation`` on two of them; the plugin is installed (a plugins folder
  holding this checkout, tests/plugin.py); nothing can be downloaded, so the
  pages build models with random weights;
- a block whose first line is ``# file: NAME.py`` is written to NAME.py in the
  working folder instead of being run (a module the page imports);
- ```` ```bash ```` blocks are not run (they install, start servers and
  workers): each is checked with ``bash -n``; ```` ```text ```` blocks are
  shown as they are; any other fence (or none) fails, so that no block is
  skipped by accident.

A failing block's traceback names ``docs/<page>.md`` and the line on the page.
Environment variables, ``sys.path``, modules imported from the working folder
and the models and factories a page registers are put back after the page.
"""
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from plugin import plugins_dir  # noqa: F401 (fixture: the plugin installed)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(REPO, "docs")
FENCE = re.compile(r"^(\s*)```(.*)$")
FILE_BLOCK = re.compile(r"^# file: ([A-Za-z_]\w*\.py)\b")
LANGUAGES = ("python", "bash", "text")
PHOTOS = [  # (image, ImageNet class, COCO class, box)
    ("astronaut", "space shuttle", "person", [0.25, 0.05, 0.55, 0.9]),
    ("chelsea", "tabby", "cat", [0.1, 0.05, 0.7, 0.9]),
    ("coffee", "espresso", "cup", [0.2, 0.1, 0.6, 0.6]),
    ("rocket", "missile", "airplane", [0.4, 0.1, 0.2, 0.8]),
]


def nav_pages():
    """The pages of mkdocs.yml's nav, in order."""
    with open(os.path.join(REPO, "mkdocs.yml")) as f:
        nav = yaml.safe_load(f)["nav"]

    def walk(items):
        for item in items:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            if isinstance(value, list):
                yield from walk(value)
            elif not value.startswith(("http://", "https://")):
                yield value

    return list(walk(nav))


def blocks(path):
    """``[(language, first line number of the code, code)]`` of a Markdown file."""
    out, current = [], None
    with open(path) as f:
        lines = f.read().split("\n")
    for number, line in enumerate(lines, 1):
        match = FENCE.match(line)
        if match and current is None:
            indent, language = match.groups()
            language = language.strip()
            where = f"{os.path.relpath(path, REPO)}:{number}"
            assert not indent, f"{where}: a fence must start at column 0 (blocks in lists are not checked)"
            assert language in LANGUAGES, f"{where}: a code block must say its language, one of {LANGUAGES}"
            current = (language, number + 1, [])
        elif match:
            assert not match.group(2).strip(), f"{os.path.relpath(path, REPO)}:{number}: a fence inside a block"
            out.append((current[0], current[1], "\n".join(current[2])))
            current = None
        elif current is not None:
            current[2].append(line)
    assert current is None, f"{os.path.relpath(path, REPO)}: a code block is not closed"
    return out


@pytest.fixture
def photos(dataset, image_dir):
    import fiftyone as fo

    samples = []
    for i, (name, imagenet, coco, box) in enumerate(PHOTOS):
        samples.append(fo.Sample(
            filepath=image_dir[name], tags=["validation"] if i < 2 else [],
            ground_truth=fo.Classification(label=imagenet),
            detections=fo.Detections(detections=[fo.Detection(label=coco, bounding_box=box)]),
        ))
    dataset.add_samples(samples)
    return dataset


@pytest.fixture
def restored(tmp_path, monkeypatch):
    """A fresh working folder on sys.path; what a page changes is put back afterwards."""
    import cam_core
    from cam_core.models import registry

    environ, path, modules = dict(os.environ), list(sys.path), set(sys.modules)
    factories, process_models = set(cam_core.checks.registered_factories()), set(registry._PROCESS)
    monkeypatch.chdir(tmp_path)
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    os.environ.clear()
    os.environ.update(environ)
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        if getattr(sys.modules[name], "__file__", None) and sys.modules[name].__file__.startswith(str(tmp_path)):
            del sys.modules[name]
    for name in set(cam_core.checks.registered_factories()) - factories:
        cam_core.unregister_factory(name)
    for name in set(registry._PROCESS) - process_models:
        registry._PROCESS.pop(name)


def test_every_page_is_in_the_nav_and_every_block_says_its_language():
    pages = nav_pages()
    on_disk = sorted(os.path.relpath(os.path.join(root, f), DOCS) for root, dirs, files in os.walk(DOCS)
                     for f in files if f.endswith(".md") and not os.path.relpath(root, DOCS).startswith("_"))
    assert sorted(pages) == on_disk
    for page in pages:
        blocks(os.path.join(DOCS, page))  # asserts on fences


@pytest.mark.timeout(600)
@pytest.mark.parametrize("page", nav_pages() + ["../README.md"])  # the README's quick start too
def test_page_code_runs(page, photos, restored, plugins_dir):  # noqa: F811
    path = os.path.normpath(os.path.join(DOCS, page))
    namespace = {"__name__": "__docs__", "dataset": photos}
    for language, line, code in blocks(path):
        where = f"{os.path.relpath(path, REPO)}:{line}"
        if language == "bash":
            checked = subprocess.run(["bash", "-n"], input=code, text=True, capture_output=True)
            assert checked.returncode == 0, f"{where}: bash -n: {checked.stderr}"
        elif language == "python":
            named = FILE_BLOCK.match(code)
            if named:
                (restored / named.group(1)).write_text(code + "\n")
                continue
            # blank lines first, so that a traceback's line numbers are the page's
            exec(compile("\n" * (line - 1) + code, path, "exec"), namespace)


def _build(folder, site):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([folder, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", site],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.timeout(300)
def test_site_builds_strict_with_every_public_name(tmp_path):
    import cam_core

    out = _build(REPO, str(tmp_path / "site"))
    assert out.returncode == 0, out.stderr[-5000:]
    with open(tmp_path / "site" / "api" / "index.html") as f:
        api = f.read()
    documented = set(re.findall(r'id="cam_core\.([A-Za-z_]\w*)"', api))
    assert documented - {"checks", "app", "types"} == set(cam_core.__all__)  # the top level follows __all__
    for module in (cam_core.checks, cam_core.app, cam_core.types):  # and each documented module, whole
        name = module.__name__
        assert set(re.findall(rf'id="{re.escape(name)}\.([A-Za-z_]\w*)"', api)) == set(module.__all__), name
    # the pages load nothing from the network (no CDN scripts, no web fonts)
    with open(tmp_path / "site" / "index.html") as f:
        remote = re.findall(r'<(?:script|link|img)\b[^>]*(?:src|href)="(https?://[^"]+)"', f.read())
    assert remote == []


@pytest.mark.timeout(300)
def test_strict_build_fails_on_dead_links_pages_outside_the_nav_and_broken_docstring_references(tmp_path):
    """The three kinds of drift the build must catch, planted in a copy."""
    copy = tmp_path / "repo"
    shutil.copytree(DOCS, copy / "docs", ignore=shutil.ignore_patterns("_incoming"))
    shutil.copytree(os.path.join(REPO, "cam_core"), copy / "cam_core", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(REPO, "mkdocs.yml"), copy / "mkdocs.yml")
    (copy / "docs" / "orphan.md").write_text("# A page nobody listed\n")
    with open(copy / "docs" / "runs.md", "a") as f:
        f.write("\nSee [the old page](no-such-page.md) and [a heading](python.md#no-such-heading).\n")
    api = copy / "cam_core" / "compute" / "api.py"
    text = api.read_text()
    assert "        run_key (\"cam\"): the run's key" in text
    api.write_text(text.replace("        run_key (\"cam\"): the run's key",
                                "        run_key (\"cam\"): the run's key (see :func:`cam_core.no_such_function`)\n"
                                "        no_such_parameter: documented, not in the signature", 1))

    out = _build(str(copy), str(tmp_path / "site"))
    assert out.returncode != 0
    for expected in ("orphan.md", "no-such-page.md", "no-such-heading", "cam_core.no_such_function",
                     "no_such_parameter"):
        assert expected in out.stderr, (expected, out.stderr[-5000:])
