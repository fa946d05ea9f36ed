"""The RG-flowed ground states Ψ_t and the running couplings along the flow (paper 6.3, 5.26).

The marginal p_θ,t = |Ψ_t|² of the trained flow at RG time t is sampled by a backward solve
T → t (exact log p and score on the way). For a flow trained with RG consistency it is the
ground state flowed by t through the exact kernel of the scheme (checked by
:mod:`qrg.groundstate.consistency`). At each t this module measures

* field observables: ⟨φ²⟩, ⟨φ⁴⟩ (site averages), the two-point function G2 per momentum shell
  (G2(k) = a^d N^-d ⟨|φ̃(k)|²⟩, averaged over the momenta of one p̂² shell), ⟨|M|⟩, ⟨M²⟩, ⟨M⁴⟩,
  and the renormalised m_R, Z, λ_R, g_R of :func:`qrg.observables.measure` (paper 7.3–7.10, with
  the cutoff ratio r_t of the scheme);
* the running couplings: the L²(p_θ,t) projection of the learned score on the EFT operators
  g = (Δφ, φ, φ³) of paper (5.26),

      f(t) = argmin_f E_{φ ~ p_θ,t} |s_θ(φ, t) − Σ_i f_i g_i(φ)|²  = G^{-1} r,
      G_ij = E⟨g_i, g_j⟩,  r_i = E⟨g_i, s_θ⟩,

  so that −log p_t ≈ −½ f_Δ Σ φΔφ − ½ f_φ Σ φ² − ¼ f_3 Σ φ⁴ + const (f_Δ > 0 is a kinetic term,
  −f_φ a mass term, −f_3 a quartic coupling). For the ``eft`` model, whose residual is orthogonal
  to the g_i configuration by configuration, the projection returns its f_i(t) exactly; for the
  exact Gaussian bridge it is the C_t-weighted least-squares fit of −C_t^{-1}(k) by f_φ − f_Δ p̂²
  with f_3 = 0 (the Wick-ordered part of φ³ is orthogonal to every linear score). On one site
  Δφ ≡ 0 and only (f_φ, f_3) are fitted. Error bars: jackknife over 20 blocks of samples.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_int
from ..parallel import gather
from ..stats import Stats, jackknife, statistics

COUPLINGS = ("f_laplacian", "f_phi", "f_phi3")


def shell_power(phi, lattice) -> np.ndarray:
    """Per-sample G2 per momentum shell: a^d N^-d |φ̃(k)|² averaged over each p̂² shell, shape (n, S)."""
    masks = lattice.momentum_shell_masks()
    power = lattice.volume_element / lattice.n_sites * lattice.power(jnp.asarray(phi))
    sums = jnp.einsum("b...,s...->bs", power, jnp.asarray(masks))
    return np.asarray(sums / masks.reshape(masks.shape[0], -1).sum(axis=1))


def shell_phat2(lattice) -> np.ndarray:
    """p̂² of every shell of :meth:`~qrg.Lattice.momentum_shells` (ascending)."""
    masks = lattice.momentum_shell_masks()
    return np.array([float(np.asarray(lattice.phat2)[m > 0][0]) for m in masks])


def local_moments(phi, lattice) -> dict[str, np.ndarray]:
    """Per-sample φ² and φ⁴ (site averages) and M, M², M⁴ (M = N^-d Σ φ)."""
    phi = jnp.asarray(phi)
    m = lattice.mean_sites(phi)
    return {"phi2": np.asarray(lattice.mean_sites(phi**2)), "phi4": np.asarray(lattice.mean_sites(phi**4)),
            "abs_m": np.asarray(jnp.abs(m)), "M2": np.asarray(m**2), "M4": np.asarray(m**4)}


def _operators(lattice, phi):
    """The EFT operators g = (Δφ, φ, φ³) per sample, shape (n, 3) + lattice.shape."""
    return jnp.stack([lattice.laplacian(phi), phi, phi**3], axis=1)


def running_couplings(lattice, phi, score) -> dict[str, Stats | None]:
    """Least-squares projection of ``score`` (the learned s_θ(φ, t) of the samples ``phi``) on (Δφ, φ, φ³).

    Returns {name: Stats} for ``COUPLINGS`` (``f_laplacian`` is None on one site, where Δφ ≡ 0);
    mean and error by a 20-block jackknife over the samples.
    """
    g = _operators(lattice, jnp.asarray(phi))
    axes = tuple(range(2, g.ndim))
    gram = np.asarray(jnp.einsum("bi...,bj...->bij", g, g))  # (n, 3, 3) per-sample <g_i, g_j>
    cross = np.asarray(jnp.sum(g * jnp.asarray(score)[:, None], axis=axes))  # (n, 3) per-sample <g_i, s>
    live = [0, 1, 2] if lattice.n_sites > 1 else [1, 2]
    per_sample = np.concatenate([gram[:, live][:, :, live].reshape(len(gram), -1), cross[:, live]], axis=1)
    k = len(live)

    def fit(rows, i):
        mean = rows.reshape(-1, rows.shape[-1]).mean(axis=0)
        return float(np.linalg.solve(mean[:k * k].reshape(k, k), mean[k * k:])[i])

    out = dict.fromkeys(COUPLINGS)
    for i, name in enumerate(live):
        mean, err = jackknife(per_sample, lambda rows, i=i: fit(rows, i), n_blocks=20)
        out[COUPLINGS[name]] = Stats(mean=mean, err=err, variance=float("nan"), n_samples=len(per_sample))
    return out


@dataclasses.dataclass
class FlowedState:
    """Samples and measurements of Ψ_t: ``phi``, ``log_p``, ``score`` (∇ log p_θ,t, exact), ``r_t``
    (cutoff ratio), ``g2`` (per shell: ``phat2``, ``mean``, ``err``), ``moments`` (φ², φ⁴, |M|, M², M⁴),
    ``renormalized`` (m_R, Z, λ_R, g_R, ... of :func:`qrg.observables.measure`; empty on one site) and
    ``couplings`` (the running couplings of :func:`running_couplings`)."""

    t: float
    phi: np.ndarray
    log_p: np.ndarray
    score: np.ndarray
    r_t: float
    g2: dict
    moments: dict
    renormalized: dict
    couplings: dict

    def to_json(self) -> dict:
        def st(s):
            return None if s is None else {"mean": _clean(s.mean), "err": _clean(s.err)}

        return {"t": self.t, "r_t": self.r_t, "n_samples": int(self.phi.shape[0]),
                **{name: st(s) for name, s in self.moments.items()},
                "G2": {k: [_clean(x) for x in v] for k, v in self.g2.items()},
                **{name: st(self.renormalized.get(name)) for name in ("m_R", "Z", "lambda_R", "g_R", "binder")},
                "couplings": {name: st(s) for name, s in self.couplings.items()}}


def _clean(x):
    x = float(x)
    return x if math.isfinite(x) else None


def measure_flowed(lattice, scheme, t: float, phi, score) -> dict:
    """The measurements of :class:`FlowedState` from samples ``phi`` of p_θ,t and their learned scores."""
    from ..observables import measure

    r_t = float(scheme.cutoff_ratio(float(t)))
    power = shell_power(phi, lattice)
    g2 = {"phat2": shell_phat2(lattice).tolist(),
          "mean": power.mean(axis=0).tolist(),
          "err": (power.std(axis=0, ddof=1) / math.sqrt(power.shape[0])).tolist()}
    moments = {k: statistics(v, correlated=False) for k, v in local_moments(phi, lattice).items()}
    renormalized = measure(np.asarray(phi), lattice, r_t=r_t, markov=False) if lattice.N >= 2 else {}
    return {"r_t": r_t, "g2": g2, "moments": moments, "renormalized": renormalized,
            "couplings": running_couplings(lattice, phi, score)}


def flowed_state(state, t: float, key, n: int = 4096, *, chunk_size: int = 512) -> FlowedState:
    """Ψ_t of a trained :class:`~qrg.groundstate.GroundState`: ``n`` samples of p_θ,t with measurements."""
    n = check_int("n (samples of the flowed state)", n, minimum=40)
    flow, params = state.flow, state.params
    parts = [flow.sample_at(params, jax.random.fold_in(key, c), min(chunk_size, n - s), float(t))
             for c, s in enumerate(range(0, n, chunk_size))]
    phi, log_p, score = (np.asarray(gather(jnp.concatenate(x))) for x in zip(*parts))
    learned = np.asarray(jax.vmap(lambda x: flow.model.apply(params, x, float(t), method="score"))(jnp.asarray(phi)))
    return FlowedState(t=float(t), phi=phi, log_p=log_p, score=score,
                       **measure_flowed(flow.lattice, flow.scheme, t, phi, learned))
