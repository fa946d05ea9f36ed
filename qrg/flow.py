"""The probability-flow ODE over a learned RG bridge: samples, exact log p and exact score.

Velocity (design §3.2; paper 5.12 with the scheme's linear SDE dφ = −A(t)φ dt + √B(t) dW):

    b_θ(φ, t) = −A(t) φ − ½ B(t) s_θ(φ, t)          (Carosso: −Kφ − ½ σ² s_θ),
    ∇·b_θ     = −Σ_k A_k(t) − ½ tr(B(t) J_s),

with tr(B J_s) exact (the score models expose it; for Carosso B = σ² 1).

Backward augmented solve T → t (``sample``, ``sample_at``): along dφ/dt = b the log-density and
its gradient u obey

    d(log p)/dt = −∇·b,        du/dt = −∇(∇·b) − J_bᵀ u,        u = ∇_φ log p_t(φ_t),

where J_bᵀ u + ∇(∇·b) is ONE vector–Jacobian product of φ ↦ (b, ∇·b) with cotangent (u, 1).
Starting from φ_T ~ N(0, C_T) (C_T from the model's linear part), log p_T(φ_T) and
u_T = −C_T^-1 φ_T, it returns φ_t, the exact log p_θ,t(φ_t) and the exact ∇ log p_θ,t(φ_t)
(to the ODE solver's tolerance). Derivation: continuity ∂_t p = −∇·(p b) gives
d/dt log p(φ_t, t) = −∇·b; differentiating ∂_t log p = −∇·b − b·∇log p in φ gives the u equation.

Forward solve t → T (``log_prob``): log p_θ,t(φ) = log p_T(φ_T) + ∫_t^T ∇·b(φ_s, s) ds.

Adjoints (how gradients flow through the solve; diffrax):

* ``"recursive"`` RecursiveCheckpointAdjoint — discretise-then-optimise, exact gradients of the
  discrete solve; reverse mode only (custom_vjp: no jax.jvp / jacfwd / hessian).
* ``"backsolve"`` BacksolveAdjoint — optimise-then-discretise continuous adjoint (the paper's
  algorithm); O(1) memory, gradients accurate to solver tolerance; reverse mode only.
* ``"direct"`` DirectAdjoint — differentiates through the solver's operations: supports reverse
  AND forward mode (jax.hessian, jvp-of-grad), at higher memory/compile cost.
* ``"forward"`` ForwardMode — forward mode only (jvp/jacfwd), cheapest for few tangents.

``sample`` uses ``adjoint`` (default "recursive"); ``log_prob`` uses ``log_prob_adjoint``
(default "direct", so that Δ_φ log p by jax.hessian or Hutchinson jvp-of-grad works);
``transport`` takes an explicit override.

Exponential integrator (``integrator="exponential"``). On fine lattices the flow is stiff: the
UV modes relax with rates up to κ_max = 4d/a² + M² (≈ 3200 at a = 0.05 in 2D), so explicit
solvers need ≳ T κ_max / 2.8 steps. Almost all of that stiffness sits in the linear,
Fourier-diagonal part of the velocity. The model names a Gaussian C_t(k) > 0 (its linear part's
bridge, ``prior_variance(t)``; for a :class:`GaussianBridge` the exact marginal), whose own
probability flow is

    b_lin(φ, t) = −L(t) φ,     L_k(t) = −½ ∂_t log C_t(k)     (= A_k − B_k / (2 C_t(k)) for a bridge),

with the closed-form transport G(t) = (C_t / C_T)^{1/2} (Fourier-diagonal, G(T) = 1). Writing
b = b_lin + r, the solve runs in the integrating-factor frame

    ψ = G(t)^{-1} φ:        dψ/dt = G^{-1} r(Gψ, t),
    λ = log p + Σ_k log G_k(t):   dλ/dt = −∇_φ·r,          (∇_φ·b = ∇_φ·r − tr L)
    v = G u:                dv/dt = −G [∇_φ(∇_φ·r) + J_rᵀ u],

which is the same augmented system for the velocity r̃(ψ) = G^{-1} r(Gψ) (∇_ψ·r̃ = ∇_φ·r). Only
the residual r is integrated numerically; L(t) is obtained by forward-mode differentiation of
log C_t, so the splitting is consistent for any scheme. The transform is exact: for the pure
Gaussian bridge r ≡ 0 and one step of any solver is exact to round-off; for a general model it
changes only the discretisation error (the ODE is the same).
"""

from __future__ import annotations

import functools

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from ._validation import QRGInputError, check_int, check_real, check_time
from .gaussian import FourierGaussian
from .rg.carosso import Carosso


class RK4(diffrax.AbstractERK):
    """The classical 4-stage, 4th-order Runge–Kutta method (fixed step only: no error estimate)."""

    tableau = diffrax.ButcherTableau(
        c=np.array([0.5, 0.5, 1.0]),
        b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
        b_error=np.zeros(4),
        a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
    )
    interpolation_cls = diffrax.ThirdOrderHermitePolynomialInterpolation.from_k

    def order(self, terms):
        return 4


SOLVERS = {
    "euler": diffrax.Euler,
    "heun": diffrax.Heun,
    "midpoint": diffrax.Midpoint,
    "bosh3": diffrax.Bosh3,
    "rk4": RK4,
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    "dopri8": diffrax.Dopri8,
    # implicit (L-stable) solvers for stiff flows, e.g. fine lattices where κ_max = 4d/a² + M² ≫ 1/T
    "implicit_euler": diffrax.ImplicitEuler,
    "kvaerno3": diffrax.Kvaerno3,
    "kvaerno5": diffrax.Kvaerno5,
}
# convergence order of each solver (of the exponential integrator too: it applies the solver to the
# residual velocity); used by the step-doubling error estimate of qrg.solver.discretisation_check
SOLVER_ORDER = {"euler": 1, "heun": 2, "midpoint": 2, "bosh3": 3, "rk4": 4, "tsit5": 5, "dopri5": 5, "dopri8": 8,
                "implicit_euler": 1, "kvaerno3": 3, "kvaerno5": 5}
FIXED_STEP_ONLY = ("euler", "rk4", "implicit_euler")
IMPLICIT = ("implicit_euler", "kvaerno3", "kvaerno5")
ADJOINTS = ("recursive", "backsolve", "direct", "forward")
INTEGRATORS = ("plain", "exponential")


def solver_order(name: str) -> int:
    """Global order of accuracy of the ODE solver ``name`` (one of ``SOLVERS``)."""
    if name not in SOLVER_ORDER:
        raise QRGInputError(f"solver must be one of {tuple(SOLVERS)} (got {name!r})")
    return SOLVER_ORDER[name]


def _make_adjoint(name: str):
    if name == "recursive":
        return diffrax.RecursiveCheckpointAdjoint()
    if name == "backsolve":
        return diffrax.BacksolveAdjoint()
    if name == "direct":
        return diffrax.DirectAdjoint()
    if name == "forward":
        return diffrax.ForwardMode()
    raise QRGInputError(f"adjoint must be one of {ADJOINTS} (got {name!r})")


class ProbabilityFlow:
    """Probability-flow ODE of ``scheme`` with the learned score ``model`` on [0, T].

    Parameters
    ----------
    model : ScoreModel (its ``scheme`` must equal ``scheme``)
    scheme : RGScheme
    T : prior time, > 0
    solver : one of ``SOLVERS`` (default "tsit5"); the implicit ones (``IMPLICIT``) are for stiff
        flows (fine lattices: the drift rate κ_max = 4d/a² + M² sets an explicit step limit ~2.8/κ_max)
    n_steps : fixed number of steps over [t, T] (ConstantStepSize); None = adaptive PID control
        with ``rtol``/``atol`` (needs a solver with an error estimate: not euler/rk4)
    adjoint : adjoint for ``sample``/``sample_at``; log_prob_adjoint: for ``log_prob``
    max_steps : step budget of adaptive solves
    integrator : "plain" (solve for φ directly) or "exponential" (integrating factor: the linear
        Gaussian part of the velocity is transported in closed form and only the residual is
        integrated; use it for fine lattices, see the module docstring)

    All public methods take a batch of fields with a leading axis (vmapped inside) and are
    differentiable in ``params`` (reparameterisation: φ_T = C_T^{1/2} ε). Instances are hashable
    and the methods are jitted with the flow and batch size static.
    """

    def __init__(
        self,
        model,
        scheme=None,
        T=1.0,
        *,
        solver: str = "tsit5",
        n_steps: int | None = None,
        rtol: float = 1e-6,
        atol: float = 1e-6,
        adjoint: str = "recursive",
        log_prob_adjoint: str = "direct",
        max_steps: int = 4096,
        integrator: str = "plain",
    ):
        scheme = model.scheme if scheme is None else scheme
        if scheme != model.scheme:
            raise QRGInputError("scheme must be the scheme the score model was built with (model.scheme)")
        if not isinstance(scheme, Carosso) and not getattr(model, "supports_weighted_trace", False):
            raise QRGInputError(
                f"the {type(scheme).__name__} scheme has a mode-dependent diffusion rate B(t), so the flow "
                f"needs the exact weighted trace tr(B J_s) of the score; {type(model).__name__} does not "
                "provide it (supports_weighted_trace = False). Use a Carosso scheme or a model that does"
            )
        self.model = model
        self.scheme = scheme
        self.lattice = scheme.lattice
        self.T = check_real("T (prior time)", T, positive=True)
        if solver not in SOLVERS:
            raise QRGInputError(f"solver must be one of {sorted(SOLVERS)} (got {solver!r})")
        self.solver = solver
        self.n_steps = None if n_steps is None else check_int("n_steps", n_steps, minimum=1)
        if self.n_steps is None and solver in FIXED_STEP_ONLY:
            raise QRGInputError(f"solver {solver!r} has no error estimate: give n_steps (fixed step)")
        self.rtol = check_real("rtol", rtol, positive=True)
        self.atol = check_real("atol", atol, positive=True)
        for name, value in (("adjoint", adjoint), ("log_prob_adjoint", log_prob_adjoint)):
            if value not in ADJOINTS:
                raise QRGInputError(f"{name} must be one of {ADJOINTS} (got {value!r})")
        self.adjoint = adjoint
        self.log_prob_adjoint = log_prob_adjoint
        self.max_steps = check_int("max_steps", max_steps, minimum=1)
        if integrator not in INTEGRATORS:
            raise QRGInputError(f"integrator must be one of {INTEGRATORS} (got {integrator!r})")
        self.integrator = integrator

    # ------------------------------------------------------------------ identity
    def _config(self):
        return (self.model, self.scheme, self.T, self.solver, self.n_steps, self.rtol, self.atol,
                self.adjoint, self.log_prob_adjoint, self.max_steps, self.integrator)

    def __hash__(self):
        return hash(self._config())

    def __eq__(self, other):
        return isinstance(other, ProbabilityFlow) and self._config() == other._config()

    def __repr__(self):
        steps = f"n_steps={self.n_steps}" if self.n_steps else f"rtol={self.rtol}, atol={self.atol}"
        return (f"ProbabilityFlow({type(self.model).__name__}, {type(self.scheme).__name__}, T={self.T}, "
                f"solver={self.solver!r}, {steps}, adjoint={self.adjoint!r}, integrator={self.integrator!r})")

    # ------------------------------------------------------------------ parameters and prior
    def init(self, key):
        """Initial model parameters."""
        phi = jnp.zeros(self.lattice.shape)
        return self.model.init(key, phi, 0.5 * self.T)

    def prior_variance(self, params):
        return self.model.apply(params, self.T, method="prior_variance")

    def prior(self, params) -> FourierGaussian:
        """N(0, C_T) with C_T the Gaussian the model's linear part implies at T."""
        return FourierGaussian(self.lattice, self.prior_variance(params))

    # ------------------------------------------------------------------ vector field
    def _b_div(self, params, phi, t):
        """(b(φ, t), ∇·b(φ, t)) for one configuration."""
        drift = self.scheme.drift(phi, t)
        trace_a = jnp.sum(self.scheme.drift_rate(t))
        if isinstance(self.scheme, Carosso):
            # B = σ² 1: ∇·(B s) = σ² ∇·s
            s, div_s = self.model.apply(params, phi, t, method="score_and_divergence")
            sigma2 = self.scheme.sigma2
            return drift - 0.5 * sigma2 * s, -trace_a - 0.5 * sigma2 * div_s
        rate = self.scheme.diffusion_rate(t)
        s, tr_bs = self.model.apply(params, phi, t, rate, method="score_and_divergence")
        return drift - 0.5 * self.lattice.apply_diagonal(s, rate), -trace_a - 0.5 * tr_bs

    def _frame(self, params, t):
        """(G(t), L(t)) of the exponential integrator: G = (C_t/C_T)^{1/2}, L = −½ ∂_t log C_t."""
        log_c_T = jnp.log(self.prior_variance(params))
        log_c, dlog_c = jax.jvp(lambda s: jnp.log(self.model.apply(params, s, method="prior_variance")),
                                (jnp.asarray(t, dtype=float),), (jnp.ones((), dtype=float),))
        return jnp.exp(0.5 * (log_c - log_c_T)), -0.5 * dlog_c

    def _frame_b_div(self, params, psi, t):
        """(r̃(ψ, t), ∇·r) in the integrating-factor frame: r = b + Lφ, r̃ = G^{-1} r(Gψ)."""
        g, rate = self._frame(params, t)
        phi = self.lattice.apply_diagonal(psi, g)
        b, div = self._b_div(params, phi, t)
        r = b + self.lattice.apply_diagonal(phi, rate)
        return self.lattice.apply_diagonal(r, 1.0 / g), div + jnp.sum(rate)

    def _vf(self, params, x, t):
        """Velocity and divergence in the solver's coordinates (φ, or ψ for "exponential")."""
        if self.integrator == "exponential":
            return self._frame_b_div(params, x, t)
        return self._b_div(params, x, t)

    def _to_solver(self, params, t, phi=None, log_p=None, u=None):
        """Map (φ, log p, u) at time t to the solver's coordinates (identity for "plain")."""
        if self.integrator != "exponential":
            return phi, log_p, u
        g, _ = self._frame(params, t)
        lat = self.lattice
        return (None if phi is None else lat.apply_diagonal(phi, 1.0 / g),
                None if log_p is None else log_p + jnp.sum(jnp.log(g)),
                None if u is None else lat.apply_diagonal(u, g))

    def _from_solver(self, params, t, psi=None, lam=None, v=None):
        """Inverse of :meth:`_to_solver`."""
        if self.integrator != "exponential":
            return psi, lam, v
        g, _ = self._frame(params, t)
        lat = self.lattice
        return (None if psi is None else lat.apply_diagonal(psi, g),
                None if lam is None else lam - jnp.sum(jnp.log(g)),
                None if v is None else lat.apply_diagonal(v, 1.0 / g))

    def _augmented_field(self, t, y, params):
        """Right-hand side of (φ, log p, u) for a batch (leading axis), in the solver's coordinates."""

        def one(phi, u):
            (b, div), pullback = jax.vjp(lambda x: self._vf(params, x, t), phi)
            (g,) = pullback((u, jnp.ones_like(div)))  # J_bᵀ u + ∇(∇·b)
            return b, -div, -g

        phi, _, u = y
        return jax.vmap(one)(phi, u)

    def _divergence_field(self, t, y, params):
        """Right-hand side of (φ, ∫∇·b) for a batch: forward solve of log_prob."""
        phi, _ = y
        return jax.vmap(lambda x: self._vf(params, x, t))(phi)

    def _plain_field(self, t, phi, params):
        return jax.vmap(lambda x: self._vf(params, x, t)[0])(phi)

    def _solve(self, field, y0, params, t0, t1, adjoint):
        """Solve the batched ``field`` from t0 to t1 and return the state at t1.

        Explicit solvers integrate the whole batch as one state (common steps, error norm over the
        batch). Implicit solvers need Newton solves with the dense Jacobian of the state, so there the
        solve is vmapped over the batch: one Jacobian of size (2N^d + 1)² per configuration.
        """
        if self.solver in IMPLICIT:

            def single_field(t, y, args):
                out = field(t, jax.tree_util.tree_map(lambda x: x[None], y), args)
                return jax.tree_util.tree_map(lambda x: x[0], out)

            return jax.vmap(lambda y: self._solve_single(single_field, y, params, t0, t1, adjoint))(y0)
        return self._solve_single(field, y0, params, t0, t1, adjoint)

    def _solve_single(self, field, y0, params, t0, t1, adjoint):
        if self.n_steps is None:
            controller = diffrax.PIDController(rtol=self.rtol, atol=self.atol)
            dt0 = None
        else:
            controller = diffrax.ConstantStepSize()
            dt0 = (t1 - t0) / self.n_steps
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field),
            SOLVERS[self.solver](),
            t0=t0,
            t1=t1,
            dt0=dt0,
            y0=y0,
            args=params,
            stepsize_controller=controller,
            adjoint=_make_adjoint(adjoint),
            # fixed steps: +1 for a round-off sliver when t0 + n·dt falls an ulp short of t1
            max_steps=self.n_steps + 1 if self.n_steps is not None else self.max_steps,
            saveat=diffrax.SaveAt(t1=True),
        )
        return jax.tree_util.tree_map(lambda x: x[0], sol.ys)

    # ------------------------------------------------------------------ checks
    def _check_batch(self, phi, name="phi"):
        self.lattice.check_field(phi, name)
        if jnp.ndim(phi) != self.lattice.d + 1:
            raise QRGInputError(
                f"{name} must be a batch of fields of shape (n,) + {self.lattice.shape} (got {jnp.shape(phi)})"
            )

    def _check_t(self, t):
        check_time(t)
        if not isinstance(t, jax.core.Tracer) and np.any(np.asarray(t) > self.T):
            raise QRGInputError(f"t must lie in [0, T={self.T}] (got {t})")

    # ------------------------------------------------------------------ public API
    def sample(self, params, key, n: int):
        """(φ_0, log p_θ(φ_0), ∇ log p_θ(φ_0)) for ``n`` samples: one backward augmented solve T → 0."""
        return self.sample_at(params, key, n, 0.0)

    @functools.partial(jax.jit, static_argnums=(0, 3))
    def _sample_log_prob(self, params, key, n, t):
        prior = self.prior(params)
        phi_T = prior.sample(key, (n,))
        psi_T, lam_T, _ = self._to_solver(params, self.T, phi_T, prior.log_prob(phi_T))
        psi_t, integral = self._solve(self._divergence_field, (psi_T, jnp.zeros(n)), params, self.T, t, self.adjoint)
        # backward solve: ∫_T^t ∇·b ds = −∫_t^T ∇·b ds, and log p_t = log p_T + ∫_t^T ∇·b ds
        phi_t, log_p, _ = self._from_solver(params, t, psi_t, lam_T - integral)
        return phi_t, log_p

    def sample_log_prob(self, params, key, n: int, t=0.0):
        """(φ_t, log p_θ,t(φ_t)) without the score: the (φ, log p) part of the backward solve only.

        About half the cost of :meth:`sample_at` (no second derivatives of the score); enough for
        reverse KL (paper 5.5) and independence Metropolis. Same φ_t as ``sample_at`` for the same key.
        """
        n = check_int("n (number of samples)", n, minimum=1)
        self._check_t(t)
        return self._sample_log_prob(params, key, n, jnp.asarray(t, dtype=float))

    @functools.partial(jax.jit, static_argnums=(0, 3))
    def _sample_at(self, params, key, n, t):
        prior = self.prior(params)
        phi_T = prior.sample(key, (n,))
        y0 = self._to_solver(params, self.T, phi_T, prior.log_prob(phi_T), prior.score(phi_T))
        y1 = self._solve(self._augmented_field, y0, params, self.T, t, self.adjoint)
        return self._from_solver(params, t, *y1)

    def sample_at(self, params, key, n: int, t):
        """(φ_t, log p_θ,t(φ_t), ∇ log p_θ,t(φ_t)): the RG-flowed state, backward solve T → t."""
        n = check_int("n (number of samples)", n, minimum=1)
        self._check_t(t)
        return self._sample_at(params, key, n, jnp.asarray(t, dtype=float))

    @functools.partial(jax.jit, static_argnums=(0,))
    def _log_prob(self, params, phi, t):
        def solve(phi_b, t0):
            psi0, _, _ = self._to_solver(params, t0, phi_b)
            y0 = (psi0, jnp.zeros(phi_b.shape[0]))
            psi_T, integral = self._solve(self._divergence_field, y0, params, t0, self.T, self.log_prob_adjoint)
            phi_T, _, _ = self._from_solver(params, self.T, psi_T)
            # log p_t = log p_T(φ_T) + ∫_t^T ∇·b ds; in the frame λ = log p + Σ log G
            _, lam_T, _ = self._to_solver(params, self.T, log_p=self.prior(params).log_prob(phi_T))
            _, log_p, _ = self._from_solver(params, t0, lam=lam_T + integral)
            return log_p

        if jnp.ndim(t) == 0:
            return solve(phi, t)
        return jax.vmap(lambda p, s: solve(p[None], s)[0])(phi, t)

    def log_prob(self, params, phi, t=0.0):
        """log p_θ,t(φ) by the forward solve t → T: log p_T(φ_T) + ∫_t^T ∇·b ds.

        ``phi``: batch (n,) + lattice.shape; ``t``: scalar or shape (n,) (one time per field).
        Twice differentiable in φ with the default ``log_prob_adjoint="direct"``.
        """
        self._check_batch(phi)
        self._check_t(t)
        t = jnp.asarray(t, dtype=float)
        if t.ndim not in (0, 1) or (t.ndim == 1 and t.shape[0] != jnp.shape(phi)[0]):
            raise QRGInputError(f"t must be a scalar or have shape ({jnp.shape(phi)[0]},) (got {t.shape})")
        return self._log_prob(params, phi, t)

    @functools.partial(jax.jit, static_argnums=(0, 5))
    def _transport(self, params, phi, t0, t1, adjoint):
        psi0, _, _ = self._to_solver(params, t0, phi)
        psi1 = self._solve(self._plain_field, psi0, params, t0, t1, adjoint)
        return self._from_solver(params, t1, psi1)[0]

    def transport(self, params, phi, t0, t1, *, adjoint: str | None = None):
        """Push a batch of fields along dφ/dt = b from t0 to t1 (either direction), no density.

        ``adjoint`` overrides the flow's (e.g. "direct" or "forward" for jax.jacfwd of the map).
        """
        self._check_batch(phi)
        self._check_t(t0)
        self._check_t(t1)
        adjoint = self.adjoint if adjoint is None else adjoint
        if adjoint not in ADJOINTS:
            raise QRGInputError(f"adjoint must be one of {ADJOINTS} (got {adjoint!r})")
        return self._transport(params, phi, jnp.asarray(t0, float), jnp.asarray(t1, float), adjoint)

    def velocity(self, params, phi, t):
        """b_θ(φ, t) for a batch of fields."""
        self._check_batch(phi)
        return jax.vmap(lambda x: self._b_div(params, x, t)[0])(phi)

    def divergence(self, params, phi, t):
        """Exact ∇_φ·b_θ(φ, t) for a batch of fields."""
        self._check_batch(phi)
        return jax.vmap(lambda x: self._b_div(params, x, t)[1])(phi)

    def score(self, params, phi, t):
        """s_θ(φ, t) for a batch of fields."""
        self._check_batch(phi)
        return jax.vmap(lambda x: self.model.apply(params, x, t, method="score"))(phi)
