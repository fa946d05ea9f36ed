"""Ground states along a line of couplings: ``qrg scan`` (the Z2 transition of lattice φ⁴).

:func:`scan` computes the ground state of ``Phi4(d, N, a, m², λ)`` for each m² of a list (in the
given order) with one method and measures the order parameter of the φ → −φ symmetry on it:

* ``M = N^-d Σ_n φ_n`` (design §2), per sample; ``M`` (the signed mean, which vanishes by symmetry:
  a check), ``abs_M`` = ⟨|M|⟩, ``M2`` = ⟨M²⟩, ``M4`` = ⟨M⁴⟩, ``phi2`` = ⟨φ_n²⟩ (site average);
* the Binder cumulant ``U4 = 1 − ⟨M⁴⟩/(3⟨M²⟩²)``: 0 for a Gaussian M (disordered phase, large N),
  2/3 for two sharp peaks at ±M₀ (ordered phase); the curves of different N cross near the
  transition (:func:`binder_crossing`);
* ``peak_weight`` = the fraction of samples with M > 0: ½ by symmetry. A state that has collapsed
  into one well of the double-well (a broken-symmetry variational state) shows up as a peak
  weight away from ½ and a nonzero ⟨M⟩.

Methods:

* ``"qrg"``: :func:`qrg.solve` per point (``out = DIR/points/<label>``), **warm-started** from the
  trained parameters of the previous point of the list (``init_params``); observables from
  ``n_samples`` independent draws of |Ψ|² at t = 0 (:meth:`~qrg.groundstate.GroundState.sample`):
  errors are standard errors of the mean, and a 20-block jackknife (:func:`qrg.stats.jackknife`)
  for U4. ``energy``, ``energy_err`` (statistical), ``energy_sys`` (ODE discretisation) and
  ``variance`` = Var(E_loc) are those of the solve's final evaluation, and ``warnings`` its
  :attr:`~qrg.groundstate.SolveResult.warnings` (unresolved tails; an ODE systematic above 3 statistical
  errors, which marks a point whose samples, and so its ⟨M²⟩ and U4, are not trustworthy), printed by
  ``qrg scan`` under the point's row.
* ``"dmrg"``: :class:`qrg.baselines.DMRG` (TeNPy) per point: ``energy_err`` is the DMRG truncation
  estimate (``error_estimate``); ``M2``, ``M4``, ``U4`` and ``phi2`` are MPS expectation values
  (exact for the MPS; their truncation error is not estimated: ``err`` 0); ``abs_M``, ``M`` and
  ``peak_weight`` need the distribution of M, which the MPS does not sample: None. No Var(E_loc).
* ``"netket"``: NetKet VMC with the translation-invariant neural ansatz (the ``netket-neural``
  baseline, :func:`qrg.baselines.netket_vmc.vmc_ground_state`) per point, not warm-started;
  observables from the ``n_eval_samples`` Metropolis samples of its final evaluation (default:
  ``n_samples``) by the same formulas as for qrg, with errors from the chains' integrated
  autocorrelation time (:func:`qrg.stats.statistics`) and the blocked jackknife for U4.

Files in ``out``: ``scan.json`` (settings, machine, one record per point; rewritten atomically
after every point, so a killed scan keeps its finished points), ``scan.csv`` (one row per point),
``scan.png`` (⟨|M|⟩, ⟨M²⟩, U4, ⟨φ²⟩, E per site and Var(E_loc) against m²) and, for qrg, the run
directory of every point under ``points/``. ``resume=True`` keeps the finished points of an
existing scan with the same settings and computes the others.

The package: :mod:`~qrg.scan.records` (settings, observables, files), :mod:`~qrg.scan.run` (:func:`scan`),
:mod:`~qrg.scan.combine` (seeds and pieces), :mod:`~qrg.scan.crossing` (Binder crossings, critical points),
:mod:`~qrg.scan.plots`, :mod:`~qrg.scan.table`; everything public is importable from ``qrg.scan``.
"""

from __future__ import annotations

from .combine import COMBINED, PICK_RULES, combine_seeds, combine_values, merge_scans
from .crossing import binder_crossing, crossings, phase_diagram_rows
from .plots import PANELS, plot_phase_diagram, plot_scan, plot_scans
from .records import (CSV_COLUMNS, CSV_FILE, FORMAT_VERSION, METHODS, MIN_N, OBSERVABLES, PLOT_FILE, POINTS_DIR,
                      SCAN_FILE, SETTINGS, binder_cumulant, magnetisation_observables, params_digest, point_label,
                      read_scan, scan_csv)
from .run import scan
from .table import TABLE_COLUMNS, table_header, table_row

__all__ = ["COMBINED", "CSV_COLUMNS", "CSV_FILE", "FORMAT_VERSION", "METHODS", "MIN_N", "OBSERVABLES", "PANELS",
           "PICK_RULES", "PLOT_FILE", "POINTS_DIR", "SCAN_FILE", "SETTINGS", "TABLE_COLUMNS", "binder_crossing",
           "binder_cumulant", "combine_seeds", "combine_values", "crossings", "magnetisation_observables",
           "merge_scans", "params_digest", "phase_diagram_rows", "plot_phase_diagram", "plot_scan", "plot_scans",
           "point_label", "read_scan", "scan", "scan_csv", "table_header", "table_row"]
