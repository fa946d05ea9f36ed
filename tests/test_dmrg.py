"""TeNPy DMRG (qrg.baselines.dmrg) against the exact free chain and against ED."""

import json

import numpy as np
import pytest

from qrg import Phi4, QRGInputError
from qrg.baselines import ed_reference
from qrg.baselines.dmrg import dmrg_ground_state, folded_order, mps_order
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


def test_interacting_n4_agrees_with_ed():
    th = Phi4.chain(4, 1.0, 6.0)
    ed = ed_reference(th, local_dims=(8, 10))
    r = dmrg_ground_state(th, local_dims=(8, 10), chis=(16, 32))
    assert abs(r["energy"] - ed["energy"]) < 1e-9 + r["error_estimate"] + ed["error_estimate"]
    assert abs(r["energy"] - ed["energy"]) < 1e-8
    np.testing.assert_allclose(r["phi2"], ed["phi2"], rtol=1e-6)
    np.testing.assert_allclose(r["correlation"], ed["correlation"], atol=1e-6)


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
