"""Models registered for every process, as importable factories.

A model object lives in one process (:func:`cam_core.register_model`), but
the App server and every ``fiftyone delegated launch`` worker are other
processes, possibly on other machines. What all of them share is the
FiftyOne database, so a registration is stored there as a recipe: an
importable callable (``"package.module:function"``) and its keyword
arguments. Each process that needs the model imports the callable and builds
the model itself; the code only has to be importable there::

    cam_core.register_factory("birds", "my_models:bird_classifier", kwargs={"checkpoint": "/models/birds.pt"})
    cam_core.compute_cams(dataset, "birds")      # here, in the App, in a worker
"""
import importlib
import re

STORE = "fiftyone_cam_models"

# no ':' in a name: "torchvision:resnet50" and "timm:..." are library models
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def _store():
    from fiftyone.operators.store import ExecutionStore

    # a global store (no dataset): registrations serve every dataset
    return ExecutionStore.create(STORE)


def check_name(name):
    """Raises ``ValueError`` unless ``name`` can name a registered model."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"model name {name!r} is not allowed: use letters, digits, '_', '-' and '.', e.g. "
            f"'my-classifier' (':' marks library models such as 'torchvision:resnet50')"
        )


def resolve_factory(factory):
    """Imports the callable named by ``factory``.

    Args:
        factory: ``"package.module:function"`` (``"package.module:Class.method"``
            works too)

    Returns:
        the callable

    Raises:
        ValueError: when the string is malformed, the module cannot be
            imported, or the attribute is missing or not callable
    """
    if not isinstance(factory, str) or factory.count(":") != 1:
        raise ValueError(
            f"factory must look like 'package.module:function'; got {factory!r}"
        )
    module_name, _, attr = factory.partition(":")
    if not module_name or not attr:
        raise ValueError(f"factory must look like 'package.module:function'; got {factory!r}")
    try:
        obj = importlib.import_module(module_name)
    except Exception as e:  # ImportError, or an error raised while importing
        raise ValueError(
            f"cannot import module '{module_name}' of factory '{factory}': {e}. "
            f"It must be importable by the App server and by every delegated worker"
        ) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"module '{module_name}' has no attribute '{attr}'")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"'{factory}' is not callable")
    return obj


def register_factory(name, factory, kwargs=None, overwrite=False):
    """Registers a model factory under ``name`` in the database, for every
    process that shares it (:func:`cam_core.load_model` and
    :func:`cam_core.compute_cams` then take ``name``).

    The model is built and probed once here, so a factory that cannot be
    imported or built, or a model with nothing to explain, is refused now
    rather than later in a worker.

    Args:
        name: the name (e.g. ``"my-classifier"``: letters, digits, ``_-.``)
        factory: ``"package.module:function"``; the function returns anything
            :func:`cam_core.compute_cams` accepts as a model object
        kwargs (None): JSON keyword arguments for the function
        overwrite (False): replace an existing registration of ``name``

    Returns:
        the built model's :class:`cam_core.ModelDescription`

    Raises:
        ValueError: for a bad name or factory, an existing name without
            ``overwrite``, or a model that cannot be built or probed
    """
    from .probing import describe_model

    check_name(name)
    if _store().has(name) and not overwrite:
        raise ValueError(f"a model named '{name}' is already registered; pass overwrite=True to replace it")
    entry = {"factory": factory, "kwargs": dict(kwargs or {})}
    description = describe_model(build(name, entry))
    save(name, factory, entry["kwargs"], overwrite=overwrite)
    return description


def save(name, factory, kwargs=None, overwrite=False):
    """Stores a registration in the database without building the model
    (:func:`register_factory` builds it first).

    Args:
        name: the name the App shows (e.g. ``"my-classifier"``)
        factory: ``"package.module:function"``; the function returns anything
            :func:`cam_core.compute_cams` accepts as a model object: a
            :class:`cam_core.CamModel` (module, transforms, classes), a
            ``torch.nn.Module`` (its ``transforms`` / ``classes`` attributes
            are used when present) or a FiftyOne ``TorchImageModel``
        kwargs (None): JSON keyword arguments for the function
        overwrite (False): replace an existing registration of ``name``

    Raises:
        ValueError: for a bad name or factory, or an existing name without
            ``overwrite``
    """
    check_name(name)
    resolve_factory(factory)
    kwargs = dict(kwargs or {})
    registrations = _store()
    if registrations.has(name) and not overwrite:
        raise ValueError(f"a model named '{name}' is already registered; pass overwrite=True to replace it")
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
        ValueError: when no factory is registered as ``name``, or it fails
    """
    entry = registered_factories().get(name)
    if entry is None:
        raise ValueError(f"no model factory is registered as '{name}'")
    return build(name, entry)


def build(name, entry):
    """Builds a registration (``{"factory": ..., "kwargs": ...}``) in this process.

    Returns:
        a :class:`cam_core.CamModel` named ``name`` whose recorded loading
        arguments are the factory and its keyword arguments
    """
    from .models import resolve_model

    fn = resolve_factory(entry["factory"])
    kwargs = entry.get("kwargs") or {}
    try:
        made = fn(**kwargs)
    except Exception as e:
        raise ValueError(f"factory '{entry['factory']}' of model '{name}' failed: {type(e).__name__}: {e}") from e
    model = resolve_model(made)
    model.name = name
    model.kwargs = {"factory": entry["factory"], "kwargs": kwargs}
    return model
