"""The probability-flow ODE over a learned RG bridge: samples, exact log p and exact score.

Velocity (design §3.2; paper 5.12 with the scheme's linear SDE dφ = −A(t)φ dt + √B(t) dW):

    b_θ(φ, t) = −A(t) φ − ½ B(t) s_θ(φ, t)          (Carosso: −Kφ − ½ σ² s_θ),
    ∇·b_θ     = −Σ_k A_k(t) − ½ tr(B(t) J_s),

with tr(B J_s) exact (the score models expose it; for a scheme whose B = b·1 is isotropic,
``scheme.isotropic_diffusion`` = b and tr(B J_s) = b ∇·s).

Backward augmented solve T → t (``sample``, ``sample_at``): along dφ/dt = b the log-density and
its gradient u obey

    d(log p)/dt = −∇·b,        du/dt = −∇(∇·b) − J_bᵀ u,        u = ∇_φ log p_t(φ_t),

where J_bᵀ u + ∇(∇·b) is ONE vector–Jacobian product of φ ↦ (b, ∇·b) with cotangent (u, 1).
Starting from φ_T ~ N(0, C_T) (C_T from the model's linear part), log p_T(φ_T) and
u_T = −C_T^-1 φ_T, it returns φ_t, the exact log p_θ,t(φ_t) and the exact ∇ log p_θ,t(φ_t)
(to the ODE solver's tolerance). Derivation: continuity ∂_t p = −∇·(p b) gives
d/dt log p(φ_t, t) = −∇·b; differentiating ∂_t log p = −∇·b − b·∇log p in φ gives the u equation.

Forward solve t → T (``log_prob``): log p_θ,t(φ) = log p_T(φ_T) + ∫_t^T ∇·b(φ_s, s) ds.

Strategies (by name): the ODE ``solver`` and the ``adjoint`` (:mod:`qrg.flow.solvers`: how
gradients flow through the solve), and the ``integrator`` (:mod:`qrg.flow.integrators`: "plain",
or "exponential", which transports the stiff linear Gaussian part in closed form).
``sample`` uses ``adjoint`` (default "recursive"); ``log_prob`` uses ``log_prob_adjoint``
(default "direct", so that Δ_φ log p by jax.hessian or Hutchinson jvp-of-grad works);
``transport`` takes an explicit override.
"""

from __future__ import annotations

import functools

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from .._validation import QRGInputError, check_int, check_real, check_time
from ..gaussian import FourierGaussian
from .integrators import INTEGRATORS
from .solvers import ADJOINTS, SOLVERS, check_solver, make_adjoint


class ProbabilityFlow:
    """Probability-flow ODE of ``scheme`` with the learned score ``model`` on [0, T].

    Parameters
    ----------
    model : ScoreModel (its ``scheme`` must equal ``scheme``)
    scheme : RGScheme
    T : prior time, > 0
    solver : one of ``SOLVERS`` (default "tsit5"); the implicit ones (``SolverSpec.implicit``) are for stiff
        flows (fine lattices: the drift rate κ_max = 4d/a² + M² sets an explicit step limit ~2.8/κ_max)
    n_steps : fixed number of steps over [t, T] (ConstantStepSize); None = adaptive PID control
        with ``rtol``/``atol`` (needs a solver with an error estimate: not euler/rk4)
    adjoint : adjoint for ``sample``/``sample_at``; log_prob_adjoint: for ``log_prob``
    max_steps : step budget of adaptive solves
    integrator : "plain" (solve for φ directly) or "exponential" (integrating factor: the linear
        Gaussian part of the velocity is transported in closed form and only the residual is
        integrated; use it for fine lattices, see :mod:`qrg.flow.integrators`)
    mesh : a 1-d ``jax.sharding.Mesh`` (:func:`qrg.parallel.batch_mesh`): the batch of every solve is
        sharded over its devices, parameters replicated; None (default) or one device: no sharding

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
        mesh=None,
    ):
        scheme = model.scheme if scheme is None else scheme
        if scheme != model.scheme:
            raise QRGInputError("scheme must be the scheme the score model was built with (model.scheme)")
        if scheme.isotropic_diffusion is None and not getattr(model, "supports_weighted_trace", False):
            raise QRGInputError(
                f"the {type(scheme).__name__} scheme has a mode-dependent diffusion rate B(t), so the flow "
                f"needs the exact weighted trace tr(B J_s) of the score; {type(model).__name__} does not "
                "provide it (supports_weighted_trace = False). Use a Carosso scheme or a model that does"
            )
        self.model = model
        self.scheme = scheme
        self.lattice = scheme.lattice
        self.T = check_real("T (prior time)", T, positive=True)
        self.n_steps = None if n_steps is None else check_int("n_steps", n_steps, minimum=1)
        self.solver = check_solver(solver, self.n_steps)
        self.rtol = check_real("rtol", rtol, positive=True)
        self.atol = check_real("atol", atol, positive=True)
        self.adjoint = ADJOINTS.check("adjoint", adjoint)
        self.log_prob_adjoint = ADJOINTS.check("log_prob_adjoint", log_prob_adjoint)
        self.max_steps = check_int("max_steps", max_steps, minimum=1)
        self.integrator = INTEGRATORS.check("integrator", integrator)
        self._frame = INTEGRATORS.get(self.integrator)
        self.mesh = None if mesh is None or mesh.devices.size == 1 else mesh

    # ------------------------------------------------------------------ identity
    def _config(self):
        return (self.model, self.scheme, self.T, self.solver, self.n_steps, self.rtol, self.atol,
                self.adjoint, self.log_prob_adjoint, self.max_steps, self.integrator, self.mesh)

    def __hash__(self):
        return hash(self._config())

    def __eq__(self, other):
        return isinstance(other, ProbabilityFlow) and self._config() == other._config()

    def __repr__(self):
        steps = f"n_steps={self.n_steps}" if self.n_steps else f"rtol={self.rtol}, atol={self.atol}"
        return (f"ProbabilityFlow({type(self.model).__name__}, {type(self.scheme).__name__}, T={self.T}, "
                f"solver={self.solver!r}, {steps}, adjoint={self.adjoint!r}, integrator={self.integrator!r})")

    def replace(self, **changes) -> "ProbabilityFlow":
        """The same flow (model, scheme, T, solver settings) with ``changes`` to its constructor arguments."""
        kw = dict(T=self.T, solver=self.solver, n_steps=self.n_steps, rtol=self.rtol, atol=self.atol,
                  adjoint=self.adjoint, log_prob_adjoint=self.log_prob_adjoint, max_steps=self.max_steps,
                  integrator=self.integrator, mesh=self.mesh)
        kw.update(changes)
        return ProbabilityFlow(self.model, self.scheme, **kw)

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
    def velocity_and_divergence(self, params, phi, t):
        """(b(φ, t), ∇·b(φ, t)) for ONE configuration ``phi`` of shape ``lattice.shape``."""
        drift = self.scheme.drift(phi, t)
        trace_a = jnp.sum(self.scheme.drift_rate(t))
        b_iso = self.scheme.isotropic_diffusion
        if b_iso is not None:  # B = b·1: ∇·(B s) = b ∇·s
            s, div_s = self.model.apply(params, phi, t, method="score_and_divergence")
            return drift - 0.5 * b_iso * s, -trace_a - 0.5 * b_iso * div_s
        rate = self.scheme.diffusion_rate(t)
        s, tr_bs = self.model.apply(params, phi, t, rate, method="score_and_divergence")
        return drift - 0.5 * self.lattice.apply_diagonal(s, rate), -trace_a - 0.5 * tr_bs

    def _shard(self, tree):
        """Constrain the leading (batch) axis of every leaf to the device mesh (no-op without a mesh or
        when the batch does not divide evenly)."""
        if self.mesh is None:
            return tree
        from ..parallel import constrain_batch

        n = self.mesh.devices.size
        leaves = jax.tree_util.tree_leaves(tree)
        if not leaves or any(jnp.ndim(x) == 0 or jnp.shape(x)[0] % n for x in leaves):
            return tree
        return constrain_batch(tree, self.mesh)

    def _vf(self, params, x, t):
        """Velocity and divergence in the integrator's coordinates (φ, or ψ for "exponential")."""
        return self._frame.velocity(self, params, x, t)

    def _to_solver(self, params, t, phi=None, log_p=None, u=None):
        return self._frame.to_solver(self, params, t, phi, log_p, u)

    def _from_solver(self, params, t, psi=None, lam=None, v=None):
        return self._frame.from_solver(self, params, t, psi, lam, v)

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
        With a device ``mesh`` the batch axis of the state is sharded over it (parameters replicated).
        """
        y0 = self._shard(y0)
        if SOLVERS.get(self.solver).implicit:

            def single_field(t, y, args):
                out = field(t, jax.tree_util.tree_map(lambda x: x[None], y), args)
                return jax.tree_util.tree_map(lambda x: x[0], out)

            return jax.vmap(lambda y: self._solve_single(single_field, y, params, t0, t1, adjoint))(y0)
        return self._solve_single(field, y0, params, t0, t1, adjoint)

    def _solve_single(self, field, y0, params, t0, t1, adjoint):
        if self.n_steps is None:
            controller = diffrax.PIDController(rtol=self.rtol, atol=self.atol)
            dt0, max_steps, fixed_steps = None, self.max_steps, None
        else:
            controller = diffrax.ConstantStepSize()
            # +1 for a round-off sliver when t0 + n·dt falls an ulp short of t1
            dt0 = (t1 - t0) / self.n_steps
            max_steps = fixed_steps = self.n_steps + 1
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field),
            SOLVERS.get(self.solver).make(),
            t0=t0,
            t1=t1,
            dt0=dt0,
            y0=y0,
            args=params,
            stepsize_controller=controller,
            adjoint=make_adjoint(adjoint, fixed_steps),
            max_steps=max_steps,
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
        return self.push_white(params, jax.random.normal(key, (n,) + self.lattice.shape), t)

    def push_white(self, params, white, t=0.0):
        """(φ_t, log p_θ,t(φ_t), ∇ log p_θ,t(φ_t)) for the prior draws φ_T = C_T^{1/2} ``white`` (batch +
        lattice.shape): :meth:`sample_at` with its noise given, differentiable in ``params`` and usable
        under ``jax.vmap`` (one field at a time, e.g. for per-sample gradients). Not jitted."""
        prior = self.prior(params)
        phi_T = prior.from_white(white)
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
        adjoint = self.adjoint if adjoint is None else ADJOINTS.check("adjoint", adjoint)
        return self._transport(params, phi, jnp.asarray(t0, float), jnp.asarray(t1, float), adjoint)

    def velocity(self, params, phi, t):
        """b_θ(φ, t) for a batch of fields."""
        self._check_batch(phi)
        return jax.vmap(lambda x: self.velocity_and_divergence(params, x, t)[0])(phi)

    def divergence(self, params, phi, t):
        """Exact ∇_φ·b_θ(φ, t) for a batch of fields."""
        self._check_batch(phi)
        return jax.vmap(lambda x: self.velocity_and_divergence(params, x, t)[1])(phi)

    def score(self, params, phi, t):
        """s_θ(φ, t) for a batch of fields."""
        self._check_batch(phi)
        return jax.vmap(lambda x: self.model.apply(params, x, t, method="score"))(phi)
