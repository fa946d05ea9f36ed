"""NetKet continuous-space baselines (qrg.baselines.netket_vmc) on the design-§2 Hamiltonian."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qrg import Lattice, Phi4, QRGInputError

nk = pytest.importorskip("netket")

from qrg.baselines import netket_vmc as NV  # noqa: E402


@pytest.mark.parametrize("d,N,m2,a", [(1, 4, 1.0, 1.0), (2, 3, 0.5, 0.8)])
def test_free_gaussian_has_constant_local_energy_e0(d, N, m2, a):
    """The operator mapping: at the exact free ground state E_loc ≡ E0 (zero variance)."""
    th = Phi4(Lattice(d, N, a), m2, 0.0)
    hi, H = NV.netket_hamiltonian(th)
    vs = nk.vqs.MCState(nk.sampler.MetropolisGaussian(hi, sigma=0.5, n_chains=8), NV.make_model(th, "gaussian"),
                        n_samples=256, seed=0)
    vs.parameters = {"kernel": jnp.asarray(NV.free_gaussian_kernel(th))}
    eloc = np.asarray(vs.local_estimators(H).data).ravel()
    np.testing.assert_allclose(eloc, th.free_ground_energy(), rtol=0, atol=1e-10 * th.free_ground_energy())
    # and the sampled field has the exact <φ²> (a statistical check: 5σ)
    x = np.asarray(vs.samples).reshape(-1, th.lattice.n_sites)
    phi2 = x**2
    err = phi2.mean(axis=1).std() / np.sqrt(len(phi2)) * 3  # generous τ for Metropolis chains
    assert abs(phi2.mean() - th.free_phi2()) < 5 * err


def test_hamiltonian_potential_is_theory_potential(key):
    th = Phi4.chain(5, -0.5, 2.4)
    _, H = NV.netket_hamiltonian(th)
    pot = [op for op in H.operators if isinstance(op, nk.operator.PotentialEnergy)][0]
    x = jax.random.normal(key, (7, 5))
    got = jax.vmap(pot._potential_fun)(x)
    np.testing.assert_allclose(got, th.potential(x), rtol=1e-14)


def test_neural_ansatz_symmetries_and_hartree_start(key):
    th = Phi4.chain(8, 1.0, 6.0)
    model = NV.make_model(th, "neural")
    x = jax.random.normal(key, (5, 8))
    params = model.init(jax.random.PRNGKey(1), x)
    f = lambda y: model.apply(params, y)  # noqa: E731
    np.testing.assert_allclose(f(-x), f(x), rtol=1e-12)  # φ → −φ
    np.testing.assert_allclose(f(jnp.roll(x, 3, axis=-1)), f(x), rtol=1e-12)  # translations
    np.testing.assert_allclose(f(x[:, ::-1]), f(x), rtol=1e-12)  # reflection
    # the CNN head starts at zero: the ansatz starts as the lattice-Hartree Gaussian
    from qrg.hartree import lattice_hartree

    omega = np.sqrt(th.lattice.phat2 + lattice_hartree(th)["m2_hartree"])
    A = NV.free_gaussian_kernel(th, omega)
    ref = -0.5 * np.einsum("bi,ij,bj->b", np.asarray(x), A @ A, np.asarray(x))
    np.testing.assert_allclose(f(x), ref, rtol=1e-12)


def test_vmc_gaussian_free_chain_reaches_e0():
    th = Phi4.chain(4, 1.0, 0.0)
    r = NV.run_vmc(th, ansatz="gaussian", n_iter=60, n_samples=512, seed=3, n_eval_samples=4096)
    e0 = th.free_ground_energy()
    assert abs(r["energy"] - e0) < 5 * r["energy_err"] + 1e-9
    assert r["energy"] > e0 - 5 * r["energy_err"]
    assert 0.2 < r["acceptance"] < 0.8
    assert len(r["history"]) == r["n_iter"] == 60
    # zero-variance principle: Var(E_loc) collapses as the Gaussian approaches the exact state
    assert r["variance"] < 1e-2 * r["history"][0][3]


def test_chunked_evaluation_gives_the_same_energy(monkeypatch):
    """Chunking (needed for memory at 64 sites) changes nothing but the peak memory."""
    assert NV.auto_chunk_size(16384, 64) == 1024 and NV.auto_chunk_size(16384, 16) is None
    th = Phi4.chain(4, 1.0, 2.0)
    kw = dict(ansatz="gaussian", n_iter=5, n_samples=256, seed=1, n_eval_samples=1024)
    plain = NV.run_vmc(th, chunk_size=None, **kw)
    monkeypatch.setattr(NV, "CHUNK_MEMORY_BYTES", 8 * 4**3 * 128)  # auto: chunks of 128 samples
    chunked = NV.run_vmc(th, **kw)
    assert plain["chunk_size"] is None and chunked["chunk_size"] == 128
    assert chunked["energy"] == pytest.approx(plain["energy"], rel=1e-12)
    assert chunked["variance"] == pytest.approx(plain["variance"], rel=1e-10)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"ansatz": "transformer"}, "ansatz"),
        ({"n_samples": 1000, "n_chains": 16}, "multiple"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"n_iter": -3}, "n_iter"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"tune_every": 0}, "tune_every"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(QRGInputError, match=match):
        NV.run_vmc(Phi4.chain(4, 1.0, 1.0), **kwargs)


@pytest.mark.slow
def test_vmc_neural_interacting_n8_is_variational_and_beats_gaussian():
    from qrg.baselines.dmrg import dmrg_ground_state

    th = Phi4.chain(8, 1.0, 6.0)
    ref = dmrg_ground_state(th, local_dims=(8, 10), chis=(24, 48), correlations=False)
    g = NV.run_vmc(th, ansatz="gaussian", n_iter=150, n_samples=1024, seed=0)
    n = NV.run_vmc(th, ansatz="neural", n_iter=200, n_samples=2048, seed=0)
    for r in (g, n):
        assert r["energy"] > ref["energy"] - 5 * r["energy_err"]  # variational
    assert n["energy"] < g["energy"]


def test_cli_reference_netket_gaussian(capsys):
    """The registry path of `qrg reference`: options from flags, JSON with NetKet's error of the mean."""
    import json

    from qrg.cli import main

    argv = ["reference", "--method", "netket-gaussian", "--N", "2", "--m2", "1", "--lam", "0",
            "--n-iter", "40", "--n-samples", "256", "--seed", "2"]
    assert main(argv) == 0
    r = json.loads(capsys.readouterr().out)
    e0 = Phi4.chain(2, 1.0, 0.0).free_ground_energy()
    assert r["method"] == "netket-gaussian" and r["n_iter"] == 40 and r["n_samples"] == 256
    assert r["error_estimate"] == 0 and r["energy_err"] > 0 and len(r["history"]) == 40
    assert abs(r["energy"] - e0) < 5 * r["energy_err"] + 1e-9
    assert main(["reference", "--method", "netket-neural", "--N", "2", "--m2", "1", "--lam", "0", "--chi", "8"]) == 2
    assert "--chi/--chis do not apply to --method netket-neural" in capsys.readouterr().err
