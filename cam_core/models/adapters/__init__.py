"""Adapters: the model families whose objects are not plain image models.

A family (Ultralytics YOLO, Hugging Face transformers, OpenCLIP) enters
through one module of this package, which turns its objects into the
contracts the engine already has: a :class:`cam_core.CamModel` whose module
returns a classifier's or segmenter's scores, or a detector's boxes, labels
and differentiable scores per image (:mod:`cam_core.engine.detection`),
with the family's own preprocessing as transforms (its geometry known, so
maps are placed back on the image) and its class names. Nothing outside
this package names a family; a new family is one new module and its tests.

An adapter module defines:

- ``PREFIXES``: the name prefixes it loads (``("ultralytics",)`` for
  ``"ultralytics:yolov8n.pt"``);
- ``claims(obj)``: whether ``obj`` is one of its family's objects, decided
  from the type's module and name, without importing the family's library;
- ``adapt(obj, preprocess=None)``: the :class:`cam_core.CamModel` of such
  an object (``preprocess``: the ``transforms`` the user passed with it, which
  may carry more than preprocessing: a zero-shot model's tokenizer);
- ``load(name, **kwargs)``: the :class:`cam_core.CamModel` of a name (given
  without its prefix);
- optionally ``adapt_transforms(obj)``: the family's preprocessing object
  (a Hugging Face image processor) as transforms, or None.

The optional library (an extra of the package) is imported by its adapter
only, and only when such a model is passed or named.
"""
import importlib

# adapter modules of this package, asked in this order
ADAPTERS = ("yolo", "hf", "openclip")


def _adapters():
    for name in ADAPTERS:
        yield importlib.import_module(f"{__name__}.{name}")


def adapt(obj, preprocess=None):
    """The :class:`cam_core.CamModel` of a family's object, or None when no adapter claims it."""
    for adapter in _adapters():
        if adapter.claims(obj):
            return adapter.adapt(obj, preprocess)
    return None


def adapt_transforms(obj):
    """A family's preprocessing object passed as ``transforms`` turned into
    transforms (a callable from a ``PIL.Image`` to a tensor), or None when no
    adapter claims it."""
    for adapter in _adapters():
        turn = getattr(adapter, "adapt_transforms", None)
        made = turn(obj) if turn is not None else None
        if made is not None:
            return made
    return None


def load(source, kwargs):
    """The :class:`cam_core.CamModel` of a family's name (``"ultralytics:yolov8n.pt"``),
    or None when no adapter loads that prefix."""
    prefix, _, name = source.partition(":")
    for adapter in _adapters():
        if prefix in adapter.PREFIXES:
            return adapter.load(name, **kwargs)
    return None


def prefixes():
    """Every name prefix an adapter loads."""
    return tuple(p for adapter in _adapters() for p in adapter.PREFIXES)
