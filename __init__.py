"""FiftyOne plugin ``@fiftyone-cam/cam``: registers the operators of ``operators/``.

The engine is imported by its own name, ``cam_core``, so that the runs it
records (their config class is stored by module path) load in every process.
When the plugin was installed with ``fiftyone plugins download`` and not
``pip install``-ed, ``cam_core`` is found next to this file.
"""
import importlib.machinery
import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


class _CamCoreFinder:
    """Finds the top-level ``cam_core`` package in the plugin's folder, and nothing else."""

    def find_spec(self, name, path=None, target=None):
        if name != "cam_core":
            return None
        return importlib.machinery.PathFinder.find_spec(name, [_HERE])


if importlib.util.find_spec("cam_core") is None and not any(
    type(f).__name__ == "_CamCoreFinder" for f in sys.meta_path
):
    sys.meta_path.append(_CamCoreFinder())

if __package__:  # pytest imports this file as a lone module when the checkout's folder is no package name
    from .operators import OPERATORS, PANELS  # noqa: E402


def register(p):
    for operator in OPERATORS + PANELS:
        p.register(operator)
