"""Flow sampler at the φ⁴ benchmark point of Gerdes et al. (2022), on CPU (issue 5 target).

    python benchmarks/gerdes_flow.py --L 16 --train-minutes 60 --out runs/gerdes/L16.json
    (the measured runs and their exact commands: benchmarks/gerdes.md)

Gerdes, de Haan, Rainone, Bondesan, Cheng, "Learning lattice quantum field theories with
equivariant continuous flows", SciPost Phys. 15, 238 (2023), write the 2D lattice action as
(their code, ``jaxlft/phi4.py``, a = 1, no factor ½)::

    S_G(ϕ) = Σ_x [ Σ_μ (ϕ_{x+μ} − ϕ_x)² + m_G² ϕ_x² + λ_G ϕ_x⁴ ],   m_G² = −4,

with λ_G chosen per lattice size so that the correlation length is ξ ≈ L/4 (their published
values: L = 6: 6.975, 12: 5.276, 20: 4.807, 32: 4.572, 64: 4.398). L = 16 is not in their list;
``gerdes_lambda`` interpolates linearly in 1/L between the neighbouring published sizes
(L = 16: λ_G = 4.983) and the script measures ξ with NUTS to check ξ ≈ L/4.

Mapping onto qrg's Euclidean action (design §5, a = 1)
``S_E(φ) = Σ [½ Σ_μ (φ_{x+μ} − φ_x)² + ½ m² φ² + (λ/4!) φ⁴]``: with φ = √2 ϕ,

    S_G(ϕ) = S_E(√2 ϕ)   exactly, for  m² = m_G²,  λ = 6 λ_G,

so p_G(ϕ) = 2^{L²/2} p_E(√2 ϕ): the densities differ by the constant Jacobian of the rescaling,
which cancels in importance weights, ESS and Metropolis ratios. Observables scale as
⟨ϕ²⟩_G = ⟨φ²⟩/2; ξ is scale-free.

Stages (all written to ``--out`` as JSON, progress to stdout):

1. NUTS reference (qrg.euclidean.samplers.nuts): ξ (second-moment, qrg.observables) and the time-slice
   effective-mass ξ of Gerdes et al.'s estimator; its power spectrum gives the initial Gaussian
   C_0(k) = ⟨|φ̃(k)|²⟩/L² of the flow's Gaussian bridge (``--init nuts``), or the free
   propagator Z/(p̂² + m_R²) with the measured Z and m_R (``--init free``).
2. Reverse-KL training (paper 5.5) of qrg's default flow (Gaussian bridge + equivariant kernel
   network, Carosso-M scheme) for ``--train-minutes`` of wall time (``--init-params`` continues
   from an earlier run's parameters). The loss is the one of ``qrg.euclidean.learning.reverse_kl_loss`` but
   computed from ``ProbabilityFlow.sample_log_prob`` (φ and log p only, no score: about half the
   cost per step). Every ``--eval-every`` minutes the Kish ESS per sample of ``--eval-samples``
   fresh samples is logged (evaluation time is not counted as training time), together with the
   largest |Δ log q| between the training solver and the tight adaptive solve on the same draws.
   The default training solver is adaptive Tsit5: with fixed-step RK4 (``--train-solver rk4``)
   reverse KL learned, after ~1300 steps at L = 16, a stiff flow whose RK4 log-density was wrong
   by hundreds of nats (loss far below −log Z): the optimiser exploited the discretisation error.
3. Final measurement with the trained parameters and an adaptive Tsit5 solve at tight
   tolerance (``--eval-rtol``; the log-density is then exact to that tolerance): Kish ESS per
   sample of ``--n-eval`` fresh samples, independence Metropolis (qrg.euclidean.samplers.imh) over these
   proposals: acceptance and τ_int of ⟨|M|⟩, compared with the NUTS chains.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import pathlib
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

import qrg
from qrg._validation import QRGInputError
from qrg.flow import ProbabilityFlow
from qrg.euclidean.learning import ess_fraction, make_flow
from qrg.optim.optimizers import paper_adam
from qrg.euclidean.samplers.imh import ess_per_sample, independence_metropolis
from qrg.euclidean.samplers.nuts import sample_nuts
from qrg.observables import measure
from qrg.optim import Loop, LoopState, load_checkpoint, run, save_checkpoint
from qrg.stats import integrated_autocorrelation_time, statistics

GERDES_M2 = -4.0
#: λ_G per lattice size, chosen by Gerdes et al. for ξ ≈ L/4 (published with their trained parameters)
GERDES_LAMBDA = {6: 6.975, 12: 5.276, 20: 4.807, 32: 4.572, 64: 4.398}
#: φ_qrg = FIELD_SCALE · ϕ_Gerdes
FIELD_SCALE = math.sqrt(2.0)


def gerdes_lambda(L: int) -> float:
    """λ_G of Gerdes et al. for lattice size L: their value, or linear interpolation in 1/L."""
    L = int(L)
    if L in GERDES_LAMBDA:
        return GERDES_LAMBDA[L]
    sizes = sorted(GERDES_LAMBDA)
    if not sizes[0] < L < sizes[-1]:
        raise QRGInputError(f"L must lie in [{sizes[0]}, {sizes[-1]}] to interpolate λ_G (got {L})")
    lo = max(s for s in sizes if s < L)
    hi = min(s for s in sizes if s > L)
    w = (1.0 / lo - 1.0 / L) / (1.0 / lo - 1.0 / hi)
    return round(GERDES_LAMBDA[lo] + w * (GERDES_LAMBDA[hi] - GERDES_LAMBDA[lo]), 3)


def gerdes_action(phi, m2: float = GERDES_M2, lam: float | None = None):
    """S_G(ϕ) = Σ_x [Σ_μ (ϕ_{x+μ} − ϕ_x)² + m² ϕ² + λ ϕ⁴] for fields of shape (..., L, L) (periodic)."""
    phi = jnp.asarray(phi)
    axes = (-2, -1)
    kinetic = sum((jnp.roll(phi, 1, axis=ax) - phi) ** 2 for ax in axes)
    return jnp.sum(kinetic + m2 * phi**2 + lam * phi**4, axis=axes)


def qrg_theory(L: int, m2_gerdes: float = GERDES_M2, lam_gerdes: float | None = None) -> qrg.Phi4:
    """The qrg Phi4 whose S_E(√2 ϕ) equals Gerdes et al.'s S_G(ϕ): m² = m_G², λ = 6 λ_G."""
    lam_gerdes = gerdes_lambda(L) if lam_gerdes is None else float(lam_gerdes)
    return qrg.Phi4(qrg.Lattice(2, int(L)), float(m2_gerdes), 6.0 * lam_gerdes)


def log_jacobian(L: int) -> float:
    """log p_G(ϕ) − log p_E(√2 ϕ) = (L²/2) log 2 (the constant of the field rescaling)."""
    return 0.5 * L * L * math.log(2.0)


def timeslice_xi(samples) -> float:
    """Gerdes et al.'s correlation-length estimator: 1/mean_t arccosh((G(t+1) + G(t−1))/(2G(t)))
    of the zero-momentum time-slice correlator of the connected two-point function (NaNs skipped)."""
    phi = np.asarray(samples).reshape((-1,) + np.shape(samples)[-2:])
    L = phi.shape[-1]
    pk = np.abs(np.fft.fft2(phi)) ** 2
    g = np.real(np.fft.ifft2(pk.mean(axis=0))) / L**2  # mean_y <φ(y) φ(y + x)>
    mean_field = phi.mean(axis=0)
    g = g - mean_field * mean_field.mean()
    gs = g.mean(axis=0)
    arg = (np.roll(gs, 1) + np.roll(gs, -1)) / (2.0 * gs)
    with np.errstate(invalid="ignore"):
        mp = np.arccosh(arg[1:])
    return float(1.0 / np.nanmean(mp))


def abs_magnetisation(phi) -> np.ndarray:
    """|M| per configuration in Gerdes et al.'s field normalisation: |Σ_x ϕ_x|/L² with ϕ = φ/√2."""
    phi = np.asarray(phi)
    return np.abs(phi.mean(axis=(-2, -1))) / FIELD_SCALE


def weight_diagnostics(phi, log_w, nuts_abs_m) -> dict:
    """Where the importance weights w = p/q concentrate: the share of Σw carried by the top 1% of
    samples, their |M| against all flow samples, the correlation of log w with |M|, and the upper
    |M| quantiles of the flow against NUTS (a mode-seeking flow under-covers the tails)."""
    lw = np.asarray(log_w, dtype=float)
    w = np.exp(lw - lw.max())
    m = abs_magnetisation(phi)
    order = np.argsort(w)[::-1]
    top = order[: max(1, len(w) // 100)]
    q = (0.5, 0.9, 0.99)
    return {
        "top1pct_weight_share": float(w[top].sum() / w.sum()),
        "top1pct_mean_abs_M": float(m[top].mean()), "mean_abs_M": float(m.mean()),
        "corr_logw_abs_M": float(np.corrcoef(lw, m)[0, 1]) if np.std(lw) > 0 else float("nan"),
        "flow_abs_M_quantiles": dict(zip(map(str, q), np.quantile(m, q).tolist())),
        "nuts_abs_M_quantiles": dict(zip(map(str, q), np.quantile(np.ravel(nuts_abs_m), q).tolist())),
    }


# ---------------------------------------------------------------------------- flow
def initial_variance(theory, nuts_samples, init: str, obs) -> np.ndarray:
    lat = theory.lattice
    if init == "nuts":
        phi = np.asarray(nuts_samples).reshape((-1,) + lat.shape)
        return np.mean(np.abs(np.fft.fftn(phi, axes=lat.axes)) ** 2, axis=0) / lat.n_sites
    if init == "free":
        z, mr = obs["Z"].mean, obs["m_R"].mean
        return z / (lat.volume_element * (lat.phat2 + mr**2))
    raise QRGInputError(f"init must be 'nuts' or 'free' (got {init!r})")


def build_flow(theory, variance0, args, *, solver: str, n_steps, rtol=1e-5, atol=1e-5) -> ProbabilityFlow:
    kw = {}
    if "integrator" in inspect.signature(make_flow).parameters:
        kw["integrator"] = args.integrator
    elif args.integrator != "plain":
        raise QRGInputError(f"--integrator {args.integrator!r}: this qrg version only has the plain integrator")
    return make_flow(theory, scheme="carosso", M=args.M, model="default", T=args.T, n_steps=n_steps,
                     solver=solver, rtol=rtol, atol=atol, max_steps=args.max_steps, variance0=variance0,
                     n_sin=args.n_sin, width=args.width, depth=args.depth, **kw)


def draw(flow, params, key, theory, n: int, batch: int):
    """n fresh samples with exact log q (up to solver tolerance) and log w = −S_E − log q."""
    phis, lws = [], []
    for i in range(-(-n // batch)):
        phi, log_q = flow.sample_log_prob(params, jax.random.fold_in(key, i), batch)
        phis.append(np.asarray(phi))
        lws.append(np.asarray(-theory.euclidean_action(phi) - log_q))
    return np.concatenate(phis)[:n], np.concatenate(lws)[:n]


def reverse_kl(flow, params, key, theory, batch):
    phi, log_q = flow.sample_log_prob(params, key, batch)
    log_w = -theory.euclidean_action(phi) - log_q
    return jnp.mean(-log_w), ess_fraction(jax.lax.stop_gradient(log_w))


class ReverseKL:
    """The training objective in the form of :mod:`qrg.optim.loop` (hashable: one compile per run)."""

    def __init__(self, flow, theory, batch):
        self.flow, self.theory, self.batch = flow, theory, batch

    def __call__(self, params, key, inputs):
        return reverse_kl(self.flow, params, key, self.theory, self.batch)

    def metrics(self, loss, ess) -> dict:
        return {"loss": float(loss), "batch_ess": float(ess)}


def evaluate(flow, check_flow, params, key, theory, args, step, train_s) -> dict:
    """ESS per sample of fresh draws, and |Δ log q| of the training solver against the tight solve."""
    t0 = time.perf_counter()
    _, lw = draw(flow, params, jax.random.fold_in(key, 10_000_000 + step), theory, args.eval_samples,
                 args.sample_batch)
    k_chk = jax.random.fold_in(key, 20_000_000 + step)
    _, lq_train = flow.sample_log_prob(params, k_chk, args.check_samples)
    _, lq_exact = check_flow.sample_log_prob(params, k_chk, args.check_samples)
    dlq = float(np.max(np.abs(np.asarray(lq_train) - np.asarray(lq_exact))))
    return {"step": step, "train_min": train_s / 60.0, "ess": ess_per_sample(lw), "log_w_std": float(np.std(lw)),
            "max_abs_dlogq_train_solver": dlq, "eval_s": time.perf_counter() - t0}


def save_params(path, params) -> None:
    """Parameters as arrays + JSON (qrg.optim.checkpoint: no pickle, hashed)."""
    save_checkpoint(path, {"params": params}, {"step": 0})


def train_for(flow, params, key, theory, args, log, check_flow):
    """Adam (qrg's default: b1 0.8, b2 0.9, lr decaying 0.1× per 8000 steps) on the reverse KL for
    ``args.train_minutes`` of training wall time, with periodic ESS evaluations (the shared training
    loop of qrg.optim: a non-finite step is rolled back with the learning rate halved)."""
    opt = paper_adam(learning_rate=args.lr)
    state = LoopState.create(params, opt)
    ckpt = pathlib.Path(args.out).with_suffix(".params")
    evals, next_eval = [], [0.0]

    def maybe_evaluate(train_s):
        if train_s >= next_eval[0]:
            evals.append(evaluate(flow, check_flow, state.params, key, theory, args, state.step, train_s))
            e = evals[-1]
            log(f"[eval] step {e['step']} train {train_s / 60:.1f} min: ESS/n = {e['ess']:.4f} "
                f"(n={args.eval_samples}), std log w = {e['log_w_std']:.3f}, "
                f"max|Δ log q| train vs tight solve = {e['max_abs_dlogq_train_solver']:.2e}")
            save_params(ckpt, state.params)
            next_eval[0] += 60.0 * args.eval_every

    def on_step(record):
        if record["step"] % args.log_every == 0:
            log(f"step {record['step']} t {record['time']:.0f}s loss {record['loss']:.4f} "
                f"batch ESS {record['batch_ess']:.3f}")
        maybe_evaluate(record["time"])

    budget = 60.0 * args.train_minutes
    maybe_evaluate(0.0)
    loop = Loop(objective=ReverseKL(flow, theory, args.batch), tx=opt, callback=on_step,
                stop=lambda s: s.train_time >= budget)
    run(loop, state, 2**62, key)
    save_params(ckpt, state.params)
    history = {name: [r[name] for r in state.history if r["step"] % args.log_every == 0]
               for name in ("step", "loss", "batch_ess")}
    history["train_s"] = [r["time"] for r in state.history if r["step"] % args.log_every == 0]
    return state.params, {"steps": state.step, "train_s": state.train_time, "nonfinite_steps": len(state.events),
                          "history": history, "evals": evals, "params_file": str(ckpt)}


# ---------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--L", type=int, default=16)
    p.add_argument("--lam", type=float, default=None, help="λ_G (Gerdes convention); default: gerdes_lambda(L)")
    p.add_argument("--m2", type=float, default=GERDES_M2, help="m_G² (Gerdes convention)")
    p.add_argument("--train-minutes", type=float, default=60.0)
    p.add_argument("--out", default="runs/gerdes/result.json")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--train-solver", choices=("tsit5", "rk4"), default="tsit5",
                   help="ODE solver during training: adaptive Tsit5 (--train-rtol) or fixed-step RK4 (--train-steps)")
    p.add_argument("--train-rtol", type=float, default=1e-5, help="rtol = atol of the adaptive training solve")
    p.add_argument("--train-steps", type=int, default=16, help="fixed RK4 steps over [0, T] (--train-solver rk4)")
    p.add_argument("--check-samples", type=int, default=32,
                   help="samples per evaluation on which the training solver's log q is compared with the tight "
                        "adaptive solve (detects a flow that exploits discretisation error)")
    p.add_argument("--integrator", default="plain",
                   help="ProbabilityFlow integrator ('plain': solve for φ directly, as in the measured runs)")
    p.add_argument("--M", type=float, default=1.0, help="Carosso-M scheme mass")
    p.add_argument("--T", type=float, default=1.0)
    p.add_argument("--n-sin", type=int, default=4)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--init", choices=("nuts", "free"), default="nuts")
    p.add_argument("--init-params", default=None,
                   help="continue training from the parameter directory written by an earlier run (<out>.params)")
    p.add_argument("--max-steps", type=int, default=4096)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--eval-every", type=float, default=5.0, help="minutes of training between ESS evaluations")
    p.add_argument("--eval-samples", type=int, default=512)
    p.add_argument("--sample-batch", type=int, default=256)
    p.add_argument("--n-eval", type=int, default=4096, help="fresh samples of the final measurement")
    p.add_argument("--eval-rtol", type=float, default=1e-7, help="adaptive Tsit5 rtol = atol of the final measurement")
    p.add_argument("--imh-chains", type=int, default=4)
    p.add_argument("--nuts-chains", type=int, default=4)
    p.add_argument("--nuts-samples", type=int, default=10000)
    p.add_argument("--nuts-warmup", type=int, default=1000)
    return p.parse_args(argv)


def nuts_reference(theory, args, key, log):
    """Stage 1: NUTS draws; returns (samples, observables, |M| per draw, report entry)."""
    nuts = sample_nuts(theory, key, n_samples=args.nuts_samples, n_chains=args.nuts_chains,
                       n_warmup=args.nuts_warmup)
    obs = measure(nuts.samples, theory.lattice)
    m_abs = abs_magnetisation(nuts.samples)  # (chains, samples)
    m_stats = statistics(m_abs)
    tau_nuts = integrated_autocorrelation_time(m_abs)
    grads_per_draw = float(np.mean(nuts.n_integration_steps))
    entry = {
        "n_chains": nuts.n_chains, "n_samples": nuts.n_samples, "warmup": args.nuts_warmup,
        "acceptance": nuts.mean_acceptance, "divergences": nuts.n_divergences,
        "grad_evals_per_draw": grads_per_draw, "wall_time_s": nuts.wall_time_s, "warmup_time_s": nuts.warmup_time_s,
        "xi_second_moment": obs["xi"].to_dict(), "xi_timeslice": timeslice_xi(nuts.samples),
        "abs_M": m_stats.to_dict(), "tau_int_abs_M": tau_nuts,
        "phi2_gerdes": {"mean": obs["phi2"].mean / 2, "err": obs["phi2"].err / 2},
        "time_per_independent_abs_M_s": nuts.wall_time_s / (nuts.n_chains * nuts.n_samples) * 2 * tau_nuts,
    }
    log(f"NUTS: acc {nuts.mean_acceptance:.3f}, {grads_per_draw:.1f} grads/draw, ξ_2nd = {obs['xi']}, "
        f"ξ_timeslice = {entry['xi_timeslice']:.3f}, <|M|> = {m_stats}, τ_int(|M|) = {tau_nuts:.2f}, "
        f"{nuts.wall_time_s:.1f} s for {nuts.n_chains * nuts.n_samples} draws")
    return nuts.samples, obs, m_abs, entry


def training_stage(theory, nuts_samples, obs, args, k_init, k_train, log):
    """Stage 2: build the training and the tight evaluation flow, train; returns (flows, params, entry)."""
    variance0 = initial_variance(theory, nuts_samples, args.init, obs)
    if args.train_solver == "rk4":
        train_flow = build_flow(theory, variance0, args, solver="rk4", n_steps=args.train_steps)
    else:
        train_flow = build_flow(theory, variance0, args, solver="tsit5", n_steps=None, rtol=args.train_rtol,
                                atol=args.train_rtol)
    eval_flow = build_flow(theory, variance0, args, solver="tsit5", n_steps=None, rtol=args.eval_rtol,
                           atol=args.eval_rtol)
    params = train_flow.init(k_init)
    if args.init_params:
        params = load_checkpoint(args.init_params, {"params": params})[0]["params"]  # checks the structure
        log(f"continuing from {args.init_params}")
    n_params = int(sum(np.size(x) for x in jax.tree_util.tree_leaves(params)))
    log(f"flow: {train_flow!r}, {n_params} parameters; init C_0 from {args.init}")
    params, train_info = train_for(train_flow, params, k_train, theory, args, log, eval_flow)
    return (train_flow, eval_flow), params, {**train_info, "n_params": n_params, "load_after": os.getloadavg()}


def final_measurement(flows, params, theory, args, k_eval, k_mh, nuts_abs_m, log):
    """Stage 3: ESS of fresh samples at tight tolerance and IMH over them; returns the report entry."""
    train_flow, eval_flow = flows
    t0 = time.perf_counter()
    phi, log_w = draw(eval_flow, params, k_eval, theory, args.n_eval, args.sample_batch)
    t_draw = time.perf_counter() - t0
    ess = ess_per_sample(log_w)
    _, log_w_rk4 = draw(train_flow, params, k_eval, theory, min(args.n_eval, 1024), args.sample_batch)
    n_chain = args.n_eval // args.imh_chains
    props = phi[: n_chain * args.imh_chains].reshape((args.imh_chains, n_chain) + theory.lattice.shape)
    lw = log_w[: n_chain * args.imh_chains].reshape(args.imh_chains, n_chain)
    log_p = -np.asarray(theory.euclidean_action(props))  # IMH sees only log p − log q = log w
    xs, acc = independence_metropolis(k_mh, jnp.asarray(props), jnp.asarray(log_p), jnp.asarray(log_p - lw))
    xs, acc = np.asarray(xs), np.asarray(acc)
    m_imh = abs_magnetisation(xs)
    tau_imh = integrated_autocorrelation_time(m_imh)
    imh_obs = measure(xs, theory.lattice)
    entry = {
        "n_samples": int(args.n_eval), "ess_per_sample": ess, "log_w_std": float(np.std(log_w)),
        "ess_per_sample_train_solver_first1024": ess_per_sample(log_w_rk4),
        "sample_time_s": t_draw, "sample_time_per_config_s": t_draw / args.n_eval,
        "imh_acceptance": float(np.mean(acc[:, 1:])), "imh_tau_int_abs_M": tau_imh,
        "imh_abs_M": statistics(m_imh).to_dict(), "imh_xi_second_moment": imh_obs["xi"].to_dict(),
        "imh_phi2_gerdes": {"mean": imh_obs["phi2"].mean / 2, "err": imh_obs["phi2"].err / 2},
        "time_per_independent_abs_M_s": t_draw / args.n_eval * 2 * tau_imh,
        "weight_diagnostics": weight_diagnostics(phi, log_w, nuts_abs_m),
    }
    log(f"weights: {entry['weight_diagnostics']}")
    log(f"final: ESS/n = {ess:.4f} over {args.n_eval} fresh samples (training solver: "
        f"{entry['ess_per_sample_train_solver_first1024']:.4f} on 1024), IMH acceptance "
        f"{entry['imh_acceptance']:.3f}, τ_int(|M|) IMH {tau_imh:.2f} vs NUTS "
        f"{integrated_autocorrelation_time(nuts_abs_m):.2f}; <|M|> IMH {statistics(m_imh)} vs NUTS "
        f"{statistics(nuts_abs_m)}")
    return entry


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    t_start = time.perf_counter()

    def log(msg):
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    lam_g = gerdes_lambda(args.L) if args.lam is None else args.lam
    theory = qrg_theory(args.L, args.m2, lam_g)
    k_nuts, k_init, k_train, k_eval, k_mh = jax.random.split(jax.random.PRNGKey(args.seed), 5)
    result = {"point": {"L": args.L, "m2_gerdes": args.m2, "lambda_gerdes": lam_g, "m2_qrg": theory.m2,
                        "lam_qrg": theory.lam, "field_scale": FIELD_SCALE, "log_jacobian": log_jacobian(args.L)},
              "args": vars(args),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_start": os.getloadavg()}}
    log(f"Gerdes point L={args.L}: m_G²={args.m2}, λ_G={lam_g}  ->  qrg Phi4(m2={theory.m2}, lam={theory.lam})")

    nuts_samples, obs, m_abs, result["nuts"] = nuts_reference(theory, args, k_nuts, log)
    flows, params, result["train"] = training_stage(theory, nuts_samples, obs, args, k_init, k_train, log)
    result["flow"] = final_measurement(flows, params, theory, args, k_eval, k_mh, m_abs, log)

    result["total_wall_s"] = time.perf_counter() - t_start
    result["machine"]["load_end"] = os.getloadavg()
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2, default=float)
    log(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
