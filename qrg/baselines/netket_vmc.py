"""NetKet 3.23 continuous-space VMC on the lattice φ⁴ Hamiltonian of design §2.

The field ``φ ∈ R^{N^d}`` is the position of one particle in ``N^d`` dimensions
(``netket.experimental.hilbert.Particle`` on a ``FreeSpace`` geometry), so

    H = KineticEnergy(mass = a^d) + PotentialEnergy(V),    V(φ) = theory.potential(φ),

i.e. ``−Σ_n ∂²/(2 a^d ∂φ_n²) + V(φ)``: NetKet's kinetic local energy is
``−½ Σ_n (1/m) [∂_n² log ψ + (∂_n log ψ)²]`` with ``m = a^d`` — exactly design §2 with
``log ψ = −S/2``. Everything is built FROM a :class:`qrg.Phi4`, so it is the same problem
the solver, ED and DMRG see.

Ansätze
-------
* ``"gaussian"``: ``netket.models.Gaussian``, ``log ψ = −½ φᵀ AᵀA φ``. The free ground state
  ``log ψ0 = −½ a^d φᵀ Ω φ`` (Ω = sqrt(−Δ + m²)) is ``A = (a^d Ω)^{1/2}``, so it is exact at
  λ = 0; at λ > 0 it can at best reach the Hartree (best Gaussian) energy. Started from
  ``A = (a^d ω_H)^{1/2} · 1`` (identity-like; NetKet's random default is badly conditioned).
* ``"neural"`` (:class:`TranslationInvariantPhi4`): a circulant Gaussian part
  ``−½ (a^d/N^d) Σ_k ω_k |φ̃_k|²`` with ``ω_k = ω_k^H e^{s_k}`` (``ω_k^H`` the lattice-Hartree
  frequencies, ``s_k`` learned, symmetrised k ↔ −k), plus a periodic CNN written as a
  neighbour gather (``jnp.roll``) followed by ``Dense`` layers (NOT ``nn.Conv``: its per-sample
  Jacobians for SR blow up memory, peers.md), summed over sites, and symmetrised under
  φ → −φ as ``½[f(φ) + f(−φ)]``.

Observables: ``phi2``, ``M2`` and ``M4`` of the :class:`Reference` (so its ``U4``), and ``abs_M`` and
``peak_weight`` (fraction with M > 0) in its details, are sample means over the final evaluation's
Metropolis samples (``M = N^-d Σ_n φ_n``); :func:`evaluation_fields` returns those samples, from which
:func:`qrg.scan.magnetisation_observables` computes the same numbers with error bars.

Optimisation: VMC with stochastic reconfiguration (``nk.optimizer.SR``); sampler
``MetropolisGaussian`` (all coordinates moved at once), its step started at ``1.2/sqrt(N^d)``
and re-tuned every ``tune_every`` steps to keep the acceptance in 35–60 %.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import QRGInputError, check_int, check_real
from ..hartree import lattice_hartree
from .base import Baseline, Reference, keyword_options, register_baseline

ANSATZE = ("gaussian", "neural")
ACCEPTANCE_WINDOW = (0.35, 0.60)
# peak memory of NetKet's continuous-space local energy (the Laplacian of log ψ through the
# network) measured ≈ 8·sites³ bytes per sample for the neural ansatz: 16384 samples of a
# 64-site chain asked for 32 GB. "auto" chunking keeps each chunk under this budget.
CHUNK_MEMORY_BYTES = 2**31


def auto_chunk_size(n_samples: int, n_sites: int) -> int | None:
    """Largest power-of-two chunk with 8·sites³ bytes per sample under ``CHUNK_MEMORY_BYTES``
    (None = no chunking needed for ``n_samples``)."""
    per_sample = 8.0 * float(n_sites) ** 3
    limit = max(1, int(CHUNK_MEMORY_BYTES // per_sample))
    if n_samples <= limit:
        return None
    return 2 ** int(np.floor(np.log2(limit)))


# ---------------------------------------------------------------------------- Hamiltonian
def netket_hamiltonian(theory):
    """``(hilbert, H)``: the design-§2 Hamiltonian of ``theory`` as a NetKet continuous operator."""
    import netket as nk
    from netket.experimental.geometry import FreeSpace
    from netket.experimental.hilbert import Particle

    lat = theory.lattice
    hilbert = Particle(N=1, geometry=FreeSpace(d=lat.n_sites))
    shape = lat.shape

    def potential(x):
        return theory.potential(jnp.reshape(x, shape))

    H = nk.operator.KineticEnergy(hilbert, mass=lat.volume_element) + nk.operator.PotentialEnergy(hilbert, potential)
    return hilbert, H


def free_gaussian_kernel(theory, omega=None) -> np.ndarray:
    """``A = (a^d Ω)^{1/2}`` as a dense matrix: ``nk.models.Gaussian`` at the free ground state.

    ``omega`` (Fourier eigenvalues, ``lattice.shape``) defaults to the free ``sqrt(p̂² + m²)``.
    """
    lat = theory.lattice
    if omega is None:
        omega = theory.free_omega()
    eig = np.sqrt(lat.volume_element * np.asarray(omega))
    return np.asarray(lat.diagonal_matrix(eig), dtype=float)


# ---------------------------------------------------------------------------- neural ansatz
def _make_neural_model(theory, features=(8, 8), radius=1):
    import flax.linen as nn

    lat = theory.lattice
    shape, d, vol = lat.shape, lat.d, lat.volume_element
    h = lattice_hartree(theory)
    omega_h = np.sqrt(lat.phat2 + h["m2_hartree"])
    # k -> −k index map for the symmetrisation of the learned Fourier log-factors
    neg = tuple(np.meshgrid(*[(-np.arange(lat.N)) % lat.N] * d, indexing="ij"))
    offsets = [tuple(o) for o in np.stack(np.meshgrid(*[np.arange(-radius, radius + 1)] * d,
                                                        indexing="ij"), -1).reshape(-1, d)]

    class TranslationInvariantPhi4(nn.Module):
        """log ψ = circulant Gaussian + φ→−φ-symmetrised periodic CNN (gather + Dense)."""

        @nn.compact
        def __call__(self, x):
            phi = x.reshape(x.shape[:-1] + shape)
            s = self.param("log_omega_shift", nn.initializers.zeros, shape, jnp.float64)
            s = 0.5 * (s + s[neg])
            omega = jnp.asarray(omega_h) * jnp.exp(s)
            phik = jnp.fft.fftn(phi, axes=lat.axes)
            gauss = -0.5 * vol / lat.n_sites * jnp.sum(omega * (phik.real**2 + phik.imag**2), axis=lat.axes)  # not |·|²: abs has no 2nd derivative at 0

            layers = [nn.Dense(f, param_dtype=jnp.float64, name=f"dense_{i}") for i, f in enumerate(features)]
            head = nn.Dense(1, param_dtype=jnp.float64, kernel_init=nn.initializers.zeros, name="head")

            def cnn(p):
                hfeat = p[..., None]
                for layer in layers:
                    gathered = jnp.concatenate(
                        [jnp.roll(hfeat, shift=o, axis=tuple(range(-d - 1, -1))) for o in offsets], axis=-1
                    )
                    hfeat = nn.gelu(layer(gathered))
                return jnp.sum(head(hfeat)[..., 0], axis=tuple(range(-d, 0)))

            return gauss + 0.5 * (cnn(phi) + cnn(-phi))

    return TranslationInvariantPhi4()


def make_model(theory, ansatz: str, **kwargs):
    """The flax module for ``ansatz`` (``"gaussian"`` or ``"neural"``)."""
    import netket as nk

    if ansatz == "gaussian":
        w = np.sqrt(lattice_hartree(theory)["omega_site"] * theory.lattice.volume_element)

        def init(key, shape, dtype=jnp.float64):
            return w * jnp.eye(shape[0], dtype=dtype)

        return nk.models.Gaussian(param_dtype=jnp.float64, kernel_init=init)
    if ansatz == "neural":
        return _make_neural_model(theory, **kwargs)
    raise QRGInputError(f"ansatz must be one of {ANSATZE} (got {ansatz!r})")


# ---------------------------------------------------------------------------- VMC driver
def _sampler(hilbert, sigma, n_chains):
    import netket as nk

    return nk.sampler.MetropolisGaussian(hilbert, sigma=float(sigma), n_chains=n_chains)


def _tune_sigma(vs, hilbert, sigma, n_chains, *, max_rounds=8):
    """Rescale the Gaussian proposal width until the acceptance is in ACCEPTANCE_WINDOW."""
    lo, hi = ACCEPTANCE_WINDOW
    acc = float("nan")
    for _ in range(max_rounds):
        vs.sample()
        acc = float(vs.sampler_state.acceptance)
        if lo <= acc <= hi:
            break
        # acceptance ~ exp(−c σ²) roughly: move σ toward the window centre
        factor = np.clip(np.sqrt(np.log(0.475) / np.log(np.clip(acc, 1e-3, 0.999))), 0.3, 3.0)
        sigma = float(sigma * factor)
        vs.sampler = _sampler(hilbert, sigma, n_chains)
    return sigma, acc


def stats_dict(s) -> dict:
    return {"mean": float(np.real(s.mean)), "err": float(s.error_of_mean), "variance": float(s.variance),
            "tau": float(s.tau_corr), "R_hat": float(s.R_hat)}


def _check_options(n_iter, n_samples, n_chains, learning_rate, diag_shift, time_budget_s, chunk_size) -> dict:
    n_iter = check_int("n_iter (VMC steps)", n_iter, minimum=0)
    n_samples = check_int("n_samples", n_samples, minimum=16)
    n_chains = check_int("n_chains", n_chains, minimum=1)
    if n_samples % n_chains:
        raise QRGInputError(f"n_samples ({n_samples}) must be a multiple of n_chains ({n_chains})")
    out = {"n_iter": n_iter, "n_samples": n_samples, "n_chains": n_chains,
           "learning_rate": check_real("learning_rate", learning_rate, positive=True),
           "diag_shift": check_real("diag_shift (SR regulariser)", diag_shift, positive=True),
           "time_budget_s": None if time_budget_s is None else check_real("time_budget_s", time_budget_s,
                                                                          positive=True),
           "chunk_size": chunk_size}
    if chunk_size is not None and chunk_size != "auto":
        out["chunk_size"] = check_int("chunk_size", chunk_size, minimum=1)
    return out


def _train(driver, vs, hilbert, sigma, o, t0) -> tuple[list, float]:
    """Run ``o["n_iter"]`` VMC steps (or until the time budget), re-tuning the proposal width every
    ``o["tune_every"]`` steps when the acceptance left the window. Returns (history, sigma)."""
    history: list[tuple[float, float, float, float]] = []
    acceptances: list[float] = []
    stop = {"flag": False}
    budget = o["time_budget_s"]

    def callback(step, log_data, drv):
        e = log_data["Energy"]
        history.append((time.perf_counter() - t0, float(np.real(e.mean)), float(e.error_of_mean), float(e.variance)))
        a = drv.state.sampler_state.acceptance
        if a is not None:
            acceptances.append(float(a))
        if budget is not None and time.perf_counter() - t0 > budget:
            stop["flag"] = True
            return False
        return True

    done = 0
    while done < o["n_iter"] and not stop["flag"]:
        chunk = min(o["tune_every"], o["n_iter"] - done)
        driver.run(chunk, out=(), show_progress=False, callback=callback)
        done += chunk
        if acceptances and not (ACCEPTANCE_WINDOW[0] <= acceptances[-1] <= ACCEPTANCE_WINDOW[1]):
            sigma, _ = _tune_sigma(vs, hilbert, sigma, o["n_chains"])
    return history, sigma


def vmc_ground_state(theory, *, ansatz: str = "gaussian", n_iter: int = 300, n_samples: int = 1024,
                     n_chains: int = 16, learning_rate: float = 0.02, diag_shift: float = 1e-3, seed: int = 0,
                     time_budget_s: float | None = None, n_eval_samples: int = 8192, tune_every: int = 25,
                     chunk_size: int | str | None = "auto", model_kwargs: dict | None = None):
    """Train ``ansatz`` on ``theory`` with NetKet VMC + SR and evaluate the energy.

    Returns ``(reference, state)``: the :class:`Reference` and the trained ``netket.vqs.MCState``.
    Options: see :class:`NetKetVMC`.
    """
    import netket as nk

    if ansatz not in ANSATZE:
        raise QRGInputError(f"ansatz must be one of {ANSATZE} (got {ansatz!r})")
    o = _check_options(n_iter, n_samples, n_chains, learning_rate, diag_shift, time_budget_s, chunk_size)
    o["tune_every"] = check_int("tune_every (VMC steps between proposal re-tunings)", tune_every, minimum=1)
    hilbert, H = netket_hamiltonian(theory)
    sigma = 1.2 / np.sqrt(theory.lattice.n_sites)

    def chunk_for(n):
        return auto_chunk_size(n, theory.lattice.n_sites) if o["chunk_size"] == "auto" else o["chunk_size"]

    vs = nk.vqs.MCState(_sampler(hilbert, sigma, n_chains), make_model(theory, ansatz, **(model_kwargs or {})),
                        n_samples=n_samples, seed=seed, sampler_seed=seed + 1, chunk_size=chunk_for(n_samples))
    t0 = time.perf_counter()
    sigma, _ = _tune_sigma(vs, hilbert, sigma, n_chains)
    driver = nk.driver.VMC(H, nk.optimizer.Sgd(learning_rate=o["learning_rate"]), variational_state=vs,
                           preconditioner=nk.optimizer.SR(diag_shift=o["diag_shift"]))
    history, sigma = _train(driver, vs, hilbert, sigma, o, t0)
    train_time = time.perf_counter() - t0

    vs.n_samples = n_eval_samples
    vs.chunk_size = chunk_for(n_eval_samples)
    st = stats_dict(vs.expect(H))
    m, phi2 = _magnetisation(evaluation_fields(vs, theory))  # the samples of this evaluation
    details = {
        "variance": st["variance"], "tau": st["tau"], "R_hat": st["R_hat"],
        "acceptance": float(vs.sampler_state.acceptance), "sigma": float(sigma),
        "n_params": int(sum(np.size(p) for p in jax.tree_util.tree_leaves(vs.parameters))),
        "n_iter": len(history), "n_samples": n_samples, "n_eval_samples": n_eval_samples,
        "chunk_size": vs.chunk_size, "train_time_s": train_time,
        "time_per_iter_s": train_time / max(len(history), 1), "history": history,
        "abs_M": float(np.mean(np.abs(m))), "peak_weight": float(np.mean(m > 0)),
    }
    ref = Reference(f"netket-{ansatz}", theory, st["mean"], energy_err=st["err"],
                    wall_time_s=time.perf_counter() - t0, phi2=float(np.mean(phi2)), M2=float(np.mean(m**2)),
                    M4=float(np.mean(m**4)), details=details)
    return ref, vs


def evaluation_fields(vs, theory) -> np.ndarray:
    """The fields of the variational state's current Metropolis samples (after :func:`vmc_ground_state`: the
    ``n_eval_samples`` of its final evaluation), shape ``(n_chains, samples per chain, *lattice.shape)``."""
    x = np.asarray(vs.samples, dtype=float)
    x = x.reshape((-1,) + x.shape[-2:]) if x.ndim >= 3 else x.reshape((1,) + x.shape)
    return x.reshape(x.shape[:2] + tuple(theory.lattice.shape))


def _magnetisation(phi) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample ``M = N^-d Σ_n φ_n`` and site-averaged φ² of fields shaped ``(chains, n, *lattice.shape)``."""
    flat = phi.reshape(phi.shape[:2] + (-1,))
    return flat.mean(axis=-1), (flat**2).mean(axis=-1)


class NetKetVMC(Baseline):
    """NetKet continuous-space VMC with SR (module docstring); ``ansatz`` is set by the subclass.

    Stops after ``n_iter`` steps or once ``time_budget_s`` wall seconds have passed. The final
    energy is a separate evaluation with ``n_eval_samples`` fresh samples (NetKet's ``Stats``:
    mean, ``energy_err`` = error of the mean with the chains' autocorrelation, ``variance`` =
    Var(E_loc), ``tau`` = τ_corr, ``R_hat``). ``history`` holds ``(seconds, E, err, Var)`` of every
    training step (time-to-accuracy). ``chunk_size``: NetKet's chunking of the local energies and
    gradients (bounds memory, same result); "auto" (:func:`auto_chunk_size`, per phase: training
    and evaluation), None (none) or an int. Other options: ``n_samples``, ``n_chains``,
    ``learning_rate``, ``diag_shift`` (SR), ``seed``, ``tune_every``, ``model_kwargs``.
    """

    ansatz: str
    deterministic = False

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple(n for n in keyword_options(vmc_ground_state) if n != "ansatz")

    def compute(self, theory, **options) -> Reference:
        return vmc_ground_state(theory, ansatz=self.ansatz, **options)[0]


@register_baseline
class NetKetGaussian(NetKetVMC):
    """``nk.models.Gaussian`` started at the Hartree width: exact at λ = 0, the best Gaussian at λ > 0."""

    name = "netket-gaussian"
    summary = "NetKet VMC, Gaussian ansatz (exact at lam = 0; Hartree at lam > 0)"
    ansatz = "gaussian"


@register_baseline
class NetKetNeural(NetKetVMC):
    """The translation-invariant circulant-Gaussian + periodic-CNN ansatz (module docstring)."""

    name = "netket-neural"
    summary = "NetKet VMC, translation-invariant neural ansatz"
    ansatz = "neural"


def run_vmc(theory, *, ansatz: str = "gaussian", **options) -> dict:
    """:func:`vmc_ground_state` as a dict: the :class:`Reference` JSON plus the trained
    ``netket.vqs.MCState`` under ``"state"`` (drop it before serialising to JSON)."""
    ref, vs = vmc_ground_state(theory, ansatz=ansatz, **options)
    return {**ref.to_json(), "state": vs}
