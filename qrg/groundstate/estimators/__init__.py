"""Energy estimators of a wavefunction Ψ = sqrt(p) = exp(−S/2) from samples of p (design §3.3).

* ``"ibp"`` (:mod:`.ibp`): |g|²/(8a^d) + V, first derivatives only;
* ``"cv"`` (:mod:`.stein`): the same with zero-mean Stein control variates (variance ~ Var(E_loc));
* ``"local"`` (:mod:`.local`): E_loc with Δ log p exact or Hutchinson (zero variance at an eigenstate).

``ESTIMATORS`` holds them by name; :func:`estimate_energy` evaluates them all on one set of samples.
A new estimator is one file with an :class:`EnergyEstimator` subclass registered in ``ESTIMATORS``.
"""

from .base import ESTIMATORS, EnergyEstimator
from .ibp import ibp_energy, ibp_energy_values, kinetic_ibp
from .stein import (ControlVariateFit, control_variate_energy, fit_control_variates, n_stein_features,
                    solve_control_variates, stein_feature_values, stein_features)
from .local import (EXACT_LAPLACIAN_MAX_SITES, LAPLACIANS, chunked_laplacians, laplacian_exact, laplacian_fn,
                    laplacian_hutchinson, local_energy, local_energy_values, resolve_laplacian_method, second_directional_derivative)
from .summary import EnergyStats, energy_of_distribution, estimate_energy

__all__ = ["ESTIMATORS", "EnergyEstimator", "EnergyStats", "estimate_energy", "energy_of_distribution",
           "ibp_energy", "ibp_energy_values", "kinetic_ibp", "local_energy", "local_energy_values", "stein_features",
           "stein_feature_values", "n_stein_features", "fit_control_variates",
           "solve_control_variates", "control_variate_energy", "ControlVariateFit", "laplacian_exact",
           "laplacian_hutchinson", "laplacian_fn", "chunked_laplacians", "second_directional_derivative",
           "resolve_laplacian_method", "LAPLACIANS", "EXACT_LAPLACIAN_MAX_SITES"]
