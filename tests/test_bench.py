"""``qrg bench``: the suite machinery end to end (fast: tiny budgets; slow: the real quick suite)."""

import json
import pathlib
import shutil

import numpy as np
import pytest

from qrg import Phi4, QRGInputError
from qrg.bench import METHODS, Limit, Suite, annotate, fit_scaling, run_suite
from qrg.cli import main

FULL = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "full"


def test_fit_scaling_recovers_a_power_law():
    recs = [{"method": "qrg", "sites": s, "time_per_iter_s": 0.01 * s**1.5} for s in (4, 8, 16, 32)]
    fit = fit_scaling(recs)["qrg"]
    assert abs(fit["alpha"] - 1.5) < 1e-12 and fit["sizes"] == [4, 8, 16, 32]


def test_fit_scaling_error_is_the_standard_error_of_the_slope():
    sites = np.array([8, 8, 16, 16, 32, 64])
    t = 1e-3 * sites**1.2 * np.array([1.1, 0.9, 1.05, 0.97, 1.2, 0.8])
    recs = [{"method": "m", "sites": int(s), "time_per_iter_s": float(x)} for s, x in zip(sites, t)]
    recs.append({"method": "reference:dmrg", "sites": 8, "time_per_iter_s": 1.0})  # references are not fitted
    fits = fit_scaling(recs)
    assert list(fits) == ["m"]
    # the textbook formulas: slope = Sxy/Sxx, se² = Σ resid² / ((n − 2) Sxx)
    x, y = np.log(sites), np.log(t)
    sxx = np.sum((x - x.mean()) ** 2)
    slope = np.sum((x - x.mean()) * (y - y.mean())) / sxx
    resid = y - y.mean() - slope * (x - x.mean())
    np.testing.assert_allclose(fits["m"]["alpha"], slope, rtol=1e-12)
    np.testing.assert_allclose(fits["m"]["alpha_err"], np.sqrt(resid @ resid / (len(x) - 2) / sxx), rtol=1e-10)
    two = fit_scaling([{"method": "m", "sites": s, "time_per_iter_s": s**2.0} for s in (4, 8)])["m"]
    assert abs(two["alpha"] - 2) < 1e-12 and np.isnan(two["alpha_err"])  # no scatter to estimate it from


def test_annotate_relative_error_and_variational_winner():
    recs = [{"method": "a", "energy": 10.1, "energy_err": 0.01}, {"method": "b", "energy": 10.0, "energy_err": 0.02}]
    annotate(recs, {"energy": 9.9})
    np.testing.assert_allclose([r["rel_error"] for r in recs], [0.2 / 9.9, 0.1 / 9.9])
    np.testing.assert_allclose([r["rel_error_sigma"] for r in recs], [0.01 / 9.9, 0.02 / 9.9])
    # a systematic error (qrg's ODE discretisation estimate) enters σ in quadrature
    recs = [{"method": "qrg", "energy": 10.0, "energy_err": 0.03, "energy_sys": 0.04}]
    annotate(recs, {"energy": 9.9})
    np.testing.assert_allclose(recs[0]["rel_error_sigma"], 0.05 / 9.9)
    # so does the reference's own truncation estimate
    recs = [{"method": "qrg", "energy": 10.0, "energy_err": 0.03}]
    annotate(recs, {"energy": 9.9, "error_estimate": 0.04})
    np.testing.assert_allclose(recs[0]["rel_error_sigma"], 0.05 / 9.9)
    recs = [{"method": "a", "energy": 10.1}, {"method": "b", "energy": 10.0}]
    annotate(recs, None)
    assert recs[1]["is_best"] and not recs[0]["is_best"] and abs(recs[0]["delta_vs_best"] - 0.1) < 1e-12
    recs = [{"method": "a", "energy": 10.1, "energy_err": 0.03}, {"method": "b", "energy": 10.0, "energy_err": 0.04}]
    annotate(recs, None)
    assert abs(recs[0]["delta_sigma"] - 2.0) < 1e-12 and "delta_sigma" not in recs[1]


def test_tiny_suite_reference_and_netket(tmp_path):
    suite = Suite("tiny", problems=((1, 4, 1.0, 6.0),), qrg={},
                  netket_gaussian={"n_iter": 3, "n_samples": 128, "n_eval_samples": 256},
                  netket_neural={}, dmrg={"local_dims": (6, 8), "chis": (8, 16)})
    res = run_suite(suite, out=tmp_path, methods=("reference", "netket-gaussian"), log=lambda *a: None)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["suite"] == "tiny" and len(saved["records"]) == 2
    ref, nkg = saved["records"][0], saved["records"][1]
    assert ref["method"] == "reference:ed" and abs(ref["energy"] - 3.6071411453) < 1e-9
    assert nkg["method"] == "netket-gaussian" and "rel_error" in nkg and nkg["energy_err"] > 0
    for f in ("results.md", "rel_error.png", "variance.png", "wall_time.png", "time_to_accuracy.png",
              "time_per_iter.png"):
        assert (tmp_path / f).stat().st_size > 0
    assert "reference:ed" in (tmp_path / "results.md").read_text()
    assert res["records"][1]["history"]


def test_a_failing_method_is_recorded_and_the_suite_goes_on(tmp_path):
    suite = Suite("tiny", problems=((1, 4, 1.0, 0.0), (1, 5, 1.0, 0.0)), qrg={"steps": -1},
                  netket_gaussian={}, netket_neural={}, dmrg={})
    res = run_suite(suite, out=tmp_path, methods=("reference", "qrg"), log=lambda *a: None)
    failed = [r for r in res["records"] if r["method"] == "qrg"]
    assert len(failed) == 2 and all("steps" in r["error"] and "energy" not in r for r in failed)
    assert "FAILED" in (tmp_path / "results.md").read_text()
    assert json.loads((tmp_path / "results.json").read_text())["complete"]


def test_reference_choice():
    from qrg.bench import SUITES, run_reference

    assert run_reference(Phi4.chain(64, 1.0, 0.0), SUITES["quick"]).method == "exact"
    assert run_reference(Phi4.from_params(d=2, N=2, m2=1.0, lam=1.0), SUITES["quick"]).method == "ed"
    # DMRG applies to the 4x4 torus, but the suites limit it to chains: no reference
    assert run_reference(Phi4.from_params(d=2, N=4, m2=1.0, lam=1.0), SUITES["quick"]) is None


def test_a_suite_reference_must_be_a_deterministic_baseline():
    with pytest.raises(QRGInputError, match="deterministic"):
        Suite("x", problems=(), qrg={}, netket_gaussian={}, netket_neural={}, dmrg={}, references=("netket-gaussian",))
    with pytest.raises(QRGInputError, match="references must be one of"):
        Suite("x", problems=(), qrg={}, netket_gaussian={}, netket_neural={}, dmrg={}, references=("magic",))


def test_any_registered_baseline_is_a_bench_method_and_limits_skip_it(tmp_path):
    suite = Suite("tiny", problems=((1, 2, 1.0, 6.0), (1, 3, 1.0, 6.0)), qrg={}, netket_gaussian={},
                  netket_neural={}, dmrg={}, ed={"local_dims": (8, 10)}, references=("exact", "ed"),
                  limits={"ed": Limit(max_sites=2)})
    logs = []
    res = run_suite(suite, out=tmp_path, methods=("reference", "ed"), log=logs.append)
    recs = {(r["N"], r["method"]): r for r in res["records"]}
    assert set(recs) == {(2, "reference:ed"), (2, "ed")}  # the limit holds for the reference role too
    # the same baseline with the same options is its own reference: no error at all
    assert recs[2, "ed"]["rel_error"] == 0 and recs[2, "ed"]["energy_err"] == 0
    ref = recs[2, "reference:ed"]
    assert recs[2, "ed"]["rel_error_sigma"] == pytest.approx(ref["error_estimate"] / ref["energy"], rel=1e-12)
    assert any("not run: 3 sites > the suite's limit of 2" in line for line in logs)


def test_resume_renders_the_committed_full_results_without_running(tmp_path):
    """``--resume`` on the complete full suite re-reads results.json and writes the same results.md."""
    shutil.copy(FULL / "results.json", tmp_path / "results.json")
    logs = []
    res = run_suite("full", out=tmp_path, methods=METHODS, seed=0, resume=True, log=logs.append)
    assert logs and all("done in the previous run (resume), skipped" in line for line in logs)
    assert (tmp_path / "results.md").read_text() == (FULL / "results.md").read_text()
    old = json.loads((FULL / "results.json").read_text())
    assert res["complete"] and res["records"] == old["records"] and res["equal_time"] == old["equal_time"]
    assert res["machine"] == old["machine"]  # nothing ran: the machine is still the one that did
    for method, fit in old["scaling"].items():
        assert res["scaling"][method]["sizes"] == fit["sizes"]
        np.testing.assert_allclose(res["scaling"][method]["alpha"], fit["alpha"], rtol=1e-13)
        np.testing.assert_allclose(res["scaling"][method]["alpha_err"], fit["alpha_err"], rtol=1e-13)


def test_bad_suite_and_method(tmp_path):
    with pytest.raises(QRGInputError, match="suite"):
        run_suite("huge", out=tmp_path)
    with pytest.raises(QRGInputError, match=r"methods must be among \('reference', 'qrg', 'exact'"):
        run_suite("quick", out=tmp_path, methods=("qrg", "dmft"))
    assert main(["bench", "--suite", "nope", "--out", str(tmp_path)]) == 2


@pytest.mark.slow
def test_quick_suite_end_to_end(tmp_path):
    assert main(["bench", "--suite", "quick", "--out", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "results.json").read_text())
    methods = {r["method"] for r in saved["records"]}
    assert {"reference:dmrg", "qrg", "netket-gaussian", "netket-neural"} <= methods
    assert not [r for r in saved["records"] if "error" in r]
    for r in saved["records"]:
        if r["method"] in ("qrg", "netket-gaussian", "netket-neural"):
            # variational: no method below the DMRG reference beyond 5 standard errors
            ref = [x for x in saved["records"] if x["problem"] == r["problem"] and x["method"] == "reference:dmrg"][0]
            assert r["energy"] > ref["energy"] - 5 * r["energy_err"] - ref["error_estimate"]


def test_resume_keeps_finished_problems_and_filters(tmp_path):
    suite = Suite("tiny2", problems=((1, 2, 1.0, 6.0), (1, 3, 1.0, 6.0), (1, 3, 1.0, 0.0)), qrg={},
                  netket_gaussian={}, netket_neural={}, dmrg={})
    calls = []
    run_suite(suite, out=tmp_path, methods=("reference",), N=(2,), log=calls.append)
    first = json.loads((tmp_path / "results.json").read_text())
    assert not first["complete"] and first["problems_done"] == ["chain N=2 (m²=1, λ=6)"]
    e_first = first["records"][0]["energy"]
    # resume with every size: N=2 is not rerun, the two N=3 problems are
    calls.clear()
    res = run_suite(suite, out=tmp_path, methods=("reference",), resume=True, log=calls.append)
    assert any("skipped" in c for c in calls) and res["complete"]
    assert [r["problem"] for r in res["records"]] == [
        "chain N=2 (m²=1, λ=6)", "chain N=3 (m²=1, λ=6)", "chain N=3 (m²=1, λ=0)"]
    assert res["records"][0]["energy"] == e_first
    assert (tmp_path / "results.md").exists()
    # a resume with another method list is refused, naming what differs
    with pytest.raises(QRGInputError, match="cannot resume"):
        run_suite(suite, out=tmp_path, methods=("reference", "qrg"), resume=True, log=calls.append)
    with pytest.raises(QRGInputError, match="no problem"):
        run_suite(suite, out=tmp_path, methods=("reference",), N=(64,))
    assert main(["bench", "--suite", "quick", "--N", "8,x", "--out", str(tmp_path)]) == 2


def test_resume_retry_failed_reruns_only_the_failed_method(tmp_path):
    problems = ((1, 4, 1.0, 6.0), (1, 3, 1.0, 0.0))
    bad = Suite("tiny3", problems=problems, qrg={},
                netket_gaussian={"n_iter": -1}, netket_neural={}, dmrg={})
    methods = ("reference", "netket-gaussian")
    first = run_suite(bad, out=tmp_path, methods=methods, log=lambda *a: None)
    assert sum("error" in r for r in first["records"]) == 2
    e_ref = [r["energy"] for r in first["records"] if r["method"] == "reference:ed"][0]
    good = Suite("tiny3", problems=problems, qrg={},
                 netket_gaussian={"n_iter": 3, "n_samples": 128, "n_eval_samples": 256}, netket_neural={}, dmrg={})
    calls = []
    with pytest.raises(QRGInputError, match="--resume"):
        run_suite(good, out=tmp_path, methods=methods, retry_failed=True, log=calls.append)
    # a plain resume keeps the failures
    res = run_suite(good, out=tmp_path, methods=methods, resume=True, log=calls.append)
    assert sum("error" in r for r in res["records"]) == 2 and all("skipped" in c for c in calls)
    calls.clear()
    res = run_suite(good, out=tmp_path, methods=methods, resume=True, retry_failed=True, log=calls.append)
    assert not [r for r in res["records"] if "error" in r] and res["complete"]
    assert sum("retrying the failed netket-gaussian" in c for c in calls) == 2
    assert not any(c.strip().startswith("reference") for c in calls)  # the references were kept, not rerun
    refs = [r for r in res["records"] if r["method"].startswith("reference")]
    assert len(refs) == 2 and refs[0]["energy"] == e_ref
    nkg = [r for r in res["records"] if r["method"] == "netket-gaussian"]
    assert len(nkg) == 2 and all("rel_error" in r for r in nkg)  # annotated against the kept reference
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved["records"]) == 4
