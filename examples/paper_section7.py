"""Reproduce Section 7 of "Renormalizing diffusion models": learning the RG flow of 2D lattice φ⁴.

A thin wrapper around :mod:`qrg.euclidean.experiment` (the same code as the ``qrg rgflow`` command): NUTS →
the true Carosso-M / Polchinski-M flow of m_R, Z, λ_R, max|φ| (Figure 6) → two flows of the same
architecture trained for the same number of Adam steps with RG matching (5.22) and reverse KL
(5.5), measured with the same estimators (Figures 7-8) → independence Metropolis with each flow.

    python examples/paper_section7.py --quick --out runs/section7_quick      # N = 8, a few minutes
    python examples/paper_section7.py --out runs/section7                    # the paper's sizes

Any flag of ``qrg rgflow`` is accepted (``qrg rgflow --help``); the measured paper-size run and
its exact command are in benchmarks/section7.md.
"""

from __future__ import annotations

import sys

from qrg.cli import main as qrg_main


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--out" not in argv:
        argv += ["--out", "runs/section7"]
    return qrg_main(["rgflow", *argv])


if __name__ == "__main__":
    sys.exit(main())
