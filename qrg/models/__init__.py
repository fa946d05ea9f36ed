"""Score models s_θ(φ, t) with exact divergence (design §4).

* :class:`GaussianBridge` — linear, Fourier-diagonal, exact for the free theory;
* :class:`EFTScore` — Σ_i f_i(t) g_i(φ), g = (Δφ, φ, φ³), plus an orthogonal residual (paper 5.26);
* :class:`KernelNet` — equivariant convolutions of odd pointwise features (Gerdes et al. 2022);
* :class:`Composite` — a sum of models; GaussianBridge + KernelNet is the default.

``make_model(name, lattice, scheme, **kw)`` builds one by name.
"""

from .._validation import QRGInputError
from .base import ScoreModel
from .composite import Composite
from .eft import EFTScore
from .gaussian_bridge import GaussianBridge
from .kernel_net import KernelNet

MODELS = ("gaussian", "eft", "kernel", "default")
_NONLINEAR_KW = ("n_sin", "base_frequency", "width", "depth", "n_freq", "time_scale", "out_scale", "collective")


def make_model(name: str, lattice, scheme, **kw) -> ScoreModel:
    """Build a score model by name.

    * ``"gaussian"`` — :class:`GaussianBridge` (kw: ``variance0``);
    * ``"eft"`` — :class:`EFTScore` (kw: ``variance0`` reference, ``residual``, network sizes);
    * ``"kernel"`` — :class:`KernelNet` (kw: ``variance0`` reference prior, network sizes);
    * ``"default"`` — ``Composite((GaussianBridge(variance0), KernelNet(...)))``.

    Network-size keywords: n_sin, base_frequency, width, depth, n_freq, time_scale (set it to the flow's T),
    out_scale (initial size of the nonlinear output), collective (KernelNet's mean-field channel h(M, t)).
    """
    if scheme.lattice != lattice:
        raise QRGInputError("scheme must be built on the same lattice as the model")
    key = str(name).lower()
    if key not in MODELS:
        raise QRGInputError(f"model must be one of {MODELS} (got {name!r})")
    allowed = {"gaussian": ("variance0",), "eft": ("variance0", "residual") + _NONLINEAR_KW,
               "kernel": ("variance0",) + _NONLINEAR_KW, "default": ("variance0",) + _NONLINEAR_KW}[key]
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        raise QRGInputError(f"unknown options {unknown} for model {key!r}; allowed: {sorted(allowed)}")
    if key == "gaussian":
        return GaussianBridge.create(lattice, scheme, **kw)
    if key == "eft":
        return EFTScore.create(lattice, scheme, **kw)
    if key == "kernel":
        return KernelNet.create(lattice, scheme, **kw)
    variance0 = kw.pop("variance0", None)
    bridge = GaussianBridge.create(lattice, scheme, variance0)
    return Composite(lattice, scheme, members=(bridge, KernelNet(lattice, scheme, **kw)))


__all__ = ["ScoreModel", "GaussianBridge", "EFTScore", "KernelNet", "Composite", "MODELS", "make_model"]
