"""DMRG (TeNPy) for the periodic φ⁴ chain of design §2, N = 8 … 128, and small tori in d ≥ 2.

Hamiltonian (see :mod:`qrg.baselines.local_basis`), ``M = a^d``::

    H = Σ_n h_n − (M/a²) Σ_{n,i} φ_n φ_{n+e_i},
    h_n = π_n²/(2M) + M [ ½ (m² + 2d/a²) φ_n² + (λ/24) φ_n⁴ ],

with the hopping taken from :func:`qrg.baselines.local_basis.neighbour_couplings`, the same
function exact diagonalisation uses.

Each site carries a truncated local basis (default: the ``local_dim`` lowest eigenstates of
the mean-field on-site Hamiltonian ``h``; peers.md), with the φ → −φ parity conserved as a
Z2 charge so the MPS stays in the even sector of the ground state.

Periodic boundaries with a *finite* MPS on a folded ordering: MPS position ``p`` holds
lattice site ``p/2`` (p even) or ``N − 1 − (p−1)/2`` (p odd), i.e. ``0, N−1, 1, N−2, …``,
so every lattice bond connects MPS sites at distance ≤ 2 and the MPO stays small (the
price is a larger bond dimension than an open chain needs, roughly its square).
On a d-dimensional torus the MPS runs through the sites lexicographically in the folded
order of every axis (:func:`mps_order`): neighbours along the last axis are ≤ 2 apart, along
axis k ≤ 2 N^(d−1−k). A 4×4 torus is within reach of a laptop; the bond dimension needed
grows like exp(boundary) = exp(2 N^(d−1)), so 8×8 is not.

Error estimate: DMRG is variational in both truncations (bond dimension χ, local
dimension L), so the energy decreases monotonically toward the exact value. The run sweeps
through an increasing sequence of χ at the largest L, then repeats the largest χ at the
previous L; ``error_estimate = |E(χ_max, L) − E(χ_prev, L)| + |E(χ_max, L) − E(χ_max, L_prev)|
+ |ΔE_sweep|`` (the last sweep's energy change).

Observables: ``phi2`` = <φ_n²> (site average), the translation-averaged two-point function
``correlation[r] = V^-1 Σ_n <φ_n φ_{n+r}>`` (r = 0 … N−1 on a chain, an N×…×N array of
displacements in d ≥ 2), and ``M2`` = <M²> with ``M = V^-1 Σ_n φ_n`` the lattice mean field
(<M> = 0 by the φ → −φ symmetry, so <M²> and
``rms_M`` = sqrt(<M²>) are the <|M|>-type observables reported), and ``M4`` = <M⁴> (hence the Binder
cumulant ``U4`` = 1 − <M⁴>/(3<M²>²)) as the exact expectation value of the MPO of (Σ_n φ_n)⁴
(:func:`field_sum_power_mpo`, bond dimension 5).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import logging
import os
import time
import warnings

import numpy as np

from .._validation import QRGInputError, check_int
from .base import Baseline, Reference, register_baseline
from .local_basis import local_basis, neighbour_couplings

MIN_N = 3  # chains; tori in d >= 2 need N >= 2


@contextlib.contextmanager
def limit_blas_threads(n: int = 1):
    """Temporarily limit the OpenBLAS thread pools of numpy and scipy to ``n`` threads.

    TeNPy's block-sparse tensors are many small matrices: a threaded BLAS spends its time
    synchronising (measured: 30× slower on a loaded 2-core machine). Best effort: only the
    OpenBLAS builds shipped in the numpy/scipy wheels are touched, and restored afterwards.
    """
    import numpy as _np
    import scipy as _sp

    handles = []
    for pkg in (_np, _sp):
        libdir = os.path.join(os.path.dirname(os.path.dirname(pkg.__file__)), pkg.__name__ + ".libs")
        for path in glob.glob(os.path.join(libdir, "*openblas*.so*")):
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for suffix in ("64_", "_64_", ""):
                setter = getattr(lib, f"scipy_openblas_set_num_threads{suffix}", None)
                getter = getattr(lib, f"scipy_openblas_get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    handles.append((setter, int(getter())))
                    setter(int(n))
                    break
    try:
        yield
    finally:
        for setter, old in handles:
            setter(old)


def folded_order(N: int) -> np.ndarray:
    """Lattice site held by each MPS position: ``0, N−1, 1, N−2, 2, …``."""
    p = np.arange(N)
    return np.where(p % 2 == 0, p // 2, N - 1 - p // 2)


def mps_order(shape) -> np.ndarray:
    """Flat (C-order) lattice site held by each MPS position for a periodic lattice ``shape``.

    Lexicographic over the axes, each axis in :func:`folded_order`; for a chain this is
    :func:`folded_order` itself.
    """
    shape = tuple(int(n) for n in shape)
    grids = np.meshgrid(*[folded_order(n) for n in shape], indexing="ij")
    return np.ravel_multi_index([g.ravel() for g in grids], shape)


def _make_site(lb, conserve_parity: bool):
    import tenpy.linalg.np_conserved as npc
    from tenpy.networks.site import Site

    if conserve_parity:
        chinfo = npc.ChargeInfo([2], ["parity"])
        leg = npc.LegCharge.from_qflat(chinfo, lb.parity_bits)
    else:
        leg = npc.LegCharge.from_trivial(lb.local_dim)
    labels = [str(i) for i in range(lb.local_dim)]
    return Site(leg, labels, sort_charge=True, phi=lb.phi, phi2=lb.phi2, hsite=lb.h_site)


def _make_model(theory, lb, conserve_parity: bool):
    from tenpy.models.lattice import Chain
    from tenpy.models.model import CouplingModel, MPOModel

    V = theory.lattice.n_sites
    site = _make_site(lb, conserve_parity)
    lat = Chain(V, site, bc="open", bc_MPS="finite")  # the MPS is a chain in any dimension
    order = mps_order(theory.lattice.shape)
    pos = np.empty(V, dtype=int)
    pos[order] = np.arange(V)  # MPS position of (flat) lattice site n
    pairs, onsite = neighbour_couplings(theory)
    if np.any(onsite != 0.0):
        raise QRGInputError("DMRG needs a lattice with at least two sites along every axis")

    class _Phi4Lattice(CouplingModel, MPOModel):
        def __init__(self):
            CouplingModel.__init__(self, lat)
            for p in range(V):
                self.add_onsite_term(1.0, p, "hsite")
            for (n, m), coeff in sorted(pairs.items()):
                i, j = sorted((int(pos[n]), int(pos[m])))
                self.add_coupling_term(float(coeff), i, j, "phi", "phi")
            MPOModel.__init__(self, lat, self.calc_H_MPO())

    return _Phi4Lattice(), pos


def _check_sequences(local_dims, chis):
    local_dims = [check_int("local_dim (states per site)", L, minimum=2) for L in np.atleast_1d(local_dims)]
    chis = [check_int("chi (bond dimension)", c, minimum=2) for c in np.atleast_1d(chis)]
    for name, seq in (("local_dims", local_dims), ("chis", chis)):
        if sorted(seq) != list(seq) or len(set(seq)) != len(seq):
            raise QRGInputError(f"{name} must be strictly increasing (got {seq})")
    if len(local_dims) < 2 or len(chis) < 2:
        raise QRGInputError(
            f"need at least two local_dims and two chis to estimate the error (got {local_dims}, {chis})"
        )
    return local_dims, chis


def _translation_average(C: np.ndarray, shape) -> np.ndarray:
    """``C(r) = V^-1 Σ_n C[n, n + r]`` on the periodic lattice ``shape`` (flat indices in C)."""
    V = int(np.prod(shape))
    idx = np.arange(V).reshape(shape)
    out = np.empty(shape)
    for r in np.ndindex(*shape):
        shifted = idx
        for axis, s in enumerate(r):
            shifted = np.roll(shifted, -s, axis=axis)  # shifted[n] = n + r
        out[r] = np.mean(C[idx.ravel(), shifted.ravel()])
    return out


def _run_dmrg(model, psi, chi: int, *, max_sweeps: int, e_tol: float, svd_min: float):
    from tenpy.algorithms import dmrg

    options = {
        "mixer": True,
        "trunc_params": {"chi_max": int(chi), "svd_min": svd_min},
        "max_E_err": e_tol,
        "max_S_err": 1e-3,  # convergence is judged on the energy
        "min_sweeps": 2,
        "max_sweeps": max_sweeps,
        "combine": True,
    }
    eng = dmrg.TwoSiteDMRGEngine(psi, model, options)
    eng.run()
    stats = eng.sweep_stats
    energy = float(model.H_MPO.expectation_value(psi))
    return {
        "chi": int(chi),
        "energy": energy,
        "sweeps": int(stats["sweep"][-1]),
        "delta_E_sweep": float(abs(stats["Delta_E"][-1])),
        "max_trunc_err": float(stats["max_trunc_err"][-1]),
        "max_chi_reached": int(np.max(psi.chi)),
    }


def _sweep_chis(model, psi, chis, *, max_sweeps: int, e_tol: float, svd_min: float) -> list[dict]:
    """DMRG at each bond dimension in turn, warm-started; the intermediate ones only feed the error
    estimate, so 1e-10 convergence suffices for them."""
    runs = []
    for k, chi in enumerate(chis):
        tol = e_tol if k == len(chis) - 1 else max(e_tol, 1e-10)
        runs.append(_run_dmrg(model, psi, chi, max_sweeps=max_sweeps, e_tol=tol, svd_min=svd_min))
    return runs


def field_sum_power_mpo(sites, k: int):
    """The MPO of ``(Σ_p φ_p)^k`` on the MPS ``sites`` (each with the operator ``"phi"``), bond dimension k + 1.

    A finite-state machine: the bond state ``a`` counts the φ factors placed to the left, and the
    site tensor is upper triangular, ``W[a, b] = C(k − a, b − a) φ^(b−a)`` (``φ^0`` = identity),
    from ``a = 0`` (IdL) to ``b = k`` (IdR). Summing over all paths gives the multinomial expansion
    ``Σ_{j_1+…+j_L=k} k!/(j_1!…j_L!) Π_p φ_p^{j_p}`` (operators on different sites commute), so the
    order of the sites does not matter. ``φ^j`` is the j-fold product of the site's (truncated)
    ``phi`` matrix, the operator whose two-point function ``correlation_function("phi", "phi")``
    measures. With parity conservation φ^j carries charge j mod 2 and so does bond state ``a``;
    TeNPy derives these bond charges from the grid (``MPO.from_grids``).
    """
    from math import comb

    from tenpy.networks.mpo import MPO

    k = check_int("k (power of the field sum)", k, minimum=1)

    def op(j: int) -> str:
        return "Id" if j == 0 else " ".join(["phi"] * j)

    grid = [[[(op(b - a), float(comb(k - a, b - a)))] if b >= a else None for b in range(k + 1)]
            for a in range(k + 1)]
    return MPO.from_grids(list(sites), [grid] * len(sites), bc="finite", IdL=0, IdR=k,
                          mps_unit_cell_width=len(sites))


def field_moments(psi, powers=(2, 4)) -> dict[int, float]:
    """``⟨M^k⟩`` of ``M = V^-1 Σ_p φ_p`` in the normalised finite MPS ``psi`` for each k in ``powers``."""
    V = psi.L
    return {k: float(np.real(field_sum_power_mpo(psi.sites, k).expectation_value(psi))) / V**k for k in powers}


def _measure(psi, pos, shape, correlations: bool) -> tuple[float, np.ndarray | None, dict[int, float] | None]:
    """Site-averaged <φ_n²>, and (optionally) the translation-averaged <φ_0 φ_r> in lattice ordering
    and the moments {2: <M²>, 4: <M⁴>} of the mean field."""
    phi2 = float(np.mean(np.asarray(psi.expectation_value("phi2"), dtype=float)))
    if not correlations:
        return phi2, None, None
    C_mps = np.asarray(psi.correlation_function("phi", "phi"), dtype=float)
    corr = _translation_average(C_mps[np.ix_(pos, pos)], shape)  # flat lattice site indices
    return phi2, corr, field_moments(psi, (2, 4))


@register_baseline
class DMRG(Baseline):
    """TeNPy DMRG of the periodic lattice with a truncation-error estimate (module docstring).

    Chains are the intended use; tori in d ≥ 2 work through the same MPO (see the module
    docstring for the ordering) while their boundary is small (4×4: χ = 128 gives ~2e-5, ~45 min).

    Options: ``local_dims`` (increasing; the χ sweep runs at the last, the previous one gives the
    local-dimension error), ``chis`` (increasing; the last two give the χ error), ``basis``, ``omega``
    (:func:`qrg.baselines.local_basis.local_basis`), ``conserve_parity`` (φ → −φ parity as a Z2
    charge; the ground state is even), ``max_sweeps``, ``e_tol``, ``svd_min``, ``correlations``
    (measure <φ_0 φ_r>, <M²>, <M⁴> and so U4). Details: ``error_chi``, ``error_local_dim``, ``local_dim``,
    ``local_dims``, ``chi``, ``chis``, ``energies_chi`` (per χ at the largest L),
    ``energy_local_dim_prev``, ``max_trunc_err``, ``sweeps``, ``conserve_parity``, ``ordering`` and
    the basis parameters.
    """

    name = "dmrg"
    summary = "TeNPy DMRG (periodic chains N >= 3; small tori such as 4x4)"

    def why_not(self, theory, **options) -> str | None:
        if theory.d == 1 and theory.N < MIN_N:
            return f"N must be >= {MIN_N} for DMRG on a periodic chain (got N = {theory.N}); use ED"
        if theory.d > 1 and theory.N < 2:
            return f"N must be >= 2 for DMRG on a d = {theory.d} torus (got N = {theory.N})"
        return None

    def compute(self, theory, *, local_dims=(8, 10), chis=(32, 64), basis: str = "hartree",
                omega: float | None = None, conserve_parity: bool = True, max_sweeps: int = 40,
                e_tol: float = 1e-12, svd_min: float = 1e-14, correlations: bool = True) -> Reference:
        local_dims, chis = _check_sequences(local_dims, chis)
        logging.getLogger("tenpy").setLevel(logging.WARNING)
        from tenpy.networks.mps import MPS

        t0 = time.perf_counter()
        sweep = {"max_sweeps": max_sweeps, "e_tol": e_tol, "svd_min": svd_min}

        def fresh(L):
            lb = local_basis(theory, L, basis=basis, omega=omega)
            model, pos = _make_model(theory, lb, conserve_parity)
            psi = MPS.from_product_state(model.lat.mps_sites(), ["0"] * theory.lattice.n_sites, bc="finite")
            return lb, model, pos, psi

        with warnings.catch_warnings(), limit_blas_threads(1):
            warnings.simplefilter("ignore")
            lb, model, pos, psi = fresh(local_dims[-1])
            runs = _sweep_chis(model, psi, chis, **sweep)
            phi2, corr, moments = _measure(psi, pos, tuple(theory.lattice.shape), correlations)
            # warm start is not possible across local bases; ramp χ to the largest value
            _, model_p, _, psi_p = fresh(local_dims[-2])
            run_p = _sweep_chis(model_p, psi_p, chis, **sweep)[-1]
        return _reference(theory, lb, runs, run_p, phi2, corr, moments, local_dims, chis, conserve_parity,
                          time.perf_counter() - t0)


def _reference(theory, lb, runs, run_p, phi2, corr, moments, local_dims, chis, conserve_parity,
               wall) -> Reference:
    """Energy, error estimate (module docstring), observables and details of a DMRG run."""
    e = runs[-1]["energy"]
    err_chi = abs(e - runs[-2]["energy"])
    err_L = abs(e - run_p["energy"])
    details = {
        "error_chi": err_chi,
        "error_local_dim": err_L,
        "local_dim": local_dims[-1],
        "local_dims": list(local_dims),
        "chi": chis[-1],
        "chis": list(chis),
        "energies_chi": [r["energy"] for r in runs],
        "energy_local_dim_prev": run_p["energy"],
        "max_trunc_err": runs[-1]["max_trunc_err"],
        "sweeps": [r["sweeps"] for r in runs],
        "conserve_parity": bool(conserve_parity),
        "ordering": "folded" if theory.d == 1 else "folded per axis, lexicographic",
        **{k: v for k, v in lb.describe().items() if k != "local_dim"},
    }
    # <M²> = V^-2 Σ_{n,m} <φ_n φ_m> = V^-1 Σ_r C(r) (equal to moments[2] from the MPO of (Σφ)², tested)
    M2 = None if corr is None else float(np.sum(corr) / theory.lattice.n_sites)
    M4 = None if moments is None else moments[4]
    return Reference("dmrg", theory, e, error_estimate=err_chi + err_L + runs[-1]["delta_E_sweep"],
                     wall_time_s=wall, phi2=phi2, M2=M2, M4=M4, correlation=corr, details=details)


def dmrg_ground_state(theory, **options) -> dict:
    """``DMRG().run(theory, **options).to_json()`` (the ``qrg reference --method dmrg`` JSON); options
    and keys: :class:`DMRG`."""
    return DMRG().run(theory, **options).to_json()
