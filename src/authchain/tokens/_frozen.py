"""Immutable JSON containers for values parsed from tokens (private: the token code builds them).

The nested claims of a verified task token (``act``, ``tctx``, ``rctx``, ``authz``) and the checked
JWS headers that the parser caches are made of these, so that a parsed value can be shared between
requests that present the same token, and copied into child tokens, without one caller's change
leaking into another's.
"""

from __future__ import annotations

from typing import Any, NoReturn

__all__ = ["FrozenDict", "FrozenList", "freeze_json"]


class FrozenDict(dict[str, Any]):
    """A JSON object that refuses mutation.

    It is still a ``dict`` for reading and for every JSON encoder; ``copy()``, ``copy.deepcopy`` and
    pickling give back plain, mutable ``dict`` objects.
    """

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("values parsed from a token are immutable; use .copy() for a mutable copy")

    __setitem__ = _refuse
    __delitem__ = _refuse
    __ior__ = _refuse
    clear = _refuse
    pop = _refuse
    popitem = _refuse
    setdefault = _refuse
    update = _refuse

    def __reduce__(self) -> tuple[type[dict[str, Any]], tuple[dict[str, Any]]]:
        return (dict, (dict(self),))


class FrozenList(list[Any]):
    """A JSON array that refuses mutation (see :class:`FrozenDict`)."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(
            "values parsed from a token are immutable; use list(...) for a mutable copy"
        )

    __setitem__ = _refuse
    __delitem__ = _refuse
    __iadd__ = _refuse
    __imul__ = _refuse
    append = _refuse
    clear = _refuse
    extend = _refuse
    insert = _refuse
    pop = _refuse
    remove = _refuse
    reverse = _refuse
    sort = _refuse

    def __reduce__(self) -> tuple[type[list[Any]], tuple[list[Any]]]:
        return (list, (list(self),))


def freeze_json(value: Any) -> Any:
    """``value`` with every object and array replaced by its immutable form."""
    if type(value) is dict or type(value) is FrozenDict:
        return FrozenDict({k: freeze_json(v) for k, v in value.items()})
    if type(value) is list or type(value) is FrozenList or type(value) is tuple:
        return FrozenList(freeze_json(v) for v in value)
    return value
