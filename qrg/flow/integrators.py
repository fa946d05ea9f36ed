"""How the probability-flow ODE is integrated: in φ directly, or in the integrating-factor frame.

``"plain"``: the solver integrates (φ, log p, u) with the full velocity b.

``"exponential"`` (integrating factor). On fine lattices the flow is stiff: the UV modes relax
with rates up to κ_max = 4d/a² + M² (≈ 3200 at a = 0.05 in 2D), so explicit solvers need
≳ T κ_max / 2.8 steps. Almost all of that stiffness sits in the linear, Fourier-diagonal part of
the velocity. The model names a Gaussian C_t(k) > 0 (its linear part's bridge,
``prior_variance(t)``; for a :class:`GaussianBridge` the exact marginal), whose own probability
flow is

    b_lin(φ, t) = −L(t) φ,     L_k(t) = −½ ∂_t log C_t(k)     (= A_k − B_k / (2 C_t(k)) for a bridge),

with the closed-form transport G(t) = (C_t / C_T)^{1/2} (Fourier-diagonal, G(T) = 1). Writing
b = b_lin + r, the solve runs in the frame

    ψ = G(t)^{-1} φ:        dψ/dt = G^{-1} r(Gψ, t),
    λ = log p + Σ_k log G_k(t):   dλ/dt = −∇_φ·r,          (∇_φ·b = ∇_φ·r − tr L)
    v = G u:                dv/dt = −G [∇_φ(∇_φ·r) + J_rᵀ u],

which is the same augmented system for the velocity r̃(ψ) = G^{-1} r(Gψ) (∇_ψ·r̃ = ∇_φ·r). Only
the residual r is integrated numerically; L(t) is obtained by forward-mode differentiation of
log C_t, so the splitting is consistent for any scheme. The transform is exact: for the pure
Gaussian bridge r ≡ 0 and one step of any solver is exact to round-off; for a general model it
changes only the discretisation error (the ODE is the same).

A new integrator is a subclass of :class:`Integrator` registered in ``INTEGRATORS``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..registry import Registry


class Integrator:
    """Coordinates in which the solver integrates the flow of a :class:`~qrg.flow.ProbabilityFlow`.

    ``velocity`` returns (velocity, ∇·b) in solver coordinates; ``to_solver``/``from_solver``
    map (φ, log p, u) at time t to and from them (any of the three may be None).
    """

    def velocity(self, flow, params, x, t):
        raise NotImplementedError

    def to_solver(self, flow, params, t, phi=None, log_p=None, u=None):
        raise NotImplementedError

    def from_solver(self, flow, params, t, psi=None, lam=None, v=None):
        raise NotImplementedError


class Plain(Integrator):
    """Integrate (φ, log p, u) with the full velocity b: the identity frame."""

    def velocity(self, flow, params, x, t):
        return flow.velocity_and_divergence(params, x, t)

    def to_solver(self, flow, params, t, phi=None, log_p=None, u=None):
        return phi, log_p, u

    def from_solver(self, flow, params, t, psi=None, lam=None, v=None):
        return psi, lam, v


class Exponential(Integrator):
    """The integrating-factor frame of the module docstring."""

    @staticmethod
    def frame(flow, params, t):
        """(G(t), L(t)): G = (C_t/C_T)^{1/2}, L = −½ ∂_t log C_t."""
        log_c_T = jnp.log(flow.prior_variance(params))
        log_c, dlog_c = jax.jvp(lambda s: jnp.log(flow.model.apply(params, s, method="prior_variance")),
                                (jnp.asarray(t, dtype=float),), (jnp.ones((), dtype=float),))
        return jnp.exp(0.5 * (log_c - log_c_T)), -0.5 * dlog_c

    def velocity(self, flow, params, psi, t):
        """(r̃(ψ, t), ∇·r): r = b + Lφ, r̃ = G^{-1} r(Gψ)."""
        g, rate = self.frame(flow, params, t)
        lat = flow.lattice
        phi = lat.apply_diagonal(psi, g)
        b, div = flow.velocity_and_divergence(params, phi, t)
        r = b + lat.apply_diagonal(phi, rate)
        return lat.apply_diagonal(r, 1.0 / g), div + jnp.sum(rate)

    def to_solver(self, flow, params, t, phi=None, log_p=None, u=None):
        g, _ = self.frame(flow, params, t)
        lat = flow.lattice
        return (None if phi is None else lat.apply_diagonal(phi, 1.0 / g),
                None if log_p is None else log_p + jnp.sum(jnp.log(g)),
                None if u is None else lat.apply_diagonal(u, g))

    def from_solver(self, flow, params, t, psi=None, lam=None, v=None):
        g, _ = self.frame(flow, params, t)
        lat = flow.lattice
        return (None if psi is None else lat.apply_diagonal(psi, g),
                None if lam is None else lam - jnp.sum(jnp.log(g)),
                None if v is None else lat.apply_diagonal(v, 1.0 / g))


INTEGRATORS: Registry[Integrator] = Registry("integrator")
INTEGRATORS.register("plain", Plain())
INTEGRATORS.register("exponential", Exponential())
