"""Which modules a model factory may be imported from, in this process.

A registration stored in the database names a module to import and a
callable to call. Whoever can write a registration (an App user, through the
``register_cam_model`` operator) would otherwise choose code that the App
server and every delegated worker run, so each process imports only modules
its deployment allows: the comma-separated module prefixes of the
environment variable ``FIFTYONE_CAM_FACTORY_MODULES`` (and, in an operator,
the plugin secret of the same name). A prefix ``my_models`` allows
``my_models`` and ``my_models.sub``, never ``my_models_evil``. With none set,
no factory module is allowed.

The check reads the module's name only: it runs before anything is imported.
"""
import contextlib
import contextvars
import os
import re

from ..errors import CamArgumentError

ENV = "FIFTYONE_CAM_FACTORY_MODULES"

DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

# prefixes an operator adds from the plugin secret, for the duration of one
# call (a context variable: concurrent requests in the App server do not mix)
_extra = contextvars.ContextVar("cam_core_factory_modules", default=())


def parse(prefixes):
    """Module prefixes from ``"a,b.c"`` (or a list of names); entries that
    are not dotted Python names are dropped: a typo allows nothing."""
    if not prefixes:
        return ()
    items = prefixes.split(",") if isinstance(prefixes, str) else list(prefixes)
    names = [str(p).strip() for p in items]
    return tuple(dict.fromkeys(n for n in names if DOTTED.match(n)))


def allowed():
    """The module prefixes factories may come from in this process now:
    ``FIFTYONE_CAM_FACTORY_MODULES``, plus those of :func:`allowing` blocks
    being run."""
    # read at every check: a deployment's environment is the one source of truth
    return tuple(dict.fromkeys(parse(os.environ.get(ENV)) + _extra.get()))


@contextlib.contextmanager
def allowing(prefixes):
    """Allows more factory modules inside a ``with`` block of this thread or
    task (operators pass the plugin secret ``FIFTYONE_CAM_FACTORY_MODULES``).

    Args:
        prefixes: ``"my_models,lab.cams"``, a list of names, or None (nothing more)

    Yields:
        the prefixes allowed inside the block
    """
    token = _extra.set(_extra.get() + parse(prefixes))
    try:
        yield allowed()
    finally:
        _extra.reset(token)


def is_allowed(module_name, prefixes=None):
    """Whether ``module_name`` is one of ``prefixes`` (default :func:`allowed`) or inside one."""
    prefixes = allowed() if prefixes is None else prefixes
    if not isinstance(module_name, str) or not DOTTED.match(module_name):
        return False
    return any(module_name == p or module_name.startswith(p + ".") for p in prefixes)


def how_to_allow(module_name):
    """The end of a refusal: what to set, where, and an example."""
    return (
        f"Factories are imported only from modules this deployment allows: to allow '{module_name}', set the "
        f"environment variable {ENV} (or the plugin secret of that name) of the App server and of every delegated "
        f"worker to comma-separated module prefixes, e.g. {ENV}={module_name} (a prefix allows the module and its "
        f"submodules; allow only model code whose every public function App users may call)"
    )


def _now(prefixes):
    return ", ".join(prefixes) if prefixes else "none is set"


def check_module(module_name, factory):
    """Refuses a factory whose module is not allowed, before it is imported.

    Raises:
        CamArgumentError: (``factory``) naming the module, the variable to set
            and an example
    """
    prefixes = allowed()
    if not is_allowed(module_name, prefixes):
        raise CamArgumentError(
            "factory",
            f"factory '{factory}' is refused: module '{module_name}' is not an allowed factory module "
            f"(allowed here: {_now(prefixes)}). {how_to_allow(module_name)}",
        )


def check_attribute(part, factory):
    """Refuses a private or special attribute name (``_x``, ``__builtins__``):
    a factory is a public name of its module."""
    if not part.isidentifier() or part.startswith("_"):
        raise CamArgumentError(
            "factory", f"factory '{factory}' is refused: '{part}' is not a public name (names starting with '_' are refused)")


def check_defined_in(obj, factory):
    """Refuses a callable reached through an allowed module but defined
    elsewhere (``my_models:system`` after ``from os import system`` there):
    allowing a module allows its own code, not what it imported."""
    where = getattr(obj, "__module__", None)
    prefixes = allowed()
    if not is_allowed(where, prefixes):
        raise CamArgumentError(
            "factory",
            f"factory '{factory}' is refused: it is defined in module '{where}', not in an allowed module "
            f"(an allowed module lends its own functions, not those it imports; allowed here: {_now(prefixes)})",
        )
