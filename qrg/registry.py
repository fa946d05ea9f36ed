"""One registry per family of interchangeable parts (RG schemes, score models, ODE solvers,
adjoints, energy estimators, RG-consistency objectives, optimisers, baselines).

A registry maps a lower-case name to a member (a class or a factory). Adding a member is one
decorator in the member's own file::

    from qrg.rg import SCHEMES

    @SCHEMES.register("my_scheme")
    @dataclasses.dataclass(frozen=True)
    class MyScheme(RGScheme):
        ...

Configuration files, the command line and the Python API all validate names against the same
registry (``SCHEMES.check("scheme", name)``), so the list of allowed names cannot drift.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from ._validation import QRGInputError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named members of one family; ``family`` names it in error messages ("RG scheme", ...)."""

    def __init__(self, family: str):
        self.family = family
        self._members: dict[str, T] = {}

    def register(self, name: str, member: T | None = None) -> Callable[[T], T] | T:
        """Register ``member`` under ``name`` (usable as a decorator when ``member`` is omitted)."""
        key = str(name).lower()

        def add(obj: T) -> T:
            if key in self._members and self._members[key] is not obj:
                raise ValueError(f"{self.family} {key!r} is registered twice")
            self._members[key] = obj
            return obj

        return add if member is None else add(member)

    def names(self) -> tuple[str, ...]:
        return tuple(self._members)

    def check(self, parameter: str, name) -> str:
        """The normalised name, or a QRGInputError naming ``parameter`` and the allowed names."""
        key = str(name).lower() if isinstance(name, str) else None
        if key not in self._members:
            raise QRGInputError(f"{parameter} must be one of {self.names()} (got {name!r})")
        return key

    def get(self, name, parameter: str | None = None) -> T:
        return self._members[self.check(parameter or self.family, name)]

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and name.lower() in self._members

    def __iter__(self) -> Iterator[str]:
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def __repr__(self) -> str:
        return f"Registry({self.family!r}: {', '.join(self._members)})"
