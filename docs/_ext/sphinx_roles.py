"""Griffe extension for the API reference: Sphinx roles in docstrings become Markdown.

The package's docstrings use Sphinx roles (``:class:`IOStream```, ``:meth:`on```) because they are
read in editors and ``help()`` as much as on the site. mkdocstrings renders docstrings as
Markdown, where a role shows as literal ``:class:`` text. This rewrites each role, once the
package is loaded, into a cross-reference when its target is part of the public API (an entry of
``sio_stream.__all__`` or a member of one), and into plain code otherwise (a private helper
has no page to link to). ``~`` keeps only the last component as the label, as in Sphinx.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|meth|func|attr|data|mod|exc|obj):`(~?)([^`]+)`")


def _public_path(
    target: str, public: set[str], owner: griffe.Object | None, package: griffe.Object
) -> str | None:
    """The documented path of ``target`` (``sio_stream.Name[.member]``), or ``None``."""
    parts = [p for p in target.lstrip(".").split(".") if p]
    if parts and parts[0] == package.name:
        parts = parts[1:]
        if parts and parts[0].startswith("_"):
            parts = parts[1:]  # sio_stream._errors.peer_message -> peer_message
    if not parts:
        return None
    candidates = []
    if parts[0] in public:
        candidates.append(parts)
    if owner is not None and owner.name in public:
        candidates.append([owner.name, *parts])
    for candidate in candidates:
        try:
            package[".".join(candidate)]
        except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            continue
        if any(part.startswith("_") for part in candidate[1:]):
            continue
        return ".".join([package.name, *candidate])
    return None


def _enclosing_class(obj: griffe.Object) -> griffe.Object | None:
    while obj is not None and not obj.is_class:
        obj = obj.parent  # type: ignore[assignment]
    return obj


class SphinxRoles(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        public = set(pkg.exports or ())
        seen: set[int] = set()

        def rewrite(obj: griffe.Object) -> None:
            if id(obj) in seen:
                return
            seen.add(id(obj))
            if obj.docstring is not None:
                owner = _enclosing_class(obj)

                def replace(match: re.Match[str]) -> str:
                    short, target = match.group(1), match.group(2)
                    label = target.split(".")[-1] if short else target
                    path = _public_path(target, public, owner, pkg)
                    return f"[`{label}`][{path}]" if path else f"`{label}`"

                obj.docstring.value = ROLE.sub(replace, obj.docstring.value)
            for member in obj.members.values():
                if not member.is_alias:
                    rewrite(member)  # type: ignore[arg-type]

        rewrite(pkg)
