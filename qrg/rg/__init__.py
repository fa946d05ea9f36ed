"""RG schemes: Carosso (and its M-modified form) and Polchinski (and its M-modified kernel)."""

from .base import RGScheme
from .carosso import Carosso, CarossoM
from .polchinski import Polchinski, PolchinskiM

SCHEMES = {"carosso": Carosso, "polchinski": Polchinski}


def make_scheme(name: str, lattice, M: float = 1.0, **kwargs) -> RGScheme:
    """Build a scheme by name ('carosso' or 'polchinski')."""
    from .._validation import QRGInputError

    key = name.lower().replace("-", "_").removesuffix("_m")
    if key not in SCHEMES:
        raise QRGInputError(f"scheme must be one of {sorted(SCHEMES)} (got {name!r})")
    return SCHEMES[key](lattice, M, **kwargs)


__all__ = ["RGScheme", "Carosso", "CarossoM", "Polchinski", "PolchinskiM", "SCHEMES", "make_scheme"]
