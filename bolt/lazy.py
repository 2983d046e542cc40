"""Names a package loads on first use (PEP 562), so that importing it starts no JAX."""

from __future__ import annotations

import importlib

__all__ = ["lazy_exports"]


def lazy_exports(package: str, where: dict[str, str], public: list[str]):
    """``(__getattr__, __dir__)`` for ``package``: a name in ``where`` (name → module) is imported from its module
    on first access and kept in the package's namespace; ``public`` joins ``dir()``."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str):
        if name in where:
            value = getattr(importlib.import_module(where[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(namespace) | set(public))

    return __getattr__, __dir__
