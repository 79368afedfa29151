"""Registering models by name: in this process (:func:`register_model`), or
in the database for every process (:func:`register_factory`)."""
from torch import nn

from ..errors import CamArgumentError, CamArgumentTypeError
from . import registry
from .describe import describe_model
from .sources import resolve_model


def register_model(name, module, transforms=None, classes=None):
    """Makes a model available by name (e.g. ``"my-classifier"``) to
    :func:`cam_core.load_model`, and so to the App's operator form, in this
    process only (delegated workers cannot build it: see :func:`register_factory`).

    Args:
        name: the name to register it under
        module: a ``torch.nn.Module``
        transforms (None): PIL image -> input tensor
        classes (None): class names

    Returns:
        the :class:`cam_core.CamModel`
    """
    if not isinstance(module, nn.Module):
        raise CamArgumentTypeError("module", f"register_model needs a torch.nn.Module; got {type(module).__name__}")
    model = resolve_model(module, transforms=transforms, classes=classes)
    model.name = name
    registry.add_process_model(name, model)
    return model


def check_factory_args(name, factory, kwargs=None, overwrite=False):
    """Checks :func:`register_factory`'s arguments as it does, building nothing
    (the factory's module is imported when it is allowed, never called).

    Raises:
        CamArgumentError: naming the refused parameter (``name``,
            ``factory`` or ``kwargs``); a factory whose module this process
            does not allow (``FIFTYONE_CAM_FACTORY_MODULES``) is refused
            before anything is imported
    """
    registry.check_name(name)
    if registry.is_factory(name) and not overwrite:
        raise CamArgumentError("name", f"a model named '{name}' is already registered; pass overwrite=True to replace it")
    registry.check_kwargs(kwargs)
    registry.resolve_factory(factory)


def register_factory(name, factory, kwargs=None, overwrite=False):
    """Registers a model factory under ``name`` in the database, for every
    process that shares it (:func:`cam_core.load_model` and
    :func:`cam_core.compute_cams` then take ``name``).

    The model is built and probed once here, so a factory that cannot be
    imported or built, or a model with nothing to explain, is refused now
    rather than later in a worker.

    Every process that builds a stored registration (this one included)
    imports its factory only from the modules it allows: the
    comma-separated prefixes of the environment variable
    ``FIFTYONE_CAM_FACTORY_MODULES`` (``my_models`` allows ``my_models`` and
    ``my_models.sub``), or a :func:`cam_core.checks.allow_factory_modules` block.
    A factory outside them is refused here before it is imported; the App
    server and each worker refuse it too unless their own allowlist names its
    module, so set the variable there as well.

    Args:
        name: the name (e.g. ``"my-classifier"``: letters, digits, ``_-.``)
        factory: ``"package.module:function"``; the function returns anything
            :func:`cam_core.compute_cams` accepts as a model object: a
            :class:`cam_core.CamModel` (module, transforms, classes), a
            ``torch.nn.Module`` (its ``transforms`` / ``classes`` attributes
            are used when present) or a FiftyOne ``TorchImageModel``
        kwargs (None): keyword arguments for the function: plain JSON values
            (strings, numbers, booleans, None, lists, dicts with string keys),
            passed as they are, never evaluated
        overwrite (False): replace an existing registration of ``name``

    Returns:
        the built model's :class:`cam_core.types.ModelDescription`

    Raises:
        CamArgumentError: for a bad name, a factory whose module is not
            allowed or that cannot be resolved, non-JSON keyword arguments, an
            existing name without ``overwrite``, or a model that cannot be
            built or probed
    """
    check_factory_args(name, factory, kwargs, overwrite)
    entry = {"factory": factory, "kwargs": registry.check_kwargs(kwargs)}
    description = describe_model(registry.build(name, entry))
    registry.save(name, factory, entry["kwargs"], overwrite=overwrite)
    return description
