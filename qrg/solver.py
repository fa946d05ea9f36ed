"""The variational ground-state solver (paper Section 6.3, design §3.3–§3.4).

The wavefunction is Ψ_θ = sqrt(p_θ) with p_θ the t = 0 marginal of the probability-flow ODE of
a learned RG bridge (:class:`qrg.flow.ProbabilityFlow`). One backward augmented solve gives
samples φ_0 ~ p_θ with their exact scores g = ∇_φ log p_θ(φ_0), and the energy is minimised
through the integrated-by-parts estimator

    L(θ) = E_{ε}[ |g_θ(φ_0(ε))|² / (8 a^d) + V(φ_0(ε)) ] (+ β L_RG(θ)),    φ_T = C_T^{1/2} ε,

differentiated by reparameterisation through the ODE solve (``jax.value_and_grad`` of the
sample mean; the adjoint of the solve is the flow's: discretise-then-optimise or backsolve).

L_RG is the RG-consistency term of design §3.4: denoising score matching of the model's own
samples (stop-gradient on φ_0) along the exact RG kernel,

    L_RG = E_{t ~ U(t_min, T)} E_{φ_0 ~ p_θ} E_{φ_t|φ_0} λ(t) |s_θ(φ_t, t) − ∇ log p(φ_t|φ_0)|² / N^d,

with λ(t) = mean_k Σ_k(t) (so each term is O(1) at every t); its minimum over the score at fixed
p_θ,0 is the true RG flow of p_θ,0 (paper 5.23), so β > 0 keeps p_θ,t an RG flow without
changing the ground state that E selects when the model can represent both.

Robustness: a step with a non-finite loss or gradient is not applied; the parameters and
optimiser state return to the last state whose loss was finite, the learning rate is halved and
the event is recorded. Checkpoints (every ``checkpoint_every`` steps) make ``resume=True``
continue the same run bit for bit: the PRNG key of step s is ``fold_in(key_train, s)``.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import math
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._validation import QRGInputError, check_int
from .checkpoint import atomic_write_text, has_checkpoint, load_checkpoint, save_checkpoint
from .config import SolveConfig
from .energy import (EnergyStats, estimate_energy, fit_control_variates, ibp_energy, laplacian_exact,
                     laplacian_hutchinson, local_energy, resolve_laplacian_method, solve_control_variates,
                     stein_features)
from .stats import Stats, format_value_error, statistics

#: consecutive non-finite steps after which the run stops (keeping the last good state)
MAX_CONSECUTIVE_FAILURES = 20

#: keys of a run's config that must agree with a checkpoint for it to be resumed
_RESUME_KEYS = ("d", "N", "a", "m2", "lam", "model", "scheme", "M", "T", "solver", "n_steps", "rtol", "atol",
                "adjoint", "batch", "seed", "optimizer", "lr", "lr_final", "warmup", "grad_clip", "beta_rg",
                "rg_batch", "init", "control_variates", "cv_decay")


# ---------------------------------------------------------------------------- building blocks
def hartree_variance(theory, *, max_iter: int = 200, tol: float = 1e-13):
    """Covariance eigenvalues of the best symmetric Gaussian (self-consistent Hartree) state.

    For |Ψ|² = N(0, C) the energy is Σ_k [1/(8a^d c_k) + ½ a^d (p̂² + m²) c_k] + a^d N^d (λ/8) <φ²>²,
    minimised by c_k = 1/(2 a^d sqrt(p̂² + μ²)) with the self-consistent mass μ² = m² + (λ/2) <φ²>,
    <φ²> = N^-d Σ_k c_k(μ²). F(μ²) = m² + (λ/2)<φ²>(μ²) − μ² is strictly decreasing, and on a
    finite lattice the zero mode makes <φ²> → ∞ as μ² → 0⁺, so for λ > 0 there is exactly one
    root μ² > 0 even in the double well (m² < 0), where the state is wide in the magnetisation;
    it is found by bisection on log μ². At λ = 0 it is the free ground state (μ² = m² > 0).
    Returns None only if no root is bracketed within ``max_iter`` doublings (not expected).
    """
    lat = theory.lattice
    ad = lat.volume_element
    p2 = np.asarray(lat.phat2)

    def variance(mu2):
        return 1.0 / (2.0 * ad * np.sqrt(p2 + mu2))

    def excess(mu2):  # F(μ²), strictly decreasing
        return theory.m2 + 0.5 * theory.lam * float(np.mean(variance(mu2))) - mu2

    if theory.lam == 0:
        return variance(theory.m2) if theory.m2 > 0 else None
    lo = hi = max(theory.m2, 1.0)
    for _ in range(max_iter):  # bracket the root: F(lo) > 0 > F(hi)
        if excess(lo) > 0:
            break
        lo *= 0.5
    else:
        return None
    for _ in range(max_iter):
        if excess(hi) < 0:
            break
        hi *= 2.0
    else:
        return None
    for _ in range(max_iter):
        mid = math.sqrt(lo * hi)
        if excess(mid) > 0:
            lo = mid
        else:
            hi = mid
        if hi - lo <= tol * hi:
            break
    return variance(math.sqrt(lo * hi))


def rg_consistency_loss(flow, params, phi0, key, t_min_fraction: float = 1e-3):
    """Denoising score matching of s_θ on the exact RG kernel from the samples ``phi0`` (design §3.4).

    Returns the batch mean of λ(t)|s_θ(φ_t, t) − ∇ log p(φ_t|φ_0)|² / N^d, λ(t) = mean_k Σ_k(t).
    ``phi0`` should carry ``stop_gradient``: only the score is fitted.
    """
    scheme, lat = flow.scheme, flow.lattice
    n = phi0.shape[0]
    k_t, k_noise = jax.random.split(key)
    t_min = t_min_fraction * flow.T
    t = t_min + (flow.T - t_min) * jax.random.uniform(k_t, (n,))
    keys = jax.random.split(k_noise, n)

    def one(p0, s, k):
        phi_t = scheme.sample_transition(k, p0, s)
        target = scheme.transition_score(phi_t, p0, s)
        score = flow.model.apply(params, phi_t, s, method="score")
        weight = jnp.mean(scheme.kernel_variance(s))
        return weight * jnp.sum((score - target) ** 2) / lat.n_sites

    return jnp.mean(jax.vmap(one)(phi0, t, keys))


def energy_objective(flow, theory, params, key, batch: int, *, beta_rg: float = 0.0, rg_batch: int = 64,
                     cv_coef=None):
    """The training loss and its diagnostics for one batch: (loss, (energy, energy_err, rg_loss, moments)).

    loss = mean_b e(φ_0^b) + β L_RG with φ_0^b, g^b from one backward solve of ``flow``
    (reparameterised in the prior noise drawn from ``key``) and e = e_ibp = |g|²/(8a^d) + V, or,
    with ``cv_coef`` c (constants), e = e_ibp − Σ_j c_j h_j with the Stein features h_j of
    :func:`qrg.energy.stein_features` (zero mean under p_θ for every θ, so the mean and its
    gradient are unchanged while the variance drops by orders of magnitude). Its ``jax.grad`` in
    ``params`` is the reparameterisation gradient of the variational energy. ``moments``
    (stop-gradient; None without ``cv_coef``) are the batch sums (n, Σh, Σhhᵀ, Σe_ibp, Σ e_ibp h)
    from which the coefficients of later steps are fitted.
    """
    k_sample, k_rg = jax.random.split(key)
    phi, _, g = flow.sample(params, k_sample, batch)
    e = ibp_energy(theory, phi, g)
    moments = None
    if cv_coef is not None:
        h = stein_features(theory.lattice, phi, g)
        hs, es = jax.lax.stop_gradient(h), jax.lax.stop_gradient(e)
        moments = (jnp.asarray(batch, dtype=e.dtype), jnp.sum(hs, axis=0), hs.T @ hs, jnp.sum(es), hs.T @ es)
        e = e - h @ cv_coef
    energy = jnp.mean(e)
    err = jnp.std(e, ddof=1) / jnp.sqrt(batch) if batch > 1 else jnp.zeros(())
    loss = energy
    rg = jnp.zeros(())
    if beta_rg > 0:
        m = min(rg_batch, batch)
        rg = rg_consistency_loss(flow, params, jax.lax.stop_gradient(phi[:m]), k_rg)
        loss = loss + beta_rg * rg
    return loss, (energy, err, rg, moments)


class ControlVariateFit:
    """Coefficients of the Stein control variates from an exponential moving average of batch moments.

    ``update(moments)`` adds one batch's sums (n, Σh, Σhhᵀ, Σe, Σeh) with weight 1 after scaling
    the old ones by ``decay``; ``coef`` is the least-squares c of e ≈ c_0 + h·c on the averaged
    moments (zeros until there are more samples than features). The coefficients used at a step
    come only from earlier batches, so the training estimate stays exactly unbiased.
    """

    def __init__(self, n_features: int, decay: float, state: dict | None = None):
        self.decay = float(decay)
        if state is None:
            f = int(n_features)
            state = {"n": 0.0, "h": np.zeros(f), "hh": np.zeros((f, f)), "e": 0.0, "eh": np.zeros(f)}
        self.state = {k: np.asarray(v, dtype=float) for k, v in state.items()}

    def update(self, moments) -> None:
        for name, value in zip(("n", "h", "hh", "e", "eh"), moments):
            self.state[name] = self.decay * self.state[name] + np.asarray(value, dtype=float)

    @property
    def coef(self) -> np.ndarray:
        st = self.state
        n, f = float(st["n"]), st["h"].shape[0]
        if n < f + 2:
            return np.zeros(f)
        mh, me = st["h"] / n, float(st["e"]) / n
        cov = st["hh"] / n - np.outer(mh, mh)
        cross = st["eh"] / n - mh * me
        try:
            c = solve_control_variates(cov, cross)
        except np.linalg.LinAlgError:
            return np.zeros(f)
        return c if np.all(np.isfinite(c)) else np.zeros(f)


def count_params(params) -> int:
    return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(params)))


def make_optimizer(cfg: SolveConfig):
    """optax optimiser with a linear warm-up (from lr/10) and cosine decay from ``lr`` to ``lr·lr_final``.

    Returns (optimiser, schedule); cached on the fields that define it, so that equal
    configurations share one compiled training step.
    """
    return _optimizer(cfg.optimizer, cfg.lr, cfg.lr_final, cfg.warmup, cfg.steps, cfg.grad_clip)


@functools.lru_cache(maxsize=64)
def _optimizer(name, lr, lr_final, warmup, steps, grad_clip):
    warmup = min(warmup, max(steps - 1, 0))
    decay_steps = max(steps, warmup + 1)
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.1 * lr if warmup > 0 else lr, peak_value=lr, warmup_steps=warmup,
        decay_steps=decay_steps, end_value=lr * lr_final)
    if name == "adam":
        base = optax.adam(schedule)
    elif name == "sgd":
        base = optax.sgd(schedule, momentum=0.9)
    else:  # pragma: no cover - validated in SolveConfig
        raise QRGInputError(f"unknown optimizer {name!r}")
    tx = optax.chain(optax.clip_by_global_norm(grad_clip), base) if grad_clip > 0 else base
    return tx, schedule


@functools.partial(jax.jit, static_argnames=("flow", "theory", "tx", "batch", "beta_rg", "rg_batch"))
def _train_step(params, opt_state, key, lr_scale, poison, cv_coef, *, flow, theory, tx, batch, beta_rg, rg_batch):
    """One optimiser step; returns the new state and (loss, aux, |grad|, finite) — not yet accepted."""
    (loss, aux), grads = jax.value_and_grad(
        lambda p: energy_objective(flow, theory, p, key, batch, beta_rg=beta_rg, rg_batch=rg_batch,
                                   cv_coef=cv_coef),
        has_aux=True)(params)
    loss = jnp.where(poison, jnp.nan, loss)
    grads = jax.tree_util.tree_map(lambda g: jnp.where(poison, jnp.nan, g), grads)
    gnorm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(gnorm)
    updates, new_opt_state = tx.update(grads, opt_state, params)
    updates = jax.tree_util.tree_map(lambda u: lr_scale * u, updates)
    return optax.apply_updates(params, updates), new_opt_state, loss, aux, gnorm, finite


def build_flow(theory, cfg: SolveConfig, model=None, *, n_steps: int | None = None):
    """The :class:`~qrg.flow.ProbabilityFlow` (scheme, score model) a config describes.

    ``n_steps`` overrides ``cfg.n_steps`` (0 = adaptive)."""
    from .flow import ProbabilityFlow
    from .models import make_model
    from .rg import make_scheme

    scheme = make_scheme(cfg.scheme, theory.lattice, cfg.M)
    if model is None:
        kw = {}
        if cfg.init == "hartree":
            var0 = hartree_variance(theory)
            if var0 is not None:
                kw["variance0"] = var0
        if cfg.model != "gaussian":
            kw["time_scale"] = cfg.T
        model = make_model(cfg.model, theory.lattice, scheme, **kw)
    elif model.scheme != scheme:
        raise QRGInputError("the given score model was built with a different scheme/lattice than the config")
    n_steps = cfg.n_steps if n_steps is None else n_steps
    return ProbabilityFlow(model, scheme, T=cfg.T, solver=cfg.solver, n_steps=n_steps or None,
                           rtol=cfg.rtol, atol=cfg.atol, adjoint=cfg.adjoint)


# ---------------------------------------------------------------------------- result
@dataclasses.dataclass
class SolveResult:
    """Outcome of :func:`solve`: the final evaluation, the optimisation history and the trained flow.

    ``energy`` is the reported estimate: of the unbiased estimators (integrated by parts, the same
    with cross-fitted Stein control variates, and the local energy) the one with the smallest error
    bar on the final evaluation batch (``estimator`` says which); ``stats`` holds all of them. ``variance`` = Var(E_loc).
    """

    theory: object
    flow: object
    params: object
    stats: EnergyStats
    history: list
    events: list
    config: SolveConfig
    n_params: int
    wall_time_s: float
    train_time_s: float
    steps_done: int
    status: str
    reference: float | None
    discretisation: DiscretisationCheck | None = None  # step-doubling check of the evaluation solve

    # ---------------------------------------------------------------- estimates
    def _estimates(self) -> dict:
        out = {"ibp": self.stats.energy}
        if self.stats.cv_energy is not None:
            out["cv"] = self.stats.cv_energy
        if self.stats.local_energy is not None:
            out["local"] = self.stats.local_energy
        return out

    @property
    def estimator(self) -> str:
        """The estimator with the smallest error bar: "ibp", "cv" (Stein control variates) or "local"."""
        est = self._estimates()
        return min(est, key=lambda k: est[k].err)

    @property
    def energy(self) -> Stats:
        return self._estimates()[self.estimator]

    @property
    def systematic(self) -> float | None:
        """Estimated size of the ODE discretisation bias of ``energy`` (:class:`DiscretisationCheck`;
        None when not measured: adaptive solves, ``systematic_batch = 0``)."""
        if self.discretisation is None:
            return None
        return self.discretisation.systematic(self.estimator)

    @property
    def total_error(self) -> float:
        """Statistical error ⊕ discretisation systematic (the statistical error alone if the latter is unknown)."""
        sys_ = self.systematic
        return self.energy.err if sys_ is None else float(np.hypot(self.energy.err, sys_))

    @property
    def variance(self) -> float:
        return self.stats.variance

    @property
    def relative_error(self) -> float | None:
        if self.reference is None:
            return None
        return abs(self.energy.mean - self.reference) / abs(self.reference)

    # ---------------------------------------------------------------- the trained state
    def sample(self, key, n: int, t=0.0):
        """(φ_t, log p_θ,t(φ_t), ∇ log p_θ,t(φ_t)) for ``n`` samples of the RG-flowed ground state at t."""
        return self.flow.sample_at(self.params, key, n, t)

    def log_prob(self, phi, t=0.0):
        return self.flow.log_prob(self.params, phi, t)

    # ---------------------------------------------------------------- output
    def to_json(self) -> dict:
        e = self.energy
        out = {
            "energy": e.mean,
            "energy_err": e.err,
            "energy_per_site": e.mean / self.theory.lattice.n_sites,
            "energy_per_site_err": e.err / self.theory.lattice.n_sites,
            "estimator": self.estimator,
            "energy_sys": self.systematic,
            "energy_total_err": self.total_error,
            "discretisation": None if self.discretisation is None else self.discretisation.to_json(),
            "variance": self.variance,
            "phi2": self.stats.phi2.mean,
            "phi2_err": self.stats.phi2.err,
            "abs_m": self.stats.abs_m.mean,
            "abs_m_err": self.stats.abs_m.err,
            "energy_ibp": self.stats.energy.mean,
            "energy_ibp_err": self.stats.energy.err,
            "energy_ibp_variance": self.stats.energy.variance,
            "energy_cv": None if self.stats.cv_energy is None else self.stats.cv_energy.mean,
            "energy_cv_err": None if self.stats.cv_energy is None else self.stats.cv_energy.err,
            "energy_local": None if self.stats.local_energy is None else self.stats.local_energy.mean,
            "energy_local_err": None if self.stats.local_energy is None else self.stats.local_energy.err,
            "laplacian": self.stats.laplacian,
            "eval_samples": self.stats.energy.n_samples,
            "local_energy_samples": None if self.stats.local_energy is None else self.stats.local_energy.n_samples,
            "steps": self.steps_done,
            "status": self.status,
            "wall_time_s": self.wall_time_s,
            "train_time_s": self.train_time_s,
            "time_per_step_s": self.train_time_s / max(1, len(self.history)) if self.history else None,
            "n_params": self.n_params,
            "nan_recoveries": len(self.events),
            "events": self.events,
            "config": self.config.to_dict(),
            "theory": self.theory.params(),
            "reference": self.reference,
            "relative_error": self.relative_error,
        }
        return out

    def history_csv(self) -> str:
        cols = ("step", "energy", "energy_err", "energy_ibp", "loss", "rg_loss", "grad_norm", "lr", "time")
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(cols)
        for row in self.history:
            w.writerow([row.get(c) for c in cols])
        return buf.getvalue()

    def plot_energy(self, path) -> None:
        """energy vs step with the ±1σ band of each step's batch and the reference line when known."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps = np.array([r["step"] for r in self.history])
        e = np.array([r["energy"] for r in self.history])
        err = np.array([r["energy_err"] for r in self.history])
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        if steps.size:
            label = "training batch" + (" (Stein control variates)" if self.config.control_variates == "stein"
                                        else " (ibp estimator)")
            ax.plot(steps, e, lw=1.0, label=label)
            ax.fill_between(steps, e - err, e + err, alpha=0.3, lw=0)
            window = max(1, len(e) // 25)
            if window > 1:
                smooth = np.convolve(e, np.ones(window) / window, mode="valid")
                ax.plot(steps[window - 1:], smooth, color="C1", lw=1.5, label=f"running mean ({window} steps)")
        final = self.energy
        ax.axhline(final.mean, color="C2", lw=1.0,
                   label=f"final: {format_value_error(final.mean, final.err)} ({self.estimator})")
        if self.reference is not None:
            ax.axhline(self.reference, color="k", ls="--", lw=1.0, label=f"exact E0 = {self.reference:.10g}")
        if steps.size:
            lo = min(np.percentile(e - err, 5), final.mean - 3 * final.err)
            hi = np.percentile(e + err, 95)
            if self.reference is not None:
                lo = min(lo, self.reference)
            pad = 0.05 * (hi - lo) if hi > lo else 1.0
            ax.set_ylim(lo - pad, hi + pad)
        th = self.theory
        ax.set_xlabel("optimisation step")
        ax.set_ylabel("energy")
        ax.set_title(f"d={th.d} N={th.N} a={th.a:g} m²={th.m2:g} λ={th.lam:g}  ({self.config.model} model)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
        plt.close(fig)

    def save(self, directory) -> None:
        """Write ``result.json``, ``history.csv`` and ``energy.png`` into ``directory``."""
        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_text(directory / "result.json", json.dumps(self.to_json(), indent=2) + "\n")
        atomic_write_text(directory / "history.csv", self.history_csv())
        self.plot_energy(directory / "energy.png")

    def __str__(self) -> str:
        e = self.energy
        s = (f"E = {format_value_error(e.mean, e.err)}  ({self.estimator} estimator, "
             f"{e.n_samples} samples), E/N^d = {e.mean / self.theory.lattice.n_sites:.8g}, "
             f"Var(E_loc) = {self.variance:.3g}")
        if self.systematic is not None:
            d = self.discretisation
            s += f", ODE systematic {self.systematic:.2g} ({d.n_steps} vs {d.n_steps_fine} steps)"
        if self.reference is not None:
            s += f", exact E0 = {self.reference:.10g} (rel. err {self.relative_error:.2e})"
        return s


# ---------------------------------------------------------------------------- the driver
def _make_config(theory, config, options) -> SolveConfig:
    if config is None:
        config = SolveConfig()
    elif not isinstance(config, SolveConfig):
        raise QRGInputError(f"config must be a qrg.SolveConfig (got {type(config).__name__})")
    if theory is not None:
        options = {**theory.params(), **options}
    return config.replace(**options)


def _finite_tree(tree) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(x)))) for x in jax.tree_util.tree_leaves(tree))


def solve(theory=None, *, config: SolveConfig | None = None, model=None, out=None, resume: bool = False,
          callback=None, progress: bool = False, inject_nan_at=(), **options) -> SolveResult:
    """Find the ground state of ``theory`` (a :class:`~qrg.Phi4`) with a learned RG-bridge flow.

    Options are the fields of :class:`~qrg.config.SolveConfig` (``model``, ``scheme``, ``M``,
    ``T``, ``solver``, ``n_steps``, ``adjoint``, ``steps``, ``batch``, ``seed``, ``optimizer``,
    ``lr``, ``lr_final``, ``warmup``, ``grad_clip``, ``beta_rg``, ``eval_batch``, ``laplacian``,
    ``checkpoint_every``, ``init`` ...), given as keywords or in ``config``; keywords win, and
    ``theory`` overrides the problem fields. ``model`` may also be a ready
    :class:`~qrg.models.ScoreModel` (its scheme must match the config's).

    ``out``: directory for checkpoints and ``result.json``/``history.csv``/``energy.png``;
    ``resume=True`` continues from ``out``'s checkpoint (same run, bit for bit).
    ``callback(record)`` is called after every applied step with the history record (a dict).
    ``progress``: show a tqdm progress bar with the current energy ± error.
    ``inject_nan_at``: steps whose loss and gradients are replaced by NaN (tests the recovery path).

    Returns a :class:`SolveResult`.
    """
    t_start = time.perf_counter()
    if isinstance(model, str):
        options["model"] = model
        model = None
    elif model is not None:
        options["model"] = "custom"
    cfg = _make_config(theory, config, options)
    theory = cfg.theory()
    if resume and out is None:
        raise QRGInputError("resume=True needs the output directory (out=...) that holds the checkpoint")

    flow = build_flow(theory, cfg, model)
    tx, schedule = make_optimizer(cfg)
    root = jax.random.PRNGKey(cfg.seed)
    key_init, key_train, key_eval = jax.random.split(root, 3)
    lat = theory.lattice

    use_cv = cfg.control_variates == "stein"
    n_features = int(stein_features(lat, jnp.zeros((1,) + lat.shape), jnp.zeros((1,) + lat.shape)).shape[1])

    def train_step(params, opt_state, key, lr_scale, poison, cv_coef):
        return _train_step(params, opt_state, key, lr_scale, poison, cv_coef, flow=flow, theory=theory, tx=tx,
                           batch=cfg.batch, beta_rg=cfg.beta_rg, rg_batch=cfg.rg_batch)

    # ------------------------------------------------------------ initial or resumed state
    if resume:
        ck = load_checkpoint(out)
        saved = ck["config"]
        diff = [k for k in _RESUME_KEYS if saved.get(k) != cfg.to_dict().get(k)]
        if diff:
            raise QRGInputError(f"cannot resume: the checkpoint in {str(out)!r} was made with different "
                                f"{diff} ({ {k: saved.get(k) for k in diff} }); pass the same configuration")
        as_jax = lambda tree: jax.tree_util.tree_map(jnp.asarray, tree)  # noqa: E731
        params, opt_state = as_jax(ck["params"]), as_jax(ck["opt_state"])
        good = (as_jax(ck["good_params"]), as_jax(ck["good_opt_state"]), int(ck["good_n_updates"]))
        start, lr_scale, n_updates = int(ck["step"]), float(ck["lr_scale"]), int(ck["n_updates"])
        history, events = list(ck["history"]), list(ck["events"])
        failures, train_time = int(ck["failures"]), float(ck["train_time_s"])
        status = ck.get("status", "running")
        cv_fit = ControlVariateFit(n_features, cfg.cv_decay, ck.get("cv_state")) if use_cv else None
        if status == "completed":  # resumed with more steps: continue the same run
            status = "running"
        if not np.array_equal(np.asarray(ck["key"]), np.asarray(root)):  # pragma: no cover - seed is checked
            raise QRGInputError("checkpoint PRNG key does not match the seed")
    else:
        params = flow.init(key_init)
        opt_state = tx.init(params)
        good = (params, opt_state, 0)
        start, lr_scale, n_updates, history, events, failures, train_time = 0, 1.0, 0, [], [], 0, 0.0
        status = "running"
        cv_fit = ControlVariateFit(n_features, cfg.cv_decay) if use_cv else None

    def checkpoint(step):
        if out is None:
            return
        save_checkpoint(out, {
            "step": step, "params": params, "opt_state": opt_state, "good_params": good[0],
            "good_opt_state": good[1], "good_n_updates": good[2], "key": root, "lr_scale": lr_scale, "n_updates": n_updates,
            "history": history, "events": events, "failures": failures, "train_time_s": train_time,
            "status": status, "config": cfg.to_dict(),
            "cv_state": None if cv_fit is None else cv_fit.state,
        })

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=min(start, cfg.steps), desc="qrg solve", unit="step",
                   dynamic_ncols=True)
    poison_steps = set(int(s) for s in inject_nan_at)
    steps_done = start
    try:
        for step in range(start, cfg.steps):
            if status != "running":
                break
            t0 = time.perf_counter()
            cv_coef = None if cv_fit is None else jnp.asarray(cv_fit.coef)
            new_params, new_opt_state, loss, aux, gnorm, finite = train_step(
                params, opt_state, jax.random.fold_in(key_train, step), lr_scale, step in poison_steps, cv_coef)
            finite = bool(finite)
            if finite:
                good = (params, opt_state, n_updates)  # the state just evaluated without trouble
                params, opt_state = new_params, new_opt_state
                failures = 0
                energy, err, rg = (float(x) for x in aux[:3])
                record = {"step": step, "energy": energy, "energy_err": err, "loss": float(loss), "rg_loss": rg,
                          "grad_norm": float(gnorm), "lr": float(schedule(n_updates)) * lr_scale}
                if cv_fit is not None:
                    moments = aux[3]
                    record["energy_ibp"] = float(moments[3]) / float(moments[0])
                    cv_fit.update(moments)
                n_updates += 1
            else:
                params, opt_state, n_updates = good
                lr_scale *= 0.5
                failures += 1
                events.append({"step": step, "event": "non-finite loss or gradient: step skipped, last good "
                               "state restored, learning rate halved", "lr_scale": lr_scale})
                if failures >= MAX_CONSECUTIVE_FAILURES:
                    status = "diverged"
                record = None
            train_time += time.perf_counter() - t0
            if record is not None:
                record["time"] = train_time
                history.append(record)
                if callback is not None:
                    callback(record)
                if bar is not None:
                    bar.set_postfix_str(f"E = {format_value_error(record['energy'], record['energy_err'])}")
            if bar is not None:
                bar.update(1)
            steps_done = step + 1
            if cfg.checkpoint_every and steps_done % cfg.checkpoint_every == 0:
                checkpoint(steps_done)
        if status == "running":
            status = "completed"
    finally:
        if bar is not None:
            bar.close()
    checkpoint(steps_done)

    # ------------------------------------------------------------ final evaluation
    if cfg.eval_n_steps and cfg.eval_n_steps != cfg.n_steps:
        flow = build_flow(theory, cfg, flow.model, n_steps=cfg.eval_n_steps)
    stats = evaluate(flow, params, theory, key_eval, cfg.eval_batch, laplacian=cfg.laplacian,
                     n_probes=cfg.n_probes, local_batch=cfg.local_batch)
    result = SolveResult(
        theory=theory, flow=flow, params=params, stats=stats, history=history, events=events, config=cfg,
        n_params=count_params(params), wall_time_s=0.0, train_time_s=train_time,
        steps_done=steps_done, status=status,
        reference=theory.free_ground_energy() if theory.is_free else None,
    )
    if cfg.systematic_batch:
        estimators = ("ibp", "cv", "local") if result.estimator == "local" else ("ibp", "cv")
        result.discretisation = discretisation_check(
            flow, params, theory, jax.random.fold_in(key_eval, 0x5157), min(cfg.systematic_batch, cfg.eval_batch), estimators=estimators,
            laplacian=cfg.laplacian, n_probes=cfg.n_probes, local_batch=min(cfg.local_batch, 256))
    result.wall_time_s = time.perf_counter() - t_start
    if out is not None:
        result.save(out)
    return result


def _draw(flow, params, key, n: int, chunk_size: int):
    """(φ, ∇ log p) of ``n`` samples of ``flow`` in chunks; chunk c starts from the prior draw of
    fold_in(key, c), so two flows of the same bridge given the same key transport the same φ_T."""
    phis, scores = [], []
    for c, start in enumerate(range(0, n, chunk_size)):
        phi, _, g = flow.sample(params, jax.random.fold_in(key, c), min(chunk_size, n - start))
        phis.append(phi)
        scores.append(g)
    return jnp.concatenate(phis), jnp.concatenate(scores)


def _laplacians(flow, params, phi, key, method, n_probes, laplacian_chunk):
    size = min(laplacian_chunk, phi.shape[0])
    parts = []
    for c, start in enumerate(range(0, phi.shape[0], size)):
        x = phi[start:start + size]
        m = x.shape[0]
        if m < size:  # pad the last chunk: one compiled shape
            x = jnp.concatenate([x, jnp.broadcast_to(x[:1], (size - m,) + x.shape[1:])])
        parts.append(_flow_laplacian(flow, params, x, jax.random.fold_in(key, c), method, n_probes)[:m])
    return jnp.concatenate(parts)


def evaluate(flow, params, theory, key, n: int, *, laplacian: str = "auto", n_probes: int = 4,
             chunk_size: int = 512, laplacian_chunk: int = 256, local_batch: int | None = None) -> EnergyStats:
    """Energy statistics of the trained flow on ``n`` fresh samples (both estimators, <φ²>, <|M|>).

    The local energy (which needs Δ log p: one second derivative through the ODE per site, or
    per Hutchinson probe) uses the first ``local_batch`` samples (all if None).
    """
    k_sample, k_lap = jax.random.split(key)
    phi, g = _draw(flow, params, k_sample, n, chunk_size)
    method = resolve_laplacian_method(laplacian, theory.lattice)
    lap = None
    if method != "none":
        n_loc = n if local_batch is None else min(local_batch, n)
        lap = _laplacians(flow, params, phi[:n_loc], k_lap, method, n_probes, laplacian_chunk)
    try:
        return estimate_energy(theory, phi, g, laplacian_values=lap, laplacian=method)
    except FloatingPointError as err:
        raise RuntimeError(f"the trained flow produced non-finite values on evaluation ({err}); "
                           "try a smaller learning rate or more ODE steps") from None


@dataclasses.dataclass
class DiscretisationCheck:
    """Step-doubling estimate of the ODE discretisation error of the evaluation solve.

    The same prior draws φ_T are transported with ``n_steps`` and ``n_steps_fine`` = r·``n_steps``
    fixed steps (r = 2 by default), and every energy estimator is evaluated on both: ``delta[name]``
    holds the statistics of the paired per-sample differences e(φ_n) − e(φ_rn), whose mean is
    E_n − E_rn (paired, so its error bar is tiny compared with that of E itself). For a solver of
    order p the bias of the n-step estimate is E_n − E_∞ ≈ r^p/(r^p − 1)·(E_n − E_rn) (``bias``).
    Measured on φ⁴ flows the energy bias falls at least as fast as h^p (rk4: by 20–24× per
    halving of h, heun: 7–8×), so the factor from the nominal order p is conservative.
    ``systematic(name)`` = sqrt(bias² + σ_bias²): the size of that bias, or its statistical
    resolution when it is not resolved. The fixed-step ODE map is a bijection with an exactly
    computable density only in the limit of many steps, so the finite-step bias is not
    variational: it can lower the energy below E_0, and belongs in the error budget.
    """

    n_steps: int
    n_steps_fine: int
    order: int
    delta: dict  # estimator name -> Stats of e(φ_n) − e(φ_rn)

    @property
    def richardson(self) -> float:
        q = (self.n_steps_fine / self.n_steps) ** self.order
        return q / (q - 1.0)

    def bias(self, estimator: str) -> Stats | None:
        d = self.delta.get(estimator)
        if d is None:
            return None
        f = self.richardson
        return Stats(mean=f * d.mean, err=f * d.err, variance=f * f * d.variance, n_samples=d.n_samples)

    def systematic(self, estimator: str) -> float | None:
        b = self.bias(estimator)
        return None if b is None else float(np.hypot(b.mean, b.err))

    def to_json(self) -> dict:
        return {"n_steps": self.n_steps, "n_steps_fine": self.n_steps_fine, "order": self.order,
                "n_samples": next(iter(self.delta.values())).n_samples if self.delta else 0,
                "delta": {k: {"mean": v.mean, "err": v.err} for k, v in self.delta.items()},
                "bias": {k: {"mean": self.bias(k).mean, "err": self.bias(k).err} for k in self.delta}}


def discretisation_check(flow, params, theory, key, n: int, *, estimators=("ibp", "cv"), laplacian: str = "auto",
                         n_probes: int = 4, local_batch: int = 256, chunk_size: int = 512,
                         laplacian_chunk: int = 256, factor: int = 2) -> DiscretisationCheck | None:
    """:class:`DiscretisationCheck` of a fixed-step ``flow`` on ``n`` paired samples (None when the
    flow is adaptive: its error is controlled by rtol/atol instead). The comparison solve has
    ``factor`` × as many steps.

    ``estimators``: any of "ibp", "cv" (Stein control variates with coefficients fitted on the
    n-step samples and held fixed for both) and "local" (on the first ``local_batch`` samples).
    """
    from .flow import solver_order

    n = check_int("n (samples of the discretisation check)", n, minimum=1)
    factor = check_int("factor (step refinement of the discretisation check)", factor, minimum=2)
    unknown = set(estimators) - {"ibp", "cv", "local"}
    if unknown:
        raise QRGInputError(f"estimators must be among ('ibp', 'cv', 'local') (got {sorted(unknown)})")
    if not flow.n_steps:
        return None
    fine = _replace_flow(flow, n_steps=factor * flow.n_steps)
    k_sample, k_lap = jax.random.split(key)
    lat = theory.lattice
    coarse_phi, coarse_g = _draw(flow, params, k_sample, n, chunk_size)
    fine_phi, fine_g = _draw(fine, params, k_sample, n, chunk_size)
    e_c = np.asarray(ibp_energy(theory, coarse_phi, coarse_g))
    e_f = np.asarray(ibp_energy(theory, fine_phi, fine_g))
    delta = {}
    if "ibp" in estimators:
        delta["ibp"] = statistics(e_c - e_f, correlated=False)
    if "cv" in estimators:
        h_c = np.asarray(stein_features(lat, coarse_phi, coarse_g))
        h_f = np.asarray(stein_features(lat, fine_phi, fine_g))
        if n >= h_c.shape[1] + 2:
            c = fit_control_variates(e_c, h_c)
            delta["cv"] = statistics((e_c - h_c @ c) - (e_f - h_f @ c), correlated=False)
    if "local" in estimators:
        method = resolve_laplacian_method(laplacian, lat)
        if method != "none":
            m = min(local_batch, n)
            lap_c = _laplacians(flow, params, coarse_phi[:m], k_lap, method, n_probes, laplacian_chunk)
            lap_f = _laplacians(fine, params, fine_phi[:m], k_lap, method, n_probes, laplacian_chunk)
            d = (np.asarray(local_energy(theory, coarse_phi[:m], coarse_g[:m], lap_c))
                 - np.asarray(local_energy(theory, fine_phi[:m], fine_g[:m], lap_f)))
            delta["local"] = statistics(d, correlated=False)
    for name, st in delta.items():
        if not (np.isfinite(st.mean) and np.isfinite(st.err)):
            raise RuntimeError(f"the discretisation check of the {name} estimator gave non-finite values: "
                               f"the {fine.n_steps}-step solve of the trained flow diverged")
    return DiscretisationCheck(n_steps=flow.n_steps, n_steps_fine=fine.n_steps, order=solver_order(flow.solver),
                               delta=delta)


def _replace_flow(flow, **changes):
    """The same flow (model, scheme, solver settings) with ``changes`` to its constructor arguments."""
    from .flow import ProbabilityFlow

    kw = dict(solver=flow.solver, n_steps=flow.n_steps, rtol=flow.rtol, atol=flow.atol, adjoint=flow.adjoint,
              log_prob_adjoint=flow.log_prob_adjoint, max_steps=flow.max_steps, integrator=flow.integrator)
    kw.update(changes)
    return ProbabilityFlow(flow.model, flow.scheme, flow.T, **kw)


def _forward_mode_flow(flow):
    """The same flow whose forward log-density solve uses diffrax's ForwardMode (jvp only)."""
    return flow if flow.log_prob_adjoint == "forward" else _replace_flow(flow, log_prob_adjoint="forward")


@functools.partial(jax.jit, static_argnames=("flow", "method", "n_probes"))
def _flow_laplacian(flow, params, phi, key, method, n_probes):
    """Δ_φ log p_θ(φ) of the flow's forward log-density (exact or Hutchinson), forward-over-forward."""
    flow = _forward_mode_flow(flow)
    log_prob = lambda x: flow.log_prob(params, x)  # noqa: E731
    if method == "exact":
        return laplacian_exact(log_prob, phi, flow.lattice)
    return laplacian_hutchinson(log_prob, phi, flow.lattice, key, n_probes)
