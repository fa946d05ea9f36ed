"""Score models s_θ(φ, t) with exact divergence (design §4).

* :class:`GaussianBridge` (``"gaussian"``): linear, Fourier-diagonal, exact for the free theory;
* :class:`EFTScore` (``"eft"``): Σ_i f_i(t) g_i(φ), g = (Δφ, φ, φ³), plus an orthogonal residual
  (paper 5.26);
* :class:`KernelNet` (``"kernel"``): equivariant convolutions of odd pointwise features
  (Gerdes et al. 2022);
* :class:`Composite`: a sum of models; ``"default"`` = GaussianBridge + KernelNet.

A new model is one file with a :class:`ScoreModel` subclass decorated with
``@MODELS.register("name")``; ``make_model(name, lattice, scheme, **options)`` builds it.
"""

from .base import MODELS, ScoreModel
from .composite import Composite, default_model
from .eft import EFTScore
from .gaussian_bridge import GaussianBridge
from .kernel_net import KernelNet


def make_model(name: str, lattice, scheme, **options) -> ScoreModel:
    """Build the registered score model ``name`` on ``lattice`` with ``scheme``.

    ``options``: ``variance0`` (initial / reference C_0 eigenvalues) and the model's own fields
    (``MODELS.get(name).options()`` lists them, e.g. width, depth, n_sin, time_scale, out_scale).
    """
    from .._validation import QRGInputError

    if scheme.lattice != lattice:
        raise QRGInputError("scheme must be built on the same lattice as the model")
    member = MODELS.get(name, "model")
    allowed = member.options()
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise QRGInputError(f"unknown options {unknown} for model {str(name).lower()!r}; allowed: {sorted(allowed)}")
    return getattr(member, "create", member)(lattice, scheme, **options)


__all__ = ["ScoreModel", "GaussianBridge", "EFTScore", "KernelNet", "Composite", "default_model", "MODELS",
           "make_model"]
