"""The continuum critical coupling of 1+1D φ⁴ from lattice critical points.

The lattice chain (design §2) with spacing a, bare mass² m² and coupling λ (the λ/4! φ⁴ convention)
has one dimensionless combination of its couplings besides the mass: λa². Its critical point
m²_c(λ, a) is a function of λa² alone (m²_c a² = F(λa²)), so critical points of the a = 1 chain at
λ = 1, 2.4, 6 are those of one continuum theory at three spacings, a√λ = 1, 1.55, 2.45 in units of
the coupling, and λa² → 0 is the continuum limit.

The continuum theory needs one renormalisation: normal ordering with respect to the free field of
mass μ removes the only divergent diagram (the tadpole), and the renormalised mass is defined by

    μ² = m² + (λ/2) A(μ²),      A(μ²) = ∫_{−π/a}^{π/a} dk/(2π) · 1/(2 sqrt(μ² + p̂²)),   p̂² = (4/a²) sin²(ka/2),

the infinite-volume lattice tadpole (⟨φ²⟩ of the free lattice field of mass μ). This is the mass
renormalisation of Schaich and Loinaz (2009) and Milsted, Haegeman and Osborne (2013), written there
as μ² = μ_0² + 3λ' A(μ²) for the interaction λ'φ⁴/4: with λ/4! = λ'/4, λ' = λ/6 and 3λ' = λ/2. It is
the gap equation of qrg's Hartree state (:mod:`qrg.hartree`) with the lattice sum replaced by the
infinite-volume integral, which in closed form is

    A(μ²) = K(4/(4 + μ²a²)) / (π sqrt(4 + μ²a²))      (K the complete elliptic integral of the first kind,
                                                        parameter m = k²: ``scipy.special.ellipk``).

The dimensionless coupling at the critical point is f = λ'/μ² = λ/(6μ²) in the λ'φ⁴/4 convention of
the published values (Monte Carlo 11.1097(22), Dürr and Kiel 2025; MPS 11.064(20), Milsted et al.
2013; 10.8(1), Schaich and Loinaz 2009; 11.15(6), Bosetti et al.; TRG 10.913(56)), and λ/μ² = 6f in
this package's λ/4! convention. :func:`critical_ratio` converts one lattice critical point (:func:`continuum_critical_m2` is its inverse),
:func:`extrapolate` fits f against λa² and reads off f_c = f(0), and :func:`continuum_from_crossings`
does both for the Binder crossings of :func:`qrg.scan.crossings` (``qrg scan --crossing ... --continuum``),
and :func:`size_extrapolated_crossings` turns crossings of several size pairs into an infinite-size
estimate for an assumed finite-size exponent (``--size-exponent p``).

Lattice critical points from finite lattices (a Binder crossing of N and 2N) carry a finite-size
shift that does *not* vanish as λa² → 0 at fixed N, because the correlation length in lattice units
grows like 1/(μa): the extrapolation of crossings at fixed N measures the continuum limit of a
finite-size estimate. The result says which N entered.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ellipe, ellipk

from ._validation import QRGInputError, check_real
from .hartree import gap_root

#: published continuum critical couplings f_c = λ'/μ² (λ'φ⁴/4 convention): (value, error, source)
PUBLISHED = (
    (11.1097, 0.0022, "Monte Carlo, Dürr and Kiel 2025"),
    (11.064, 0.020, "MPS, Milsted, Haegeman, Osborne 2013"),
    (11.15, 0.06, "Bosetti et al."),
    (10.913, 0.056, "TRG"),
    (10.8, 0.1, "Monte Carlo, Schaich and Loinaz 2009"),
)


def tadpole(mu2: float, a: float = 1.0) -> float:
    """A(μ²): ⟨φ²⟩ of the free lattice field of mass² μ² > 0 on the infinite chain of spacing a (module docstring)."""
    c = float(mu2) * float(a) ** 2
    if not c > 0:
        raise QRGInputError(f"the tadpole needs mu2 > 0 (got {mu2})")
    return float(ellipk(4.0 / (4.0 + c)) / (math.pi * math.sqrt(4.0 + c)))


def tadpole_derivative(mu2: float, a: float = 1.0) -> float:
    """dA/dμ² (< 0), from dK/dm = (E(m) − (1 − m) K(m)) / (2 m (1 − m))."""
    a2 = float(a) ** 2
    c = float(mu2) * a2
    if not c > 0:
        raise QRGInputError(f"the tadpole needs mu2 > 0 (got {mu2})")
    m = 4.0 / (4.0 + c)
    K, E = ellipk(m), ellipe(m)
    dK_dm = (E - (1.0 - m) * K) / (2.0 * m * (1.0 - m))
    dm_dc = -4.0 / (4.0 + c) ** 2
    dA_dc = (dK_dm * dm_dc) / (math.pi * math.sqrt(4.0 + c)) - K / (2.0 * math.pi * (4.0 + c) ** 1.5)
    return float(dA_dc * a2)


def normal_ordered_mass2(m2: float, lam: float, a: float = 1.0) -> float:
    """The renormalised mass² μ² > 0 solving μ² = m² + (λ/2) A(μ²) (module docstring).

    A(μ²) diverges like −log(μ²a²)/(2π) as μ² → 0⁺, so for λ > 0 the root exists and is unique (the
    right-hand side minus μ² is strictly decreasing), whatever the sign of m²."""
    m2 = check_real("m2", m2)
    lam = check_real("lam", lam, nonnegative=True)
    a = check_real("a (lattice spacing)", a, positive=True)
    if lam == 0.0:
        if m2 <= 0:
            raise QRGInputError(f"with lam = 0 the renormalised mass needs m2 > 0 (got {m2})")
        return m2

    return gap_root(m2, lam, lambda mu2: tadpole(mu2, a), start=max(abs(m2), 1.0 / a**2))


def critical_ratio(m2c: float, lam: float, *, a: float = 1.0, err: float | None = None) -> dict:
    """The dimensionless critical coupling of one lattice critical point (m²_c, λ, a).

    Returns ``{"m2c", "m2c_err", "lam", "a", "x", "mu2", "mu2_err", "f", "f_err", "f_lambda4!",
    "f_lambda4!_err"}`` with x = λa² (the squared spacing in units of the coupling), μ² the normal-ordered
    mass² (:func:`normal_ordered_mass2`), ``f`` = λ/(6μ²) in the λ'φ⁴/4 convention of the published values
    and ``f_lambda4!`` = λ/μ² = 6f in this package's λφ⁴/4! convention. ``err`` (the error of m²_c, e.g.
    a Binder crossing's) is propagated with dμ²/dm² = 1/(1 − (λ/2) A'(μ²)); the errors are None
    without it."""
    lam = check_real("lam", lam, positive=True)
    a = check_real("a (lattice spacing)", a, positive=True)
    m2c = check_real("m2c", m2c)
    mu2 = normal_ordered_mass2(m2c, lam, a)
    f = lam / (6.0 * mu2)
    out = {"m2c": m2c, "m2c_err": err, "lam": lam, "a": a, "x": lam * a * a, "mu2": mu2, "mu2_err": None,
           "f": f, "f_err": None, "f_lambda4!": 6.0 * f, "f_lambda4!_err": None}
    if err is not None:
        err = check_real("err", err, nonnegative=True)
        mu2_err = err / (1.0 - 0.5 * lam * tadpole_derivative(mu2, a))
        f_err = f * mu2_err / mu2
        out.update(mu2_err=mu2_err, f_err=f_err, **{"f_lambda4!_err": 6.0 * f_err})
    return out


def continuum_critical_m2(lam: float, *, a: float = 1.0, f: float | None = None) -> float:
    """The bare m² at which a lattice of spacing a and coupling λ would sit at the continuum critical point.

    The inverse of :func:`critical_ratio`: μ² = λ/(6f) and m² = μ² − (λ/2) A(μ²), with f the continuum
    critical coupling in the λ'φ⁴/4 convention (default: the first of :data:`PUBLISHED`, 11.1097). A
    lattice critical point m²_c(λ, a) approaches this line as λa² → 0 (its critical ratio tends to f_c);
    at finite λa² the two differ by the lattice artefact that :func:`extrapolate` removes, so the line is
    the asymptote of the lattice phase boundary, not a prediction of it at λa² ~ 1."""
    lam = check_real("lam", lam, positive=True)
    a = check_real("a (lattice spacing)", a, positive=True)
    f = check_real("f (critical coupling)", PUBLISHED[0][0] if f is None else f, positive=True)
    mu2 = lam / (6.0 * f)
    return float(mu2 - 0.5 * lam * tadpole(mu2, a))


def _least_squares(V: np.ndarray, y: np.ndarray, errs) -> tuple:
    """(coefficients, (VᵀWV)⁻¹, χ², weighted) of y ≈ V c: weighted by 1/err² when every point has an error
    > 0, else unweighted (then χ² is the residual sum of squares and the covariance lacks the scale)."""
    weighted = all(e is not None and e > 0 for e in errs)
    w = 1.0 / np.array(errs, dtype=float) if weighted else np.ones(len(y))
    Vw = V * w[:, None]
    coef, *_ = np.linalg.lstsq(Vw, y * w, rcond=None)
    chi2 = float(np.sum(((y - V @ coef) * w) ** 2))
    return coef, np.linalg.inv(Vw.T @ Vw), chi2, weighted


def extrapolate(points, order: int = 1) -> dict:
    """Fit f = f_c + c_1 x + … + c_order x^order (x = λa²) to critical ratios and return f_c = f(0).

    ``points``: dicts with ``x``, ``f`` and ``f_err`` (:func:`critical_ratio`). With an error on every
    point the fit is weighted (f_c's error from the fit covariance, χ²/dof reported); without errors it
    is unweighted and f_c's error comes from the scatter about the fit (None when no degree of freedom
    is left). Needs order + 1 points at distinct x at least. Returns ``{"fc", "fc_err", "coef", "order",
    "weighted", "chi2_dof", "dof", "x", "f", "f_err"}``; ``coef`` from the constant term up."""
    order = int(order)
    if order < 0:
        raise QRGInputError(f"order must be >= 0 (got {order})")
    pts = sorted(points, key=lambda p: p["x"])
    x = np.array([p["x"] for p in pts], dtype=float)
    f = np.array([p["f"] for p in pts], dtype=float)
    errs = [p.get("f_err") for p in pts]
    if len(np.unique(x)) < order + 1:
        raise QRGInputError(f"extrapolate: an order-{order} fit needs {order + 1} points at distinct lam*a^2 "
                            f"(got {len(np.unique(x))})")
    coef, cov, chi2, weighted = _least_squares(np.vander(x, order + 1, increasing=True), f, errs)
    dof = len(x) - (order + 1)
    if weighted:
        fc_err = math.sqrt(cov[0, 0])
        chi2_dof = chi2 / dof if dof > 0 else None
    else:
        fc_err = math.sqrt(cov[0, 0] * chi2 / dof) if dof > 0 else None
        chi2_dof = None
    return {"fc": float(coef[0]), "fc_err": fc_err, "coef": [float(c) for c in coef], "order": order,
            "weighted": weighted, "chi2_dof": chi2_dof, "dof": dof, "x": x.tolist(), "f": f.tolist(),
            "f_err": [None if e is None else float(e) for e in errs]}


def size_extrapolated_crossings(crossing_list, p: float) -> list[dict]:
    """The infinite-size critical point at each (method, d, a, λ) from Binder crossings of several size pairs.

    A crossing of sizes (N, N') is taken as m²*(N) = m²_c + c N^−p (N the smaller size; p = 1/ν + ω, 3 for
    the 2D Ising class with ω = 2), fitted by least squares in (1, N^−p) over the crossings of a group
    (exact with two; weighted by the crossings' errors when all have them). p is an input, not measured:
    the result depends on it, and comparing p = 2 and 3 shows by how much. Groups with fewer than two
    crossings are skipped. Returns crossing-like dicts ``{"m2", "err", "lam", "method", "d", "a", "N":
    [the smaller sizes], "p", "sizes": "N → ∞ (p = …)"}`` for :func:`continuum_from_crossings`."""
    p = check_real("p (finite-size exponent)", p, positive=True)
    groups: dict = {}
    for c in crossing_list:
        if c.get("m2") is not None:
            groups.setdefault((c["method"], c.get("d"), c.get("a", 1.0), c["lam"]), []).append(c)
    out = []
    for (method, d, a, lam), cs in groups.items():
        cs = sorted(cs, key=lambda c: min(c["N"]))
        sizes = [float(min(c["N"])) for c in cs]
        if len(set(sizes)) < 2:
            continue
        V = np.stack([np.ones(len(cs)), np.array(sizes) ** -p], axis=1)
        coef, cov, _, weighted = _least_squares(V, np.array([c["m2"] for c in cs], dtype=float),
                                                [c.get("err") for c in cs])
        err = float(math.sqrt(cov[0, 0])) if weighted else None
        out.append({"m2": float(coef[0]), "err": err, "lam": lam, "method": method, "d": d, "a": a,
                    "N": [int(n) for n in sizes], "p": p, "sizes": f"N → ∞ (p = {p:g}; from N = "
                    + ", ".join(str(n) for n in sorted({int(n) for c in cs for n in c["N"]})) + ")"})
    return out


def continuum_from_crossings(crossing_list, order: int = 1) -> list[dict]:
    """:func:`critical_ratio` of every Binder crossing (:func:`qrg.scan.crossings`, or the infinite-size
    estimates of :func:`size_extrapolated_crossings`) and, per method and pair of lattice sizes with
    crossings at order + 1 distinct λa² or more, the extrapolation (:func:`extrapolate`). Crossings
    without an m² (the curves did not cross) are skipped. Returns one dict per (method, sizes):
    ``{"method", "sizes" (e.g. "N = 16, 32"), "N", "d", "points": [critical ratios], "fit": extrapolation
    or None, "reason"}``."""
    groups: dict = {}
    for c in crossing_list:
        if c.get("m2") is None:
            continue
        if (c.get("d") or 1) != 1:
            raise QRGInputError(f"the continuum coupling is defined here for chains (d = 1), got d = {c.get('d')}")
        sizes = c.get("sizes") or f"N = {c['N'][0]}, {c['N'][1]}"
        r = critical_ratio(c["m2"], c["lam"], a=c.get("a", 1.0), err=c.get("err"))
        groups.setdefault((c["method"], sizes), {"N": list(c["N"]), "points": []})["points"].append(r)
    out = []
    for (method, sizes), g in groups.items():
        pts = sorted(g["points"], key=lambda p: p["x"])
        n_x = len({p["x"] for p in pts})
        entry = {"method": method, "sizes": sizes, "N": g["N"], "d": 1, "points": pts, "fit": None, "reason": None}
        if n_x >= order + 1:
            entry["fit"] = extrapolate(pts, order)
        else:
            entry["reason"] = (f"an order-{order} extrapolation needs crossings at {order + 1} values of "
                               f"lam*a^2 (have {n_x})")
        out.append(entry)
    return out


def series_label(method: str, sizes: str) -> str:
    """Legend label of a series of critical points: Binder crossings of ``sizes``, or (``idmrg``) the
    infinite chain, which has no crossing."""
    return f"{method}, " + (sizes if method == "idmrg" else f"Binder crossing {sizes}")


def plot_continuum(results, path) -> None:
    """f = λ'/μ² of each lattice critical point against λa², the fits extrapolated to 0, and the published values."""
    import pathlib

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.8, 4.6))
    xmax = max([p["x"] for r in results for p in r["points"]] + [1.0])
    for k, r in enumerate(results):
        x = np.array([p["x"] for p in r["points"]])
        f = np.array([p["f"] for p in r["points"]])
        e = np.array([0.0 if p["f_err"] is None else p["f_err"] for p in r["points"]])
        line = ax.errorbar(x, f, yerr=e, marker="os^v"[k % 4], ms=4, lw=0, elinewidth=1, capsize=2,
                           label=series_label(r["method"], r["sizes"]))
        fit = r.get("fit")
        if fit:
            xs = np.linspace(0.0, xmax * 1.05, 100)
            ys = np.vander(xs, fit["order"] + 1, increasing=True) @ np.array(fit["coef"])
            err = "" if fit["fc_err"] is None else f" ± {fit['fc_err']:.2g}"
            ax.plot(xs, ys, ls="--", lw=1, color=line[0].get_color(),
                    label=f"order-{fit['order']} fit: f_c = {fit['fc']:.4g}{err}")
    for k, (value, err, source) in enumerate(PUBLISHED[:2]):
        ax.axhspan(value - err, value + err, color="grey", alpha=0.3, lw=0)
        ax.axhline(value, color="grey", lw=0.8, ls=":")
        ax.annotate(f"{value:g} ({source})", (xmax * 1.04, value), fontsize=6, ha="right",
                    va="bottom" if k == 0 else "top")
    ax.set_xlim(0.0, xmax * 1.05)
    ax.set_xlabel("λa² (λφ⁴/4! convention)")
    ax.set_ylabel("f = λ'/μ² at the critical point (λ'φ⁴/4 convention)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
