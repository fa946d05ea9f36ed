"""Score models: exact divergence, symmetries, EFT projection, make_model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qrg
from qrg.models import Composite, EFTScore, GaussianBridge, KernelNet, make_model
from qrg.models.base import hypercubic_orbits

LATTICES = [(1, 5), (2, 3)]
MODEL_NAMES = ["gaussian", "eft", "kernel", "default", "default_collective", "kernel_growth", "kernel_pair",
               "default_growth_pair", "kernel_hidden", "default_collective_hidden"]


def _perturb(params, key, scale=0.3):
    """Non-trivial parameters: add N(0, scale²) noise to every leaf."""
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(
        tree, [x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
    )


def _setup(name, d, N, key, scheme="carosso", **kw):
    lat = qrg.Lattice(d, N, a=0.8)
    sch = qrg.make_scheme(scheme, lat, M=1.0)
    kw = dict(kw)
    # KernelNet with its pair channel / φ sqrt(1 + φ²) feature / mean-field channel h(M, t) (suffixes, last first)
    for option in ("hidden", "pair", "growth", "collective"):
        if name.endswith("_" + option):
            name, kw[option] = name[: -len(option) - 1], 3 if option == "hidden" else True
    if name != "gaussian":
        kw.setdefault("out_scale", 1.0)
    model = make_model(name, lat, sch, **kw)
    phi = 0.7 * jax.random.normal(key, lat.shape)
    params = _perturb(model.init(jax.random.fold_in(key, 1), phi, 0.3), jax.random.fold_in(key, 2))
    return lat, sch, model, params, phi


def _cases(names, lattices):
    """(name, d, N) for every model and lattice; the EFT model (nested jacrev, ~30 s to compile) in 2D
    only in the slow suite: its terms are site-local plus a Laplacian, the same code in every d."""
    return [pytest.param(name, d, N, marks=pytest.mark.slow) if name.startswith("eft") and d == 2
            else (name, d, N) for d, N in lattices for name in names]


@pytest.mark.parametrize("name,d,N", _cases(MODEL_NAMES + ["eft_plain"], LATTICES))
def test_exact_divergence_equals_jacobian_trace(key, name, d, N):
    kw = {"residual": False} if name == "eft_plain" else {}
    lat, sch, model, params, phi = _setup("eft" if name == "eft_plain" else name, d, N, key, **kw)
    t = 0.37
    # weighted trace tr(W J) for a circulant W (what Polchinski's B(t) needs)
    w = jnp.asarray(np.cos(lat.momenta[0] * lat.a) + lat.phat2 + 0.5)

    @jax.jit
    def evaluate(p, x):  # one compilation for the Jacobian, the divergence and the weighted trace
        jac = jax.jacfwd(lambda y: model.apply(p, y, t)[0])(x).reshape(x.size, x.size)
        _, div = model.apply(p, x, t)
        _, tr_w = model.apply(p, x, t, w, method="score_and_divergence")
        return jac, div, tr_w

    jac, div, tr_w = evaluate(params, phi)
    np.testing.assert_allclose(div, np.trace(jac), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(tr_w, np.trace(lat.diagonal_matrix(np.asarray(w)) @ jac), rtol=1e-10, atol=1e-9)
    assert abs(float(div)) > 0 and np.isfinite(float(tr_w))


def _transforms(lat):
    """Lattice symmetry operations on one field: translations, reflections, (2D) axis swap."""
    ops = {"translate": lambda x: jnp.roll(x, (1,) * lat.d, axis=tuple(range(lat.d))),
           "reflect": lambda x: jnp.flip(x, axis=0)}
    if lat.d == 1:
        ops["translate2"] = lambda x: jnp.roll(x, 2, axis=0)
    if lat.d >= 2:
        ops["swap_axes"] = lambda x: jnp.swapaxes(x, 0, 1)
        ops["reflect_y"] = lambda x: jnp.flip(x, axis=1)
    return ops


@pytest.mark.parametrize("name,d,N", _cases(MODEL_NAMES, [(1, 5), (2, 4)]))
def test_lattice_symmetries_and_z2(key, name, d, N):
    """s(gφ) = g s(φ) and ∇·s(gφ) = ∇·s(φ) for translations, reflections, axis swaps, φ → −φ."""
    lat, _, model, params, phi = _setup(name, d, N, key)
    t = 0.6
    ops = _transforms(lat)
    fields = jnp.stack([phi, -phi] + [op(phi) for op in ops.values()])
    scores, divs = jax.jit(jax.vmap(lambda x: model.apply(params, x, t)))(fields)  # one compilation
    s, div = scores[0], divs[0]
    for i, (label, op) in enumerate(ops.items()):
        np.testing.assert_allclose(scores[2 + i], op(s), atol=1e-11, err_msg=label)
        np.testing.assert_allclose(divs[2 + i], div, rtol=1e-11, err_msg=label)
    s_m, div_m = scores[1], divs[1]
    np.testing.assert_allclose(s_m, -s, atol=1e-12)
    np.testing.assert_allclose(div_m, div, rtol=1e-11)
    # and the test is not vacuous: the field itself is not symmetric
    assert float(jnp.max(jnp.abs(jnp.roll(phi, 1, axis=0) - phi))) > 1e-2


def test_orbits_and_shells():
    lat = qrg.Lattice(2, 4)
    orbits, n = hypercubic_orbits(lat)
    # displacements (0,0),(0,1),(1,1),(0,2),(1,2),(2,2) on a 4×4 torus
    assert n == 6
    assert orbits[0, 1] == orbits[1, 0] == orbits[0, 3] == orbits[3, 0]
    assert orbits[1, 2] == orbits[2, 1] == orbits[3, 2] == orbits[2, 3]
    assert orbits[1, 1] != orbits[0, 2]
    classes, n_cls = lat.momentum_shells()
    assert n_cls == len(np.unique(np.round(lat.phat2, 10)))
    chain_orbits, n_chain = hypercubic_orbits(qrg.Lattice(1, 8))
    assert n_chain == 5 and chain_orbits[3] == chain_orbits[5]


def test_gaussian_bridge_score_is_exact_bridge(key):
    theory = qrg.Phi4.chain(6, 0.8, 0.0)
    lat = theory.lattice
    sch = qrg.CarossoM(lat, 1.0)
    c0 = theory.free_ground_variance()
    model = GaussianBridge.create(lat, sch, c0)
    params = model.init(key, jnp.zeros(lat.shape), 0.0)
    phi = jax.random.normal(key, lat.shape)
    for t in (0.0, 0.4, 2.0):
        s, div = model.apply(params, phi, t)
        bridge = sch.bridge(t, c0)
        np.testing.assert_allclose(s, bridge.score(phi), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(div, bridge.score_divergence(), rtol=1e-12)


def test_eft_residual_is_orthogonal_and_couplings_start_at_fit(key):
    lat, sch, model, params, phi = _setup("eft", 2, 4, key)
    t = 0.5
    s, _ = model.apply(params, phi, t)
    f = model.apply(params, t, method="couplings")
    g = jnp.stack([lat.laplacian(phi), phi, phi**3])
    residual = s - jnp.tensordot(f, g, axes=1)
    overlaps = jnp.sum(g * residual[None], axis=(1, 2)) / (jnp.linalg.norm(g.reshape(3, -1), axis=1) * jnp.linalg.norm(residual))
    np.testing.assert_allclose(overlaps, 0.0, atol=1e-10)
    assert float(jnp.linalg.norm(residual)) > 1e-3  # the residual is really there
    # freshly initialised couplings are (close to) the local fit of the reference bridge precision
    fresh = EFTScore(lat, sch)
    p0 = fresh.init(key, phi, 0.0)
    f0 = fresh.apply(p0, 1.0, method="couplings")
    c_tau = np.asarray(sch.bridge_variance(1.0, qrg.models.base.default_variance0(lat)))
    c1, c0 = np.polyfit(lat.phat2.ravel(), 1.0 / c_tau.ravel(), 1)
    # tolerance: the fresh coupling network adds out_scale (1e-3) × O(1) random outputs to the fit
    np.testing.assert_allclose(f0, [c1, -c0, 0.0], atol=1e-2)
    # prior variance = 1/(f_Δ p̂² − f_φ) at T
    np.testing.assert_allclose(fresh.apply(p0, 1.0, method="prior_variance"), 1.0 / (f0[0] * lat.phat2 - f0[1]), rtol=1e-12)


def test_composite_sums_members(key):
    lat = qrg.Lattice(1, 5)
    sch = qrg.CarossoM(lat, 1.0)
    model = make_model("default", lat, sch, out_scale=1.0)
    assert isinstance(model, Composite)
    phi = jax.random.normal(key, lat.shape)
    params = model.init(key, phi, 0.2)
    s, div = model.apply(params, phi, 0.2)
    bridge = GaussianBridge(lat, sch)
    net = KernelNet(lat, sch, out_scale=1.0, growth=True)  # the default model's kernel network has the φ|φ| feature
    s1, d1 = bridge.apply({"params": params["params"]["members_0"]}, phi, 0.2)
    s2, d2 = net.apply({"params": params["params"]["members_1"]}, phi, 0.2)
    np.testing.assert_allclose(s, s1 + s2, rtol=1e-12)
    np.testing.assert_allclose(div, d1 + d2, rtol=1e-12)
    np.testing.assert_allclose(model.apply(params, 0.9, method="prior_variance"), sch.bridge_variance(0.9, qrg.models.base.default_variance0(lat)), rtol=1e-12)


def test_default_model_starts_near_gaussian_bridge(key):
    lat = qrg.Lattice(1, 8)
    sch = qrg.CarossoM(lat, 1.0)
    model = make_model("default", lat, sch)
    phi = 0.5 * jax.random.normal(key, lat.shape)
    params = model.init(key, phi, 0.2)
    s, _ = model.apply(params, phi, 0.2)
    s_bridge, _ = GaussianBridge(lat, sch).apply({"params": params["params"]["members_0"]}, phi, 0.2)
    assert float(jnp.linalg.norm(s - s_bridge)) < 1e-2 * float(jnp.linalg.norm(s_bridge))


def test_make_model_validation():
    lat = qrg.Lattice(1, 4)
    sch = qrg.CarossoM(lat, 1.0)
    with pytest.raises(qrg.QRGInputError, match="model"):
        make_model("transformer", lat, sch)
    with pytest.raises(qrg.QRGInputError, match="unknown options"):
        make_model("gaussian", lat, sch, width=3)
    with pytest.raises(qrg.QRGInputError, match="lattice"):
        make_model("gaussian", qrg.Lattice(1, 5), sch)
    with pytest.raises(qrg.QRGInputError, match="variance0"):
        make_model("default", lat, sch, variance0=np.zeros(4))
    for name in MODEL_NAMES:
        base, _, coll = name.partition("_")
        assert make_model(base, lat, sch, **({"collective": True} if coll else {})).lattice == lat


def test_eft_residual_refuses_lattices_too_small_for_its_projection():
    import qrg

    for n in (1, 2):
        lat = qrg.Lattice(1, n)
        with pytest.raises(qrg.QRGInputError, match="at least 4 sites"):
            qrg.make_model("eft", lat, qrg.CarossoM(lat, 1.0))
    lat = qrg.Lattice(1, 1)
    qrg.make_model("eft", lat, qrg.CarossoM(lat, 1.0), residual=False)  # the couplings alone are fine
