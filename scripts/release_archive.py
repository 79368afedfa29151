"""Builds the plugin's release archive, ``dist/fiftyone-cam-<version>.zip``.

The archive holds the plugin's files under one top folder,
``fiftyone-cam-<version>/``, as GitHub lays out its source archives:
``fiftyone.yml``, the root ``__init__.py`` (it registers the operators),
``operators/``, ``cam_core/`` (the plugin imports this copy when ``cam_core``
is not pip-installed), ``requirements.txt`` (``fiftyone plugins requirements``)
and the README and CHANGELOG. ``fiftyone plugins download <url of the archive>``
finds the plugin by its ``fiftyone.yml`` (it walks the extracted folders) and
copies that folder into the plugins directory.

The version is ``cam_core.__version__`` (read from the file, nothing is
imported); the archive is refused when ``fiftyone.yml`` says another one.
Entries are written in a fixed order with fixed dates: the same files give
the same bytes.

Usage::

    python scripts/release_archive.py [--out-dir dist]
"""
import argparse
import ast
import os
import re
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAME = "fiftyone-cam"
PLUGIN_FILES = ("fiftyone.yml", "__init__.py", "requirements.txt", "README.md", "CHANGELOG.md", "LICENSE",
                "operators", "cam_core")
REQUIRED = ("fiftyone.yml", "__init__.py", "requirements.txt", "operators", "cam_core")
SKIPPED = ("__pycache__",)


def package_version(root=ROOT):
    """``__version__`` of ``cam_core/__init__.py``, read without importing it."""
    with open(os.path.join(root, "cam_core", "__init__.py")) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__" for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit("cam_core/__init__.py sets no __version__")


def plugin_version(root=ROOT):
    """The ``version:`` of ``fiftyone.yml``."""
    with open(os.path.join(root, "fiftyone.yml")) as f:
        match = re.search(r"^version:\s*['\"]?([^'\"\s#]+)", f.read(), re.MULTILINE)
    return match.group(1) if match else None


def check_versions(root=ROOT):
    """The release's version; SystemExit when fiftyone.yml disagrees with cam_core."""
    version, plugin = package_version(root), plugin_version(root)
    if plugin != version:
        raise SystemExit(f"fiftyone.yml says version {plugin}, cam_core.__version__ is {version}: "
                         f"set both to the release's version")
    return version


def _files(root):
    for top in PLUGIN_FILES:
        path = os.path.join(root, top)
        if not os.path.exists(path):
            if top in REQUIRED:
                raise SystemExit(f"{path} is missing: not a checkout of {NAME}?")
            continue
        if os.path.isfile(path):
            yield top
            continue
        for folder, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED and not d.startswith("."))
            for name in sorted(files):
                if not name.endswith((".pyc", ".pyo")) and not name.startswith("."):
                    yield os.path.relpath(os.path.join(folder, name), root)


def build(root=ROOT, out_dir=None):
    """Writes the archive and returns its path."""
    version = check_versions(root)
    out_dir = out_dir or os.path.join(root, "dist")
    os.makedirs(out_dir, exist_ok=True)
    top = f"{NAME}-{version}"
    path = os.path.join(out_dir, f"{top}.zip")
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for rel in _files(root):
            info = zipfile.ZipInfo(f"{top}/{rel}", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(os.path.join(root, rel), "rb") as f:
                z.writestr(info, f.read())
    os.replace(tmp, path)  # never a half-written archive under the final name
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out-dir", default=None, help="where the archive goes (default: dist/ of the repository)")
    args = p.parse_args(argv)
    print(build(out_dir=args.out_dir))


if __name__ == "__main__":
    sys.exit(main())
