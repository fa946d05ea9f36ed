"""TeNPy DMRG (qrg.baselines.dmrg) against the exact free chain and against ED."""

import json
import warnings

import numpy as np
import pytest

from qrg import Phi4, QRGInputError
from qrg.baselines import ExactFree, ed_reference, local_basis
from qrg.baselines.dmrg import (
    _make_model,
    _run_dmrg,
    dmrg_ground_state,
    field_moments,
    field_sum_power_mpo,
    folded_order,
    mps_order,
)
from qrg.cli import main


def test_folded_order_keeps_neighbours_within_two():
    for N in (3, 4, 7, 8, 33):
        order = folded_order(N)
        assert sorted(order) == list(range(N))
        pos = np.empty(N, int)
        pos[order] = np.arange(N)
        dist = [abs(pos[n] - pos[(n + 1) % N]) for n in range(N)]
        assert max(dist) <= 2


def test_mps_order_of_a_torus_keeps_neighbours_close():
    for shape, bound in (((4, 4), (8, 2)), ((5, 5), (10, 2)), ((3, 3, 3), (18, 6, 2))):
        order = mps_order(shape)
        assert sorted(order) == list(range(int(np.prod(shape))))
        pos = np.empty(order.size, int)
        pos[order] = np.arange(order.size)
        idx = np.arange(order.size).reshape(shape)
        for axis, b in enumerate(bound):
            nb = np.roll(idx, -1, axis=axis)
            assert np.max(np.abs(pos[idx.ravel()] - pos[nb.ravel()])) <= b
    np.testing.assert_array_equal(mps_order((7,)), folded_order(7))


def test_free_chain_n8_exact():
    th = Phi4.chain(8, 1.0, 0.0)
    r = dmrg_ground_state(th, local_dims=(6, 8), chis=(16, 32))
    e0 = th.free_ground_energy()
    assert abs(r["energy"] - e0) / e0 < 1e-8
    assert r["energy"] >= e0 - 1e-10  # variational
    assert abs(r["energy"] - e0) <= r["error_estimate"] + 1e-10  # the error bar covers the error
    np.testing.assert_allclose(r["phi2"], th.free_phi2(), rtol=1e-6)
    C = np.real(np.fft.ifft(th.free_ground_variance()))
    np.testing.assert_allclose(r["correlation"], C, atol=1e-6)
    # <M²> of the free field: the zero mode's variance / N = 1/(2 a N ω_0 · N) · N
    np.testing.assert_allclose(r["M2"], 1.0 / (2 * 8 * 1.0), rtol=1e-6)
    # M is Gaussian: <M⁴> = 3 <M²>², Binder U4 = 0 (measured: relative error 1e-6, U4 = 9e-7)
    ex = ExactFree().run(th)
    np.testing.assert_allclose(r["M4"], ex.M4, rtol=1e-5)
    assert ex.M4 == pytest.approx(3 / 16**2, rel=1e-14)
    assert abs(r["U4"]) < 1e-5


def _assert_moments_agree(r, ed):
    """DMRG's <M²>, <M⁴> (MPO of (Σφ)⁴) and U4 against ED's (‖Mψ‖², ‖M²ψ‖²) within the two truncation
    estimates (energy estimates; the moments' differences are measured 6-45x below them)."""
    tol = r["error_estimate"] + ed["error_estimate"]
    assert abs(r["M2"] - ed["M2"]) <= tol
    assert abs(r["M4"] - ed["M4"]) <= tol
    m2, m4 = ed["M2"], ed["M4"]
    assert abs(r["U4"] - ed["U4"]) <= 1.01 * (tol / (3 * m2**2) + 2 * m4 * tol / (3 * m2**3))  # propagated
    assert r["U4"] == pytest.approx(1 - r["M4"] / (3 * r["M2"] ** 2), rel=1e-12)


def test_interacting_n4_agrees_with_ed():
    th = Phi4.chain(4, 1.0, 6.0)
    ed = ed_reference(th, local_dims=(8, 10))
    r = dmrg_ground_state(th, local_dims=(8, 10), chis=(16, 32))
    assert abs(r["energy"] - ed["energy"]) < 1e-9 + r["error_estimate"] + ed["error_estimate"]
    assert abs(r["energy"] - ed["energy"]) < 1e-8
    np.testing.assert_allclose(r["phi2"], ed["phi2"], rtol=1e-6)
    np.testing.assert_allclose(r["correlation"], ed["correlation"], atol=1e-6)
    # measured: M2 0.0935194, M4 0.0257066, U4 0.0202407; DMRG − ED: 2e-11, 7e-12, 1e-10
    _assert_moments_agree(r, ed)
    assert 0.01 < r["U4"] < 0.05  # weakly non-Gaussian: a Gaussian M4 = 3 M2² would fail


def test_double_well_n4_binder_agrees_with_ed():
    # deep double well: M is strongly non-Gaussian (U4 = 0.569, toward 2/3 of the ordered phase)
    th = Phi4.chain(4, -1.0, 2.4)
    ed = ed_reference(th, local_dims=(8, 10))
    r = dmrg_ground_state(th, local_dims=(8, 10), chis=(16, 32))
    # measured: M2 1.639997, M4 3.474957; DMRG − ED: 5e-7, 1.6e-6, U4 8e-8; error estimates 1.3e-5 + 1e-5
    _assert_moments_agree(r, ed)
    assert 0.5 < r["U4"] < 2 / 3


@pytest.mark.parametrize("conserve_parity", [True, False])
def test_field_sum_power_mpo_against_the_dense_state(conserve_parity):
    """<(Σφ)^k> from the MPO (k = 1…4) against the MPS contracted to a dense vector, and <M²> from
    the MPO against <M²> from the correlation function (the reported one) to 1e-10."""
    from tenpy.networks.mps import MPS

    th = Phi4.chain(4, -1.0, 2.4)
    lb = local_basis(th, 6)
    model, _ = _make_model(th, lb, conserve_parity)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        psi = MPS.from_product_state(model.lat.mps_sites(), ["0"] * 4, bc="finite")
        _run_dmrg(model, psi, 12, max_sweeps=6, e_tol=1e-8, svd_min=1e-14)
    assert field_sum_power_mpo(psi.sites, 4).chi == [1, 5, 5, 5, 1]
    vec = psi.get_theta(0, psi.L).to_ndarray().reshape((lb.local_dim,) * 4)
    phi = psi.sites[0].get_op("phi").to_ndarray()

    def field_sum(v):
        return sum(np.moveaxis(np.tensordot(phi, v, axes=([1], [s])), 0, s) for s in range(4))

    dense, v = [], vec
    for _ in range(4):
        v = field_sum(v)
        dense.append(np.vdot(vec, v) / np.vdot(vec, vec))
    mpo = [field_sum_power_mpo(psi.sites, k).expectation_value(psi) for k in (1, 2, 3, 4)]
    np.testing.assert_allclose(mpo, dense, rtol=1e-12, atol=1e-12)
    assert dense[3] > 10  # <(Σφ)⁴> ~ 4⁴ <M⁴>: not a trivially small number
    m = field_moments(psi, (2, 4))
    C = np.asarray(psi.correlation_function("phi", "phi"))
    assert abs(m[2] - C.sum() / 16) < 1e-10
    np.testing.assert_allclose(m[4], dense[3] / 4**4, rtol=1e-12)


def test_double_well_n4_agrees_with_ed_without_parity_conservation():
    th = Phi4.chain(4, -0.5, 2.4)
    ed = ed_reference(th, local_dims=(8, 10))
    r = dmrg_ground_state(th, local_dims=(8, 10), chis=(16, 32), conserve_parity=False)
    assert abs(r["energy"] - ed["energy"]) < 1e-8


def test_square_2x2_agrees_with_ed():
    # the 2×2 torus counts every bond twice (design §2): DMRG and ED share neighbour_couplings,
    # so this checks the MPO against an independent matrix-vector product
    th = Phi4.from_params(d=2, N=2, m2=1.0, lam=6.0)
    ed = ed_reference(th, local_dims=(8, 10))
    r = dmrg_ground_state(th, local_dims=(8, 10), chis=(16, 32))
    assert abs(r["energy"] - ed["energy"]) < 1e-8
    np.testing.assert_allclose(r["phi2"], ed["phi2"], rtol=1e-6)
    assert np.shape(r["correlation"]) == (2, 2)
    np.testing.assert_allclose(r["correlation"], ed["correlation"], atol=1e-6)
    np.testing.assert_allclose(r["M2"], ed["M2"], rtol=1e-6)
    np.testing.assert_allclose(r["M4"], ed["M4"], rtol=1e-6)  # the (Σφ)⁴ MPO on the torus ordering


@pytest.mark.slow
def test_free_cube_2x2x2_exact():
    # 8 sites with every bond doubled: more entangled than a chain; χ = 64 gives 2e-8 relative
    # in the energy and ~5e-7 in the observables (first order in the state's error)
    th = Phi4.from_params(d=3, N=2, m2=1.0, lam=0.0)
    r = dmrg_ground_state(th, local_dims=(6, 8), chis=(32, 64))
    e0 = th.free_ground_energy()
    assert e0 - 1e-10 <= r["energy"] <= e0 + r["error_estimate"]  # variational, and the bar covers it
    assert abs(r["energy"] - e0) / e0 < 1e-7
    np.testing.assert_allclose(r["phi2"], th.free_phi2(), rtol=2e-6)
    C = np.real(np.fft.ifftn(th.free_ground_variance()))
    np.testing.assert_allclose(r["correlation"], C, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("N", [16, 32])
def test_free_chain_long(N):
    th = Phi4.chain(N, 1.0, 0.0)
    r = dmrg_ground_state(th, local_dims=(8, 10), chis=(48, 96))
    e0 = th.free_ground_energy()
    assert abs(r["energy"] - e0) / e0 < 1e-8
    np.testing.assert_allclose(r["phi2"], th.free_phi2(), rtol=1e-6)


@pytest.mark.parametrize(
    "th,kwargs,match",
    [
        (Phi4.chain(8, 1.0, 1.0), {"chis": (1, 8)}, "chi"),
        (Phi4.chain(8, 1.0, 1.0), {"chis": (16, 8)}, "increasing"),
        (Phi4.chain(8, 1.0, 1.0), {"local_dims": (0, 8)}, "local_dim"),
        (Phi4.chain(8, 1.0, 1.0), {"local_dims": (8,)}, "at least two"),
        (Phi4.chain(2, 1.0, 1.0), {}, "N must be >= 3"),
        (Phi4.from_params(d=2, N=1, m2=1.0, lam=1.0), {}, "N must be >= 2"),
    ],
)
def test_bad_input(th, kwargs, match):
    with pytest.raises(QRGInputError, match=match):
        dmrg_ground_state(th, **kwargs)


def test_cli_reference_dmrg(capsys):
    rc = main(["reference", "--method", "dmrg", "--N", "6", "--m2", "1", "--lam", "0",
               "--local-dims", "6,8", "--chis", "12,24"])
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    th = Phi4.chain(6, 1.0, 0.0)
    assert r["method"] == "dmrg" and r["chis"] == [12, 24] and r["local_dim"] == 8
    assert abs(r["energy"] - th.free_ground_energy()) < 1e-8 * th.free_ground_energy()
    assert {"energy", "energy_per_site", "phi2", "error_estimate", "d", "N", "a", "m2", "lam"} <= set(r)
    assert main(["reference", "--method", "dmrg", "--N", "6", "--m2", "1", "--lam", "1", "--chi", "1"]) == 2
    assert "chi" in capsys.readouterr().err
