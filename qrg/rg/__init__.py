"""RG schemes (design §3.1): linear, Fourier-diagonal SDEs with exact kernels.

* :class:`Carosso` (paper 5.9–5.10) and its mass-modified form :class:`CarossoM` (5.20, M > 0);
* :class:`Polchinski` (5.38–5.40) and its M-modified kernel :class:`PolchinskiM` (5.41–5.42).

A new scheme is one file with a subclass of :class:`RGScheme` decorated with
``@SCHEMES.register("name")``; ``make_scheme(name, lattice, M)`` builds any registered scheme.
"""

from .base import SCHEMES, RGScheme
from .carosso import Carosso, CarossoM
from .polchinski import Polchinski, PolchinskiM


def make_scheme(name: str, lattice, M: float = 1.0, **kwargs) -> RGScheme:
    """Build a registered scheme by name (``"carosso"``, ``"polchinski"``; a suffix ``"-m"`` is accepted)."""
    key = str(name).lower().replace("-", "_").removesuffix("_m") if isinstance(name, str) else name
    return SCHEMES.get(key, "scheme")(lattice, M, **kwargs)


__all__ = ["RGScheme", "Carosso", "CarossoM", "Polchinski", "PolchinskiM", "SCHEMES", "make_scheme"]
