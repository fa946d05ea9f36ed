"""Sums of score models; the default model is GaussianBridge + KernelNet.

    s(φ, t) = Σ_m s_m(φ, t),     tr(W J_s) = Σ_m tr(W J_{s_m}),

and the prior at T is the one of the FIRST member (the linear Gaussian bridge in the default
model, so the free theory stays exactly representable: the correction starts near zero and
training can switch it off).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from .._validation import QRGInputError
from .base import MODELS, ScoreModel
from .gaussian_bridge import GaussianBridge
from .kernel_net import KernelNet


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

    @nn.nowrap
    def transfer(self, params, source):
        """This sum's parameters from the trained ``params`` of ``source``: member by member
        (:meth:`ScoreModel.transfer`)."""
        if len(source.members) != len(self.members):
            raise QRGInputError(f"cannot transfer the parameters of a sum of {len(source.members)} score models to "
                                f"one of {len(self.members)}")
        return {**params, **{f"members_{i}": m.transfer(params[f"members_{i}"], s)
                             for i, (m, s) in enumerate(zip(self.members, source.members))}}

    def prior_variance(self, T):
        return self.members[0].prior_variance(T)


@MODELS.register("default")
def default_model(lattice, scheme, variance0=None, **kernel_options) -> Composite:
    """The default score model: ``GaussianBridge(variance0) + KernelNet(**kernel_options)``, the kernel
    network with its φ sqrt(1 + φ²) feature unless ``growth=False``.

    The bridge carries the Gaussian part (and the prior); the kernel network starts as a small
    correction (its own reference C_0 is the default one).
    """
    bridge = GaussianBridge.create(lattice, scheme, variance0)
    kernel_options.setdefault("growth", True)
    return Composite(lattice, scheme, members=(bridge, KernelNet.create(lattice, scheme, **kernel_options)))


default_model.options = lambda: ("variance0",) + tuple(o for o in KernelNet.options() if o != "variance0")
