"""The RG-scheme interface (design §3.1).

Every scheme qrg ships is a linear SDE that is diagonal in Fourier space,

    dφ̃_k = −A_k(t) φ̃_k dt + sqrt(B_k(t)) dW̃_k ,

so that everything is exact and O(N^d log N):

* transition kernel  φ_t | φ_0 ~ N(α_k(t) φ̃_0, Σ_k(t)),  α = exp(−∫_0^t A);
* its score          ∇ log p(φ_t|φ_0) = −Σ_t^-1 (φ_t − α_t φ_0)        (paper 5.23);
* Gaussian bridge    C_t = α_t² C_0 + Σ_t for a Gaussian φ_0 ~ N(0, C_0);
* the prior at T     N(0, Σ_T) (the kernel from φ_0 = 0) and, where it exists, the
  limiting distribution t → ∞;
* effective cutoff   Λ_t: the |p̂| at which the kernel mean has decayed by 1/e; r_t = Λ_t/Λ0
  (paper 7.3, 7.4).

A concrete scheme implements ``drift_rate``, ``diffusion_rate``, ``mean_factor``,
``kernel_variance``, ``cutoff`` and (optionally) ``stationary_variance``.
"""

from __future__ import annotations

import abc
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import QRGInputError, check_int, check_time
from ..gaussian import FourierGaussian
from ..lattice import Lattice
from ..registry import Registry


@dataclasses.dataclass(frozen=True)
class RGScheme(abc.ABC):
    """Base class: a Fourier-diagonal linear RG SDE on ``lattice``. Hashable (jit-static)."""

    lattice: Lattice

    # ---------------------------------------------------------------- to implement
    @abc.abstractmethod
    def drift_rate(self, t):
        """A_k(t): the drift is −A(t) φ (Fourier-diagonal). Shape lattice.shape."""

    @abc.abstractmethod
    def diffusion_rate(self, t):
        """B_k(t): covariance rate of the noise, Cov[dW-term] = B(t) dt. Shape lattice.shape."""

    @abc.abstractmethod
    def mean_factor(self, t):
        """α_k(t) = exp(−∫_0^t A_k): E[φ̃_t | φ_0] = α_k(t) φ̃_0(k)."""

    @abc.abstractmethod
    def kernel_variance(self, t):
        """Σ_k(t): covariance eigenvalues of φ_t | φ_0."""

    @abc.abstractmethod
    def cutoff(self, t):
        """Effective cutoff Λ_t (paper 7.3)."""

    def stationary_variance(self):
        """Covariance eigenvalues of the t → ∞ limit; raises if there is none."""
        raise QRGInputError(f"the {type(self).__name__} scheme has no limiting prior distribution")

    @property
    def name(self) -> str:
        return type(self).__name__.lower()

    @property
    def isotropic_diffusion(self) -> float | None:
        """b if the diffusion rate is B(t) = b·1 with a constant b, else None.

        The probability flow then needs only the plain divergence of the score (tr(B J_s) = b ∇·s);
        otherwise it needs the exact weighted trace tr(B J_s) from the score model.
        """
        return None

    # ---------------------------------------------------------------- SDE
    def drift(self, phi, t):
        """Drift −A(t) φ of the SDE."""
        return -self.lattice.apply_diagonal(phi, self.drift_rate(t))

    def noise_increment(self, key, t, dt, batch_shape=()):
        """A draw of the noise term over [t, t+dt]: Gaussian with covariance B(t) dt."""
        white = jax.random.normal(key, tuple(batch_shape) + self.lattice.shape)
        return self.lattice.apply_diagonal(white, jnp.sqrt(self.diffusion_rate(t) * dt))

    def simulate_sde(self, key, phi0, t, n_steps: int):
        """Euler–Maruyama solution of the SDE from 0 to ``t`` (a reference for the exact kernel)."""
        check_time(t)
        n_steps = check_int("n_steps", n_steps, minimum=1)
        self.lattice.check_field(phi0, "phi0")
        dt = t / n_steps
        batch = self.lattice.batch_shape(phi0)

        def step(phi, inp):
            i, k = inp
            s = i * dt
            return phi + self.drift(phi, s) * dt + self.noise_increment(k, s, dt, batch), None

        keys = jax.random.split(key, n_steps)
        phi, _ = jax.lax.scan(step, phi0, (jnp.arange(n_steps), keys))
        return phi

    # ---------------------------------------------------------------- transition kernel
    def transition_mean(self, phi0, t):
        check_time(t)
        self.lattice.check_field(phi0, "phi0")
        return self.lattice.apply_diagonal(phi0, self.mean_factor(t))

    def transition(self, phi0, t) -> FourierGaussian:
        """The kernel p(φ_t | φ_0) as a Gaussian object."""
        return FourierGaussian(self.lattice, self.kernel_variance(t), self.transition_mean(phi0, t))

    def sample_transition(self, key, phi0, t):
        """Draw φ_t ~ p(φ_t | φ_0) for every field in the batch ``phi0``."""
        check_time(t)
        self.lattice.check_field(phi0, "phi0")
        white = jax.random.normal(key, jnp.shape(phi0))
        noise = self.lattice.apply_diagonal(white, jnp.sqrt(self.kernel_variance(t)))
        return self.transition_mean(phi0, t) + noise

    def transition_log_prob(self, phi_t, phi0, t):
        return self.transition(phi0, t).log_prob(phi_t)

    def transition_score(self, phi_t, phi0, t):
        """∇_{φ_t} log p(φ_t | φ_0) = −Σ_t^-1 (φ_t − α_t φ_0): the denoising score-matching target."""
        self.lattice.check_field(phi_t, "phi_t")
        return self.transition(phi0, t).score(phi_t)

    def transition_between(self, s, t):
        """(α_{t|s}, Σ_{t|s}) of φ_t | φ_s for s ≤ t."""
        check_time(s, "s")
        check_time(t)
        ratio = self.mean_factor(t) / self.mean_factor(s)
        return ratio, self.kernel_variance(t) - ratio**2 * self.kernel_variance(s)

    def sample_path(self, key, phi0, ts):
        """The exact RG flow of the samples ``phi0`` at the increasing times ``ts`` (≥ 0), one path each.

        φ_{t_{i+1}} = α_{t_{i+1}|t_i} φ_{t_i} + Σ_{t_{i+1}|t_i}^{1/2} ξ_i with ξ_i ~ N(0, 1) drawn from
        fold_in(key, i), so every φ_{t_i} is an exact draw of p_0 ∗ kernel_{t_i} (paper 5.8–5.10) and the
        paths are RG trajectories. Returns shape (len(ts),) + phi0.shape.
        """
        self.lattice.check_field(phi0, "phi0")
        ts = np.asarray(ts, dtype=float)
        if ts.ndim != 1 or ts.size == 0:
            raise QRGInputError("ts must be a non-empty 1-d sequence of RG times")
        check_time(ts, "ts")
        if np.any(np.diff(ts) < 0):
            raise QRGInputError(f"ts must be non-decreasing (got {ts.tolist()})")
        phi, out, t_prev = jnp.asarray(phi0, dtype=float), [], 0.0
        for i, t in enumerate(ts):
            if t > t_prev:
                ratio, var = self.transition_between(t_prev, float(t))
                white = jax.random.normal(jax.random.fold_in(key, i), phi.shape)
                phi = (self.lattice.apply_diagonal(phi, ratio)
                       + self.lattice.apply_diagonal(white, jnp.sqrt(jnp.clip(var, 0.0, None))))
            out.append(phi)
            t_prev = float(t)
        return jnp.stack(out)

    def flow_two_point(self, t, g2_0):
        """Exact flowed two-point function G2_t(k) = α_t(k)² G2_0(k) + a^d Σ_t(k) of ANY p_0.

        The kernel is linear, φ_t = α_t φ_0 + ξ_t with ξ_t independent of φ_0, so a t = 0 reference
        (DMRG's ⟨φ_0 φ_r⟩, ED, the exact free theory) fixes the whole flow of G2 (design §3.4); G2 is
        normalised as in :mod:`qrg.observables`: G2(k) = a^d N^-d ⟨|φ̃(k)|²⟩.
        """
        check_time(t)
        return self.mean_factor(t) ** 2 * jnp.asarray(g2_0) + self.lattice.volume_element * self.kernel_variance(t)

    # ---------------------------------------------------------------- bridges and priors
    def bridge_variance(self, t, variance0):
        """C_t = α_t² C_0 + Σ_t: flowed covariance of a Gaussian φ_0 ~ N(0, C_0)."""
        check_time(t)
        return self.mean_factor(t) ** 2 * variance0 + self.kernel_variance(t)

    def bridge(self, t, variance0) -> FourierGaussian:
        return FourierGaussian(self.lattice, self.bridge_variance(t, variance0))

    def prior(self, T=None) -> FourierGaussian:
        """The prior: the limiting distribution (``T=None``) or N(0, Σ_T) at finite ``T``.

        N(0, Σ_T) is the marginal at T of any p_0 up to terms of order α_T.
        """
        if T is None:
            var = self.stationary_variance()
        else:
            check_time(T, "T")
            var = self.kernel_variance(T)
            if not isinstance(var, jax.core.Tracer) and not np.all(np.asarray(var) > 0):
                raise QRGInputError(
                    f"the {type(self).__name__} kernel at T={T} is degenerate (zero variance in some "
                    "mode, e.g. the zero mode of an unmodified scheme); use M > 0 and T > 0"
                )
        return FourierGaussian(self.lattice, jnp.asarray(var))

    def cutoff_ratio(self, t):
        """r_t = Λ_t / Λ0 (paper 7.4)."""
        return self.cutoff(t) / self.lattice.cutoff


#: RG schemes by name: ``make_scheme(name, lattice, M)`` builds ``SCHEMES.get(name)(lattice, M)``
SCHEMES: Registry[type] = Registry("RG scheme")
