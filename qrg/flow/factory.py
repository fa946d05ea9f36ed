"""One factory for probability flows: scheme and score model by name, solver settings explicit."""

from __future__ import annotations

from .._validation import QRGInputError
from .ode import ProbabilityFlow


def make_flow(lattice, *, scheme: str = "carosso", M: float = 1.0, model="default", T: float = 1.0,
              variance0=None, model_options: dict | None = None, solver: str = "tsit5",
              n_steps: int | None = None, rtol: float = 1e-6, atol: float = 1e-6, adjoint: str = "recursive",
              log_prob_adjoint: str = "direct", max_steps: int = 4096,
              integrator: str = "plain") -> ProbabilityFlow:
    """A :class:`ProbabilityFlow` on ``lattice`` with the RG ``scheme`` (name, mass ``M``) and prior time ``T``.

    ``model``: a registered score-model name (:data:`qrg.models.MODELS`), built with the initial
    Gaussian ``variance0`` (C_0 eigenvalues; None: the model's default), its time embedding scaled
    to ``T`` and ``model_options``; or a ready :class:`~qrg.models.ScoreModel` built on the same
    scheme and lattice. The remaining arguments are those of :class:`ProbabilityFlow`.
    """
    from ..models import ScoreModel, make_model
    from ..rg import make_scheme

    sch = make_scheme(scheme, lattice, M)
    if isinstance(model, ScoreModel):
        if model_options or variance0 is not None:
            raise QRGInputError("variance0 and model_options apply to a model built by name, not to a ready model")
        if model.scheme != sch:
            raise QRGInputError("the given score model was built with a different scheme/lattice than the flow's")
        mdl = model
    else:
        kw = dict(model_options or {})
        if variance0 is not None:
            kw["variance0"] = variance0
        if str(model).lower() != "gaussian":
            kw.setdefault("time_scale", T)
        mdl = make_model(model, lattice, sch, **kw)
    return ProbabilityFlow(mdl, sch, T=T, solver=solver, n_steps=n_steps, rtol=rtol, atol=atol, adjoint=adjoint,
                           log_prob_adjoint=log_prob_adjoint, max_steps=max_steps, integrator=integrator)
