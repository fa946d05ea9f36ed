"""The RG-flowed ground states against references that no model produced (issue: RG-flowed ground states).

    python benchmarks/rg_flow.py chains [--N 16,32] [--out benchmarks/rg_flow]   # DMRG-derived exact G2_t
    python benchmarks/rg_flow.py sites  [--out benchmarks/rg_flow]                # N = 1, 2: exact p_t on a grid

``chains``: a default ``qrg solve`` of the chain (m² = 1, λ = 6), its RG-consistency diagnostic,
and at every t of the grid (0 and the diagnostic's 8 times) the learned G2_t per momentum shell
against the exact flowed two-point function G2_t(k) = α_t(k)² G2_0(k) + a Σ_t(k) with G2_0 from
DMRG's ⟨φ_0 φ_r⟩ (the kernel is linear, so this is exact for the interacting state). χ² per t uses
the covariance of the per-sample shell powers; t's are independent sample sets, so the χ² add.

``sites``: N = 1 and N = 2 (m² = 1, λ = 24) solved by qrg; the learned density p_θ,t (forward
log-density solve on a grid) against the exact ground-state density of a sinc-DVR grid solver
convolved with the exact kernel, by the Hellinger distance, at t ∈ {0, 0.1, 0.3, 1}.

Writes ``OUT/<part>.json`` and prints a table; the machine is recorded with the numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import platform
import time

import jax
import numpy as np
from scipy import stats as sps

import qrg
from qrg.baselines.dmrg import dmrg_ground_state
from qrg.baselines.grid import grid_ground_state, hellinger
from qrg.groundstate.consistency import DEFAULT_FRACTIONS
from qrg.groundstate.flowed import shell_power

SITE_TIMES = (0.0, 0.1, 0.3, 1.0)


def machine() -> dict:
    return {"machine": platform.machine(), "processor": platform.processor() or None, "cpus": __import__("os").cpu_count(),
            "python": platform.python_version(), "jax": jax.__version__, "date": time.strftime("%Y-%m-%d")}


def dmrg_g2_shells(theory, corr) -> np.ndarray:
    """G2_0 per shell from the translation-averaged correlation C(r): a Σ_r e^{-ikr} C(r), shell-averaged."""
    lat = theory.lattice
    g2 = lat.volume_element * np.real(np.fft.fft(np.asarray(corr, dtype=float)))
    index, n = lat.momentum_shells()
    return np.array([g2[index == s].mean() for s in range(n)])


def compare_chain(N: int, seed: int, n: int, solve_options: dict) -> dict:
    theory = qrg.Phi4.chain(N, 1.0, 6.0)
    t0 = time.time()
    res = qrg.solve(theory, seed=seed, checkpoint_every=0, consistency_batch=n, **solve_options)
    t_solve = time.time() - t0
    ref = dmrg_ground_state(theory, correlations=True, local_dims=(8, 10), chis=(32, 64))
    g2_0 = dmrg_g2_shells(theory, ref["correlation"])
    scheme, lat = res.flow.scheme, theory.lattice
    index, n_shells = lat.momentum_shells()
    alpha2 = np.array([np.asarray(scheme.mean_factor(1.0))[index == s].mean() for s in range(n_shells)])
    rows, chi2_total, dof_total = [], 0.0, 0
    for i, t in enumerate([0.0] + [f * res.flow.T for f in DEFAULT_FRACTIONS]):
        a2 = np.array([np.asarray(scheme.mean_factor(t))[index == s].mean() for s in range(n_shells)]) ** 2
        sig = np.array([np.asarray(scheme.kernel_variance(t))[index == s].mean() for s in range(n_shells)])
        exact = a2 * g2_0 + lat.volume_element * sig
        phi, _, _ = res.sample(jax.random.PRNGKey(1000 + i), n, t)
        power = shell_power(phi, lat)
        diff = power.mean(axis=0) - exact
        cov = np.cov(power, rowvar=False) / n
        chi2 = float(diff @ np.linalg.solve(cov, diff))
        dev = diff / np.sqrt(np.diag(cov))
        chi2_total += chi2
        dof_total += n_shells
        rows.append({"t": t, "chi2": chi2, "dof": n_shells, "max_dev_sigma": float(np.max(np.abs(dev))),
                     "g2_model": power.mean(axis=0).tolist(), "g2_exact": exact.tolist(), "dev_sigma": dev.tolist()})
    del alpha2
    return {"N": N, "m2": 1.0, "lam": 6.0, "seed": seed, "n_samples": n, "solve_options": solve_options,
            "energy": res.energy.mean, "energy_err": res.energy.err, "dmrg_energy": ref["energy"],
            "energy_sigma": (res.energy.mean - ref["energy"]) / math.hypot(res.total_error, ref["error_estimate"]),
            "solve_s": t_solve, "rg_consistency": res.consistency.to_json(),
            "g2_vs_dmrg": {"chi2": chi2_total, "dof": dof_total, "chi2_dof": chi2_total / dof_total,
                           "p_value": float(sps.chi2.sf(chi2_total, dof_total)),
                           "max_dev_sigma": max(r["max_dev_sigma"] for r in rows), "per_t": rows}}


def compare_site(N: int, seed: int, solve_options: dict) -> dict:
    theory = qrg.Phi4.chain(N, 1.0, 24.0)
    t0 = time.time()
    res = qrg.solve(theory, seed=seed, checkpoint_every=0, **solve_options)
    t_solve = time.time() - t0
    grid = grid_ground_state(theory)
    fields = grid.fields()
    rows = []
    for t in SITE_TIMES:
        exact = grid.flowed_density(res.flow.scheme, t)
        log_q = np.concatenate([np.asarray(res.log_prob(fields[i:i + 4096], t)) for i in range(0, len(fields), 4096)])
        learned = np.exp(log_q).reshape(exact.shape)
        rows.append({"t": t, "hellinger": hellinger(exact, learned, grid.cell),
                     "learned_norm_on_grid": float(np.sum(learned) * grid.cell)})
    return {"N": N, "m2": 1.0, "lam": 24.0, "seed": seed, "solve_options": solve_options, "energy": res.energy.mean,
            "energy_err": res.energy.err, "exact_energy": grid.energy, "variance": res.variance, "solve_s": t_solve,
            "rg_consistency": None if res.consistency is None else res.consistency.to_json(), "per_t": rows}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("part", choices=("chains", "sites"))
    p.add_argument("--N", default=None, help="comma-separated sizes (chains: 16,32; sites: 1,2)")
    p.add_argument("--n", type=int, default=4096, help="samples per time (chains)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--options", default="{}", help="JSON dict of extra qrg.solve options")
    p.add_argument("--out", default="benchmarks/rg_flow")
    p.add_argument("--tag", default=None, help="output name OUT/<part>_<tag>.json (default: the options)")
    args = p.parse_args(argv)
    options = json.loads(args.options)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = [int(x) for x in (args.N or ("16,32" if args.part == "chains" else "1,2")).split(",")]
    records = []
    for N in sizes:
        rec = compare_chain(N, args.seed, args.n, options) if args.part == "chains" else compare_site(N, args.seed, options)
        records.append(rec)
        print(json.dumps({k: v for k, v in rec.items() if k not in ("per_t",)}, default=str)[:2000])
    suffix = args.tag if args.tag else (args.options.replace(' ', '') if options else '')
    path = out / f"{args.part}{'_' + suffix if suffix else ''}.json"
    path.write_text(json.dumps({"machine": machine(), "records": records}, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
