"""Is Ψ_t the exact RG flow of Ψ_0? The consistency diagnostic of a trained flow (design §3.4).

On a grid of RG times t_1 < … < t_K in (0, T] two independent sample sets are compared:

* ``model``: the flow's own marginal p_θ,t (prior draws at T transported back to t_i, one
  independent set per t_i);
* ``exact``: samples of p_θ,0 pushed through the exact kernel of the scheme along RG paths
  (:meth:`~qrg.rg.RGScheme.sample_path`), i.e. the true RG flow of the learned ground state.

Per t and sample the observables are G2 per momentum shell (a^d N^-d |φ̃|², shell-averaged),
the site average of φ⁴ and M⁴ (M = N^-d Σφ): the two-point function and the local and
zero-mode four-point functions (⟨φ²⟩ and ⟨M²⟩ are linear combinations of the shells). With D the
vector of differences of the means over all (t, observable) and Σ_D its covariance (the model
sets are independent across t; the exact-flow paths are correlated across t, so their joint
covariance is used),

    χ² = Dᵀ Σ_D⁻¹ D   (on the non-degenerate subspace, dof = its rank),

and the p-value uses Hotelling's F form for an estimated covariance,
χ² (n − p)/(p (n − 1)) ~ F(p, n − p). ``max_dev_sigma`` is max_j |D_j|/σ_j. A flow that is an exact
RG flow gives χ²/dof ≈ 1 at any sample size; deviations grow like √n.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats as sps

from .._validation import QRGInputError, check_int
from ..parallel import gather
from .flowed import local_moments, shell_phat2, shell_power

#: default grid: 8 times between T/128 and T, denser at small t where the flow changes fastest
DEFAULT_FRACTIONS = (1 / 128, 1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0)


def observable_names(lattice) -> list[str]:
    return [f"G2[p2={p:.4g}]" for p in shell_phat2(lattice)] + ["phi4", "M4"]


def per_sample_observables(phi, lattice) -> np.ndarray:
    """(n, S + 2): G2 per shell, site-averaged φ⁴ and M⁴ of every sample."""
    mom = local_moments(phi, lattice)
    return np.concatenate([shell_power(phi, lattice), mom["phi4"][:, None], mom["M4"][:, None]], axis=1)


@dataclasses.dataclass
class ConsistencyReport:
    """χ² comparison of p_θ,t with the exact RG flow of p_θ,0 (module docstring)."""

    times: list
    observables: list
    chi2: float
    dof: int
    p_value: float
    max_dev_sigma: float
    worst: dict
    n_samples: int
    model: dict  # per t: observable -> {mean, err}
    exact: dict

    @property
    def chi2_dof(self) -> float:
        return self.chi2 / max(self.dof, 1)

    @property
    def finite(self) -> bool:
        """False if either sample set had non-finite fields (then χ² = ∞, p = 0)."""
        return math.isfinite(self.chi2)

    def to_json(self) -> dict:
        num = lambda x: x if math.isfinite(x) else None  # noqa: E731 - valid JSON: ∞ -> null
        return {"chi2": num(self.chi2), "dof": self.dof, "chi2_dof": num(self.chi2_dof), "p_value": self.p_value,
                "max_dev_sigma": num(self.max_dev_sigma), "finite": self.finite, "worst": self.worst,
                "n_samples": self.n_samples,
                "times": self.times, "observables": self.observables,
                "per_t": [{"t": t, "model": self.model[i], "exact_flow": self.exact[i]}
                          for i, t in enumerate(self.times)]}

    def __str__(self) -> str:
        if not self.finite:
            return f"RG consistency: failed, the flow produced non-finite samples ({self.n_samples} per set)"
        w = self.worst
        return (f"RG consistency: χ²/dof = {self.chi2:.1f}/{self.dof} = {self.chi2_dof:.2f} (p = {self.p_value:.3g}), "
                f"max |Δ| = {self.max_dev_sigma:.1f}σ ({w['observable']} at t = {w['t']:.3g}); "
                f"{len(self.times)} times, {self.n_samples} samples each")


def _model_samples(flow, params, key, n, t, chunk):
    """Fields of p_θ,t: prior draws at T transported back to t (no density needed)."""
    out = []
    for c, s in enumerate(range(0, n, chunk)):
        k = jax.random.fold_in(key, c)
        phi_T = flow.prior(params).sample(k, (min(chunk, n - s),))
        out.append(phi_T if t == flow.T else flow.transport(params, phi_T, flow.T, t))
    return gather(jnp.concatenate(out))  # readable on every process


def chi2_test(diff: np.ndarray, cov: np.ndarray, n: int) -> tuple[float, int, float]:
    """(χ², rank, p-value) of ``diff`` with covariance ``cov`` estimated from ``n`` samples."""
    w, v = np.linalg.eigh(cov)
    keep = w > 1e-12 * w.max()
    z = (v[:, keep].T @ diff) / np.sqrt(w[keep])
    chi2, p = float(z @ z), int(keep.sum())
    if n > p:
        p_value = float(sps.f.sf(chi2 * (n - p) / (p * (n - 1)), p, n - p))
    else:  # pragma: no cover - more observables than samples
        p_value = float(sps.chi2.sf(chi2, p))
    return chi2, p, p_value


def rg_consistency(state, key, n: int = 4096, *, times=None, chunk_size: int = 512) -> ConsistencyReport:
    """:class:`ConsistencyReport` of a trained :class:`~qrg.groundstate.GroundState` on ``n`` samples per set.

    ``times``: RG times in (0, T] (default ``DEFAULT_FRACTIONS`` · T).
    """
    flow, params, lat = state.flow, state.params, state.flow.lattice
    n = check_int("n (samples of the consistency check)", n, minimum=16)
    times = np.asarray([f * flow.T for f in DEFAULT_FRACTIONS] if times is None else times, dtype=float)
    if times.ndim != 1 or times.size == 0 or np.any(times <= 0) or np.any(times > flow.T) or np.any(np.diff(times) <= 0):
        raise QRGInputError(f"times must increase strictly within (0, T={flow.T}] (got {times.tolist()})")
    k_model, k_phi0, k_path = jax.random.split(key, 3)
    phi0 = _model_samples(flow, params, k_phi0, n, 0.0, chunk_size)
    exact = np.stack([per_sample_observables(x, lat) for x in flow.scheme.sample_path(k_path, phi0, times)], axis=1)
    model = np.stack([per_sample_observables(_model_samples(flow, params, jax.random.fold_in(k_model, i), n,
                                                             float(t), chunk_size), lat)
                      for i, t in enumerate(times)], axis=1)  # (n, K, P)
    n_t, n_obs = model.shape[1:]
    names = observable_names(lat)
    if not (np.all(np.isfinite(model)) and np.all(np.isfinite(exact))):
        return ConsistencyReport(times=times.tolist(), observables=names, chi2=math.inf, dof=n_t * n_obs, p_value=0.0,
                                 max_dev_sigma=math.inf, worst={"t": None, "observable": "non-finite samples",
                                                                "sigma": None},
                                 n_samples=n, model=[], exact=[])
    diff = (model.mean(axis=0) - exact.mean(axis=0)).ravel()
    cov = np.cov(exact.reshape(n, -1), rowvar=False) / n
    for i in range(n_t):
        sl = slice(i * n_obs, (i + 1) * n_obs)
        cov[sl, sl] += np.cov(model[:, i], rowvar=False) / n
    chi2, dof, p_value = chi2_test(diff, cov, n)
    sig = diff / np.sqrt(np.diag(cov))
    j = int(np.argmax(np.abs(sig)))

    def table(x):
        m, e = x.mean(axis=0), x.std(axis=0, ddof=1) / math.sqrt(n)
        return [{name: {"mean": float(m[i, o]), "err": float(e[i, o])} for o, name in enumerate(names)}
                for i in range(n_t)]

    return ConsistencyReport(times=times.tolist(), observables=names, chi2=chi2, dof=dof, p_value=p_value,
                             max_dev_sigma=float(abs(sig[j])),
                             worst={"t": float(times[j // n_obs]), "observable": names[j % n_obs],
                                    "sigma": float(sig[j])},
                             n_samples=n, model=table(model), exact=table(exact))
