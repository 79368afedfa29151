"""Models registered by name: in this process, or in the database for every process.

A model object lives in one process (:func:`cam_core.register_model`), but
the App server and every ``fiftyone delegated launch`` worker are other
processes, possibly on other machines. What all of them share is the
FiftyOne database, so a registration is stored there as a recipe: an
importable callable (``"package.module:function"``) and its keyword
arguments. Each process that needs the model imports the callable and builds
the model itself; the code only has to be importable there::

    cam_core.register_factory("birds", "my_models:bird_classifier", kwargs={"checkpoint": "/models/birds.pt"})
    cam_core.compute_cams(dataset, "birds")      # here, in the App, in a worker

What is stored is untrusted input for every process that reads it: each one
imports a factory only from the modules its own deployment allows
(``FIFTYONE_CAM_FACTORY_MODULES``: :mod:`cam_core.models.allowlist`), checked
on the module's name before anything is imported, and calls it with plain
JSON keyword arguments only.

This module holds both registries and builds a stored recipe;
:mod:`cam_core.models.register` adds entries to them.
"""
import importlib
import re
import types

from ..errors import CamArgumentError
from . import allowlist
from .kwargs import check_kwargs  # noqa: F401 (registry.check_kwargs, the public name)
from .cam_model import from_object

STORE = "fiftyone_cam_models"

# no ':' in a name: "torchvision:resnet50" and "timm:..." are library models
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")

# models registered in this process (cam_core.register_model)
_PROCESS = {}


def process_model(name):
    """The :class:`cam_core.CamModel` registered as ``name`` in this process, or None."""
    return _PROCESS.get(name)


def add_process_model(name, model):
    """Registers a :class:`cam_core.CamModel` under ``name`` in this process."""
    _PROCESS[name] = model


def registered_models():
    """Names registered with :func:`cam_core.register_model` in this process."""
    return list(_PROCESS)


def process_only_names():
    """Names registered in this process only (no factory in the database):
    no other process, a delegated worker included, can build them."""
    stored = set(registered_factories())
    return [n for n in _PROCESS if n not in stored]


def check_shareable(name):
    """Refuses a model that other processes (delegated workers) cannot build:
    one registered in this process only.

    Raises:
        CamArgumentError: (``model``) saying how to make it shareable
    """
    if name in process_only_names():
        raise CamArgumentError(
            "model",
            f"'{name}' was registered with cam_core.register_model in this process only: delegated workers "
            f"cannot build it. Register a factory (cam_core.register_factory, or the register_cam_model operator)",
        )


def _store():
    from fiftyone.operators.store import ExecutionStore

    # a global store (no dataset): registrations serve every dataset
    return ExecutionStore.create(STORE)


def check_name(name):
    """Raises :class:`cam_core.CamArgumentError` (``name``) unless ``name`` can name a registered model."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise CamArgumentError(
            "name",
            f"model name {name!r} is not allowed: use letters, digits, '_', '-' and '.', e.g. "
            f"'my-classifier' (':' marks library models such as 'torchvision:resnet50')",
        )


def resolve_factory(factory, trusted=False):
    """Imports the callable named by ``factory``.

    Args:
        factory: ``"package.module:function"`` (``"package.module:Class.method"``
            works too)
        trusted (False): False: the module must be allowed in this process
            (``FIFTYONE_CAM_FACTORY_MODULES``), which is checked before it is
            imported, the names after ``':'`` must be public and lead through
            no other module, and the callable must be defined in an allowed
            module. True skips these checks: only for a Python user's own code
            in their own process; nothing read from the database or sent by
            the App is ever resolved so

    Returns:
        the callable

    Raises:
        CamArgumentError: (``factory``) when the string is malformed, the
            module is not allowed or cannot be imported, or the attribute is
            missing, refused or not callable
    """
    module_name, sep, attr = factory.partition(":") if isinstance(factory, str) else ("", "", "")
    if not sep or not allowlist.DOTTED.match(module_name) or not attr or ":" in attr:
        raise CamArgumentError("factory", f"factory must look like 'package.module:function'; got {factory!r}")
    if not trusted:
        allowlist.check_module(module_name, factory)  # the name only: nothing is imported yet
    try:
        obj = importlib.import_module(module_name)
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # ImportError, an error raised while importing, a sys.exit() in the module
        why = e if isinstance(e, Exception) else _raised(e)
        raise CamArgumentError(
            "factory",
            f"cannot import module '{module_name}' of factory '{factory}': {why}. "
            f"It must be importable by the App server and by every delegated worker",
        ) from None
    for part in attr.split("."):
        if not trusted:
            allowlist.check_attribute(part, factory)
        if not hasattr(obj, part):
            raise CamArgumentError("factory", f"module '{module_name}' has no attribute '{attr}'")
        obj = getattr(obj, part)
        if not trusted and isinstance(obj, types.ModuleType):
            # an allowed module's imports are not allowed modules
            raise CamArgumentError(
                "factory", f"factory '{factory}' is refused: '{part}' is a module; name it before ':' instead")
    if not trusted:
        allowlist.check_defined_in(obj, factory)
    if not callable(obj):
        raise CamArgumentError("factory", f"'{factory}' is not callable")
    return obj


def is_factory(name):
    """Whether ``name`` is registered as a factory in the database."""
    return _store().has(name)


def save(name, factory, kwargs=None, overwrite=False):
    """Stores a registration in the database without building the model
    (:func:`cam_core.register_factory` builds it first).

    Args:
        name: the name the App shows (e.g. ``"my-classifier"``)
        factory: ``"package.module:function"``; the function returns anything
            :func:`cam_core.compute_cams` accepts as a model object
        kwargs (None): JSON keyword arguments for the function
        overwrite (False): replace an existing registration of ``name``

    Raises:
        CamArgumentError: for a bad name, a factory whose module is not
            allowed here or that cannot be resolved, non-JSON keyword
            arguments, or an existing name without ``overwrite``
    """
    check_name(name)
    kwargs = check_kwargs(kwargs)
    resolve_factory(factory)
    registrations = _store()
    if registrations.has(name) and not overwrite:
        raise CamArgumentError("name", f"a model named '{name}' is already registered; pass overwrite=True to replace it")
    registrations.set(name, {"factory": factory, "kwargs": kwargs})


def unregister_factory(name):
    """Removes a registration from the database; returns whether there was one."""
    return _store().delete(name)


def registered_factories():
    """``{name: {"factory": ..., "kwargs": ...}}`` of every registration in the database."""
    registrations = _store()
    out = {}
    for key in sorted(registrations.list_keys()):
        entry = registrations.get(key)
        if isinstance(entry, dict) and "factory" in entry:
            out[key] = entry
    return out


def build_factory(name):
    """Builds the model registered as ``name`` in the database, in this process.

    Raises:
        CamArgumentError: (``model``) when no factory is registered as
            ``name``, or it fails
    """
    entry = registered_factories().get(name)
    if entry is None:
        raise CamArgumentError("model", f"no model factory is registered as '{name}'")
    return build(name, entry)


def build(name, entry):
    """Builds a registration (``{"factory": ..., "kwargs": ...}``) in this process.

    The entry is untrusted (anyone who could write to the database may have
    written it): its module must be allowed here (``FIFTYONE_CAM_FACTORY_MODULES``),
    checked before it is imported, and its keyword arguments plain JSON.

    Returns:
        a :class:`cam_core.CamModel` named ``name`` whose recorded loading
        arguments are the factory and its keyword arguments

    Raises:
        CamArgumentError: (``model``) when this process refuses the entry;
            (``factory``) when the factory fails
    """
    factory = entry.get("factory") if isinstance(entry, dict) else None
    try:
        fn = resolve_factory(factory)
        kwargs = check_kwargs(entry.get("kwargs"))
    except CamArgumentError as e:
        raise CamArgumentError(
            "model", f"model '{name}' cannot be built in this process: {e.message}") from None
    try:
        made = fn(**kwargs)
    except KeyboardInterrupt:
        raise
    except BaseException as e:
        # building is untrusted work: even a sys.exit() in the factory is a refusal,
        # never the end of the App server or of a worker
        raise CamArgumentError(
            "factory", f"factory '{factory}' of model '{name}' failed: {_raised(e)}"
        ) from e
    model = from_object(made)
    model.name = name
    model.kwargs = {"factory": factory, "kwargs": kwargs}
    return model


def _raised(error):
    """An exception in words; a ``SystemExit`` says that the code called ``sys.exit``."""
    if isinstance(error, SystemExit):
        return f"SystemExit: it called sys.exit({error.code!r})"
    return f"{type(error).__name__}: {error}"
