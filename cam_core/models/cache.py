"""Models described once per process, for explanations on demand.

A model given by name is loaded and probed once per name and loading
arguments, and kept while it is among the :data:`NAMED_CACHE_SIZE` most
recently used; a model object is probed once and its description kept as long
as the object lives (held weakly: the cache never keeps a model alive). Each
module also has a lock: hooks are per module, so two explanations of one
module at once would mix their records.
"""
import json
import threading
import weakref
from collections import OrderedDict
from dataclasses import replace

from ..errors import CamArgumentError, CamArgumentTypeError
from .describe import ModelDescription, describe_model
from .sources import load_model

NAMED_CACHE_SIZE = 4  # models loaded by name held at once (a ResNet-50 is ~100 MB)

_named = OrderedDict()
# id(model) -> (weak reference to it, transforms, classes, weak reference to its module,
#               its description and CamModel without the module)
_objects = {}
_lock = threading.Lock()
_module_locks = weakref.WeakKeyDictionary()


def described(model, model_kwargs=None, transforms=None, classes=None):
    """The :class:`cam_core.types.ModelDescription` of ``model``, probed once.

    Args:
        model: a name for :func:`cam_core.load_model`, a model object (a
            ``torch.nn.Module``, a FiftyOne ``TorchImageModel``, a
            :class:`cam_core.CamModel`) or a :class:`cam_core.types.ModelDescription`
            (used as it is)
        model_kwargs (None): a name's loading arguments (``{"weights": None}``
            for torchvision's random weights, ``{"pretrained": False}`` for timm's)
        transforms (None), classes (None): override the model's own

    Raises:
        CamArgumentError: (``model``) for a name that cannot be loaded, or a
            model that cannot be probed; (``model_kwargs``) for loading
            arguments with a model object
    """
    if model_kwargs is not None and not isinstance(model_kwargs, dict):
        raise CamArgumentTypeError("model_kwargs", f"model_kwargs must be a dict of loading arguments; got {model_kwargs!r}")
    if isinstance(model, ModelDescription) and transforms is None and classes is None:
        return model
    if isinstance(model, str):
        return _by_name(model, dict(model_kwargs or {}), transforms, classes)
    if model_kwargs:
        raise CamArgumentError("model_kwargs", "model_kwargs are the loading arguments of a model given by name; "
                                               "this model is an object, already loaded")
    return _by_object(model, transforms, classes)


def module_lock(module):
    """The lock held while ``module`` is explained (one per module)."""
    with _lock:
        lock = _module_locks.get(module)
        if lock is None:
            lock = _module_locks[module] = threading.Lock()
        return lock


def _by_name(name, kwargs, transforms, classes):
    key = (name, json.dumps(kwargs, sort_keys=True, default=repr),
           None if classes is None else tuple(str(c) for c in classes))
    with _lock:
        entry = _named.get(key)
        if entry is not None and entry[0] is transforms:
            _named.move_to_end(key)
            return entry[1]
    try:
        loaded = load_model(name, **kwargs)
    except CamArgumentError:
        raise
    except Exception as e:  # a download offline, a bad keyword, a factory's own error
        raise CamArgumentError("model", f"model '{name}' could not be loaded: {type(e).__name__}: {e}") from None
    description = describe_model(loaded, transforms=transforms, classes=classes)
    with _lock:
        _named[key] = (transforms, description)
        _named.move_to_end(key)
        while len(_named) > NAMED_CACHE_SIZE:
            _named.popitem(last=False)
    return description


def _by_object(model, transforms, classes):
    classes_key = None if classes is None else tuple(str(c) for c in classes)
    with _lock:
        entry = _objects.get(id(model))
    if entry is not None:
        ref, held_transforms, held_classes, root_ref, detached, bare = entry
        root = root_ref()
        if ref() is model and held_transforms is transforms and held_classes == classes_key and root is not None:
            return replace(detached, model=replace(bare, module=root, kwargs=dict(bare.kwargs)))
    description = describe_model(model, transforms=transforms, classes=classes)
    try:
        ref = weakref.ref(model, lambda _, key=id(model): _forget(key))
        root_ref = weakref.ref(description.model.module)
    except TypeError:  # an object that cannot be referenced weakly is probed at every call
        return description
    # held without the model's module, so that the cache never keeps a model alive (its
    # layers are submodules: they do not hold the model); the entry goes with the model
    # (a zero-shot model's vocabulary holds its head, the module: not kept either)
    detached, bare = replace(description, model=None), replace(description.model, module=None, vocabulary=None)
    with _lock:
        _objects[id(model)] = (ref, transforms, classes_key, root_ref, detached, bare)
    return description


def _forget(key):
    with _lock:
        entry = _objects.get(key)
        if entry is not None and entry[0]() is None:
            del _objects[key]


def clear():
    """Forgets every cached description (the next call loads and probes again)."""
    with _lock:
        _named.clear()
        _objects.clear()
