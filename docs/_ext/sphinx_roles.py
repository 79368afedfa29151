"""A griffe extension for the API reference: cam_core's docstrings use Sphinx
roles (``:func:`cam_core.compute_cams```), which Markdown shows as they are.

Each role becomes, in the docstrings of the package being documented:

- a cross-reference (``[`cam_core.x`][cam_core.x]``) when it names a
  top-level name, ``cam_core.x`` or a bare ``x`` that is in ``__all__``, or a
  name of a documented module (``cam_core.checks.x``, ``cam_core.app.x``,
  ``cam_core.types.x``, in that module's ``__all__``):
  mkdocs-autorefs must resolve it, so under ``mkdocs build --strict`` a
  docstring naming a public function that no longer exists fails the build;
- code (``` `x` ```) otherwise (a private helper, a submodule).

A line ending in ``::`` (reStructuredText's "a literal block follows") ends
in ``:``; the indented block after it is already a Markdown code block.

In an ``Args:`` section, ``name (default): text`` (FiftyOne's style) loses
its parentheses: griffe would read the default as a type, and the reference
shows each parameter's default from the signature anyway.
"""
import re

import griffe

ROLE = re.compile(r":(?:py:)?(func|class|data|meth|mod|attr|exc|obj):`~?\.?([^`]+)`")
LITERAL = re.compile(r"(?<=\S)::$", re.MULTILINE)
ARG = re.compile(r"^(\s+\*{0,2}[A-Za-z_]\w*) \([^()]*\):")


def _exports(pkg):
    names = pkg.exports or []
    return {n if isinstance(n, str) else getattr(n, "name", str(n)) for n in names}


# the modules the reference documents besides the top level (docs/api.md)
DOCUMENTED = ("checks", "app", "types")


def convert(text, package, public, modules=None):
    """The docstring ``text`` with its roles as Markdown (see the module's
    docstring); ``modules``: ``{module: its public names}`` of the documented modules."""
    modules = modules or {}

    def role(match):
        kind, target = match.groups()
        head, _, rest = target.partition(".")
        if kind == "mod":
            return f"`{target}`"  # submodules are not in the reference
        if head == package and rest and "." not in rest:
            return f"[`{target}`][{target}]"  # must resolve: a public name of the package
        module, _, name = rest.partition(".")
        if head == package and module in modules and name in modules[module]:
            return f"[`{target}`][{target}]"  # must resolve too: a documented module's name
        if "." not in target and target in public:
            return f"[`{target}`][{package}.{target}]"
        return f"`{target}`"

    return _defaults_out(LITERAL.sub(":", ROLE.sub(role, text)))


def _defaults_out(text):
    lines, in_args = [], False
    for line in text.split("\n"):
        if line and not line[0].isspace():
            in_args = line.strip() in ("Args:", "Arguments:", "Parameters:")
        elif in_args:
            line = ARG.sub(r"\1:", line)
        lines.append(line)
    return "\n".join(lines)


def _objects(obj):
    yield obj
    for member in obj.members.values():
        if member.is_alias:
            continue
        yield from _objects(member)


class SphinxRoles(griffe.Extension):
    """Rewrites the roles of every docstring of the package once it is loaded."""

    def on_package(self, *, pkg, **kwargs):
        public = _exports(pkg)
        modules = {m: _exports(pkg.members[m]) for m in DOCUMENTED if m in pkg.members}
        for obj in _objects(pkg):
            if obj.docstring is not None:
                obj.docstring.value = convert(obj.docstring.value, pkg.name, public, modules)
