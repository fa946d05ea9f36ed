"""Infinite-chain iDMRG (qrg.baselines.idmrg): the Hamiltonian against finite periodic DMRG, the two phases,
and the order-parameter fit for the critical point."""

import json
import pathlib

import numpy as np
import pytest

from qrg import QRGInputError
from qrg.baselines.idmrg import BETA, infinite_chain_state, order_parameter_critical_point

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _dmrg_chain32_energy():
    """E of the N = 32 periodic chain (1, 6) from the stored DMRG reference of the benchmark suite."""
    for line in (ROOT / "BENCHMARKS.md").read_text().splitlines():
        if line.startswith("## Target problem: chain N = 32 (m² = 1, λ = 6), DMRG reference"):
            return float(line.split("reference")[1].split("±")[0])
    raise AssertionError("the N = 32 DMRG reference line is missing from BENCHMARKS.md")


def test_energy_per_site_matches_finite_periodic_dmrg():
    # gapped point (ξ ≈ 0.8 sites): the N = 32 ring's energy per site equals the infinite chain's up to
    # exponentially small finite-size terms, so this checks the Hamiltonian (on-site terms, hopping, units)
    rec, psi = infinite_chain_state(6.0, 1.0, chi=8, local_dim=6)
    assert rec["converged"]
    assert abs(rec["energy_per_site"] - _dmrg_chain32_energy() / 32) < 1e-8
    assert abs(rec["phi"]) < 1e-8  # symmetric phase, though started from a tilted product state
    assert 0.5 < rec["xi"] < 1.0


def test_broken_phase_orders_and_continues_from_a_state():
    rec, psi = infinite_chain_state(6.0, -3.0, chi=8, local_dim=6)
    assert rec["phi"] > 1.0  # the φ > 0 vacuum (classical minimum sqrt(−6m²/λ) = 1.73)
    again, _ = infinite_chain_state(6.0, -3.0, chi=8, local_dim=6, init=psi, min_sweeps=2)
    assert abs(again["phi"] - rec["phi"]) < 1e-6  # continued from the converged state: it stays there
    assert abs(again["energy_per_site"] - rec["energy_per_site"]) < 1e-10


@pytest.mark.parametrize("bad, name", [({"lam": 0.0}, "lam"), ({"lam": -1.0}, "lam"), ({"chi": 1}, "chi"),
                                       ({"local_dim": 1}, "local_dim"), ({"a": 0.0}, r"a \(lattice")])
def test_bad_input_names_the_parameter(bad, name):
    kw = {"lam": 6.0, "m2": 1.0, "chi": 8, "local_dim": 6, **bad}
    with pytest.raises(QRGInputError, match=name):
        infinite_chain_state(kw.pop("lam"), kw.pop("m2"), **kw)


def _synthetic(m2c, m2s, chi=32, amp=1.1, corr=0.8, chi_shift=0.0):
    out = []
    for m2 in m2s:
        t = m2c - m2
        phi = 0.0 if t <= 0 else amp * t**BETA * (1.0 + corr * t)
        out.append({"m2": m2, "chi": chi, "phi": phi + (chi_shift if phi else 0.0)})
        out.append({"m2": m2, "chi": chi // 2, "phi": phi})
    return out


def test_order_parameter_fit_recovers_a_known_critical_point():
    m2s = [-0.66, -0.685, -0.69, -0.70, -0.72, -0.75]
    fit = order_parameter_critical_point(_synthetic(-0.6774, m2s))
    assert fit["symmetric_m2"] == [-0.66]
    assert fit["n_points"] == 5
    # log φ = log A + β log t + log(1 + c t): one linear correction carries a model error; the quoted
    # error (from the variant fits) covers it
    assert abs(fit["m2c"] - (-0.6774)) <= fit["m2c_err"]
    assert fit["m2c_err"] < 1e-3
    # without the correction the model is exact
    exact = order_parameter_critical_point(_synthetic(-0.6774, m2s, corr=0.0))
    assert abs(exact["m2c"] - (-0.6774)) < 1e-8


def test_order_parameter_fit_reports_the_bond_dimension_error():
    m2s = [-0.685, -0.69, -0.70, -0.72, -0.75]
    base = order_parameter_critical_point(_synthetic(-0.6774, m2s, corr=0.0))
    shifted = order_parameter_critical_point(_synthetic(-0.6774, m2s, corr=0.0, chi_shift=0.01))
    assert shifted["fits"]["smaller_chi"] == pytest.approx(base["m2c"], abs=1e-8)
    assert shifted["m2c_err"] >= abs(shifted["m2c"] - base["m2c"]) > 1e-4


def test_order_parameter_fit_needs_broken_points_below_the_symmetric_ones():
    with pytest.raises(QRGInputError, match="at least 5 converged broken-phase points"):
        order_parameter_critical_point(_synthetic(-0.6774, [-0.60, -0.65, -0.69, -0.70, -0.72, -0.75]))
    pts = _synthetic(-0.6774, [-0.685, -0.69, -0.70, -0.72, -0.75]) + [{"m2": -0.71, "chi": 32, "phi": 0.0}]
    with pytest.raises(QRGInputError, match="symmetric point"):
        order_parameter_critical_point(pts)


def test_records_are_json_ready():
    rec, _ = infinite_chain_state(6.0, 1.0, chi=4, local_dim=4, max_sweeps=20)
    json.dumps(rec)
    assert np.isfinite(rec["energy_per_site"])


def _write_records(d, lam, m2c, local_dim=8, chis=(16, 32)):
    """Records of an order parameter φ = 1.1 t^β (1 + 0.5 t) with its zero at m2c, as `critical_point` writes them."""
    from qrg.baselines.idmrg import default_m2_grid

    d.mkdir(parents=True)
    with (d / "points.jsonl").open("w") as fh:
        for m2 in default_m2_grid(lam):  # the grid `qrg critical` uses without --m2
            t = m2c - m2
            phi = 1.1 * t**BETA * (1 + 0.5 * t) if t > 0 else 0.0
            for chi in chis:
                fh.write(json.dumps({"lam": lam, "a": 1.0, "local_dim": local_dim, "m2": m2, "chi": chi,
                                     "phi": phi}) + "\n")


def test_cli_critical_resumes_fits_and_extrapolates_to_the_continuum(tmp_path, capsys):
    # records placed on the continuum critical line m²_c(λ) of f_c = 11.1097 at three λ: the fit must find
    # each m²_c, the conversion f = 11.1097 at every λ, and the extrapolation f_c = 11.1097 (nothing is run)
    from qrg.cli import main
    from qrg.continuum import continuum_critical_m2

    for lam in (1.0, 2.4, 6.0):
        _write_records(tmp_path / f"lam_{lam:g}", lam, continuum_critical_m2(lam))
    assert main(["critical", "--lam", "1,2.4,6", "--chis", "16,32", "--out", str(tmp_path), "--resume"]) == 0
    out = capsys.readouterr().out
    assert "\n  m2 = " not in out  # every record came from the directory
    cont = json.loads((tmp_path / "continuum.json").read_text())
    for p in cont["points"]:
        assert p["m2c"] == pytest.approx(continuum_critical_m2(p["lam"]), abs=max(p["m2c_err"], 1e-9))
        assert abs(p["f"] - 11.1097) <= p["f_err"] < 0.01 * 11.1097  # the m²_c error, propagated, covers it
    fit = cont["fit"]
    assert abs(fit["fc"] - 11.1097) <= fit["fc_err"] < 0.01 * 11.1097
    assert "f_c (order-1 extrapolation" in out
    assert (tmp_path / "continuum.png").exists()
    crit = json.loads((tmp_path / "lam_2.4" / "critical.json").read_text())
    assert crit["fit"]["n_points"] == 5 and not crit["fit"]["symmetric_m2"]


def test_cli_critical_runs_idmrg_and_reports_a_missing_fit(tmp_path, capsys):
    from qrg.cli import main

    args = ["critical", "--lam", "6", "--m2=-3,1", "--chis", "4,8", "--local-dim", "4", "--out", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.count("\n  m2 = ") == 4  # two m², two χ each
    assert "no critical point: the order-parameter fit needs at least 5 converged broken-phase points" in out
    lines = (tmp_path / "lam_6" / "points.jsonl").read_text().splitlines()
    assert len(lines) == 4
    assert main(args) == 2  # the directory holds records: refused without --resume
    assert "exists: continue with resume" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 0  # nothing recomputed
    assert capsys.readouterr().out.count("\n  m2 = ") == 0
    assert (tmp_path / "lam_6" / "points.jsonl").read_text().splitlines() == lines  # append-only
    # resuming with another χ ramp redoes both m² and appends; the earlier records stay in the file
    assert main(args[:4] + ["--chis", "4,6", "--local-dim", "4", "--out", str(tmp_path), "--resume"]) == 0
    assert capsys.readouterr().out.count("\n  m2 = ") == 4
    assert (tmp_path / "lam_6" / "points.jsonl").read_text().splitlines()[:4] == lines


def test_cli_critical_bad_input(tmp_path, capsys):
    from qrg.cli import main

    assert main(["critical", "--lam", "1,2", "--m2=-0.3", "--out", str(tmp_path)]) == 2
    assert "--m2 sets the grid of one --lam" in capsys.readouterr().err
    assert main(["critical", "--lam", "0", "--out", str(tmp_path)]) == 2
    assert "lam (quartic coupling" in capsys.readouterr().err
    assert main(["critical", "--lam", "6", "--chis", "32,16", "--out", str(tmp_path)]) == 2
    assert "chis must be strictly increasing" in capsys.readouterr().err
    assert main(["critical", "--lam", "6", "--max-sweeps", "0", "--out", str(tmp_path)]) == 2
    assert "--max-sweeps" in capsys.readouterr().err


def test_cli_critical_fit_only_uses_every_chi_and_never_rewrites_the_records(tmp_path, capsys):
    from qrg.cli import main
    from qrg.continuum import continuum_critical_m2

    _write_records(tmp_path / "lam_6", 6.0, continuum_critical_m2(6.0), chis=(16, 32))  # not the default 16, 32, 48
    before = (tmp_path / "lam_6" / "points.jsonl").read_bytes()
    assert main(["critical", "--lam", "6", "--out", str(tmp_path), "--fit-only"]) == 0
    out = capsys.readouterr().out
    assert "\n  m2 = " not in out and "m2_c = " in out
    crit = json.loads((tmp_path / "lam_6" / "critical.json").read_text())
    assert crit["chis"] == [16, 32] and crit["fit"]["n_points"] == 5
    # --resume with the default chis finds no complete ramp; the records stay on disk, untouched by the fit
    assert (tmp_path / "lam_6" / "points.jsonl").read_bytes() == before
    assert main(["critical", "--lam", "2.4", "--out", str(tmp_path), "--fit-only"]) == 2
    assert "fit_only: no records of lam = 2.4" in capsys.readouterr().err


def test_order_parameter_fit_leaves_out_an_unconverged_point():
    m2s = [-0.685, -0.69, -0.70, -0.72, -0.75]
    pts = _synthetic(-0.6774, m2s, corr=0.0)
    base = order_parameter_critical_point(pts)
    bad = [{"m2": -0.679, "chi": 16, "phi": 0.9, "converged": True}, {"m2": -0.679, "chi": 32, "phi": 0.9, "converged": False}]
    fit = order_parameter_critical_point(pts + bad)
    assert fit["unconverged_m2"] == [-0.679] and fit["n_points"] == 5
    assert fit["m2c"] == pytest.approx(base["m2c"], abs=1e-12)


def test_a_stable_order_parameter_counts_as_converged():
    # s_tol = 0 can never be met: the state converges through the energy and ⟨φ⟩'s stability alone
    rec, _ = infinite_chain_state(6.0, -3.0, chi=8, local_dim=6, s_tol=0.0, max_sweeps=200)
    assert rec["converged"] and rec["sweeps"] < 200
    assert rec["phi_spread"] is not None and rec["phi_spread"] < 1e-4
    # with phi_tol = 0 as well nothing passes: the run stops at max_sweeps and says it did not converge
    rec, _ = infinite_chain_state(6.0, -3.0, chi=8, local_dim=6, s_tol=0.0, phi_tol=0.0, max_sweeps=60)
    assert not rec["converged"] and rec["sweeps"] > 60


def test_cli_critical_suggests_the_next_order_when_the_extrapolation_fits_badly(tmp_path, capsys):
    import shutil

    from qrg.cli import main

    for lam in ("0.5", "1", "2.4", "6"):  # the stored infinite-chain records: a straight line fits badly
        shutil.copytree(ROOT / "benchmarks" / "z2" / "idmrg" / f"lam_{lam}", tmp_path / f"lam_{lam}")
    assert main(["critical", "--lam", "0.5,1,2.4,6", "--order", "1", "--out", str(tmp_path), "--fit-only"]) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("f_c")][0]
    assert "well above 1, try --order 2" in line
