import json
import subprocess
import sys

import numpy as np
import pytest

from qrg import Lattice, Phi4
from qrg.cli import main


def test_reference_exact_prints_free_energy(capsys, tmp_path):
    out = tmp_path / "ref.json"
    rc = main(["reference", "--method", "exact", "--d", "2", "--N", "8", "--m2", "1", "--lam", "0", "--out", str(out)])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads(out.read_text())
    assert printed == written
    th = Phi4(Lattice(2, 8), 1.0, 0.0)
    assert printed["method"] == "exact"
    assert {k: printed[k] for k in ("d", "N", "a", "m2", "lam")} == {"d": 2, "N": 8, "a": 1.0, "m2": 1.0, "lam": 0.0}
    np.testing.assert_allclose(printed["energy"], th.free_ground_energy(), rtol=1e-14)
    np.testing.assert_allclose(printed["energy_per_site"], th.free_ground_energy() / 64, rtol=1e-14)
    np.testing.assert_allclose(printed["phi2"], th.free_phi2(), rtol=1e-14)


@pytest.mark.parametrize(
    "argv,match",
    [
        (["--N", "-4", "--m2", "1", "--lam", "0"], "N"),
        (["--N", "4", "--m2", "0", "--lam", "0"], "m2 must be > 0"),
        (["--N", "4", "--m2", "1", "--lam", "-1"], "lam"),
        (["--N", "4", "--m2", "1", "--lam", "0", "--a", "0"], "a "),
        (["--N", "4", "--d", "0", "--m2", "1", "--lam", "0"], "d "),
        (["--N", "4", "--m2", "1", "--lam", "1"], "free theory"),
        (["--N", "4", "--m2", "1", "--lam", "0", "--method", "magic"], "--method must be one of"),
        (["--m2", "1", "--lam", "0"], "--N is required"),
    ],
)
def test_reference_bad_input_is_a_clear_error(argv, match, capsys):
    rc = main(["reference", *argv])
    assert rc == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err


def test_console_script_runs():
    res = subprocess.run([sys.executable, "-m", "qrg.cli", "reference", "--N", "1", "--m2", "4", "--lam", "0"],
                         capture_output=True, text=True, check=True)
    assert json.loads(res.stdout)["energy"] == pytest.approx(1.0, rel=1e-14)
