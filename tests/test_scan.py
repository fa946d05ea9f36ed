"""``qrg scan`` (qrg.scan): ground states along a line of m², warm starts, resume, the Binder crossing, the CLI."""

import csv
import json

import numpy as np
import pytest

from qrg import Phi4, QRGInputError
from qrg.cli import main
from qrg.scan import (binder_crossing, combine_seeds, combine_values, crossings, merge_scans, params_digest, plot_scans,
                      point_label, read_scan, scan)

# a tiny qrg solve per point (the Gaussian-bridge model keeps the compilation short)
TINY = {"model": "gaussian", "steps": 4, "batch": 8, "n_steps": 4, "eval_n_steps": 4, "eval_batch": 64,
        "local_batch": 16, "systematic_batch": 0, "consistency_batch": 0, "checkpoint_every": 0}
TINY_FLAGS = ["--model", "gaussian", "--steps", "4", "--batch", "8", "--n-steps", "4", "--eval-n-steps", "4",
              "--eval-batch", "64", "--local-batch", "16", "--systematic-batch", "0", "--consistency-batch", "0",
              "--checkpoint-every", "0"]
SAMPLES = 64
OBS = ("M", "abs_M", "M2", "M4", "U4", "phi2", "peak_weight", "variance")


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """A qrg scan of one point (as if interrupted after it)."""
    out = tmp_path_factory.mktemp("scan") / "chain4"
    return {"out": out, "data": scan(1, 4, 6.0, [1.0], out=out, options=TINY, n_samples=SAMPLES)}


@pytest.fixture(scope="module")
def resumed(first):
    """The scan of ``first`` resumed with a second m²."""
    calls = []
    data = scan(1, 4, 6.0, [1.0, 0.5], out=first["out"], options=TINY, n_samples=SAMPLES, resume=True,
                on_point=lambda rec, kept: calls.append((rec["label"], kept)))
    return {"out": first["out"], "data": data, "calls": calls}


def _check_point(p, out):
    for key in ("label", "m2", "lam", "energy", "energy_err", "energy_per_site", "energy_per_site_err",
                "wall_time_s", "method", "status", "steps", "seed", "warm_start", "params_sha256", *OBS):
        assert key in p, key
    assert p["status"] == "completed" and p["steps"] == 4 and p["n_samples"] == SAMPLES and p["method"] == "qrg"
    assert p["energy_per_site"] == pytest.approx(p["energy"] / 4) and p["energy_err"] > 0
    for name in OBS:
        assert set(p[name]) == {"mean", "err"}, name
    for name in ("M", "abs_M", "M2", "M4", "U4", "phi2", "peak_weight"):
        assert np.isfinite(p[name]["mean"]) and p[name]["err"] > 0, name
    assert p["variance"]["mean"] > 0  # Var(E_loc) of the solve's evaluation
    assert p["U4"]["mean"] == pytest.approx(1 - p["M4"]["mean"] / (3 * p["M2"]["mean"] ** 2), rel=1e-12)
    # symmetry checks: <M> = 0 and the weight of the M > 0 peak = 1/2, within 5 sigma on 64 samples
    assert abs(p["M"]["mean"]) < 5 * p["M"]["err"]
    assert abs(p["peak_weight"]["mean"] - 0.5) < 5 * 0.5 / np.sqrt(SAMPLES)
    assert p["abs_M"]["mean"] ** 2 <= p["M2"]["mean"] + 1e-12
    assert json.loads((out / p["run_dir"] / "result.json").read_text())["energy"] == p["energy"]


def test_qrg_scan_writes_json_csv_plot_with_every_key(first):
    out = first["out"]
    data = json.loads((out / "scan.json").read_text())
    assert data == first["data"]
    for key in ("d", "N", "a", "lam", "method", "options", "n_samples", "machine", "points"):
        assert key in data, key
    assert (data["d"], data["N"], data["a"], data["lam"], data["method"]) == (1, 4, 1.0, 6.0, "qrg")
    assert data["options"] == TINY and "jax" in data["machine"]["versions"]
    assert [p["m2"] for p in data["points"]] == [1.0]
    _check_point(data["points"][0], out)
    assert data["points"][0]["warm_start"] == {"from": None, "init_params_sha256": None}  # the first point: cold
    # the solve's warnings travel with the point (the same list as in its run directory's result.json)
    run = json.loads((out / data["points"][0]["run_dir"] / "result.json").read_text())
    assert data["points"][0]["warnings"] == run["warnings"]
    rows = list(csv.DictReader((out / "scan.csv").open()))
    assert len(rows) == 1 and float(rows[0]["U4"]) == data["points"][0]["U4"]["mean"]
    assert float(rows[0]["energy"]) == data["points"][0]["energy"]
    assert (out / "scan.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_qrg_scan_resume_keeps_finished_points_and_warm_starts(first, resumed):
    before, after = first["data"]["points"], resumed["data"]["points"]
    assert resumed["calls"] == [("m2_1", True), ("m2_0.5", False)]  # only the new point was computed
    assert after[0] == before[0]  # the finished point is kept as it was (same wall time, same numbers)
    assert [p["m2"] for p in after] == [1.0, 0.5]
    _check_point(after[1], resumed["out"])
    warm = after[1]["warm_start"]
    # the second point started from the first point's trained parameters, loaded from its run directory
    assert warm["from"] == "m2_1"
    assert warm["init_params_sha256"] == before[0]["params_sha256"]
    assert after[1]["params_sha256"] != before[0]["params_sha256"]  # and then trained on
    from qrg.groundstate import load_run

    assert params_digest(load_run(resumed["out"] / "points" / "m2_1").params) == before[0]["params_sha256"]
    assert json.loads((resumed["out"] / "scan.json").read_text()) == resumed["data"]
    rows = list(csv.DictReader((resumed["out"] / "scan.csv").open()))
    assert [float(r["m2"]) for r in rows] == [0.5, 1.0]  # sorted by m²


def test_resume_continues_a_point_from_its_checkpoint(resumed, tmp_path):
    """Killed after the second point's solve wrote its checkpoint but before scan.json had its record: the
    resumed scan continues that solve from the checkpoint (nothing left to train) and records the same point."""
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(resumed["out"], out)
    data = json.loads((out / "scan.json").read_text())
    done = data["points"].pop()
    (out / "scan.json").write_text(json.dumps(data))
    calls = []
    again = scan(1, 4, 6.0, [1.0, 0.5], out=out, options=TINY, n_samples=SAMPLES, resume=True,
                 on_point=lambda rec, kept: calls.append((rec["label"], kept)))
    assert calls == [("m2_1", True), ("m2_0.5", False)]
    p = again["points"][1]
    assert p["continued_from_checkpoint"] is True and p["warm_start"] == done["warm_start"]
    assert p["params_sha256"] == done["params_sha256"] and p["steps"] == 4
    assert p["energy"] == done["energy"] and p["U4"] == done["U4"]


def test_resume_killed_during_a_new_point_keeps_the_finished_ones(first, tmp_path, monkeypatch):
    """scan.json is rewritten before the first new point is computed: it must hold the finished points of
    the list then, so that a resumed scan killed during a new point loses none of them."""
    import shutil

    import qrg.scan.run as scan_module  # the module whose scan() calls _compute_point

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(scan_module, "_compute_point", killed)
    for order in ([1.0, 0.25], [0.25, 1.0]):
        out = tmp_path / f"copy{order[0]}"
        shutil.copytree(first["out"], out)
        before = {p["label"]: p for p in json.loads((out / "scan.json").read_text())["points"]}
        assert "m2_1" in before and "m2_0.25" not in before
        with pytest.raises(KeyboardInterrupt):
            scan(1, 4, 6.0, order, out=out, options=TINY, n_samples=SAMPLES, resume=True)
        after = {p["label"]: p for p in json.loads((out / "scan.json").read_text())["points"]}
        assert after == before


def test_solve_starts_from_init_params(first, resumed):
    """init_params is what the optimisation starts from: with every step rejected (NaN injected) the trained
    parameters are exactly the given ones, not the Hartree start."""
    from qrg import solve
    from qrg.groundstate import load_run

    state = load_run(first["out"] / "points" / "m2_1")
    theory = Phi4.chain(4, 0.5, 6.0)
    res = solve(theory, init_params=state.params, inject_nan_at=range(4), **TINY)
    assert params_digest(res.params) == first["data"]["points"][0]["params_sha256"]
    assert params_digest(res.params) != params_digest(res.flow.init(__import__("jax").random.PRNGKey(0)))  # Hartree
    assert res.steps_done == 4 and len(res.events) == 4  # every step was rolled back
    # the scan's second point is this warm-started solve (bit for bit), not the cold one
    warm = solve(theory, init_params=state.params, **TINY)
    assert params_digest(warm.params) == resumed["data"]["points"][1]["params_sha256"]
    assert warm.energy.mean == resumed["data"]["points"][1]["energy"]
    cold = solve(theory, **TINY)
    assert params_digest(cold.params) != params_digest(warm.params)
    import jax

    wrong_shape = jax.tree_util.tree_map(lambda x: np.zeros(np.size(x) + 1), state.params)
    with pytest.raises(QRGInputError, match="init_params leaf 0 has shape"):
        solve(theory, init_params=wrong_shape, **TINY)
    with pytest.raises(QRGInputError, match="init_params does not have the structure"):
        solve(theory, init_params={"wrong": np.zeros(3)}, **TINY)
    with pytest.raises(QRGInputError, match="init_params"):
        solve(theory, init_params=state.params, resume=True, out=first["out"] / "points" / "m2_1", **TINY)


def test_scan_refuses_an_existing_or_mismatched_scan(first):
    out = first["out"]
    before = (out / "scan.json").read_text()
    with pytest.raises(QRGInputError, match="--resume.*--force"):
        scan(1, 4, 6.0, [1.0], out=out, options=TINY, n_samples=SAMPLES)
    with pytest.raises(QRGInputError, match=r"different \['lam'\]"):
        scan(1, 4, 5.0, [1.0], out=out, options=TINY, n_samples=SAMPLES, resume=True)
    with pytest.raises(QRGInputError, match=r"different \['options'\]"):
        scan(1, 4, 6.0, [1.0], out=out, options={**TINY, "steps": 5}, n_samples=SAMPLES, resume=True)
    with pytest.raises(QRGInputError, match=r"different \['N'\]"):
        scan(1, 6, 6.0, [1.0], out=out, options=TINY, n_samples=SAMPLES, resume=True)
    with pytest.raises(QRGInputError, match=r"different \['method', 'options'"):
        scan(1, 4, 6.0, [1.0], out=out, method="dmrg", resume=True)
    with pytest.raises(QRGInputError, match="resume and force"):
        scan(1, 4, 6.0, [1.0], out=out, options=TINY, n_samples=SAMPLES, resume=True, force=True)
    assert (out / "scan.json").read_text() == before


@pytest.mark.parametrize("kwargs,match", [
    (dict(m2_values=[]), "m2_values is empty"),
    (dict(m2_values=[1.0, float("nan")]), "m2_values must be finite"),
    (dict(m2_values=[1.0, float("inf")]), "m2_values must be finite"),
    (dict(m2_values="1,2"), "m2_values must be a list"),
    (dict(m2_values=[1.0, 0.5, 1.0]), "duplicate"),
    (dict(lam=-1.0), "lam"),
    (dict(lam=0.0, m2_values=[1.0, 0.0]), r"lam = 0.*m2_values has \[0.0\]"),
    (dict(N=1), "N must be >= 2"),
    (dict(method="vmc"), "method must be one of"),
    (dict(method="dmrg", N=2), "N must be >= 3"),
    (dict(options={"m2": 1.0}), r"options may not set \['m2'\]"),
    (dict(options={"stepz": 3}), "stepz"),
    (dict(options={"steps": 0}), "steps"),
    (dict(method="dmrg", options={"steps": 3}), "steps"),
    (dict(method="netket", options={"chis": [8, 16]}), "chis"),
    (dict(n_samples=5), "n_samples"),
    (dict(resume=True), "no scan.json"),
])
def test_scan_bad_inputs_are_refused_naming_the_parameter(tmp_path, kwargs, match):
    args = {"d": 1, "N": 4, "lam": 6.0, "m2_values": [1.0, 0.5], "out": tmp_path / "s", "options": TINY,
            "n_samples": SAMPLES, **kwargs}
    if args.get("method") in ("dmrg", "netket") and "options" not in kwargs:
        args["options"] = {}
    with pytest.raises(QRGInputError, match=match):
        scan(args.pop("d"), args.pop("N"), args.pop("lam"), args.pop("m2_values"), **args)
    assert not (tmp_path / "s" / "scan.json").exists()


def test_dmrg_scan_equals_dmrg_run(tmp_path):
    from qrg.baselines import DMRG

    opts = {"local_dims": [4, 6], "chis": [8, 16]}
    data = scan(1, 4, 6.0, [1.0, -0.5], method="dmrg", out=tmp_path / "d", options=opts)
    assert [p["m2"] for p in data["points"]] == [1.0, -0.5]
    for p in data["points"]:
        ref = DMRG().run(Phi4.chain(4, p["m2"], 6.0), **opts)
        assert p["energy"] == pytest.approx(ref.energy, rel=1e-10, abs=1e-10)
        assert p["energy_err"] == pytest.approx(ref.error_estimate, rel=1e-6, abs=1e-10)
        for name, value in (("M2", ref.M2), ("M4", ref.M4), ("U4", ref.U4), ("phi2", ref.phi2)):
            assert p[name]["mean"] == pytest.approx(value, rel=1e-8), name
            assert p[name]["err"] == 0.0
        assert p["M"] is None and p["abs_M"] is None and p["peak_weight"] is None and p["variance"] is None
        assert p["notes"]
    # the double well has the larger <M²> and U4
    assert data["points"][1]["M2"]["mean"] > data["points"][0]["M2"]["mean"]
    assert data["points"][1]["U4"]["mean"] > data["points"][0]["U4"]["mean"]
    assert json.loads((tmp_path / "d" / "scan.json").read_text())["points"] == data["points"]


# ---------------------------------------------------------------------------- Binder crossing
def _synthetic(N, x, u, err=0.01, lam=2.4, method="qrg"):
    return {"d": 1, "N": N, "a": 1.0, "lam": lam, "method": method,
            "points": [{"label": f"m2_{xi:g}", "m2": float(xi),
                        "U4": {"mean": float(ui), "err": err}} for xi, ui in zip(x, u)]}


def test_binder_crossing_of_synthetic_curves():
    x = np.array([-1.0, 0.0, 1.0])
    a = _synthetic(8, x, 0.5 - 0.2 * x)
    b = _synthetic(16, x, 0.6 - 0.4 * x)  # crosses a at m² = 0.5
    c = binder_crossing(a, b)
    assert c["m2"] == pytest.approx(0.5, abs=1e-12) and c["bracket"] == [0.0, 1.0] and c["reason"] is None
    assert c["U4"] == pytest.approx(0.4) and c["N"] == [8, 16]
    # m² = x0 + D0 Δx/(D0 − D1), D = U4_a − U4_b = −0.1 + 0.2 m²: ∂m²/∂D0 = ∂m²/∂D1 = −2.5, four errors 0.01
    assert c["err"] == pytest.approx(2.5 * np.sqrt(4) * 0.01, rel=1e-12)
    # the error by brute force: perturb each U4 value
    def crossing_of(ua, ub):
        return binder_crossing(_synthetic(8, x, ua), _synthetic(16, x, ub))["m2"]
    ua, ub, h, var = 0.5 - 0.2 * x, 0.6 - 0.4 * x, 1e-7, 0.0
    for which in range(2):
        for i in range(3):
            up = [ua.copy(), ub.copy()]
            up[which][i] += h
            var += ((crossing_of(*up) - c["m2"]) / h * 0.01) ** 2
    assert c["err"] == pytest.approx(np.sqrt(var), rel=1e-5)
    # different grids: the crossing of the piecewise-linear curves is still exact
    xb = np.array([-1.2, -0.5, 0.25, 0.8, 1.5])
    c2 = binder_crossing(a, _synthetic(16, xb, 0.6 - 0.4 * xb))
    assert c2["m2"] == pytest.approx(0.5, abs=1e-12) and c2["bracket"] == [0.25, 0.8]
    # deterministic U4 (DMRG: err 0) -> no error bar
    c3 = binder_crossing(_synthetic(8, x, 0.5 - 0.2 * x, err=0.0, method="dmrg"),
                         _synthetic(16, x, 0.6 - 0.4 * x, err=0.0, method="dmrg"))
    assert c3["m2"] == pytest.approx(0.5) and c3["err"] is None


def test_binder_crossing_none_when_the_curves_do_not_cross(tmp_path):
    x = np.array([-1.0, 0.0, 1.0])
    a = _synthetic(8, x, 0.5 - 0.2 * x)
    c = binder_crossing(a, _synthetic(16, x, 0.6 - 0.2 * x))
    assert c["m2"] is None and c["err"] is None and "do not cross" in c["reason"]
    c = binder_crossing(a, _synthetic(16, x + 5, 0.5 - 0.2 * x))
    assert c["m2"] is None and "do not overlap" in c["reason"]
    with pytest.raises(QRGInputError, match="different N"):
        binder_crossing(a, a)
    with pytest.raises(QRGInputError, match="same lam"):
        binder_crossing(a, _synthetic(16, x, 0.6 - 0.4 * x, lam=6.0))
    # from files, and the plot with the crossing marked
    paths = []
    for N, u in ((8, 0.5 - 0.2 * x), (16, 0.6 - 0.4 * x), (32, 0.7 - 0.6 * x)):
        d = tmp_path / f"N{N}"
        d.mkdir()
        (d / "scan.json").write_text(json.dumps(_synthetic(N, x, u)))
        paths.append(d)
    found = crossings(paths)
    assert [c["N"] for c in found] == [[8, 16], [16, 32]] and all(c["m2"] == pytest.approx(0.5) for c in found)
    plot_scans(paths, tmp_path / "u4.png")
    assert (tmp_path / "u4.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------- several seeds
def test_combine_values_holds_the_spread_between_runs():
    c = combine_values([1.0, 1.2], [0.01, 0.01])  # runs far apart compared with their sampling errors
    assert c["mean"] == pytest.approx(1.1) and c["spread"] == pytest.approx(0.2 / np.sqrt(2))
    assert c["err"] == pytest.approx(0.1) and c["chi2_dof"] == pytest.approx(200.0) and c["runs"] == 2
    c = combine_values([1.0, 1.001], [0.1, 0.1])  # agreeing runs: never below the sampling error of the mean
    assert c["err"] == pytest.approx(0.1 / np.sqrt(2)) and c["chi2_dof"] == pytest.approx(5e-5)
    assert combine_values([2.0], [0.3]) == {"mean": 2.0, "err": 0.3, "spread": None, "chi2_dof": None, "runs": 1}
    with pytest.raises(QRGInputError, match="combine_values"):
        combine_values([1.0, 2.0], [0.1])
    # the error bar is the standard error of the mean of K runs whose spread (0.05) hides in one run's
    # sampling error (0.01): E[err^2] = Var(mean) over 20000 repetitions
    rng = np.random.default_rng(3)
    k, trials = 4, 20000
    x = 0.05 * rng.standard_normal((trials, k)) + 0.01 * rng.standard_normal((trials, k))
    out = [combine_values(row, np.full(k, 0.01)) for row in x]
    var_of_mean = np.var([o["mean"] for o in out])
    mean_err2 = np.mean([o["err"] ** 2 for o in out])
    assert var_of_mean == pytest.approx((0.05**2 + 0.01**2) / k, rel=0.04)
    assert mean_err2 == pytest.approx(var_of_mean, rel=0.05)


def _seed_scan(seed, m2s, m2_values, u4, options=None, status="completed"):
    options = {"steps": 10, "seed": seed} if options is None else options
    points = [{"label": f"m2_{m:g}", "m2": m, "energy": 8.0 + m + 0.001 * seed, "energy_err": 0.001,
               "M2": {"mean": v, "err": 0.002}, "U4": {"mean": u, "err": 0.003},
               **{name: {"mean": 0.1, "err": 0.01} for name in ("M", "abs_M", "M4", "phi2", "peak_weight")},
               "variance": {"mean": 1e-3 * (seed + 1), "err": None}, "status": status, "wall_time_s": 10.0}
              for m, v, u in zip(m2s, m2_values, u4)]
    return {"d": 1, "N": 16, "a": 1.0, "lam": 2.4, "method": "qrg", "options": options, "n_samples": 64,
            "points": points}


def _write_scans(tmp_path, scans) -> list:
    """Each scan's data as DIR/scan.json in tmp_path/s0, s1, ...; returns the directories."""
    dirs = []
    for i, scan_data in enumerate(scans):
        d = tmp_path / f"s{i}"
        d.mkdir()
        (d / "scan.json").write_text(json.dumps(scan_data))
        dirs.append(str(d))
    return dirs


def test_combine_seeds_means_over_seeds_with_the_spread_in_the_error(tmp_path, capsys):
    a = _seed_scan(0, [-0.7, -0.6], [0.55, 0.2], [0.51, 0.25])
    b = _seed_scan(1, [-0.7, -0.6, -0.5], [0.54, 0.2, 0.1], [0.50, 0.25, 0.1])
    c = combine_seeds([a, b])
    assert c["seeds"] == [0, 1] and c["options"] == {"steps": 10} and [p["m2"] for p in c["points"]] == [-0.7, -0.6]
    assert "m2_-0.5" in c["notes"][-1]
    p = c["points"][0]
    assert p["M2"]["mean"] == pytest.approx(0.545) and p["M2"]["err"] == pytest.approx(0.005)  # spread > 0.002
    assert p["M2"]["chi2_dof"] == pytest.approx(0.01**2 / 2 / 0.002**2)
    assert p["U4"]["err"] == pytest.approx(0.005) and p["variance"]["mean"] == pytest.approx(1.5e-3)
    assert p["energy"] == pytest.approx(7.3005) and p["energy_per_site"] == pytest.approx(7.3005 / 16)
    assert [r["seed"] for r in p["runs"]] == [0, 1] and p["status"] == "completed"
    assert c["points"][1]["M2"]["err"] == pytest.approx(0.002 / np.sqrt(2))  # agreeing seeds: sampling error
    failed = combine_seeds([a, _seed_scan(2, [-0.7, -0.6], [0.5, 0.2], [0.5, 0.2], status="diverged")])
    assert failed["points"][0]["status"] == "diverged"
    # combined scans are scans: their Binder crossing works
    big = combine_seeds([_seed_scan(s, [-0.7, -0.6], [0.5, 0.2], [0.57, 0.17]) | {"N": 32} for s in (0, 1)])
    assert binder_crossing(c, big)["m2"] is not None
    for bad, match in ((([a]), "two scans"), (([a, a]), "different seed"),
                       (([a, _seed_scan(1, [-0.7], [0.5], [0.5], options={"steps": 20, "seed": 1})]), "options"),
                       (([a, b | {"N": 32}]), "same N"), (([a | {"method": "dmrg"}, b | {"method": "dmrg"}]), "DMRG")):
        with pytest.raises(QRGInputError, match=match):
            combine_seeds(bad)
    # the CLI writes the combined scan
    dirs = _write_scans(tmp_path, [a, b])
    assert main(["scan", "--combine", *dirs, "--out", str(tmp_path / "both")]) == 0
    printed = capsys.readouterr().out
    assert "spread" in printed and "0.0071 (12.5)" in printed
    written = json.loads((tmp_path / "both" / "scan.json").read_text())
    assert written["points"][0]["M2"]["err"] == pytest.approx(0.005) and (tmp_path / "both" / "scan.png").is_file()
    assert main(["scan", "--combine", *dirs]) == 2  # --out missing


def test_combine_seeds_pick_lowest_keeps_the_variationally_best_run(tmp_path, capsys):
    """--pick lowest: at each point the lowest-energy run's record, whole; the gap to the next in σ; a
    note when the energies do not decide (gap < 2σ)."""
    a = _seed_scan(0, [-0.8, -0.7], [0.95, 0.55], [0.635, 0.51])
    b = _seed_scan(1, [-0.8, -0.7], [0.97, 0.54], [0.638, 0.50])
    b["points"][0]["energy"] = a["points"][0]["energy"] + 0.02  # seed 1 trained badly at -0.8: 14σ higher
    b["points"][1]["energy"] = a["points"][1]["energy"] - 0.001  # at -0.7 seed 1 is lower by 0.7σ
    c = combine_seeds([a, b], pick="lowest")
    worse, close = c["points"]
    assert c["pick"] == "lowest" and worse["selected_seed"] == 0 and close["selected_seed"] == 1
    assert worse["M2"] == {"mean": 0.95, "err": 0.002} and worse["energy"] == a["points"][0]["energy"]
    assert worse["selection_gap"] == pytest.approx(0.02 / (0.001 * np.sqrt(2)))
    assert close["selection_gap"] == pytest.approx(1 / np.sqrt(2)) and close["U4"]["mean"] == 0.50
    assert [r["seed"] for r in worse["runs"]] == [0, 1] and "m2_-0.7" in c["notes"][-1] and "m2_-0.8" not in c["notes"][-1]
    assert binder_crossing(c, combine_seeds([a | {"N": 32}, b | {"N": 32}], pick="lowest")) is not None
    with pytest.raises(QRGInputError, match="pick"):
        combine_seeds([a, b], pick="median")
    dirs = _write_scans(tmp_path, [a, b])
    assert main(["scan", "--combine", *dirs, "--pick", "lowest", "--out", str(tmp_path / "best")]) == 0
    assert "gap/σ" in capsys.readouterr().out
    written = json.loads((tmp_path / "best" / "scan.json").read_text())
    assert [p["selected_seed"] for p in written["points"]] == [0, 1]


def test_merge_scans_joins_pieces_of_a_line_and_the_merged_scan_resumes(resumed, tmp_path, capsys):
    """Points of one line computed in two scans (in parallel, say) make one scan; the run directories come
    along, so --resume on the merged scan keeps every point and warm-starts from them."""
    piece = tmp_path / "piece"
    scan(1, 4, 6.0, [0.25], out=piece, options=TINY, n_samples=SAMPLES)
    out = tmp_path / "merged"
    assert main(["scan", "--merge", str(resumed["out"]), str(piece), "--out", str(out)]) == 0
    assert "merged" in capsys.readouterr().err
    merged = json.loads((out / "scan.json").read_text())
    assert [p["m2"] for p in merged["points"]] == [0.25, 0.5, 1.0] and merged["options"] == TINY
    assert len(merged["machines"]) == 2 and merged["sources"] == [str(resumed["out"]), str(piece)]
    for p in merged["points"]:
        assert json.loads((out / p["run_dir"] / "result.json").read_text())["energy"] == p["energy"]
    calls = []
    again = scan(1, 4, 6.0, [1.0, 0.5, 0.25, 0.1], out=out, options=TINY, n_samples=SAMPLES, resume=True,
                 on_point=lambda rec, kept: calls.append((rec["label"], kept)))
    assert [kept for _, kept in calls] == [True, True, True, False]
    assert again["points"][3]["warm_start"]["from"] == point_label(0.25)  # loaded from the copied run
    # refused: a point in two pieces, other settings, out = a piece, out holding a scan (unless force)
    with pytest.raises(QRGInputError, match="combine"):
        merge_scans([resumed["out"], out])
    other = read_scan(piece) | {"options": TINY | {"steps": 5}}
    with pytest.raises(QRGInputError, match="same options"):
        merge_scans([resumed["out"], other])
    with pytest.raises(QRGInputError, match="one of the scans"):
        merge_scans([resumed["out"], piece], out=piece)
    with pytest.raises(QRGInputError, match="holds a scan"):
        merge_scans([resumed["out"], piece], out=out)
    assert merge_scans([resumed["out"], piece], out=out, force=True)["points"][0]["m2"] == 0.25
    with pytest.raises(QRGInputError, match="two scans"):
        merge_scans([piece])
    assert main(["scan", "--merge", str(piece), str(resumed["out"])]) == 2  # --out missing


def test_merged_halves_cross_where_the_whole_line_does():
    x = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    small, big = _synthetic(8, x, 0.5 - 0.2 * x), _synthetic(16, x, 0.6 - 0.4 * x)
    halves = [big | {"points": big["points"][:2]}, big | {"points": big["points"][2:]}]
    whole, joined = binder_crossing(small, big), binder_crossing(small, merge_scans(halves))
    assert joined["m2"] == whole["m2"] and joined["err"] == whole["err"]


# ---------------------------------------------------------------------------- CLI
def test_cli_scan_and_crossing(first, tmp_path, capsys):
    out = tmp_path / "cli"
    # the same settings as the module's scan: its compiled programs are reused
    assert main(["scan", "--N", "4", "--lam", "6", "--m2", "1", *TINY_FLAGS, "--samples", str(SAMPLES),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "U4" in printed and "E/site" in printed and len(printed.strip().splitlines()) == 2
    data = json.loads((out / "scan.json").read_text())
    assert [p["m2"] for p in data["points"]] == [1.0] and data["options"] == TINY
    assert data["points"][0]["refine"] is None
    # the refinement of every point, forwarded to qrg solve; the warm start of the next point is the refined state
    assert main(["scan", "--N", "4", "--lam", "6", "--m2", "1,0.9", *TINY_FLAGS, "--samples", str(SAMPLES),
                 "--refine-steps", "2", "--refine-batch", "8", "--out", str(tmp_path / "refined")]) == 0
    refined = json.loads((tmp_path / "refined" / "scan.json").read_text())
    assert refined["options"]["refine_steps"] == 2
    assert [p["refine"]["steps"] for p in refined["points"]] == [2, 2]
    assert all(p["refine"]["recoveries"] == 0 and p["refine"]["dtau_final"] == p["refine"]["dtau"] == 0.1
               for p in refined["points"])
    assert refined["points"][1]["warm_start"]["init_params_sha256"] == refined["points"][0]["params_sha256"]
    capsys.readouterr()
    # errors: exit 2 with "qrg scan: error: ..."
    assert main(["scan", "--N", "4", "--lam", "6", "--m2", "1", "--out", str(out)]) == 2
    assert "qrg scan: error:" in capsys.readouterr().err
    assert main(["scan", "--N", "4", "--lam", "6", "--m2", "1,x", "--out", str(tmp_path / "x")]) == 2
    assert "--m2" in capsys.readouterr().err
    assert main(["scan", "--N", "4", "--lam", "6", "--m2=-1,-1", "--out", str(tmp_path / "x")]) == 2
    assert "duplicate" in capsys.readouterr().err
    assert main(["scan", "--N", "4", "--lam", "6", "--m2", "1", "--method", "dmrg", "--steps", "3",
                 "--out", str(tmp_path / "x")]) == 2
    assert "--steps do not apply to --method dmrg" in capsys.readouterr().err
    assert main(["scan", "--N", "4", "--lam", "6", "--m2", "1", "--T", "0", "--out", str(tmp_path / "x")]) == 2
    assert "T must be > 0" in capsys.readouterr().err  # --T reaches the solve's config
    assert main(["scan", "--N", "4", "--lam", "6", "--m2", "1", "--warmup=-1", "--out", str(tmp_path / "x")]) == 2
    assert "warmup must be an integer >= 0" in capsys.readouterr().err  # so do --warmup and --lr-recover
    assert main(["scan", "--N", "4", "--lam", "6", "--m2", "1", "--lr-recover=-2", "--out", str(tmp_path / "x")]) == 2
    assert "lr_recover must be an integer >= 0" in capsys.readouterr().err
    # --crossing on two scans of different N
    x = np.array([-1.0, 0.0, 1.0])
    dirs = []
    for N, u in ((8, 0.5 - 0.2 * x), (16, 0.6 - 0.4 * x)):
        d = tmp_path / f"N{N}"
        d.mkdir()
        (d / "scan.json").write_text(json.dumps(_synthetic(N, x, u)))
        dirs.append(str(d))
    assert main(["scan", "--crossing", *dirs]) == 0
    printed = capsys.readouterr().out
    assert "m² = 0.5 ± 0.05" in printed
    assert (tmp_path / "N8" / "crossing.png").is_file()
    # --out DIR: the plots go there (made if missing), not into the first scan's directory
    assert main(["scan", "--crossing", *dirs, "--phase-diagram", "--out", str(tmp_path / "plots")]) == 0
    assert {f.name for f in (tmp_path / "plots").iterdir()} == {"crossing.png", "phase_diagram.png"}
    assert not (tmp_path / "N8" / "phase_diagram.png").exists()
    (tmp_path / "afile").write_text("")
    assert main(["scan", "--crossing", *dirs, "--out", str(tmp_path / "afile")]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["scan", "--crossing", dirs[0]]) == 2


# ---------------------------------------------------------------------------- observables, NetKet
def test_magnetisation_observables_of_known_distributions():
    from qrg import Lattice
    from qrg.scan import magnetisation_observables

    lat = Lattice(2, 3)
    # two sharp peaks M = ±0.7, 3/4 of the samples at +: U4 = 2/3 exactly, peak weight 3/4
    signs = np.array([1.0, 1.0, 1.0, -1.0] * 25)
    obs = magnetisation_observables(0.7 * signs[:, None, None] * np.ones((100, 3, 3)), lat)
    assert obs["U4"]["mean"] == pytest.approx(2 / 3, abs=1e-14) and obs["U4"]["err"] == pytest.approx(0, abs=1e-12)
    assert obs["peak_weight"]["mean"] == 0.75 and obs["abs_M"]["mean"] == pytest.approx(0.7)
    assert obs["M"]["mean"] == pytest.approx(0.35) and obs["phi2"]["mean"] == pytest.approx(0.49)
    # a Gaussian M: U4 = 0 within its error; the same numbers in the Markov-chain layout
    rng = np.random.default_rng(0)
    phi = rng.normal(size=(20000, 3, 3))
    obs = magnetisation_observables(phi, lat)
    assert abs(obs["U4"]["mean"]) < 4 * obs["U4"]["err"] and obs["U4"]["err"] < 0.05
    assert obs["M2"]["mean"] == pytest.approx(1 / 9, rel=0.05)  # Var(M) = 1/N^d
    chains = magnetisation_observables(phi.reshape(4, 5000, 3, 3), lat, chains=True)
    assert chains["M2"]["mean"] == pytest.approx(obs["M2"]["mean"], rel=1e-12)
    assert chains["U4"]["mean"] == pytest.approx(obs["U4"]["mean"], rel=1e-12)
    with pytest.raises(QRGInputError, match="phi must have shape"):
        magnetisation_observables(phi.reshape(20000, 9), lat)


def test_netket_scan_measures_the_vmc_samples(tmp_path):
    pytest.importorskip("netket")
    data = scan(1, 4, 6.0, [1.0], method="netket", out=tmp_path / "nk",
                options={"n_iter": 0, "seed": 3}, n_samples=128)  # evaluation only: fast
    p = data["points"][0]
    assert p["baseline"] == "netket-neural" and p["n_samples"] == 128 and p["seed"] == 3
    assert p["energy"] > 0 and p["energy_err"] > 0 and p["variance"]["mean"] > 0
    for name in ("M", "abs_M", "M2", "M4", "U4", "phi2", "peak_weight"):
        assert np.isfinite(p[name]["mean"]) and p[name]["err"] > 0, name
    # the same samples give the Reference's moments (netket_vmc fills M2, M4, phi2 and details abs_M)
    assert p["details"]["abs_M"] == pytest.approx(p["abs_M"]["mean"], rel=1e-12)
    assert p["details"]["peak_weight"] == pytest.approx(p["peak_weight"]["mean"], rel=1e-12)
    assert p["details"]["n_eval_samples"] == 128 and "history" not in p["details"]
