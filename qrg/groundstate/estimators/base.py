"""The energy-estimator interface (design §3.3).

An estimator turns samples φ ~ p (independent draws of |Ψ|²), their scores g = ∇_φ log p and,
if it needs them, the Laplacians Δ_φ log p of the first m samples into a :class:`~qrg.stats.Stats`
of ⟨H⟩. Every estimator shipped here is unbiased for any p whose score is g. A new estimator is
one file with a subclass of :class:`EnergyEstimator` registered in ``ESTIMATORS``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ...registry import Registry
from ...stats import Stats, statistics, tail_diagnostics

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


def finite_stats(x, name: str, *, tails: bool = False) -> Stats:
    """Statistics of independent samples ``x``; non-finite values raise FloatingPointError naming ``name``.

    ``tails``: attach :func:`~qrg.stats.tail_diagnostics` (the error of the variance and the weight of
    the largest deviations) as ``Stats.tails``; the energy estimators do, for their per-sample values.
    """
    x = np.asarray(x, dtype=float)
    if not np.all(np.isfinite(x)):
        bad = int(np.sum(~np.isfinite(x)))
        raise FloatingPointError(f"{bad} of {x.size} samples of {name} are not finite")
    st = statistics(x, correlated=False)
    return with_tails(st, x) if tails else st


def with_tails(st: Stats, x) -> Stats:
    """``st`` with the :func:`~qrg.stats.tail_diagnostics` of its independent samples ``x`` (n ≥ 2)."""
    x = np.asarray(x, dtype=float).reshape(-1)
    return dataclasses.replace(st, tails=tail_diagnostics(x)) if x.size >= 2 else st
