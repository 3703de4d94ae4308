"""Fréchet distance between two sets of embeddings (Gaussian fit), as used by FID / FAD.

This is accelerando's own figure, computed in the embedding space of our note classifier
(``accelerando.generation.NoteClassifier``, trained on the local fluidsynth note corpus). It is **not**
FAD: FAD uses VGGish (or another published audio model) embeddings of waveforms, and its numbers are not
comparable with ours. Compare values only between runs that use the same classifier checkpoint and the same
reference set.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["frechet_distance", "gaussian_stats"]

ArrayLike = np.ndarray | torch.Tensor


def _as_embeddings(x: ArrayLike, name: str) -> np.ndarray:
    """``x`` as a float64 ``(N, D)`` array with ``N >= 2``, or a ``ValueError`` naming the problem."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise ValueError(f"{name} must be (N, D) embeddings with N >= 2; got shape {tuple(arr.shape)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def gaussian_stats(emb: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` of ``(N, D)`` embeddings, float64."""
    arr = _as_embeddings(emb, "emb")
    return arr.mean(axis=0), np.cov(arr, rowvar=False)


def _sqrt_psd(mat: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (eigen-decomposition)."""
    vals, vecs = np.linalg.eigh((mat + mat.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def frechet_distance(emb_a: ArrayLike, emb_b: ArrayLike) -> float:
    """Fréchet distance between Gaussians fitted to two embedding sets (Dowson & Landau 1982; FID's formula).

    ``d = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2)``, with the matrix square roots taken by
    eigen-decomposition of symmetric PSD matrices (no complex ``sqrtm`` round-off), so the result is
    non-negative and ``d(a, a) == 0`` up to float error.

    Args:
        emb_a: ``(N, D)`` embeddings (numpy or torch), ``N >= 2``.
        emb_b: ``(M, D)`` embeddings with the same ``D``.

    Returns:
        The squared Fréchet distance as a float. With few samples (``N < D``) the covariances are
        rank-deficient and the value is biased upwards; compare only sets of similar size.

    This is our own Fréchet distance in the note classifier's embedding, not FAD (see the module docstring).
    """
    a, b = _as_embeddings(emb_a, "emb_a"), _as_embeddings(emb_b, "emb_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"emb_a and emb_b must have the same dimension; got {a.shape[1]} and {b.shape[1]}")
    mu_a, cov_a = a.mean(axis=0), np.cov(a, rowvar=False)
    mu_b, cov_b = b.mean(axis=0), np.cov(b, rowvar=False)
    sqrt_a = _sqrt_psd(cov_a)
    middle = sqrt_a @ cov_b @ sqrt_a
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    dist = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_sqrt)
    return max(dist, 0.0)
