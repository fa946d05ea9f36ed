"""Infinite-chain DMRG (TeNPy iDMRG) of the φ⁴ chain, and its critical point from the order parameter.

The Hamiltonian is the chain of :mod:`qrg.baselines.dmrg` (design §2, ``M = a``) on infinitely many sites,

    H = Σ_n h_n − (1/a) Σ_n φ_n φ_{n+1},   h_n = π_n²/(2a) + a [ ½ (m² + 2/a²) φ_n² + (λ/24) φ_n⁴ ],

as a uniform MPS with a two-site unit cell and bond dimension χ, in a truncated local basis of
``local_dim`` states (:func:`qrg.baselines.local_basis.local_basis`, the lattice-Hartree basis of a
``BASIS_N``-site chain at ``basis_m2``, default m² itself). The φ → −φ parity is *not* conserved: in the
broken phase the infinite MPS picks one of the two vacua (the cat state costs entanglement), started from
a product state tilted to φ > 0, so ``⟨φ⟩`` is the order parameter.

The critical point from the order parameter: ⟨φ⟩ ∝ t^β (t = m²_c − m², β = 1/8 of the 2D Ising class) on
the broken side, with analytic corrections; away from the transition ⟨φ⟩ converges fast in χ (it is a
local quantity; the correlation length converges slowly), so a few points at moderate χ, checked against
the next smaller χ, pin m²_c without the finite-size shift that limits the Binder crossings of finite
chains (docs/scan.md). At finite χ the MPS favours order (the cat state and the critical state cost
entanglement), so ⟨φ⟩ at too small a χ is too large; the χ ramp at every point measures that.
Milsted, Haegeman and Osborne (2013) used uniform MPS on the same theory.

:func:`infinite_chain_state` solves one point, :func:`order_parameter_critical_point` fits m²_c,
:func:`critical_point` runs a grid of m² and fits it, and :func:`continuum_from_idmrg` turns critical points
at several λ into the continuum coupling f_c with :mod:`qrg.continuum` (``qrg critical``).
"""

from __future__ import annotations

import logging
import time
import warnings

import numpy as np

from .._validation import QRGInputError, check_int, check_real
from .dmrg import limit_blas_threads
from .local_basis import local_basis

BASIS_N = 256  # chain length whose lattice-Hartree state sets the local basis (≈ the infinite chain)


def _check(lam, m2, a, chi, local_dim):
    lam = check_real("lam (quartic coupling λ)", lam)
    if lam <= 0:
        raise QRGInputError(f"lam (quartic coupling λ) must be > 0 for the infinite chain's transition (got {lam})")
    m2 = check_real("m2 (bare mass squared)", m2)
    a = check_real("a (lattice spacing)", a, positive=True)
    chi = check_int("chi (bond dimension)", chi, minimum=2)
    local_dim = check_int("local_dim (states per site)", local_dim, minimum=2)
    return lam, m2, a, chi, local_dim


def infinite_chain_model(lam: float, m2: float, *, a: float = 1.0, local_dim: int = 10, basis: str = "hartree",
                         basis_m2: float | None = None):
    """(TeNPy model of the infinite chain with a two-site unit cell, the local basis used)."""
    from tenpy.linalg import np_conserved as npc
    from tenpy.models.lattice import Chain
    from tenpy.models.model import CouplingModel, MPOModel
    from tenpy.networks.site import Site

    from ..theory import Phi4

    lb = local_basis(Phi4.chain(BASIS_N, m2 if basis_m2 is None else basis_m2, lam, a), local_dim, basis=basis)
    # the on-site Hamiltonian is this m²'s even in the basis of another: h_site differs by ½ M Δm² φ² (M = a)
    h = lb.h_site if basis_m2 is None else lb.h_site + 0.5 * float(a) * (m2 - basis_m2) * lb.phi2
    site = Site(npc.LegCharge.from_trivial(local_dim), [str(i) for i in range(local_dim)],
                phi=lb.phi, phi2=lb.phi2, hsite=h)
    lat = Chain(2, site, bc="periodic", bc_MPS="infinite")

    class _InfinitePhi4Chain(CouplingModel, MPOModel):
        def __init__(self):
            CouplingModel.__init__(self, lat)
            self.add_onsite(1.0, 0, "hsite")
            self.add_coupling(-1.0 / a, 0, "phi", 0, "phi", 1)
            MPOModel.__init__(self, lat, self.calc_H_MPO())

    return _InfinitePhi4Chain(), lb


PHI_TOL = 1e-4  # default ⟨φ⟩ stability of the convergence test: δm²_c ≈ 8 t δφ/φ, ≲ 3e-6 for t ≤ 0.002
PHI_WINDOW = 5  # checks (of 10 sweeps) over which ⟨φ⟩'s spread is measured


def _phi_checked_engine(base):
    """``base`` (a TeNPy DMRG engine class) whose convergence test also accepts a stable order parameter:
    the energy test and the spread of ⟨φ⟩ over the last :data:`PHI_WINDOW` checks below ``phi_tol``."""

    class _Engine(base):
        def __init__(self, psi, model, options, phi_tol: float = PHI_TOL):
            self.phi_tol, self.phi_spread, self._phis = phi_tol, float("inf"), []
            super().__init__(psi, model, options)

        def is_converged(self):  # TeNPy asks once per check (every N_sweeps_check sweeps)
            self._phis.append(float(np.mean(self.psi.expectation_value("phi"))))
            last = self._phis[-PHI_WINDOW:]
            self.phi_spread = max(last) - min(last) if len(last) == PHI_WINDOW else float("inf")
            if super().is_converged():
                return True
            e_tol = self.options.get("max_E_err", 1.0e-8, "real")
            s = self.sweep_stats
            return abs(s["Delta_E"][-1] / max(s["E"][-1], 1.0)) < e_tol and self.phi_spread < self.phi_tol

    return _Engine


def infinite_chain_state(lam: float, m2: float, *, a: float = 1.0, chi: int = 32, local_dim: int = 10,
                         basis: str = "hartree", basis_m2: float | None = None, init=None,
                         e_tol: float = 1e-11, s_tol: float = 1e-7, phi_tol: float = PHI_TOL,
                         max_sweeps: int = 1000, min_sweeps: int = 10):
    """Ground state of the infinite chain at bond dimension χ by iDMRG. Returns ``(record, psi)``.

    ``init``: None (a product state tilted to φ > 0, so the broken phase picks that vacuum) or an
    infinite MPS to continue from (it is copied): a smaller χ at this m², or a neighbouring m² run with
    the same ``basis_m2`` (the local basis depends on it: a state of another basis is only a start).
    ``record``: ``energy_per_site`` (the iDMRG energy per site), ``phi`` (⟨φ⟩, unit-cell average),
    ``phi2`` (⟨φ²⟩), ``xi`` (correlation length in lattice sites, from the transfer matrix), ``entropy``
    (half-chain entanglement entropy), ``sweeps``, ``converged``, ``phi_spread``, ``max_trunc_err``,
    ``wall_time_s``, and the settings.

    Convergence (checked every 10 sweeps, TeNPy's iDMRG check interval): the energy change per sweep below
    ``e_tol`` and either the entropy change per sweep below ``s_tol`` or ⟨φ⟩ stable: its spread
    ``phi_spread`` (max − min) over the last :data:`PHI_WINDOW` checks below ``phi_tol``. Near the transition
    the iDMRG fixed point at finite χ is noisy: ⟨φ⟩ and S fluctuate around it (λ = 0.25, m² = −0.094102,
    χ = 48: ⟨φ⟩ within ±7e-6 over 200 sweeps while ΔS per sweep changes sign at ±6e-7), so the entropy
    test alone never passes there although the order parameter, which is what the critical-point fit
    uses, is fixed far below its effect on m²_c (δm²_c ≈ 8 t δφ/φ). A state that never settles within
    ``max_sweeps`` (χ = 32 at that point: ⟨φ⟩ wanders by 2e-3) stays ``converged`` false.
    """
    lam, m2, a, chi, local_dim = _check(lam, m2, a, chi, local_dim)
    logging.getLogger("tenpy").setLevel(logging.ERROR)
    from tenpy.algorithms import dmrg
    from tenpy.networks.mps import MPS

    t0 = time.perf_counter()
    model, lb = infinite_chain_model(lam, m2, a=a, local_dim=local_dim, basis=basis, basis_m2=basis_m2)
    if init is None:
        v = np.zeros(local_dim)
        v[0], v[1] = 1.0, 0.3  # even ground state + a little of the odd first state: ⟨φ⟩ > 0
        v /= np.linalg.norm(v)
        psi = MPS.from_product_state(model.lat.mps_sites(), [v, v], bc="infinite")
    else:
        psi = init.copy()
    options = {"mixer": True, "trunc_params": {"chi_max": chi, "svd_min": 1e-13},
               "max_E_err": e_tol, "max_S_err": s_tol, "min_sweeps": min_sweeps, "max_sweeps": max_sweeps}
    with warnings.catch_warnings(), limit_blas_threads(1):
        warnings.simplefilter("ignore")
        eng = _phi_checked_engine(dmrg.TwoSiteDMRGEngine)(psi, model, options, phi_tol=phi_tol)
        energy, psi = eng.run()
        stats = eng.sweep_stats
        phi = float(np.mean(psi.expectation_value("phi")))
        phi2 = float(np.mean(psi.expectation_value("phi2")))
        xi = float(psi.correlation_length())
        entropy = float(np.mean(psi.entanglement_entropy()))
    sweeps = int(stats["sweep"][-1])
    d_e = float(abs(stats["Delta_E"][-1])) if len(stats["Delta_E"]) else float("nan")
    d_s = float(abs(stats["Delta_S"][-1])) if len(stats["Delta_S"]) else float("nan")
    record = {
        "lam": lam, "m2": m2, "a": a, "chi": chi, "local_dim": local_dim, "basis": basis,
        "basis_m2": m2 if basis_m2 is None else float(basis_m2),
        "energy_per_site": float(energy), "phi": phi, "phi2": phi2, "xi": xi, "entropy": entropy,
        "sweeps": sweeps, "delta_E": d_e, "delta_S": d_s,
        "converged": bool(sweeps < max_sweeps or (d_e < e_tol and (d_s < s_tol or eng.phi_spread < phi_tol))),
        "phi_spread": float(eng.phi_spread) if np.isfinite(eng.phi_spread) else None,  # None: < PHI_WINDOW checks
        "max_trunc_err": float(stats["max_trunc_err"][-1]), "max_chi_reached": int(np.max(psi.chi)),
        "wall_time_s": time.perf_counter() - t0,
    }
    return record, psi


BETA = 0.125  # the order-parameter exponent of the 2D Ising class (the 1+1D φ⁴ transition)
MIN_POINTS = 5  # broken points the fit needs: the two-correction variant has 4 parameters


def _profile_fit(m2, phi, n_corr: int, beta: float, upper: float | None) -> float | None:
    """m²_c minimising the residual of log φ = c₀ + β log t + c₁ t + … + c_K t^K (t = m²_c − m²,
    K = n_corr) over m²_c above the data (and below ``upper``, a symmetric point); for fixed m²_c the model
    is linear in the c's, so m²_c is found by a bounded scalar search of the profiled residual. None when
    there are not more points than parameters."""
    from scipy.optimize import minimize_scalar

    m2, y = np.asarray(m2, dtype=float), np.log(np.asarray(phi, dtype=float))
    if len(m2) < n_corr + 3:
        return None
    hi, span = float(np.max(m2)), float(np.ptp(m2)) or 1.0
    lo_b, hi_b = hi + 1e-9 * span, hi + 2.0 * span if upper is None else min(upper, hi + 2.0 * span)

    def residual(m2c):
        t = m2c - m2
        V = np.stack([np.ones_like(t)] + [t**k for k in range(1, n_corr + 1)], axis=1)
        rhs = y - beta * np.log(t)
        coef, *_ = np.linalg.lstsq(V, rhs, rcond=None)
        return float(np.sum((rhs - V @ coef) ** 2))

    grid = lo_b + (hi_b - lo_b) * np.linspace(0.0, 1.0, 201) ** 2  # dense near the data
    k = int(np.argmin([residual(g) for g in grid]))
    a, b = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    if b <= a:
        return float(grid[k])
    res = minimize_scalar(residual, bounds=(a, b), method="bounded", options={"xatol": 1e-10 * span})
    return float(res.x)


def order_parameter_critical_point(points, *, beta: float = BETA, min_phi: float = 0.05) -> dict:
    """m²_c of the infinite chain from ⟨φ⟩ on the broken side.

    Model: log ⟨φ⟩ = c₀ + β log t + c₁ t (+ c₂ t²), t = m²_c − m². ``points``: records of
    :func:`infinite_chain_state` (one λ; several χ per m² allowed). At each m² the largest χ is used and
    ``phi_chi_shift`` is its change from the next smaller χ. Points with |⟨φ⟩| < ``min_phi`` (symmetric;
    with β = 1/8 a genuine broken point has ⟨φ⟩ = 0.05 only at t ~ 1e-10) are left out of the fit; they
    bound m²_c from above. β = 1/8 is exact for the 2D Ising class and not fitted; the analytic
    corrections to scaling multiply the power law. The estimate is the one-correction fit of all broken
    points; its error is the quadrature sum of the changes (separate systematics) under (a) a second
    correction, (b) dropping the farthest point, (c) dropping the nearest point, (d) the next smaller χ's
    ⟨φ⟩ (the bond-dimension error). An m² whose largest-χ record did not converge (``converged`` false:
    near the transition iDMRG can need more than ``max_sweeps``) is left out and listed in
    ``unconverged_m2``. Returns ``{"m2c", "m2c_err", "fits", "m2", "phi", "phi_chi_shift", "chi",
    "symmetric_m2", "unconverged_m2", "n_points"}``.
    """
    by_m2: dict[float, list] = {}
    for r in points:
        by_m2.setdefault(float(r["m2"]), []).append(r)
    rows, unconverged = [], []
    for m2, rs in sorted(by_m2.items()):
        rs = sorted(rs, key=lambda r: r["chi"])
        top = rs[-1]
        if not top.get("converged", True):  # the largest χ's state is not a ground state: leave the m² out
            unconverged.append(m2)
            continue
        prev = rs[-2] if len(rs) > 1 else None
        rows.append((m2, abs(top["phi"]), None if prev is None else abs(prev["phi"]), top["chi"]))
    broken = [r for r in rows if r[1] >= min_phi]
    symmetric = [r[0] for r in rows if r[1] < min_phi]
    if len(broken) < MIN_POINTS:
        left = f"; left out as not converged: m2 = {unconverged}" if unconverged else ""
        raise QRGInputError(f"the order-parameter fit needs at least {MIN_POINTS} converged broken-phase points "
                            f"(|phi| >= {min_phi}; fewer leave its error without the variant fits); got "
                            f"{len(broken)} at m2 = {[r[0] for r in broken]}{left}")
    if symmetric and min(symmetric) < max(r[0] for r in broken):
        raise QRGInputError(f"a symmetric point (m2 = {min(symmetric)}) lies below a broken one "
                            f"(m2 = {max(r[0] for r in broken)}): not one transition; check convergence")
    m2 = np.array([r[0] for r in broken])
    phi = np.array([r[1] for r in broken])
    upper = min(symmetric) if symmetric else None
    main = _profile_fit(m2, phi, 1, beta, upper)
    far, near = m2 > m2.min(), m2 < m2.max()
    fits = {"one_correction": main, "two_corrections": _profile_fit(m2, phi, 2, beta, upper),
            "without_farthest": _profile_fit(m2[far], phi[far], 1, beta, upper),
            "without_nearest": _profile_fit(m2[near], phi[near], 1, beta, upper)}
    if all(r[2] is not None for r in broken):
        fits["smaller_chi"] = _profile_fit(m2, np.array([r[2] for r in broken]), 1, beta, upper)
    shifts = [abs(v - main) for k, v in fits.items() if k != "one_correction" and v is not None]
    return {"m2c": main, "m2c_err": float(np.sqrt(np.sum(np.square(shifts)))) if shifts else None, "fits": fits,
            "m2": m2.tolist(), "phi": phi.tolist(),
            "phi_chi_shift": [None if r[2] is None else r[1] - r[2] for r in broken],
            "chi": [r[3] for r in broken], "symmetric_m2": symmetric, "unconverged_m2": unconverged,
            "n_points": len(broken)}


#: default m² grid of :func:`critical_point`: m²_as + μ²_as × these, with m²_as the continuum asymptote
#: of the critical line and μ²_as its normal-ordered mass (:func:`qrg.continuum.continuum_critical_m2`).
#: All on the broken side: the lattice critical points lie above the asymptote (λ = 2.4, 6: by 0.1 μ²_as),
#: and points near the transition, on either side, cost the most sweeps and χ.
DEFAULT_OFFSETS = (-0.25, -0.5, -1.0, -1.5, -2.5)


def default_m2_grid(lam: float, a: float = 1.0) -> list[float]:
    """m² values on the broken side of the expected critical point (:data:`DEFAULT_OFFSETS`)."""
    from ..continuum import PUBLISHED, continuum_critical_m2

    mu2 = lam / (6.0 * PUBLISHED[0][0])
    m2_as = continuum_critical_m2(lam, a=a)
    return [round(m2_as + mu2 * o, 6) for o in DEFAULT_OFFSETS]


def critical_point(lam: float, m2_values=None, *, chis=(16, 32, 48), local_dim: int = 8, a: float = 1.0,
                   out=None, resume: bool = False, fit_only: bool = False, on_record=None, **options) -> dict:
    """The infinite chain's critical point at coupling λ: iDMRG at every m² of the grid (default
    :func:`default_m2_grid`), each ramped through ``chis`` (warm-started), then
    :func:`order_parameter_critical_point`. With ``out`` (a directory) every record is appended to
    ``out/points.jsonl`` as it is computed (the file is only ever appended to) and the result written to
    ``out/critical.json``; ``resume`` keeps the records already there whose m² has the whole χ ramp (an m²
    whose ramp was cut is redone; the latest record of an (m², χ) counts), and ``fit_only`` computes nothing
    and fits every record there of this λ, a and ``local_dim`` (any χ: the largest per m² is used).
    Returns ``{"lam", "a", "chis", "local_dim", "points", "fit", "reason", "wall_time_s"}`` (``fit`` None
    with a ``reason`` if too few broken-phase points)."""
    import json
    import pathlib

    from .._validation import check_writable_dir

    lam, _, a, _, local_dim = _check(lam, 0.0, a, 2, local_dim)
    chis = [check_int("chi (bond dimension)", c, minimum=2) for c in np.atleast_1d(chis)]
    if sorted(chis) != chis or len(set(chis)) != len(chis):
        raise QRGInputError(f"chis must be strictly increasing (got {chis})")
    grid = default_m2_grid(lam, a) if m2_values is None else [check_real("m2", v) for v in np.atleast_1d(m2_values)]
    if not grid:
        raise QRGInputError("m2_values is empty")
    t0 = time.perf_counter()
    records: list[dict] = []
    path = None
    if out is not None:
        out = pathlib.Path(out)
        check_writable_dir(out, "out")
        path = out / "points.jsonl"
        if path.exists() and not (resume or fit_only):
            raise QRGInputError(f"{str(path)!r} exists: continue with resume (--resume) or choose another out")
        if (resume or fit_only) and path.exists():
            latest = {}
            for line in path.read_text().splitlines():
                if line.strip():
                    r = json.loads(line)
                    if r["lam"] == lam and r["a"] == a and r["local_dim"] == local_dim:
                        latest[(r["m2"], r["chi"])] = r
            keep = list(latest.values())
            if fit_only:
                records = keep
            else:
                done = {m2 for m2 in {r["m2"] for r in keep} if {r["chi"] for r in keep if r["m2"] == m2} >= set(chis)}
                records = [r for r in keep if r["m2"] in done and r["chi"] in chis]
    if fit_only:
        if not records:
            raise QRGInputError(f"fit_only: no records of lam = {lam}, a = {a}, local_dim = {local_dim} in "
                                f"{str(path) if path else 'out (None)'!r}")
        grid = []
        chis = sorted({r["chi"] for r in records})
    done_m2 = {r["m2"] for r in records}
    for m2 in grid:
        if m2 in done_m2:
            continue
        psi = None
        for chi in chis:
            rec, psi = infinite_chain_state(lam, m2, a=a, chi=chi, local_dim=local_dim, init=psi, **options)
            records.append(rec)
            if path is not None:
                with path.open("a") as fh:
                    fh.write(json.dumps(rec) + "\n")
            if on_record is not None:
                on_record(rec)
    result = {"lam": lam, "a": a, "chis": chis, "local_dim": local_dim,
              "points": sorted(records, key=lambda r: (r["m2"], r["chi"])), "fit": None, "reason": None}
    try:
        result["fit"] = order_parameter_critical_point(records)
    except QRGInputError as err:
        result["reason"] = str(err)
    result["wall_time_s"] = time.perf_counter() - t0
    if out is not None:
        (out / "critical.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def as_crossing(result) -> dict:
    """A fitted :func:`critical_point` result (or its ``critical.json``) as a crossing-like dict of
    :func:`qrg.scan.crossings` (``N = ∞``), for :mod:`qrg.continuum` and :func:`qrg.scan.plot_phase_diagram`."""
    fit = result["fit"]
    return {"m2": fit["m2c"], "err": fit["m2c_err"], "lam": result["lam"], "a": result["a"], "d": 1,
            "method": "idmrg", "N": [0, 0], "sizes": "N = ∞ (iDMRG)"}


def continuum_from_idmrg(results, order: int = 1) -> dict:
    """f = λ'/μ² of each infinite-chain critical point (:func:`critical_point` results with a fit) and, with
    order + 1 values of λa² or more, the extrapolation to λa² → 0
    (:func:`qrg.continuum.continuum_from_crossings`)."""
    from ..continuum import continuum_from_crossings

    crossings = [as_crossing(r) for r in results if r.get("fit")]
    if not crossings:
        raise QRGInputError("no critical point to convert: every lam lacked a fit")
    groups = continuum_from_crossings(crossings, order=order)
    return groups[0] if len(groups) == 1 else {"groups": groups}
