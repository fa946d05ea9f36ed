"""The continuum critical coupling: the lattice tadpole, the normal-ordered mass, f = λ'/μ² and its extrapolation."""

import json
import math

import numpy as np
import pytest
from scipy.integrate import quad

from qrg import Phi4
from qrg._validation import QRGInputError
from qrg.cli import main
from qrg.continuum import (PUBLISHED, continuum_critical_m2, continuum_from_crossings, critical_ratio, extrapolate,
                           normal_ordered_mass2, tadpole, tadpole_derivative)
from qrg.hartree import hartree_mass2


@pytest.mark.parametrize("mu2, a", [(0.04, 1.0), (0.5, 0.3), (3.0, 2.0), (1e-4, 1.0)])
def test_tadpole_is_the_free_lattice_phi2_integral(mu2, a):
    direct = quad(lambda k: 1.0 / (2.0 * math.sqrt(mu2 + 4.0 / a**2 * math.sin(k * a / 2) ** 2)),
                  -math.pi / a, math.pi / a, limit=500, points=[0.0])[0] / (2 * math.pi)
    assert tadpole(mu2, a) == pytest.approx(direct, rel=1e-10)
    h = 1e-5 * mu2
    fd = (tadpole(mu2 + h, a) - tadpole(mu2 - h, a)) / (2 * h)
    assert tadpole_derivative(mu2, a) == pytest.approx(fd, rel=1e-6)
    assert tadpole_derivative(mu2, a) < 0


def test_normal_ordered_mass_is_the_hartree_gap_equation_in_infinite_volume():
    # the same equation as qrg.hartree's, whose lattice sum converges exponentially to the integral
    # when the mass is not small: N = 512 sites at μ² ≈ 1 agree to rounding
    for m2, lam, a in ((0.5, 2.4, 1.0), (-0.2, 6.0, 1.0), (0.8, 3.0, 0.7)):
        mu2 = normal_ordered_mass2(m2, lam, a)
        assert mu2 == pytest.approx(m2 + 0.5 * lam * tadpole(mu2, a), rel=1e-13)
        assert mu2 == pytest.approx(hartree_mass2(Phi4.from_params(d=1, N=512, a=a, m2=m2, lam=lam)), rel=1e-10)
    # the double well has a positive normal-ordered mass (A diverges as μ² -> 0)
    assert normal_ordered_mass2(-0.66, 2.4) > 0
    assert normal_ordered_mass2(0.3, 0.0) == 0.3
    with pytest.raises(QRGInputError, match="m2 > 0"):
        normal_ordered_mass2(-1.0, 0.0)
    with pytest.raises(QRGInputError, match="lam must be >= 0"):
        normal_ordered_mass2(1.0, -1.0)
    with pytest.raises(QRGInputError, match="lattice spacing"):
        normal_ordered_mass2(1.0, 1.0, a=0.0)


def test_critical_ratio_conventions_and_error():
    r = critical_ratio(-0.66, 2.4, err=0.002)
    assert r["f"] == pytest.approx(2.4 / (6 * r["mu2"]), rel=1e-14)
    assert r["f_lambda4!"] == pytest.approx(6 * r["f"], rel=1e-14) and r["x"] == 2.4
    # the error by finite differences of the whole map m²_c -> f
    h = 1e-6
    slope = (critical_ratio(-0.66 + h, 2.4)["f"] - critical_ratio(-0.66 - h, 2.4)["f"]) / (2 * h)
    assert r["f_err"] == pytest.approx(abs(slope) * 0.002, rel=1e-5)
    assert critical_ratio(-0.66, 2.4)["f_err"] is None
    # only λa² matters: (m², λ, a) and (m² a², λ a², 1) are the same lattice theory
    s = critical_ratio(-0.66 * 4, 2.4 * 4, a=0.5)
    assert s["f"] == pytest.approx(r["f"], rel=1e-12) and s["x"] == pytest.approx(2.4)
    with pytest.raises(QRGInputError, match="lam must be > 0"):
        critical_ratio(-0.66, 0.0)


def test_extrapolation_recovers_a_known_line():
    pts = [{"x": x, "f": 11.1 - 0.4 * x, "f_err": None} for x in (1.0, 2.4, 6.0)]
    fit = extrapolate(pts)
    assert fit["fc"] == pytest.approx(11.1, rel=1e-12) and fit["fc_err"] == pytest.approx(0.0, abs=1e-9)
    assert fit["dof"] == 1 and not fit["weighted"]
    # two points, no freedom left: no error without point errors
    assert extrapolate(pts[:2])["fc_err"] is None
    # weighted, two points: f_c = (x2 f1 − x1 f2)/(x2 − x1), its error by propagation
    w = [{"x": 1.0, "f": 10.7, "f_err": 0.1}, {"x": 3.0, "f": 10.3, "f_err": 0.2}]
    fit = extrapolate(w)
    assert fit["fc"] == pytest.approx(10.9) and fit["weighted"]
    assert fit["fc_err"] == pytest.approx(math.hypot(1.5 * 0.1, 0.5 * 0.2), rel=1e-10)
    # a quadratic through three points is exact
    q = [{"x": x, "f": 11.0 + 0.3 * x - 0.1 * x * x, "f_err": None} for x in (1.0, 2.0, 4.0)]
    assert extrapolate(q, order=2)["fc"] == pytest.approx(11.0, rel=1e-10)
    with pytest.raises(QRGInputError, match="order-2 fit needs 3 points"):
        extrapolate(pts[:2], order=2)


def _dmrg_like(N, lam, x, u):
    return {"d": 1, "N": N, "a": 1.0, "lam": lam, "method": "dmrg",
            "points": [{"label": f"m2_{xi:g}", "m2": float(xi), "U4": {"mean": float(ui), "err": 0.0}}
                       for xi, ui in zip(x, u)]}


def test_cli_continuum_from_crossings(tmp_path, capsys):
    # curves of N = 16, 32 crossing at m²_c(λ): -0.31 (λ = 1), -0.66 (2.4), -1.45 (6)
    dirs, expected = [], []
    for lam, mc in ((1.0, -0.31), (2.4, -0.66), (6.0, -1.45)):
        x = mc + np.array([-0.05, 0.0, 0.05])
        for N, slope in ((16, -2.0), (32, -4.0)):
            d = tmp_path / f"N{N}_l{lam:g}"
            d.mkdir()
            (d / "scan.json").write_text(json.dumps(_dmrg_like(N, lam, x, 0.4 + slope * (x - mc))))
            dirs.append(str(d))
        expected.append(critical_ratio(mc, lam))
    assert main(["scan", "--crossing", *dirs, "--continuum"]) == 0
    printed = capsys.readouterr().out
    for r in expected:
        assert f"f = {r['f']:.5g}" in printed
    fit = extrapolate(expected)
    assert f"f_c = {fit['fc']:.5g} ± {fit['fc_err']:.3g}" in printed
    assert (tmp_path / "N16_l1" / "continuum.png").is_file()
    # the same through the library
    (res,) = continuum_from_crossings(__import__("qrg.scan", fromlist=["crossings"]).crossings(dirs))
    assert res["N"] == [16, 32] and res["fit"]["fc"] == pytest.approx(fit["fc"], rel=1e-12)
    # --order without --continuum, --continuum without --crossing
    assert main(["scan", "--crossing", *dirs, "--order", "2"]) == 2
    assert "--order goes with --continuum" in capsys.readouterr().err
    assert main(["scan", "--N", "4", "--lam", "1", "--m2", "1", "--continuum", "--out", str(tmp_path / "x")]) == 2
    assert "go with --crossing" in capsys.readouterr().err
    # one λ only: the ratios are printed, the extrapolation is refused with the reason
    assert main(["scan", "--crossing", *dirs[:2], "--continuum"]) == 0
    assert "no extrapolation: an order-1 extrapolation needs crossings at 2 values" in capsys.readouterr().out


def test_size_extrapolation_of_crossings(tmp_path, capsys):
    from qrg.continuum import size_extrapolated_crossings

    # crossings m*(N) = m_c + c N^-3 of the pairs (8, 16), (16, 32) at two λ: the N -> oo value is m_c exactly
    truth = {1.0: (-0.31, 2.0), 6.0: (-1.46, 5.0)}
    cs = [{"m2": mc + c * n ** -3.0, "err": None, "lam": lam, "method": "dmrg", "d": 1, "a": 1.0, "N": [n, 2 * n]}
          for lam, (mc, c) in truth.items() for n in (8, 16)]
    out = size_extrapolated_crossings(cs, 3)
    assert len(out) == 2
    for r in out:
        assert r["m2"] == pytest.approx(truth[r["lam"]][0], abs=1e-12) and r["N"] == [8, 16] and r["err"] is None
    # three pairs, least squares, exact data: still exact; with errors, weighted with an error
    cs3 = [dict(c, err=1e-3) for c in cs] + [{"m2": -0.31 + 2.0 * 32 ** -3.0, "err": 1e-3, "lam": 1.0,
                                              "method": "dmrg", "d": 1, "a": 1.0, "N": [32, 64]}]
    r1 = [r for r in size_extrapolated_crossings(cs3, 3) if r["lam"] == 1.0][0]
    assert r1["m2"] == pytest.approx(-0.31, abs=1e-12) and 0 < r1["err"] < 2e-3 and r1["N"] == [8, 16, 32]
    # a different exponent gives a different answer (the exponent is an assumption, not measured)
    assert size_extrapolated_crossings(cs, 2)[0]["m2"] != pytest.approx(-0.31, abs=1e-4)
    # through continuum_from_crossings: one group per size label
    res = continuum_from_crossings(cs + out)
    assert sorted(r["sizes"] for r in res) == ["N = 16, 32", "N = 8, 16", "N → ∞ (p = 3; from N = 8, 16, 32)"]
    with pytest.raises(QRGInputError, match="finite-size exponent"):
        size_extrapolated_crossings(cs, 0)


def test_continuum_critical_m2_inverts_critical_ratio():
    # the asymptote of the lattice phase boundary: the m² whose critical ratio is f
    for lam, a, f in ((1.0, 1.0, None), (2.4, 1.0, 10.8), (6.0, 0.5, 11.0), (0.05, 1.0, None)):
        m2 = continuum_critical_m2(lam, a=a, f=f)
        assert critical_ratio(m2, lam, a=a)["f"] == pytest.approx(PUBLISHED[0][0] if f is None else f, rel=1e-9)
    # weak coupling: μ² = λ/(6 f) -> 0 and m²_c -> -(λ/2) A(μ²) < 0, below the free line
    assert continuum_critical_m2(1.0) < 0
    for bad, match in (({"lam": 0.0}, "lam must be > 0"), ({"lam": 1.0, "a": -1.0}, "lattice spacing"),
                       ({"lam": 1.0, "f": 0.0}, "critical coupling")):
        with pytest.raises(QRGInputError, match=match):
            continuum_critical_m2(**bad)


def test_cli_phase_diagram(tmp_path, capsys):
    from qrg.scan import crossings, phase_diagram_rows

    # chains N = 16, 32 crossing at -0.31 (λ = 1) and -0.66 (2.4); squares 4×4, 8×8 at -0.35 (λ = 2.4)
    dirs = []
    for d, sizes, lam, mc in ((1, (16, 32), 1.0, -0.31), (1, (16, 32), 2.4, -0.66), (2, (4, 8), 2.4, -0.35)):
        x = mc + np.array([-0.05, 0.0, 0.05])
        for N, slope in zip(sizes, (-2.0, -4.0)):
            path = tmp_path / f"d{d}N{N}_l{lam:g}"
            path.mkdir()
            (path / "scan.json").write_text(json.dumps(_dmrg_like(N, lam, x, 0.4 + slope * (x - mc)) | {"d": d}))
            dirs.append(str(path))
    rows = phase_diagram_rows(crossings(dirs))
    assert [(r["d"], r["sizes"], r["lam"]) for r in rows] == [(1, "N = 16, 32", 1.0), (1, "N = 16, 32", 2.4),
                                                              (2, "4×4, 8×8", 2.4)]
    assert [r["m2"] for r in rows] == pytest.approx([-0.31, -0.66, -0.35], abs=1e-12)
    assert main(["scan", "--crossing", *dirs, "--phase-diagram"]) == 0
    printed = capsys.readouterr().out
    assert "d = 1, dmrg, N = 16, 32: lam = 2.4, m2_c = -0.66" in printed
    assert "d = 2, dmrg, 4×4, 8×8: lam = 2.4, m2_c = -0.35" in printed
    assert (tmp_path / "d1N16_l1" / "phase_diagram.png").is_file()
    # --phase-diagram outside --crossing; --size-exponent without --continuum or --phase-diagram
    assert main(["scan", "--N", "4", "--lam", "1", "--m2", "1", "--phase-diagram", "--out", str(tmp_path / "x")]) == 2
    assert "go with --crossing" in capsys.readouterr().err
    assert main(["scan", "--crossing", *dirs, "--size-exponent", "3"]) == 2
    assert "--size-exponent goes with --continuum or --phase-diagram" in capsys.readouterr().err
    # with --size-exponent the infinite-size estimates are added (two pairs of one λ are needed: none here)
    assert main(["scan", "--crossing", *dirs, "--phase-diagram", "--size-exponent", "3"]) == 0
    assert "N →" not in capsys.readouterr().out
