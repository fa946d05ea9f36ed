"""All energy estimators of one set of samples at once: :func:`estimate_energy` → :class:`EnergyStats`."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ..._validation import QRGInputError, check_int
from ...stats import Stats, format_value_error
from .base import ESTIMATORS, finite_stats
from .local import LAPLACIANS, chunked_laplacians, laplacian_fn, local_energy_values, resolve_laplacian_method


@dataclasses.dataclass(frozen=True)
class EnergyStats:
    """Energy estimates and field observables of a wavefunction from independent samples.

    ``estimates``: {estimator name: Stats} for every estimator that could be evaluated, in the
    order of ``ESTIMATORS`` ("ibp": integrated by parts; "cv": the same with cross-fitted Stein
    control variates; "local": E_loc, whose ``variance`` is Var(E_loc), the zero-variance quality
    diagnostic). ``phi2`` = ⟨φ(n)²⟩ (site average), ``abs_m`` = ⟨|M|⟩ with M = N^-d Σ_n φ(n);
    ``laplacian``: how Δ log p was computed ("none" if it was not; a failed one says so).
    Every estimate carries ``Stats.tails`` (:func:`~qrg.stats.tail_diagnostics` of its per-sample
    values: the error of its variance, the weight of the top 0.1 %, resolved or not). ``sizing``:
    how :func:`qrg.groundstate.evaluation.evaluate` grew the sample to resolve them (None if it did not
    size it).
    """

    estimates: dict
    phi2: Stats
    abs_m: Stats
    n_sites: int
    laplacian: str = "none"
    sizing: object = None  # qrg.groundstate.evaluation.Sizing

    @property
    def ibp(self) -> Stats:
        return self.estimates["ibp"]

    @property
    def cv(self) -> Stats | None:
        return self.estimates.get("cv")

    @property
    def local(self) -> Stats | None:
        return self.estimates.get("local")

    @property
    def variance(self) -> float | None:
        """Var(E_loc); None when the local energy was not computed."""
        return None if self.local is None else self.local.variance

    @property
    def variance_err(self) -> float | None:
        """Error of Var(E_loc) from its fourth moment; None when the local energy was not computed."""
        return None if self.local is None else self.local.variance_err

    def tails(self) -> dict:
        """{estimator: TailDiagnostics.to_dict()} of every estimate's per-sample values."""
        return {name: st.tails.to_dict() for name, st in self.estimates.items() if st.tails is not None}

    def to_dict(self) -> dict:
        out = {"energy_ibp": self.ibp.mean, "energy_ibp_err": self.ibp.err, "energy_ibp_variance": self.ibp.variance,
               "variance": self.variance, "variance_err": self.variance_err, "laplacian": self.laplacian,
               "phi2": self.phi2.mean, "phi2_err": self.phi2.err, "abs_m": self.abs_m.mean, "abs_m_err": self.abs_m.err,
               "n_samples": self.ibp.n_samples, "tails": self.tails()}
        for name, st in self.estimates.items():
            if name != "ibp":
                out[f"energy_{name}"], out[f"energy_{name}_err"] = st.mean, st.err
        return out

    def __str__(self) -> str:
        s = ", ".join(f"E_{name} = {format_value_error(st.mean, st.err)}" for name, st in self.estimates.items())
        if self.variance is not None:
            s += f", Var(E_loc) = {format_variance(self.variance, self.variance_err)}"
        return s + f", <φ²> = {format_value_error(self.phi2.mean, self.phi2.err)}"


def format_variance(var: float, err: float | None) -> str:
    """``1.75e-04 ± 1.1e-05``: a variance with its error bar (three significant digits without one)."""
    if err is None or not (err > 0):
        return f"{var:.3g}"
    return f"{var:.3g} ± {err:.2g}"


def _check_samples(lat, phi, score):
    lat.check_field(phi)
    if np.ndim(phi) != lat.d + 1 or np.shape(score) != np.shape(phi):
        raise QRGInputError(f"phi and score must be batches of shape (n,) + {lat.shape} "
                            f"(got {np.shape(phi)} and {np.shape(score)})")


def estimate_energy(theory, phi, score, *, log_prob=None, laplacian: str = "auto", key=None, n_probes: int = 4,
                    chunk_size: int = 256, laplacian_values=None,
                    estimators=("ibp", "cv", "local")) -> EnergyStats:
    """Energy statistics of the samples ``phi`` (shape (n,) + lattice.shape, independent draws of p)
    with their scores ``g = ∇ log p(phi)``.

    ``estimators``: which of ``ESTIMATORS`` to evaluate ("ibp" always). The local energy needs
    Δ log p: either ``laplacian_values`` (precomputed for the first m ≤ n samples; ``laplacian``
    then only labels the method) or ``log_prob``, a batched, twice differentiable log-density
    φ_batch -> (n,), with ``laplacian`` = "exact", "hutchinson" (``n_probes`` Rademacher probes,
    needs ``key``), "auto" (exact up to 64 sites) or "none"; evaluated in chunks of ``chunk_size``.
    """
    lat = theory.lattice
    _check_samples(lat, phi, score)
    chunk_size = check_int("chunk_size", chunk_size, minimum=1)
    LAPLACIANS.check("laplacian", laplacian)
    for name in estimators:
        ESTIMATORS.check("estimators", name)
    method = resolve_laplacian_method(laplacian, lat)
    if laplacian_values is None and (log_prob is None or "local" not in estimators):
        method = "none"
    if method == "hutchinson" and key is None and laplacian_values is None:
        raise QRGInputError("the Hutchinson Laplacian needs a PRNG key (key=...)")
    phi, score = jnp.asarray(phi), jnp.asarray(score)
    lap = None
    if laplacian_values is not None:
        lap = jnp.asarray(laplacian_values)
    elif method != "none":
        fn = jax.jit(laplacian_fn(log_prob, lat, method, n_probes))
        lap = chunked_laplacians(fn, phi, jax.random.PRNGKey(0) if key is None else key, chunk_size)
    estimates = {}
    for name in ESTIMATORS:
        if name == "ibp" or name in estimators:
            st = ESTIMATORS.get(name).estimate(theory, phi, score, lap if method != "none" else None)
            if st is not None:
                estimates[name] = st
    if method != "none" and "local" not in estimates:  # a failed Laplacian must not poison the others
        m = lap.shape[0]
        bad = int(np.sum(~np.isfinite(np.asarray(local_energy_values(theory, phi[:m], score[:m], lap)))))
        method = f"{method} (failed: {bad} non-finite E_loc values)"
    return EnergyStats(estimates=estimates, phi2=finite_stats(lat.mean_sites(phi**2), "φ²"),
                       abs_m=finite_stats(jnp.abs(lat.mean_sites(phi)), "|M|"), n_sites=lat.n_sites,
                       laplacian=method)


def energy_of_distribution(theory, dist, key, n: int, **kwargs) -> EnergyStats:
    """Energy statistics of any object with ``sample(key, (n,))``, ``score`` and ``log_prob``
    (e.g. a :class:`~qrg.gaussian.FourierGaussian` such as ``theory.free_ground_state()``)."""
    n = check_int("n (number of samples)", n, minimum=2)
    k_sample, k_lap = jax.random.split(key)
    phi = dist.sample(k_sample, (n,))
    return estimate_energy(theory, phi, dist.score(phi), log_prob=dist.log_prob, key=k_lap, **kwargs)
