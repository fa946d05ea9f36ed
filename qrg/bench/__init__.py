"""``qrg bench``: qrg's solver against every baseline that applies, on identical Hamiltonians.

* :mod:`~qrg.bench.suites` — the problems and each method's budget (:class:`Suite`, :data:`SUITES`);
* :mod:`~qrg.bench.runner` — running a suite, with resume and retry of failed methods;
* :mod:`~qrg.bench.results` — the ``results.json`` file (atomic writes, reading it back);
* :mod:`~qrg.bench.analysis` — accuracy vs the reference, equal-time ratios, the scaling fit;
* :mod:`~qrg.bench.report` — the ``results.md`` table and the plots.

Every problem is one :class:`qrg.Phi4`; the same object goes to the reference, to ``qrg.solve``
and to the baselines, so all numbers refer to the same H (design §2). Equal-time comparison: the
suite's ``equal_time`` baselines (NetKet neural) get a wall-time budget equal to qrg's own wall time
on the same problem; :func:`equal_time_ratios` compares the two at equal cost through 2σ upper
bounds on the relative errors (> 1: qrg better).
"""

from .analysis import annotate, equal_time_ratios, fit_scaling, steady_time_per_iter, total_error
from .report import make_plots, markdown_table
from .results import load_partial, machine_info
from .runner import record_of, run_baseline, run_netket, run_qrg, run_reference, run_suite
from .suites import (COUPLINGS_FULL, METHODS, SUITES, Limit, Suite, check_methods, get_suite, problem_label,
                     select_problems)

__all__ = [
    "Suite", "Limit", "SUITES", "METHODS", "COUPLINGS_FULL", "get_suite", "check_methods", "problem_label",
    "select_problems", "run_suite", "run_reference", "run_qrg", "run_baseline", "run_netket", "record_of",
    "load_partial", "machine_info", "annotate", "total_error", "fit_scaling", "equal_time_ratios",
    "steady_time_per_iter", "markdown_table", "make_plots",
]
