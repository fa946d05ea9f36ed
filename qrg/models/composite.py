"""Sums of score models; the default model is GaussianBridge + KernelNet.

    s(φ, t) = Σ_m s_m(φ, t),     tr(W J_s) = Σ_m tr(W J_{s_m}),

and the prior at T is the one of the FIRST member (the linear Gaussian bridge in the default
model, so the free theory stays exactly representable: the correction starts near zero and
training can switch it off).
"""

from __future__ import annotations

import jax.numpy as jnp

from .._validation import QRGInputError
from .base import ScoreModel


class Composite(ScoreModel):
    """Sum of ``members`` (a tuple of ScoreModels on the same lattice and scheme)."""

    members: tuple = ()

    @property
    def supports_weighted_trace(self) -> bool:
        return all(m.supports_weighted_trace for m in self.members)

    def setup(self):
        if not self.members:
            raise QRGInputError("a Composite score model needs at least one member")
        for m in self.members:
            if m.lattice != self.lattice or m.scheme != self.scheme:
                raise QRGInputError("all Composite members must share the composite's lattice and scheme")

    def score_and_divergence(self, phi, t, weight=None):
        score = jnp.zeros_like(phi)
        div = 0.0
        for m in self.members:
            s, d = m.score_and_divergence(phi, t, weight)
            score = score + s
            div = div + d
        return score, div

    def prior_variance(self, T):
        return self.members[0].prior_variance(T)
