"""A Gaussian-mixture target whose rectified-flow velocity is known in closed form, to measure samplers.

Data ``x0 ~ sum_k w_k N(mu_k, diag(s_k^2))`` in ``d`` dimensions, noise ``eps ~ N(0, I)``, and the rectified-flow
path ``x_sigma = (1 - sigma) x0 + sigma eps``. Given the component ``k``, ``x_sigma`` is Gaussian with mean
``m_k = (1 - sigma) mu_k`` and per-dimension variance ``var_k = (1 - sigma)^2 s_k^2 + sigma^2``, and
``(x0, eps, x_sigma)`` are jointly Gaussian, so the conditional means are linear regressions:

    E[x0 | x, k]  = mu_k + (1 - sigma) s_k^2 / var_k · (x - m_k)
    E[eps | x, k] = sigma / var_k · (x - m_k)
    v_k(x, sigma) = E[eps - x0 | x, k] = -mu_k + (sigma - (1 - sigma) s_k^2) / var_k · (x - m_k)

and the marginal velocity averages them under the posterior responsibilities
``r_k(x) ∝ w_k N(x; m_k, var_k I)``:  ``v(x, sigma) = sum_k r_k(x) v_k(x, sigma)``. This is exactly the velocity a
perfectly trained flow model predicts, so ``dx/dsigma = v`` transports ``N(0, I)`` at ``sigma = 1`` to the mixture
at ``sigma = 0``. The exact ODE solution is approximated by a high-accuracy solve (classical RK4 with many steps in
float64, error far below any sampler compared), ``GaussianMixtureFlow.solve``.

Example::

    from accelerando.generation import get_sigmas_uniform, sample_heun
    from accelerando.generation.toy import GaussianMixtureFlow

    gmm = GaussianMixtureFlow.default()
    noise = gmm.sample_noise(256, seed=0)
    exact = gmm.solve(noise)  # sigma 1 -> 0
    error = (sample_heun(gmm.velocity, noise, get_sigmas_uniform(16).double(), disable=True) - exact).norm(dim=1)
"""

from __future__ import annotations

import torch

__all__ = ["GaussianMixtureFlow"]


class GaussianMixtureFlow:
    """Closed-form rectified-flow velocity of a diagonal Gaussian mixture (float64).

    Args:
        means: ``(K, d)`` component means ``mu_k``.
        stds: ``(K, d)`` or ``(K,)`` component standard deviations ``s_k`` (positive).
        weights: ``(K,)`` mixture weights (normalised here).
    """

    def __init__(self, means: torch.Tensor, stds: torch.Tensor, weights: torch.Tensor):
        self.means = torch.as_tensor(means, dtype=torch.float64)
        if self.means.ndim != 2:
            raise ValueError(f"means must be (K, d), got shape {tuple(self.means.shape)}.")
        stds = torch.as_tensor(stds, dtype=torch.float64)
        self.stds = (stds[:, None] if stds.ndim == 1 else stds).expand_as(self.means).clone()
        if (self.stds <= 0).any():
            raise ValueError("Every component standard deviation must be positive.")
        weights = torch.as_tensor(weights, dtype=torch.float64)
        if weights.shape != (self.means.shape[0],) or (weights <= 0).any():
            raise ValueError(
                f"weights must be {self.means.shape[0]} positive numbers, got {weights.tolist()}."
            )
        self.log_weights = torch.log(weights / weights.sum())

    @classmethod
    def default(cls) -> GaussianMixtureFlow:
        """The benchmark target: four unequal, well-separated 2-D components."""
        means = [[-2.0, -1.0], [2.0, -1.5], [0.5, 2.0], [-1.5, 2.5]]
        stds = [[0.35, 0.5], [0.6, 0.3], [0.4, 0.4], [0.3, 0.6]]
        return cls(torch.tensor(means), torch.tensor(stds), torch.tensor([0.3, 0.25, 0.25, 0.2]))

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample_noise(self, n: int, seed: int = 0) -> torch.Tensor:
        """``(n, d)`` standard normal starting points (float64)."""
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(n, self.dim, generator=gen, dtype=torch.float64)

    def sample_data(self, n: int, seed: int = 0) -> torch.Tensor:
        """``(n, d)`` samples of the mixture itself (float64)."""
        gen = torch.Generator().manual_seed(seed)
        k = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=gen)
        z = torch.randn(n, self.dim, generator=gen, dtype=torch.float64)
        return self.means[k] + self.stds[k] * z

    def velocity(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Exact ``E[noise - x0 | x_sigma = x]``: ``x`` ``(B, d)``, ``sigma`` ``(B,)`` or scalar -> ``(B, d)``."""
        x64 = x.to(torch.float64)
        s = (
            torch.as_tensor(sigma, dtype=torch.float64).reshape(-1).expand(x.shape[0])[:, None, None]
        )  # (B,1,1)
        mean = (1 - s) * self.means  # (B, K, d)
        var = (1 - s) ** 2 * self.stds**2 + s**2  # (B, K, d)
        diff = x64[:, None, :] - mean  # (B, K, d)
        log_p = self.log_weights - 0.5 * (diff**2 / var + torch.log(var)).sum(-1)  # (B, K)
        resp = torch.softmax(log_p, dim=-1)  # (B, K)
        v_k = -self.means + (s - (1 - s) * self.stds**2) / var * diff  # (B, K, d)
        return (resp[..., None] * v_k).sum(1).to(x.dtype)  # (B, d)

    def solve(
        self, x: torch.Tensor, sigma_from: float = 1.0, sigma_to: float = 0.0, steps: int = 2000
    ) -> torch.Tensor:
        """Reference solution of ``dx/dsigma = v`` from ``sigma_from`` to ``sigma_to`` (classical RK4, float64)."""
        x = x.to(torch.float64)
        grid = torch.linspace(sigma_from, sigma_to, steps + 1, dtype=torch.float64)
        ones = x.new_ones(x.shape[0])
        for i in range(steps):
            s, h = grid[i], grid[i + 1] - grid[i]
            k1 = self.velocity(x, s * ones)
            k2 = self.velocity(x + h / 2 * k1, (s + h / 2) * ones)
            k3 = self.velocity(x + h / 2 * k2, (s + h / 2) * ones)
            k4 = self.velocity(x + h * k3, (s + h) * ones)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return x
