"""Exact diagonalisation (qrg.baselines.ed) against exact answers: the free theory on tiny
lattices, the anharmonic oscillator, and the local-basis matrices."""

import json

import numpy as np
import pytest

from qrg import Lattice, Phi4, QRGInputError
from qrg.baselines import (
    Reference,
    ed_ground_state,
    ed_reference,
    get_baseline,
    local_basis,
    oscillator_matrices,
)
from qrg.baselines.local_basis import site_mass2
from qrg.cli import main
from qrg.hartree import lattice_hartree, site_hartree_frequency

# anharmonic oscillator H = −½∂² + ½x² + x⁴ (m² = 1, λ/24 = 1): the standard published value
AHO_E0 = 0.8037706512


def test_oscillator_matrices_are_exact_truncations():
    # π²/(2M) + ½ M ω² φ² = ω (n + ½) exactly, also in the top state
    M, w, n = 0.7, 1.9, 12
    mats = oscillator_matrices(n, M, w)
    h = mats["pi2"] / (2 * M) + 0.5 * M * w**2 * mats["phi2"]
    np.testing.assert_allclose(h, np.diag(w * (np.arange(n) + 0.5)), atol=1e-12)
    # <0|φ⁴|0> = 3 <φ²>² with <φ²> = 1/(2Mω), also the top-left of φ² = φ·φ (untruncated)
    np.testing.assert_allclose(mats["phi4"][0, 0], 3 / (2 * M * w) ** 2, rtol=1e-13)
    np.testing.assert_allclose(mats["phi2"][: n - 1, : n - 1], (mats["phi"] @ mats["phi"])[: n - 1, : n - 1],
                               atol=1e-13)


def test_site_hartree_frequency_solves_the_gap_equation():
    for m2, lam, M in [(1.0, 24.0, 1.0), (-0.5, 2.4, 1.0), (3.0, 6.0, 0.5)]:
        w = site_hartree_frequency(m2, lam, M)
        assert w > 0
        np.testing.assert_allclose(w**2, m2 + 0.5 * lam / (2 * M * w), rtol=1e-13)
    assert site_hartree_frequency(4.0, 0.0, 1.0) == 2.0


def test_local_bases_take_their_widths_from_qrg_hartree():
    th = Phi4(Lattice(2, 3, 0.7), -0.5, 2.4)
    assert local_basis(th, 6, basis="hartree").omega == lattice_hartree(th)["omega_site"]
    w = site_hartree_frequency(site_mass2(th), th.lam, th.lattice.volume_element)
    assert local_basis(th, 6, basis="meanfield").omega == w
    assert local_basis(th, 6, basis="oscillator").omega == w


@pytest.mark.parametrize("basis", ["hartree", "meanfield", "oscillator"])
def test_local_basis_parity_and_hermiticity(basis):
    th = Phi4.chain(8, -0.5, 2.4)
    lb = local_basis(th, 9, basis=basis)
    P = np.diag(lb.parity)
    for name in ("phi2", "phi4", "pi2", "h_site"):
        A = getattr(lb, name)
        np.testing.assert_allclose(A, A.T, atol=1e-12)
        np.testing.assert_allclose(P @ A @ P, A, atol=1e-12)  # even operators
    np.testing.assert_allclose(P @ lb.phi @ P, -lb.phi, atol=1e-12)  # φ is odd
    assert lb.parity[0] == 1
    if basis == "meanfield":  # eigenbasis of h, sorted
        e = np.diag(lb.h_site)
        np.testing.assert_allclose(lb.h_site, np.diag(e), atol=1e-10)
        assert np.all(np.diff(e) >= 0)


@pytest.mark.parametrize("basis,dims", [("meanfield", (10, 20, 30)), ("oscillator", (30, 40, 50))])
def test_anharmonic_oscillator(basis, dims):
    th = Phi4.chain(1, 1.0, 24.0)
    r = ed_reference(th, local_dims=dims, basis=basis)
    assert abs(r["energy"] - AHO_E0) < 1e-9
    assert r["error_estimate"] < 1e-9
    assert r["method"] == "ed" and r["N"] == 1 and r["local_dim"] == dims[-1]


def test_oscillator_basis_converges_variationally_from_above():
    th = Phi4.chain(1, 1.0, 24.0)
    es = [ed_ground_state(th, L, basis="oscillator")["energy"] for L in (6, 10, 14, 18)]
    assert all(e1 >= e2 - 1e-14 for e1, e2 in zip(es, es[1:]))
    assert es[0] - AHO_E0 > 1e-6  # small bases are visibly off: the test can fail


@pytest.mark.parametrize("d,N,dims", [(1, 2, (14, 18)), (1, 3, (12, 14)), (1, 4, (10, 12)), (2, 2, (10, 12))])
@pytest.mark.parametrize("m2,a", [(1.0, 1.0), (0.3, 0.7)])
def test_free_theory_exact(d, N, dims, m2, a):
    th = Phi4(Lattice(d, N, a), m2, 0.0)
    r = ed_reference(th, local_dims=dims)
    e0 = th.free_ground_energy()
    assert abs(r["energy"] - e0) < max(1e-9 * e0, 2 * r["error_estimate"])
    assert abs(r["energy"] - e0) < 1e-7 * e0
    np.testing.assert_allclose(r["phi2"], th.free_phi2(), rtol=1e-6)
    # <φ_0 φ_n> against the exact covariance (2 a^d Ω)^-1
    C = np.real(np.fft.ifftn(th.free_ground_variance()))
    np.testing.assert_allclose(r["correlation"], C, atol=1e-6)
    assert {k: r[k] for k in ("d", "N", "a", "m2", "lam")} == th.params()
    # <M²> = the zero mode's variance / N^d; M is Gaussian: <M⁴> = 3 <M²>², U4 = 0 (the exact baseline's)
    ex = get_baseline("exact").run(th)
    np.testing.assert_allclose(r["M2"], th.free_ground_variance().flat[0] / th.lattice.n_sites, rtol=1e-6)
    np.testing.assert_allclose(r["M2"], ex.M2, rtol=1e-6)
    # the fourth moment is more sensitive to the local truncation: worst measured 2.6e-6 relative, U4
    # 1.8e-6 (2×2, m² = 0.3, a = 0.7, L = 12); exact to 1e-14 at m² = 1
    np.testing.assert_allclose(r["M4"], ex.M4, rtol=1e-5)
    assert abs(r["U4"]) < 1e-5 and abs(ex.U4) < 1e-15


def test_interacting_chain_is_converged_and_above_gaussian_bound():
    th = Phi4.chain(4, 1.0, 6.0)
    r = ed_reference(th, local_dims=(8, 10))
    assert r["error_estimate"] < 1e-8
    # variational: below every truncated-basis result, and the interaction raises the energy
    assert r["energy"] <= ed_ground_state(th, 6)["energy"] + 1e-12
    assert r["energy"] > Phi4.chain(4, 1.0, 0.0).free_ground_energy()


def test_binder_moments_of_the_double_well_and_their_json_keys():
    th = Phi4.chain(4, -1.0, 2.4)
    ref = get_baseline("ed").run(th, local_dims=(8, 10))
    # M2 = ‖Mψ‖² uses φ·φ on a site, the correlation uses the exactly truncated φ²: equal to truncation
    # accuracy (measured 1.1e-8, error estimate 1e-5)
    assert abs(ref.M2 - ref.correlation.sum() / 4) < ref.error_estimate
    # measured: M2 = 1.6399963, M4 = 3.4749550, U4 = 0.5693324 (far from the Gaussian 0)
    assert ref.M4 > ref.M2**2  # Cauchy-Schwarz, and M is not ±const
    assert 0.5 < ref.U4 < 2 / 3
    assert ref.U4 == pytest.approx(1 - ref.M4 / (3 * ref.M2**2), rel=1e-14)
    out = ref.to_json()
    assert {"M2", "M4", "U4", "rms_M"} <= set(out)
    assert (out["M2"], out["M4"], out["U4"]) == (ref.M2, ref.M4, ref.U4)
    assert json.loads(json.dumps(out)) == out
    # U4 only when both moments exist; M4 and U4 are standard keys that details may not reuse
    assert "U4" not in Reference("x", th, 1.0, M2=0.5).to_json()
    assert "M4" not in Reference("x", th, 1.0, M2=0.5).to_json()
    assert Reference("x", th, 1.0, M4=0.5).U4 is None
    for key in ("M4", "U4"):
        with pytest.raises(ValueError, match=key):
            Reference("x", th, 1.0, details={key: 0.0})


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"local_dims": (1, 4)}, "local_dims"),
        ({"local_dims": (6, 4)}, "increasing"),
        ({"local_dims": (6,)}, "at least two"),
        ({"basis": "plane-wave"}, "basis"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(QRGInputError, match=match):
        ed_reference(Phi4.chain(2, 1.0, 1.0), **kwargs)


def test_too_large_for_ed():
    with pytest.raises(QRGInputError, match="N = 8.*too large"):
        ed_reference(Phi4.chain(8, 1.0, 1.0))
    with pytest.raises(QRGInputError, match="local_dim"):
        ed_ground_state(Phi4.chain(4, 1.0, 1.0), 60)
    with pytest.raises(QRGInputError, match="local_dim"):
        ed_ground_state(Phi4.chain(2, 1.0, 1.0), 1)


def test_cli_reference_ed(capsys):
    rc = main(["reference", "--method", "ed", "--N", "1", "--m2", "1", "--lam", "24", "--local-dims", "10,20"])
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    assert r["method"] == "ed" and abs(r["energy"] - AHO_E0) < 1e-9
    assert "error_estimate" in r and r["local_dims"] == [10, 20]
    rc = main(["reference", "--method", "ed", "--N", "9", "--m2", "1", "--lam", "1"])
    assert rc == 2
    assert "too large" in capsys.readouterr().err
