"""The RG-learning experiment of "Renormalizing diffusion models" (its Section 7): learning the RG
flow of 2D lattice φ⁴.

For each bare point (paper: L = N a = 1, N = 20, λ = 0.0017, m² ∈ {0.01, −2}):

1. NUTS (BlackJAX, window adaptation; paper: 4000 warm-up steps) draws of p_0 ∝ e^{−S_E};
2. the TRUE RG flow: the draws pushed through the exact Carosso-M (M = 1) and Polchinski-M kernels
   (:mod:`.kernel_flow`), with m_R, Z, λ_R, max|φ| (paper 7.3–7.11, :mod:`qrg.observables`) along t
   → the paper's Figure 6;
3. two flows with the same architecture (Gaussian bridge + equivariant kernel network, Carosso-M
   prior) trained for the same number of Adam steps (paper: 1000, batch 64, b1 = 0.8, b2 = 0.9,
   lr 5e-3 with exponential decay) with the RG-matching objective (5.22) and with reverse KL (5.5);
   their marginals p^θ_t sampled by backward ODE solves and measured with the same estimators →
   Figures 7 and 8; the mean relative deviation from the true flow quantifies which one tracks it;
4. each learned flow used as an independence-Metropolis proposal at t = 0 (acceptance, ESS per
   sample) against NUTS's integrated autocorrelation time of ⟨|m|⟩.

The ODE solves use the exponential (integrating-factor) integrator of :class:`qrg.flow.ProbabilityFlow`
by default: the stiff linear part is transported in closed form, so a few fixed RK4 steps suffice
even at a = 0.05, where a plain explicit solver needs > 1000 (κ_max = 8/a² + M² ≈ 3200).

Outputs in ``out``: ``section7_m2_<m2>.json`` (all numbers), ``fig6_m2_<m2>.png`` (true flows),
``fig78_m2_<m2>.png`` (learned vs true; :mod:`.experiment_plots`) and ``summary.json``. Entry
point: :func:`run` (the ``qrg rgflow`` command and ``examples/paper_section7.py``).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import jax
import numpy as np

from .._validation import QRGInputError, check_int, check_real
from .experiment_plots import plot_learned_vs_true, plot_true_flows, series

TRACKED = ("m_R", "m_R2_rescaled", "Z", "lambda_R", "lambda_R_rescaled", "max_abs_phi")
#: the three renormalised quantities the comparison of the two objectives is summarised by
COMPARED = ("m_R", "Z", "lambda_R")
#: the learned flows' objectives, in the order they are trained
LEARNED_OBJECTIVES = ("rg_matching", "reverse_kl")
_POSITIVE_INTS = ("chains", "n_warmup", "n_samples", "batch", "n_eval", "lr_transition")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Settings of the experiment (defaults: the paper's sizes and optimiser), validated on construction.

    ``N`` sites per side (≥ 2), ``L = N a``, ``lam`` (λ ≥ 0), ``m2`` the bare masses (one run each).
    NUTS: ``chains``, ``n_warmup``, ``n_samples`` per chain. Learned flows: ``train_steps`` Adam steps
    per objective (0: true flows only), ``batch``, prior time ``T``; ``n_t`` ≥ 2 RG times on [0, T]
    where learned and true flows are compared, ``n_eval`` learned samples per time, ``n_imh`` ≥ 4
    independence-Metropolis proposals per flow.
    ``ode_steps``: fixed steps of ``solver`` per backward/forward solve over [t, T]; 0 = adaptive
    stepping with tolerance ``rtol``. ``solver``: one of ``qrg.flow.SOLVERS``; None (default) =
    "rk4" for fixed steps and "tsit5" for adaptive ones. A solver without an error estimate
    ("euler", "rk4", "implicit_euler") with ``ode_steps = 0`` is an error.
    ``integrator``: "exponential" (default) or "plain".
    ``lr``: initial Adam learning rate (decay ``lr_decay`` over ``lr_transition`` steps);
    ``kernel_lr_scale``: factor on the learning rate of the kernel network's parameters relative to
    the Gaussian bridge's, and on its initial output scale (1e-3 · factor); None (default) = a^d/N
    (:func:`qrg.euclidean.learning.default_net_scale`; measured: a^d alone still wrecks the flow in
    one step at N = 20, see docs/euclidean.md); 1 = the paper's optimiser. The values actually used
    are :attr:`ode_solver` and :attr:`net_lr_scale`.
    """

    N: int = 20
    L: float = 1.0
    lam: float = 0.0017
    m2: tuple = (0.01, -2.0)
    chains: int = 4
    n_warmup: int = 4000
    n_samples: int = 1000
    train_steps: int = 1000
    batch: int = 64
    T: float = 1.0
    n_t: int = 9
    n_eval: int = 512
    n_imh: int = 1024
    ode_steps: int = 8
    solver: str | None = None
    integrator: str = "exponential"
    rtol: float = 1e-4
    lr: float = 5e-3
    lr_transition: int = 8000
    lr_decay: float = 0.1
    kernel_lr_scale: float | None = None
    seed: int = 0

    def __post_init__(self):
        from ..flow import INTEGRATORS, SOLVERS

        def coerce(name, value):
            object.__setattr__(self, name, value)

        coerce("N", check_int("N", self.N, minimum=2))
        coerce("L", check_real("L", self.L, positive=True))
        coerce("lam", check_real("lam", self.lam, nonnegative=True))
        if np.ndim(self.m2) == 0 or len(self.m2) == 0:
            raise QRGInputError(f"m2 must list at least one bare mass squared (got {self.m2!r})")
        coerce("m2", tuple(check_real("m2", m) for m in self.m2))
        for name in _POSITIVE_INTS:
            coerce(name, check_int(name, getattr(self, name), minimum=1))
        coerce("n_t", check_int("n_t", self.n_t, minimum=2))
        coerce("n_imh", check_int("n_imh", self.n_imh, minimum=4))
        coerce("train_steps", check_int("train_steps", self.train_steps, minimum=0))
        coerce("ode_steps", check_int("ode_steps", self.ode_steps, minimum=0))
        coerce("seed", check_int("seed", self.seed, minimum=0))
        for name in ("T", "rtol", "lr", "lr_decay"):
            coerce(name, check_real(name, getattr(self, name), positive=True))
        if self.kernel_lr_scale is not None:
            coerce("kernel_lr_scale", check_real("kernel_lr_scale", self.kernel_lr_scale, positive=True))
        if self.solver is not None:
            SOLVERS.check("solver", self.solver)
        if self.solver is not None and SOLVERS.get(self.solver).fixed_step_only and self.ode_steps == 0:
            raise QRGInputError(f"solver {self.solver!r} has no error estimate: ode_steps must be >= 1 "
                                "(ode_steps = 0 means adaptive stepping; leave solver unset for tsit5)")
        INTEGRATORS.check("integrator", self.integrator)

    @classmethod
    def quick(cls, **overrides) -> "ExperimentConfig":
        """A small version (N = 8, short runs): a few minutes on 2 CPU cores."""
        base = dict(N=8, chains=2, n_warmup=300, n_samples=300, train_steps=100, batch=16, n_t=6, n_eval=256,
                    n_imh=256, T=1.0, ode_steps=8)
        base.update(overrides)
        return cls(**base)

    @property
    def a(self) -> float:
        return self.L / self.N

    @property
    def ode_solver(self) -> str:
        """``solver``, or "rk4" for fixed steps / "tsit5" for adaptive ones when unset."""
        if self.solver is not None:
            return self.solver
        return "rk4" if self.ode_steps else "tsit5"

    @property
    def net_lr_scale(self) -> float:
        """``kernel_lr_scale``, or a^d/N when unset."""
        from .learning import default_net_scale

        return default_net_scale(self.N, self.L) if self.kernel_lr_scale is None else self.kernel_lr_scale

    def settings(self) -> dict:
        """The settings of one bare point as used (resolved solver and learning-rate scale; no m2)."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if k != "m2"}
        out.update(solver=self.ode_solver, kernel_lr_scale=self.net_lr_scale)
        return out


def relative_deviation(learned: dict, true: dict, name: str) -> dict:
    """Mean over t of |X_θ(t) − X(t)| / |X(t)| and of |X_θ − X| in units of the combined error bar."""
    a, ea = series(learned, name)
    b, eb = series(true, name)
    ok = np.isfinite(a) & np.isfinite(b) & (np.abs(b) > 0)
    rel = np.abs(a - b)[ok] / np.abs(b)[ok]
    z = np.abs(a - b)[ok] / np.sqrt(ea[ok] ** 2 + eb[ok] ** 2)
    return {"mean_relative_deviation": float(np.mean(rel)) if rel.size else None,
            "mean_abs_z": float(np.nanmean(z)) if z.size else None, "n_t": int(ok.sum())}


def measure_learned(flow, params, key, ts, n_eval, scheme):
    """Observables of the learned marginals p^θ_t at every t (n_eval backward-solve samples each)."""
    from ..observables import measure, to_json
    from .learning import learned_flow_samples

    samples = learned_flow_samples(flow, params, key, n_eval, ts)
    per_t = [to_json(measure(samples[i], flow.lattice, r_t=float(scheme.cutoff_ratio(float(t)))))
             for i, t in enumerate(ts)]
    obs = {name: {k: [p[name][k] for p in per_t] for k in ("mean", "err", "tau_int")} for name in per_t[0]}
    return obs, samples[:, :3]


def make_learned_flow(theory, cfg: ExperimentConfig):
    from .learning import make_flow

    return make_flow(theory, model="default", T=cfg.T, n_steps=cfg.ode_steps or None, solver=cfg.ode_solver,
                     rtol=cfg.rtol, atol=cfg.rtol, integrator=cfg.integrator, out_scale=1e-3 * cfg.net_lr_scale)


def sample_reference(theory, cfg: ExperimentConfig, key, log=print):
    """Stage 1: NUTS draws of p_0 and their observables; returns (MCMCResult, report entry)."""
    from ..observables import measure, to_json
    from .samplers.nuts import sample_nuts

    t0 = time.perf_counter()
    nuts = sample_nuts(theory, key, n_samples=cfg.n_samples, n_chains=cfg.chains, n_warmup=cfg.n_warmup)
    obs0 = measure(nuts.samples, theory.lattice)
    tau = obs0["abs_m"].tau_int
    entry = {**{k: v for k, v in nuts.summary().items() if k != "step_size"},
             "total_time_s": time.perf_counter() - t0, "observables": to_json(obs0),
             "tau_int_abs_m": tau, "ess_per_sample_abs_m": 1.0 / (2.0 * tau),
             "ess_per_second_abs_m": nuts.n_chains * nuts.n_samples / (2 * tau) / nuts.wall_time_s}
    log(f"   NUTS: acc {nuts.mean_acceptance:.3f}, div {nuts.n_divergences}, m_R {obs0['m_R']}, "
        f"tau(|m|) {tau:.2f}, {time.perf_counter() - t0:.0f}s")
    return nuts, entry


def true_flows(samples, lattice, ts, k_carosso, k_polchinski) -> tuple[dict, dict, dict]:
    """Stage 2: Carosso-M on the learned flows' grid ``ts`` (the comparison) and, for Figure 6,
    Carosso-M up to t = 2 and Polchinski-M until its effective cutoff reaches 0
    (e^{2t} − 1 = Λ0²/M², paper 7.3). Returns (comparison, figure-6 Carosso, figure-6 Polchinski)."""
    from ..rg import CarossoM, PolchinskiM
    from .kernel_flow import flow_observables

    carosso, polchinski = CarossoM(lattice, 1.0), PolchinskiM(lattice, 1.0)
    t_polchinski = np.linspace(0.0, 0.5 * np.log1p(lattice.cutoff**2), 9)
    return (flow_observables(k_carosso, samples, carosso, ts, keep=3),
            flow_observables(k_carosso, samples, carosso, np.linspace(0.0, 2.0, 9), keep=3),
            flow_observables(k_polchinski, samples, polchinski, t_polchinski, keep=3))


def learn_flow(theory, cfg: ExperimentConfig, objective: str, key, k_eval, k_imh, data, ts, true_obs,
               log=print) -> dict:
    """Stage 3–4 for one objective: train, measure p^θ_t along ``ts``, run IMH with the t = 0 flow."""
    from ..observables import measure, to_json
    from ..rg import CarossoM
    from ..optim.optimizers import net_scaled_adam
    from .learning import train
    from .samplers.imh import flow_imh

    lat = theory.lattice
    flow = make_learned_flow(theory, cfg)
    params = flow.init(jax.random.fold_in(key, 0))
    opt = net_scaled_adam(params, cfg.lr, cfg.lr_transition, cfg.lr_decay, cfg.net_lr_scale)
    res = train(flow, params, jax.random.fold_in(key, 1), objective=objective, n_steps=cfg.train_steps,
                theory=theory, data=data, batch_size=cfg.batch, optimizer=opt,
                log_every=max(1, cfg.train_steps // 50))
    t_eval = time.perf_counter()
    obs, snaps = measure_learned(flow, res.params, k_eval, ts, cfg.n_eval, CarossoM(lat, 1.0))
    t_imh = time.perf_counter()
    imh = flow_imh(theory, k_imh, n_samples=cfg.n_imh // 2, n_chains=2, flow=flow, params=res.params,
                   batch=min(cfg.n_imh // 2, 256))
    imh_obs = measure(imh.samples, lat)
    imh_tau = imh_obs["abs_m"].tau_int
    dev = {o: relative_deviation(obs, true_obs, o) for o in TRACKED}
    log(f"   {objective}: train {res.wall_time_s:.0f}s ({res.wall_time_s / max(1, cfg.train_steps):.2f}s/step), "
        f"IMH acc {imh.acceptance:.3f} ESS {imh.ess_per_sample:.3f}; "
        + ", ".join(f"{o} {dev[o]['mean_relative_deviation']:.3g}" for o in COMPARED
                    if dev[o]["mean_relative_deviation"] is not None))
    return {"observables": obs, "snapshots": snaps, "train": res.to_json(), "eval_time_s": t_imh - t_eval,
            "imh": {**imh.summary(), "tau_int_abs_m": imh_tau, "ess_per_sample_abs_m": 1.0 / (2.0 * imh_tau),
                    "observables": to_json(imh_obs)},
            "deviation_from_true_flow": dev}


def run_point(cfg: ExperimentConfig, m2: float, out: pathlib.Path, log=print) -> dict:
    """The whole experiment at one bare m²; writes the JSON and figures into ``out``."""
    from ..theory import Phi4

    theory = Phi4.from_params(d=2, N=cfg.N, a=cfg.a, m2=m2, lam=cfg.lam)
    lat = theory.lattice
    k_nuts, k_true, k_pol, k_rg, k_rev, k_eval, k_imh = jax.random.split(jax.random.PRNGKey(cfg.seed), 7)
    report = {"params": theory.params(), "settings": cfg.settings(), "kappa_max": float(np.max(lat.phat2) + 1.0)}
    log(f"== m2 = {m2}: N = {cfg.N}, a = {cfg.a:.4g}, lam = {cfg.lam}")

    nuts, report["nuts"] = sample_reference(theory, cfg, k_nuts, log)
    ts = np.linspace(0.0, cfg.T, cfg.n_t)
    true_c, fig6_c, fig6_p = true_flows(nuts.samples, lat, ts, k_true, k_pol)
    report["true_flow"] = _without_snapshots(true_c)
    report["figure6"] = {"carosso": _without_snapshots(fig6_c), "polchinski": _without_snapshots(fig6_p)}

    # same architecture, same optimiser, same number of steps for both objectives
    data = nuts.samples.reshape((-1,) + lat.shape)
    learned = {}
    runs = zip(LEARNED_OBJECTIVES, (k_rg, k_rev)) if cfg.train_steps else ()
    for objective, k in runs:
        learned[objective] = learn_flow(theory, cfg, objective, k, k_eval, k_imh, data, ts,
                                        true_c["observables"], log)
    report["learned"] = {k: _without_snapshots(v) for k, v in learned.items()}

    tag = f"m2_{m2:g}"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"section7_{tag}.json").write_text(json.dumps(report, indent=1) + "\n")
    plot_true_flows(fig6_c, fig6_p, out / f"fig6_{tag}.png", m2)
    if learned:
        plot_learned_vs_true(true_c, learned, out / f"fig78_{tag}.png", m2)
    return report


def _without_snapshots(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "snapshots"}


def summarize(report: dict) -> dict:
    """The headline numbers of one bare point (what summary.json holds)."""
    nuts = report["nuts"]
    out = {"nuts_m_R": nuts["observables"]["m_R"], "nuts_tau_int_abs_m": nuts["tau_int_abs_m"],
           "nuts_ess_per_sample_abs_m": nuts["ess_per_sample_abs_m"], "learned": {}}
    for k, v in report["learned"].items():
        dev = v["deviation_from_true_flow"]
        out["learned"][k] = {
            "train_time_s": v["train"]["wall_time_s"],
            "mean_relative_deviation": {o: dev[o]["mean_relative_deviation"] for o in COMPARED},
            "mean_abs_z": {o: dev[o]["mean_abs_z"] for o in COMPARED},
            **{kk: v["imh"][kk] for kk in ("acceptance", "ess_per_sample", "tau_int_abs_m", "ess_per_sample_abs_m")}}
    return out


def run(cfg: ExperimentConfig, out, log=print) -> dict:
    """All bare points of ``cfg``; writes per-point JSON/PNGs and ``summary.json`` into ``out``."""
    if not isinstance(cfg, ExperimentConfig):
        raise QRGInputError(f"cfg must be an ExperimentConfig (got {type(cfg).__name__})")
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for m2 in cfg.m2:
        summary[f"{m2:g}"] = summarize(run_point(cfg, m2, out, log=log))
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary
