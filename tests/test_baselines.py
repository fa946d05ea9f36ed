"""The baseline interface (qrg.baselines.base): registry, Reference, applicability, options."""

import json

import numpy as np
import pytest

from qrg import Lattice, Phi4, QRGInputError
from qrg.baselines import BASELINES, Baseline, ExactDiagonalisation, ExactFree, Reference, get_baseline
from qrg.cli import main

# the keys `qrg reference` printed before the Reference type existed (they must stay)
OLD_KEYS = {
    "exact": {"method", "d", "N", "a", "m2", "lam", "energy", "energy_per_site", "phi2"},
    "ed": {"method", "d", "N", "a", "m2", "lam", "energy", "energy_per_site", "phi2", "error_estimate", "local_dim",
           "local_dims", "energies", "basis", "basis_omega", "correlation", "residual", "wall_time_s"},
}


def test_registry_holds_every_baseline_with_a_summary():
    assert set(BASELINES) == {"exact", "ed", "dmrg", "netket-gaussian", "netket-neural"}
    for name in BASELINES:
        cls = BASELINES.get(name)
        assert issubclass(cls, Baseline) and cls.name == name and cls.summary
        assert isinstance(get_baseline(name), cls)
    assert not BASELINES.get("netket-neural").deterministic and BASELINES.get("dmrg").deterministic
    with pytest.raises(QRGInputError, match="method must be one of"):
        get_baseline("dmft")


def test_exact_reference_is_the_free_theory():
    th = Phi4(Lattice(2, 4, 0.8), 0.7, 0.0)
    ref = get_baseline("exact").run(th)
    assert ref.method == "exact" and ref.energy == th.free_ground_energy()
    assert ref.energy_err == 0 and ref.error_estimate == 0
    c = th.free_ground_variance()
    # consistency of the observables: C(0) = <φ²>, Σ_r C(r) = V <M²>, and <M²> = c_0 / V
    np.testing.assert_allclose(ref.correlation.flat[0], ref.phi2, rtol=1e-13)
    np.testing.assert_allclose(ref.correlation.sum(), th.lattice.n_sites * ref.M2, rtol=1e-12)
    np.testing.assert_allclose(ref.M2, c.flat[0] / 16, rtol=1e-14)
    assert ref.correlation.shape == (4, 4)
    out = ref.to_json()
    assert OLD_KEYS["exact"] <= set(out) and json.loads(json.dumps(out)) == out
    assert out["rms_M"] == pytest.approx(np.sqrt(ref.M2), rel=1e-15)


def test_exact_does_not_apply_to_an_interacting_theory():
    th = Phi4.chain(4, 1.0, 6.0)
    assert not ExactFree().applies(th)
    assert "free theory" in ExactFree().why_not(th)
    with pytest.raises(QRGInputError, match="free theory"):
        ExactFree().run(th)


def test_ed_applicability_names_the_size():
    ed = ExactDiagonalisation()
    assert ed.applies(Phi4.from_params(d=2, N=2, m2=1.0, lam=1.0))
    reason = ed.why_not(Phi4.chain(6, 1.0, 1.0))
    assert "N = 6" in reason and "too large" in reason
    assert ed.applies(Phi4.chain(6, 1.0, 1.0), local_dims=(3, 4))  # explicit small bases fit
    assert "too large" in ed.why_not(Phi4.chain(6, 1.0, 1.0), local_dims=(10, 20))


def test_ed_reference_keeps_its_keys_and_error_split():
    ref = get_baseline("ed").run(Phi4.chain(2, 1.0, 6.0), local_dims=(8, 10))
    assert isinstance(ref, Reference)
    assert ref.energy_err == 0 and ref.error_estimate > 0  # deterministic: truncation only
    out = ref.to_json()
    assert OLD_KEYS["ed"] <= set(out)
    assert out["energies"][-1] == out["energy"] and out["local_dims"] == [8, 10]


def test_unknown_option_is_refused_with_the_allowed_ones():
    with pytest.raises(QRGInputError, match=r"\['chis'\] do not apply to the ed baseline.*local_dims"):
        get_baseline("ed").run(Phi4.chain(2, 1.0, 1.0), chis=(8, 16))
    with pytest.raises(QRGInputError, match="seed"):
        get_baseline("exact").run(Phi4.chain(2, 1.0, 0.0), seed=1)
    assert "ansatz" not in get_baseline("netket-neural").option_names()
    assert "time_budget_s" in get_baseline("netket-neural").option_names()


def test_reference_details_cannot_shadow_standard_keys():
    th = Phi4.chain(2, 1.0, 0.0)
    with pytest.raises(ValueError, match="energy_err"):
        Reference("x", th, 1.0, details={"energy_err": 0.1})
    with pytest.raises(ValueError):
        Reference("x", th, 1.0, correlation=np.zeros(3))  # not the lattice's shape


def test_cli_reference_rejects_flags_of_other_methods(capsys):
    assert main(["reference", "--method", "ed", "--N", "2", "--m2", "1", "--lam", "1", "--chi", "8"]) == 2
    assert "--chi/--chis do not apply to --method ed" in capsys.readouterr().err
    assert main(["reference", "--method", "exact", "--N", "2", "--m2", "1", "--lam", "0", "--seed", "3"]) == 2
    assert "--seed" in capsys.readouterr().err
