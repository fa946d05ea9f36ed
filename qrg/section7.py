"""The Section 7 experiment of "Renormalizing diffusion models": learning the RG flow of 2D φ⁴.

For each bare point (paper: L = N a = 1, N = 20, λ = 0.0017, m² ∈ {0.01, −2}):

1. NUTS (BlackJAX, window adaptation; paper: 4000 warm-up steps) draws of p_0 ∝ e^{−S_E};
2. the TRUE RG flow: the draws pushed through the exact Carosso-M (M = 1) and Polchinski-M kernels
   (:mod:`qrg.rgflow`), with m_R, Z, λ_R, max|φ| (paper 7.3–7.11, :mod:`qrg.observables`) along t
   → Figure 6;
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
``fig78_m2_<m2>.png`` (learned vs true) and ``summary.json``. Entry points: :func:`run`
(the ``qrg rgflow`` command and ``examples/paper_section7.py``).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import jax
import numpy as np

from ._validation import QRGInputError, check_int, check_real
from .flow import INTEGRATORS, SOLVERS

TRACKED = ("m_R", "m_R2_rescaled", "Z", "lambda_R", "lambda_R_rescaled", "max_abs_phi")
#: the three renormalised quantities the comparison of the two objectives is summarised by
COMPARED = ("m_R", "Z", "lambda_R")


@dataclasses.dataclass
class Section7Config:
    """Settings of the experiment (defaults: the paper's sizes and optimiser).

    ``ode_steps``: fixed steps of ``solver`` per backward/forward solve over [t, T] (0: adaptive
    Tsit5 with tolerance ``rtol``); ``integrator``: "exponential" (default) or "plain".
    ``lr``: initial Adam learning rate (decay ``lr_decay`` over ``lr_transition`` steps);
    ``kernel_lr_scale``: factor on the learning rate of the kernel network's parameters
    relative to the Gaussian bridge's, and on its initial output scale (1e-3 · factor); None
    (default) = a^d / N (measured: a^d alone still wrecks the flow in one step at N = 20, see
    docs/euclidean.md and :func:`qrg.learn_rg.section7_optimizer`); 1 = the paper's optimiser.
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
    solver: str = "rk4"
    integrator: str = "exponential"
    rtol: float = 1e-4
    lr: float = 5e-3
    lr_transition: int = 8000
    lr_decay: float = 0.1
    kernel_lr_scale: float | None = None
    seed: int = 0

    def validate(self) -> "Section7Config":
        check_int("N", self.N, minimum=2)
        check_real("L", self.L, positive=True)
        check_real("lam", self.lam, nonnegative=True)
        if not self.m2:
            raise QRGInputError("m2 must list at least one bare mass squared")
        self.m2 = tuple(check_real("m2", m) for m in self.m2)
        for name in ("chains", "n_warmup", "n_samples", "batch", "n_t", "n_eval", "lr_transition"):
            check_int(name, getattr(self, name), minimum=1)
        check_int("n_t", self.n_t, minimum=2)
        check_int("n_imh", self.n_imh, minimum=4)
        check_int("train_steps", self.train_steps, minimum=0)
        check_int("ode_steps", self.ode_steps, minimum=0)
        check_real("T", self.T, positive=True)
        check_real("rtol", self.rtol, positive=True)
        check_real("lr", self.lr, positive=True)
        check_real("lr_decay", self.lr_decay, positive=True)
        if self.kernel_lr_scale is None:
            self.kernel_lr_scale = default_net_scale(self.N, self.L)
        self.kernel_lr_scale = check_real("kernel_lr_scale", self.kernel_lr_scale, positive=True)
        if self.solver not in SOLVERS:
            raise QRGInputError(f"solver must be one of {sorted(SOLVERS)} (got {self.solver!r})")
        if self.integrator not in INTEGRATORS:
            raise QRGInputError(f"integrator must be one of {INTEGRATORS} (got {self.integrator!r})")
        if self.ode_steps == 0 and self.solver in ("euler", "rk4", "implicit_euler"):
            self.solver = "tsit5"
        return self

    @classmethod
    def quick(cls, **overrides) -> "Section7Config":
        """A small version (N = 8, short runs): a few minutes on 2 CPU cores."""
        base = dict(N=8, chains=2, n_warmup=300, n_samples=300, train_steps=100, batch=16, n_t=6, n_eval=256,
                    n_imh=256, T=1.0, ode_steps=8)
        base.update(overrides)
        return cls(**base)


def default_net_scale(N: int, L: float, d: int = 2) -> float:
    """a^d / N: the kernel network's learning-rate factor used by default (a = L/N).

    a^d converts the score the network outputs into velocity units (½B = ½a^-d); the extra 1/N
    is empirical: the network's weights enter the velocity through kernels summed over up to N^d
    displacements, and at N = 20 a factor a^d alone still made one Adam step (lr 5e-3) drop the
    ESS from 0.77 to 0.04, a^d/N kept it (0.77 → 0.55–0.79 over 8 steps, loss decreasing) and
    a^d/N² barely moved the network (benchmarks/section7.md).
    """
    a = L / N
    return a**d / N


def relative_deviation(learned: dict, true: dict, name: str) -> dict:
    """Mean over t of |X_θ(t) − X(t)| / |X(t)| and of |X_θ − X| in units of the combined error bar."""
    a, ea = _series(learned, name)
    b, eb = _series(true, name)
    ok = np.isfinite(a) & np.isfinite(b) & (np.abs(b) > 0)
    rel = np.abs(a - b)[ok] / np.abs(b)[ok]
    z = np.abs(a - b)[ok] / np.sqrt(ea[ok] ** 2 + eb[ok] ** 2)
    return {"mean_relative_deviation": float(np.mean(rel)) if rel.size else None,
            "mean_abs_z": float(np.nanmean(z)) if z.size else None, "n_t": int(ok.sum())}


def _series(obs, name):
    m = np.array([np.nan if v is None else v for v in obs[name]["mean"]], dtype=float)
    e = np.array([np.nan if v is None else v for v in obs[name]["err"]], dtype=float)
    return m, e


def measure_learned(flow, params, key, ts, n_eval, scheme):
    """Observables of the learned marginals p^θ_t at every t (n_eval backward-solve samples each)."""
    from .learn_rg import learned_flow_samples
    from .observables import measure, to_json

    samples = learned_flow_samples(flow, params, key, n_eval, ts)
    per_t = [to_json(measure(samples[i], flow.lattice, r_t=float(scheme.cutoff_ratio(float(t)))))
             for i, t in enumerate(ts)]
    obs = {name: {k: [p[name][k] for p in per_t] for k in ("mean", "err", "tau_int")} for name in per_t[0]}
    return obs, samples[:, :3]


def make_learned_flow(theory, cfg: Section7Config):
    from .learn_rg import make_flow

    return make_flow(theory, model="default", T=cfg.T, n_steps=cfg.ode_steps or None, solver=cfg.solver,
                     rtol=cfg.rtol, atol=cfg.rtol, integrator=cfg.integrator, out_scale=1e-3 * cfg.kernel_lr_scale)


def run_point(cfg: Section7Config, m2: float, out: pathlib.Path, log=print) -> dict:
    """The whole experiment at one bare m²; writes the JSON and figures into ``out``."""
    from .learn_rg import section7_optimizer, train
    from .observables import measure, to_json
    from .rg import CarossoM, PolchinskiM
    from .rgflow import flow_observables
    from .samplers.imh import flow_imh
    from .samplers.nuts import sample_nuts
    from .theory import Phi4

    a = cfg.L / cfg.N
    theory = Phi4.from_params(d=2, N=cfg.N, a=a, m2=m2, lam=cfg.lam)
    lat = theory.lattice
    key = jax.random.PRNGKey(cfg.seed)
    k_nuts, k_true, k_pol, k_rg, k_rev, k_eval, k_imh = jax.random.split(key, 7)
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "m2"}
    report = {"params": theory.params(), "settings": settings,
              "kappa_max": float(np.max(lat.phat2) + 1.0)}
    log(f"== m2 = {m2}: N = {cfg.N}, a = {a:.4g}, lam = {cfg.lam}")

    # 1. NUTS
    t0 = time.perf_counter()
    nuts = sample_nuts(theory, k_nuts, n_samples=cfg.n_samples, n_chains=cfg.chains, n_warmup=cfg.n_warmup)
    obs0 = measure(nuts.samples, lat)
    tau = obs0["abs_m"].tau_int
    report["nuts"] = {**{k: v for k, v in nuts.summary().items() if k != "step_size"},
                      "total_time_s": time.perf_counter() - t0, "observables": to_json(obs0),
                      "tau_int_abs_m": tau, "ess_per_sample_abs_m": 1.0 / (2.0 * tau),
                      "ess_per_second_abs_m": nuts.n_chains * nuts.n_samples / (2 * tau) / nuts.wall_time_s}
    log(f"   NUTS: acc {nuts.mean_acceptance:.3f}, div {nuts.n_divergences}, m_R {obs0['m_R']}, "
        f"tau(|m|) {tau:.2f}, {time.perf_counter() - t0:.0f}s")

    # 2. true flows: Carosso-M on the learned flows' grid (the comparison) and, for Figure 6,
    #    Carosso-M up to t = 2 and Polchinski-M until its effective cutoff reaches 0
    #    (e^{2t} − 1 = Λ0²/M², paper 7.3)
    carosso, polchinski = CarossoM(lat, 1.0), PolchinskiM(lat, 1.0)
    ts = np.linspace(0.0, cfg.T, cfg.n_t)
    true_c = flow_observables(k_true, nuts.samples, carosso, ts, keep=3)
    fig6_c = flow_observables(k_true, nuts.samples, carosso, np.linspace(0.0, 2.0, 9), keep=3)
    fig6_p = flow_observables(k_pol, nuts.samples, polchinski, np.linspace(0.0, 0.5 * np.log1p(lat.cutoff**2), 9),
                              keep=3)
    report["true_flow"] = {k: v for k, v in true_c.items() if k != "snapshots"}
    report["figure6"] = {"carosso": {k: v for k, v in fig6_c.items() if k != "snapshots"},
                         "polchinski": {k: v for k, v in fig6_p.items() if k != "snapshots"}}

    # 3. learned flows: same architecture, same optimiser, same number of steps
    data = nuts.samples.reshape((-1,) + lat.shape)
    learned = {}
    runs = (("rg_matching", k_rg), ("reverse_kl", k_rev)) if cfg.train_steps else ()
    for objective, k in runs:
        flow = make_learned_flow(theory, cfg)
        params = flow.init(jax.random.fold_in(k, 0))
        opt = section7_optimizer(params, cfg.lr, cfg.lr_transition, cfg.lr_decay, cfg.kernel_lr_scale)
        res = train(flow, params, jax.random.fold_in(k, 1), objective=objective, n_steps=cfg.train_steps,
                    theory=theory, data=data, batch_size=cfg.batch, optimizer=opt,
                    log_every=max(1, cfg.train_steps // 50))
        t_eval = time.perf_counter()
        obs, snaps = measure_learned(flow, res.params, k_eval, ts, cfg.n_eval, carosso)
        t_imh = time.perf_counter()
        imh = flow_imh(theory, k_imh, n_samples=cfg.n_imh // 2, n_chains=2, flow=flow, params=res.params,
                       batch=min(cfg.n_imh // 2, 256))
        imh_obs = measure(imh.samples, lat)
        imh_tau = imh_obs["abs_m"].tau_int
        learned[objective] = {
            "observables": obs, "snapshots": snaps, "train": res.to_json(),
            "eval_time_s": t_imh - t_eval,
            "imh": {**imh.summary(), "tau_int_abs_m": imh_tau, "ess_per_sample_abs_m": 1.0 / (2.0 * imh_tau),
                    "observables": to_json(imh_obs)},
            "deviation_from_true_flow": {o: relative_deviation(obs, true_c["observables"], o) for o in TRACKED}}
        dev = learned[objective]["deviation_from_true_flow"]
        log(f"   {objective}: train {res.wall_time_s:.0f}s ({res.wall_time_s / max(1, cfg.train_steps):.2f}s/step), "
            f"IMH acc {imh.acceptance:.3f} ESS {imh.ess_per_sample:.3f}; "
            + ", ".join(f"{o} {dev[o]['mean_relative_deviation']:.3g}" for o in COMPARED
                        if dev[o]["mean_relative_deviation"] is not None))
    report["learned"] = {k: {kk: vv for kk, vv in v.items() if kk != "snapshots"} for k, v in learned.items()}

    tag = f"m2_{m2:g}"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"section7_{tag}.json").write_text(json.dumps(report, indent=1) + "\n")
    plot_figure6(fig6_c, fig6_p, out / f"fig6_{tag}.png", m2)
    if learned:
        plot_figures78(true_c, learned, out / f"fig78_{tag}.png", m2)
    return report


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


def run(cfg: Section7Config, out, log=print) -> dict:
    """All bare points of ``cfg``; writes per-point JSON/PNGs and ``summary.json`` into ``out``."""
    cfg.validate()
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for m2 in cfg.m2:
        summary[f"{m2:g}"] = summarize(run_point(cfg, m2, out, log=log))
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def plot_figure6(fc, fp, path, m2):
    """Figure 6: RG-trajectory snapshots (Carosso-M, Polchinski-M) and r_t² λ_R, m_R, Z along t."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(fc["t"])
    fig = plt.figure(figsize=(2.0 * n, 12))
    gs = fig.add_gridspec(4, n)
    for row, f in enumerate((fc, fp)):
        for i in range(n):
            ax = fig.add_subplot(gs[row, i])
            ax.imshow(f["snapshots"][i, 0], cmap="viridis")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{'Carosso' if row == 0 else 'Polchinski'} t={f['t'][i]:.2g}", fontsize=7)
    quantities = (("m_R", r"$m_R$"), ("Z", "Z"), ("lambda_R", r"$r_t^2\lambda_R$"), ("max_abs_phi", r"max$|\phi|$"))
    width = n // 4
    for j, (name, label) in enumerate(quantities):
        for row, (f, scheme) in enumerate(((fc, "Carosso-M"), (fp, "Polchinski-M"))):
            ax = fig.add_subplot(gs[2 + row, j * width:(j + 1) * width])
            t = np.array(f["t"])
            m, e = _series(f["observables"], name)
            if name == "lambda_R":
                r2 = np.array(f["r_t"]) ** 2
                m, e = r2 * m, r2 * e
            ax.errorbar(t, m, e, marker="o", ms=3)
            ax.set_title(f"{scheme}: {label}", fontsize=9)
            ax.set_xlabel("RG time t", fontsize=8)
    fig.suptitle(f"True RG flow (Figure 6), m²={m2}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_figures78(true_c, learned, path, m2):
    """Figures 7–8: the learned flows ((5.22) and reverse KL) against the true Carosso-M flow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [("m_R2", r"$m_R^2$"), ("m_R2_rescaled", r"$m_R^2/r_t^2$"), ("Z", "Z"), ("lambda_R", r"$\lambda_R$"),
             ("lambda_R_rescaled", r"$\lambda_R/r_t^2$"), ("max_abs_phi", r"max$|\phi|$")]
    t = np.array(true_c["t"])
    dt = 0.01 * (t[-1] - t[0])
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    colors = {"true": "tab:red", "rg_matching": "tab:blue", "reverse_kl": "teal"}
    labels = {"rg_matching": "learned (5.22)", "reverse_kl": "learned, reverse KL (5.5)"}
    for ax, (name, label) in zip(axes.ravel(), names):
        m_true, e_true = _series(true_c["observables"], name)
        ax.errorbar(t, m_true, e_true, color=colors["true"], marker="o", label="true Carosso-M flow")
        for i, key in enumerate(k for k in ("rg_matching", "reverse_kl") if k in learned):
            m, e = _series(learned[key]["observables"], name)
            ax.errorbar(t + (i + 1) * dt, m, e, color=colors[key], marker="s", ls="--", label=labels[key])
        # the axis follows the true flow (±3 times its range); learned values beyond are clipped
        # to the edge and drawn as open triangles, so one diverging estimate does not hide the rest
        lo, hi = np.nanmin(m_true - e_true), np.nanmax(m_true + e_true)
        pad = 3.0 * max(hi - lo, 1e-12)
        ylo, yhi = lo - pad, hi + pad
        for i, key in enumerate(k for k in ("rg_matching", "reverse_kl") if k in learned):
            m, _ = _series(learned[key]["observables"], name)
            off = np.isfinite(m) & ((m < ylo) | (m > yhi))
            if off.any():
                ax.plot((t + (i + 1) * dt)[off], np.clip(m[off], ylo, yhi), ls="none", marker="^", mfc="none",
                        color=colors[key])
        ax.set_ylim(ylo, yhi)
        ax.set_title(label)
        ax.set_xlabel("RG time t")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"Learning the RG flow (Figures 7-8), m²={m2}  (open triangles: off-scale values, clipped)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
