"""The energy-estimator interface (design §3.3).

An estimator turns samples φ ~ p (independent draws of |Ψ|²), their scores g = ∇_φ log p and,
if it needs them, the Laplacians Δ_φ log p of the first m samples into a :class:`~qrg.stats.Stats`
of ⟨H⟩. Every estimator shipped here is unbiased for any p whose score is g. A new estimator is
one file with a subclass of :class:`EnergyEstimator` registered in ``ESTIMATORS``.
"""

from __future__ import annotations

import numpy as np

from ...registry import Registry
from ...stats import Stats, statistics

#: energy estimators by name ("ibp", "cv", "local"); members are EnergyEstimator instances
ESTIMATORS: Registry = Registry("energy estimator")


class EnergyEstimator:
    """Base class: ``estimate(theory, phi, score, laplacian=None) -> Stats | None``.

    ``needs_laplacian``: the estimator uses Δ log p (``laplacian``, values for the first m ≤ n
    samples); without it, ``estimate`` returns None. ``label`` is the name used in summaries.
    """

    name: str = ""
    label: str = ""
    needs_laplacian: bool = False

    def estimate(self, theory, phi, score, laplacian=None) -> Stats | None:
        raise NotImplementedError


def finite_stats(x, name: str) -> Stats:
    """Statistics of independent samples ``x``; non-finite values raise FloatingPointError naming ``name``."""
    x = np.asarray(x, dtype=float)
    if not np.all(np.isfinite(x)):
        bad = int(np.sum(~np.isfinite(x)))
        raise FloatingPointError(f"{bad} of {x.size} samples of {name} are not finite")
    return statistics(x, correlated=False)
