"""Score models s_θ(φ, t) with exact divergence (design §4).

* :class:`GaussianBridge` — linear, Fourier-diagonal, exact for the free theory;
* :class:`EFTScore` — Σ_i f_i(t) g_i(φ), g = (Δφ, φ, φ³), plus an orthogonal residual (paper 5.26);
* :class:`KernelNet` — equivariant convolutions of odd pointwise features (Gerdes et al. 2022);
* :class:`Composite` — a sum of models; GaussianBridge + KernelNet is the default.

``make_model(name, lattice, scheme, **kw)`` builds one by name.
"""

from .base import ScoreModel
from .gaussian_bridge import GaussianBridge

__all__ = ["ScoreModel", "GaussianBridge"]
