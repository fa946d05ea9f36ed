"""The Euclidean substrate: sampling e^{−S_E}, the true RG flow of samples, and flows that learn it.

* :mod:`.samplers` — NUTS/HMC, MALA/ULA, independence Metropolis with a flow proposal, complex
  Langevin (toy model); ``SAMPLERS`` is the registry ``qrg sample`` draws its methods from;
* :mod:`.kernel_flow` — the TRUE RG flow: samples pushed through the exact kernel of a scheme;
* :mod:`.learning` — flows trained to reproduce that flow (objectives 5.22, 5.5, 5.23), reverse SDE;
* :mod:`.experiment` — the paper's RG-learning experiment (``qrg rgflow``), plots in
  :mod:`.experiment_plots`.

Observables (m_R, Z, λ_R, ...) live in :mod:`qrg.observables` and statistics in :mod:`qrg.stats`:
the ground-state side measures with the same estimators.
"""

from .experiment import ExperimentConfig, run as run_experiment
from .kernel_flow import OBSERVABLES_ALONG_FLOW, flow_observables, flow_path, gaussian_flow_g2
from .learning import (OBJECTIVES, TrainResult, default_net_scale, euclidean_variance0,
                       learned_flow_samples, make_flow, reverse_kl_loss, reverse_sde_sample,
                       rg_matching_loss, score_matching_loss, train)
from .samplers import (SAMPLERS, IMHResult, MCMCResult, QuarticToyModel, complex_langevin, exact_moments,
                       flow_imh, independence_metropolis, sample_langevin, sample_mala, sample_nuts, sample_ula)

__all__ = [
    "SAMPLERS", "MCMCResult", "IMHResult", "sample_nuts", "sample_langevin", "sample_mala", "sample_ula",
    "flow_imh", "independence_metropolis", "QuarticToyModel", "complex_langevin", "exact_moments",
    "flow_path", "flow_observables", "gaussian_flow_g2", "OBSERVABLES_ALONG_FLOW",
    "OBJECTIVES", "TrainResult", "make_flow", "train", "default_net_scale",
    "euclidean_variance0", "reverse_kl_loss", "rg_matching_loss", "score_matching_loss", "reverse_sde_sample",
    "learned_flow_samples", "ExperimentConfig", "run_experiment",
]
