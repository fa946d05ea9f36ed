"""The true RG flow: kernel-flowed free samples against the Gaussian bridge C_t = α_t² C_0 + Σ_t."""

import jax
import numpy as np
import pytest

from qrg._validation import QRGInputError
from qrg.observables import independent_momenta, smallest_momentum_phat2, two_point
from qrg.rg import CarossoM, PolchinskiM
from qrg.euclidean.kernel_flow import flow_observables, flow_path, gaussian_flow_g2
from qrg.theory import Phi4


@pytest.mark.parametrize("scheme_fn", [CarossoM, PolchinskiM])
def test_flowed_free_samples_match_bridge(scheme_fn):
    theory = Phi4.from_params(d=2, N=8, a=0.25, m2=2.0, lam=0.0)
    lat = theory.lattice
    scheme = scheme_fn(lat, 1.0)
    c0 = theory.free_euclidean_variance()
    phi0 = theory.free_euclidean().sample(jax.random.PRNGKey(0), (3000,))
    ts = [0.0, 0.01, 0.05, 0.2]
    paths = flow_path(jax.random.PRNGKey(1), phi0, scheme, ts)
    mask = independent_momenta(lat)
    for i, t in enumerate(ts):
        g2 = two_point(np.asarray(paths[i]), lat)
        exact = gaussian_flow_g2(scheme, t, c0)
        z = ((g2["mean"] - exact) / g2["err"])[mask]
        assert np.max(np.abs(z)) < 4.5, (t, np.max(np.abs(z)))


def test_flowed_masses_match_bridge():
    theory = Phi4.from_params(d=2, N=8, a=0.25, m2=2.0, lam=0.0)
    lat = theory.lattice
    scheme = CarossoM(lat, 1.0)
    c0 = theory.free_euclidean_variance()
    phi0 = theory.free_euclidean().sample(jax.random.PRNGKey(2), (4000,))
    ts = [0.0, 0.02, 0.1]
    res = flow_observables(jax.random.PRNGKey(3), phi0, scheme, ts, keep=2)
    assert res["snapshots"].shape == (3, 2, 8, 8)
    p1 = smallest_momentum_phat2(lat)
    for i, t in enumerate(ts):
        g = gaussian_flow_g2(scheme, t, c0)
        g0, gp = g[0, 0], g[1, 0]
        mr2 = p1 / (g0 / gp - 1.0)
        o = res["observables"]
        assert abs(o["m_R2"]["mean"][i] - mr2) < 4 * o["m_R2"]["err"][i]
        assert abs(o["Z"]["mean"][i] - mr2 * g0) < 4 * o["Z"]["err"][i]
        r = float(scheme.cutoff_ratio(t))
        assert res["r_t"][i] == pytest.approx(r)
    # in units of the running cutoff the mass is relevant: m_R²/r_t² grows along the flow
    o = res["observables"]["m_R2_rescaled"]["mean"]
    assert o[0] < o[1] < o[2]


def test_path_consistency_and_input_errors():
    lat = Phi4.from_params(d=1, N=8, m2=1.0, lam=0.0).lattice
    scheme = CarossoM(lat, 1.0)
    phi0 = np.ones((4, 8))
    paths = flow_path(jax.random.PRNGKey(0), phi0, scheme, [0.0, 0.0, 0.5])
    np.testing.assert_allclose(paths[0], phi0)
    np.testing.assert_allclose(paths[1], phi0)
    with pytest.raises(QRGInputError, match="non-decreasing"):
        flow_path(jax.random.PRNGKey(0), phi0, scheme, [0.5, 0.1])
    with pytest.raises(QRGInputError):
        flow_path(jax.random.PRNGKey(0), phi0, scheme, [-1.0])
