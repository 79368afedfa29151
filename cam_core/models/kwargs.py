"""A model factory's keyword arguments: plain JSON values, bounded in depth
and size, checked before they are stored or passed (they may come from the
App's form or from the database, so they are untrusted input)."""
import json
import reprlib

from ..errors import CamArgumentError

# bounds on a factory's keyword arguments: deeper or larger values are refused
# before they are serialised (a value nested thousands deep would raise
# RecursionError in json, and anyone who can reach the form may send one)
KWARGS_MAX_DEPTH = 32
KWARGS_MAX_VALUES = 100_000
KWARGS_MAX_CHARS = 1_000_000


def check_kwargs(kwargs):
    """A factory's keyword arguments as plain JSON values, never evaluated.

    Args:
        kwargs: None, or a dict of strings, numbers, booleans, None, lists
            and dicts (with string keys), nested at most
            :data:`KWARGS_MAX_DEPTH` deep, with at most
            :data:`KWARGS_MAX_VALUES` values and :data:`KWARGS_MAX_CHARS`
            characters of strings in all

    Returns:
        a plain copy (``{}`` for None)

    Raises:
        CamArgumentError: (``kwargs``) for anything else: another type, a
            tuple, a non-string key, NaN, an object, or a value too deep or too large
    """
    if kwargs is None:
        return {}
    if not isinstance(kwargs, dict):
        raise CamArgumentError("kwargs", f"keyword arguments must be a JSON object, like {{\"size\": 64}}; got {_short(kwargs)}")
    _check_bounds(kwargs)
    try:
        copy = json.loads(json.dumps(kwargs, allow_nan=False))
    except (TypeError, ValueError) as e:
        copy, why = None, str(e)
    else:
        why = "tuples, non-string keys and other non-JSON values are refused"
    if copy != kwargs:
        raise CamArgumentError(
            "kwargs",
            f"keyword arguments must be plain JSON values (strings, numbers, true/false, null, lists, objects "
            f"with string keys): {why}; got {_short(kwargs)}",
        )
    return copy


def _check_bounds(kwargs):
    """Walks the arguments without recursion; refuses them past the depth or size bounds."""
    todo, values, chars = [(kwargs, 1)], 0, 0
    while todo:
        value, depth = todo.pop()
        values += 1
        if isinstance(value, dict):
            chars += sum(len(k) for k in value if isinstance(k, str))
            todo += [(v, depth + 1) for v in value.values()]
        elif isinstance(value, (list, tuple)):
            todo += [(v, depth + 1) for v in value]
        elif isinstance(value, str):
            chars += len(value)
        what = (f"are nested more than {KWARGS_MAX_DEPTH} deep" if depth > KWARGS_MAX_DEPTH else
                f"hold more than {KWARGS_MAX_VALUES} values" if values > KWARGS_MAX_VALUES else
                f"hold more than {KWARGS_MAX_CHARS} characters" if chars > KWARGS_MAX_CHARS else None)
        if what:
            raise CamArgumentError(
                "kwargs", f"keyword arguments {what}; the limits are {KWARGS_MAX_DEPTH} levels of nesting, "
                          f"{KWARGS_MAX_VALUES} values and {KWARGS_MAX_CHARS} characters in all. Pass large data "
                          f"as a file path the factory reads instead")


def _short(value):
    """A bounded repr (``reprlib``: a few levels, a few items), safe for any value."""
    return reprlib.repr(value)


def parse_kwargs(text):
    """Keyword arguments given as JSON text (the App's form), parsed and
    checked as :func:`check_kwargs` checks them; ``""`` or None is ``{}``.

    Raises:
        CamArgumentError: (``kwargs``) for text that is not a JSON object,
            or too long or too deeply nested to parse (the bounds of :func:`check_kwargs`)
    """
    if not text:
        return {}
    if not isinstance(text, str) or len(text) > 2 * KWARGS_MAX_CHARS:
        raise CamArgumentError(
            "kwargs", f"keyword arguments must be JSON text of at most {2 * KWARGS_MAX_CHARS} characters; "
                      f"got {_short(text)}")
    try:
        value = json.loads(text)
    except RecursionError:  # json's decoder gives up on deep nesting before our bounds could
        raise CamArgumentError(
            "kwargs", f"keyword arguments are nested too deep to read; the limit is {KWARGS_MAX_DEPTH} levels") from None
    except ValueError as e:
        raise CamArgumentError("kwargs", f"keyword arguments must be a JSON object: {e}") from None
    return check_kwargs(value)
