"""The true RG flow of observables: samples pushed through the exact transition kernel.

Given samples of p_0 (NUTS draws of e^{−S_E}, ground-state samples of |Ψ|², ...) and an RG
scheme (Carosso-M, Polchinski-M: linear, Fourier-diagonal SDEs, design §3.1), the flowed
samples at times 0 = t_0 < t_1 < ... are drawn along one path per configuration with the
exact kernels between consecutive times,

    φ_{t_{i+1}} = α_{t_{i+1}|t_i} φ_{t_i} + Σ_{t_{i+1}|t_i}^{1/2} ξ_i,   ξ_i ~ N(0, 1) i.i.d.,

(``scheme.transition_between``), so each φ_t is an exact draw of p_t = p_0 ∗ kernel (paper
5.8–5.10, 5.20, 5.41) and the paths are RG trajectories (as in the image rows of the paper's
Figure 6). The estimators of :mod:`qrg.observables` (m_R, Z, λ_R, max|φ|, ... with the r_t
rescaling of 7.3–7.4, r_t = ``scheme.cutoff_ratio(t)``) are evaluated at every t; Markov-chain
structure of the input (n_chains, n_samples, ...) is kept, so error bars account for τ_int.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..observables import measure, to_json

if TYPE_CHECKING:
    from ..rg import RGScheme

OBSERVABLES_ALONG_FLOW = ("m_R", "m_R2", "m_R2_rescaled", "Z", "lambda_R", "lambda_R_rescaled", "g_R",
                          "max_abs_phi", "phi2", "abs_m", "chi", "binder", "xi")


def flow_path(key, samples, scheme: RGScheme, ts):
    """Flowed samples at every time in ``ts`` (increasing, ≥ 0) along exact kernel paths
    (:meth:`~qrg.rg.RGScheme.sample_path`). Returns an array of shape (len(ts),) + samples.shape."""
    return scheme.sample_path(key, samples, ts)


def flow_observables(key, samples, scheme: RGScheme, ts, *, subtract_mean: bool = False, n_blocks: int = 20,
                     markov: bool | None = None, keep: int = 0) -> dict:
    """Observables along the true RG flow of ``samples``.

    Returns ``{"t": [...], "r_t": [...], "observables": {name: {"mean": [...], "err": [...],
    "tau_int": [...]}}, "snapshots": array (len(ts), keep, *shape)}`` (first ``keep``
    flowed configurations, for pictures).
    """
    lat = scheme.lattice
    flowed = flow_path(key, samples, scheme, ts)
    ts = np.asarray(ts, dtype=float)
    result = {"t": ts.tolist(), "r_t": [float(scheme.cutoff_ratio(float(t))) for t in ts], "observables": {}}
    per_t = []
    for i, t in enumerate(ts):
        obs = measure(np.asarray(flowed[i]), lat, r_t=result["r_t"][i], subtract_mean=subtract_mean,
                      n_blocks=n_blocks, markov=markov)
        per_t.append(to_json(obs))
    for name in per_t[0]:
        result["observables"][name] = {k: [p[name][k] for p in per_t] for k in ("mean", "err", "tau_int")}
    if keep:
        flat = np.asarray(flowed).reshape((len(ts), -1) + lat.shape)
        result["snapshots"] = flat[:, :keep]
    return result


def gaussian_flow_g2(scheme: RGScheme, t, variance0) -> np.ndarray:
    """Exact G2_t(p) = a^d C_t(p) of a Gaussian p_0 = N(0, C_0) flowed to t (the Gaussian bridge)."""
    return scheme.lattice.volume_element * np.asarray(scheme.bridge_variance(t, variance0))
