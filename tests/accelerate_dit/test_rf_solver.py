"""RF-Solver, FireFlow and friends against the exact flow of a Gaussian mixture; the scheduler; inversion; RF-Edit."""

from __future__ import annotations

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from accelerando.accelerate_dit import RFEditConfig, RFSolverScheduler, rf_edit, rf_solver_invert
from accelerando.generation import (
    MelDiT,
    MelDiTPipeline,
    flow_model_wrapper,
    get_sigmas_shifted,
    get_sigmas_uniform,
    sample_euler,
    sample_fireflow,
    sample_heun,
    sample_midpoint,
    sample_rf_solver,
)
from accelerando.generation.toy import GaussianMixtureFlow

GMM = GaussianMixtureFlow.default()


def sample_rf_solver_3(*args, **kwargs):
    return sample_rf_solver(*args, order=3, **kwargs)


@pytest.fixture(scope="module")
def exact():
    x1 = GMM.sample_noise(64, seed=0)
    return x1, GMM.solve(x1, steps=1000)


def _error(sampler, x1, ref, n: int) -> float:
    x0 = sampler(GMM.velocity, x1, get_sigmas_uniform(n).double(), disable=True)
    return (x0 - ref).norm(dim=1).mean().item()


def test_closed_form_velocity_matches_monte_carlo():
    """v(x, sigma) = E[noise - x0 | x_sigma = x] by self-normalised importance sampling over data samples:
    weights N(x; (1 - sigma) x0, sigma^2 I), and given x0 the noise is (x - (1 - sigma) x0) / sigma."""
    x0 = GMM.sample_data(400_000, seed=1)
    query = torch.tensor([[0.3, -0.2], [-1.0, 1.0], [1.5, -1.0]], dtype=torch.float64)
    for sigma in (0.3, 0.6, 0.9):
        mean = (1 - sigma) * x0  # (N, d)
        log_w = -((query[:, None] - mean[None]) ** 2).sum(-1) / (2 * sigma**2)  # (Q, N)
        w = torch.softmax(log_w, dim=1)[..., None]
        mc = (w * ((query[:, None] - mean[None]) / sigma - x0[None])).sum(1)
        torch.testing.assert_close(GMM.velocity(query, torch.tensor(sigma)), mc, atol=0.03, rtol=0)


@pytest.mark.parametrize(
    ("sampler", "min_ratio", "max_ratio"),
    [
        (sample_euler, 1.7, 2.5),
        (sample_heun, 3.0, 5.0),
        (sample_midpoint, 3.0, 5.0),
        (sample_rf_solver, 3.0, 5.0),
        (sample_fireflow, 3.0, 5.0),
        (sample_rf_solver_3, 5.5, 10.0),
    ],
    ids=["euler", "heun", "midpoint", "rf_solver_2", "fireflow", "rf_solver_3"],
)
def test_convergence_order(exact, sampler, min_ratio, max_ratio):
    """Halving the step divides the error by ~2 (order 1), ~4 (order 2) or ~8 (order 3)."""
    x1, ref = exact
    errors = [_error(sampler, x1, ref, n) for n in (16, 32, 64)]
    ratios = [a / b for a, b in zip(errors, errors[1:])]
    assert all(min_ratio <= r <= max_ratio for r in ratios), (errors, ratios)


def test_rf_solver_2_is_the_midpoint_method():
    x = GMM.sample_noise(32, seed=3)
    sigmas = get_sigmas_shifted(7).double()
    a = sample_rf_solver(GMM.velocity, x, sigmas, disable=True)
    torch.testing.assert_close(a, sample_midpoint(GMM.velocity, x, sigmas, disable=True), rtol=0, atol=1e-12)


def test_rf_solver_3_is_kutta_rk3():
    x = GMM.sample_noise(16, seed=4)
    sigmas = get_sigmas_uniform(5).double()
    ones = x.new_ones(x.shape[0])
    y = x.clone()
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        h = s_next - s
        k1 = GMM.velocity(y, s * ones)
        k2 = GMM.velocity(y + h / 2 * k1, (s + h / 2) * ones)
        k3 = GMM.velocity(y - h * k1 + 2 * h * k2, s_next * ones)
        y = y + h / 6 * (k1 + 4 * k2 + k3)
    torch.testing.assert_close(
        sample_rf_solver_3(GMM.velocity, x, sigmas, disable=True), y, rtol=0, atol=1e-12
    )
    with pytest.raises(ValueError, match="order must be 2 or 3, got 4"):
        sample_rf_solver(GMM.velocity, x, sigmas, order=4)


@pytest.mark.parametrize(
    ("sampler", "nfe"), [(sample_fireflow, 1), (sample_rf_solver, 2), (sample_rf_solver_3, 3)]
)
def test_evaluations_per_step(sampler, nfe):
    calls = []

    def model(x, sigma):
        calls.append(sigma[0].item())
        return GMM.velocity(x, sigma)

    sampler(model, GMM.sample_noise(4), get_sigmas_uniform(6).double(), disable=True)
    assert len(calls) == nfe * 6 + (1 if sampler is sample_fireflow else 0)


@pytest.mark.parametrize("solver", ["rf_solver", "rf_solver_3", "fireflow", "euler"])
def test_inversion_then_regeneration_converges(solver):
    """Data -> noise -> data with the same solver; the round-trip error shrinks with the number of steps.

    Measured (16 -> 32 -> 64 steps): Euler ~2x per halving; RF-Solver-2 and FireFlow ~8x (the leading h^3 local
    errors of the forward and backward midpoint steps have opposite signs and cancel); RF-Solver-3 ~7-8x.
    """
    regenerate = {
        "rf_solver": sample_rf_solver,
        "rf_solver_3": sample_rf_solver_3,
        "fireflow": sample_fireflow,
        "euler": sample_euler,
    }[solver]
    x0 = GMM.sample_data(64, seed=5)
    errors = []
    for n in (16, 32, 64):
        sigmas = get_sigmas_uniform(n).double()
        noise = rf_solver_invert(GMM.velocity, x0, sigmas, solver=solver, disable=True)
        back = regenerate(GMM.velocity, noise, sigmas, disable=True)
        errors.append((back - x0).norm(dim=1).mean().item())
    min_ratio = {"euler": 1.6, "rf_solver_3": 5.0}.get(solver, 3.0)
    assert all(a / b >= min_ratio for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < (0.1 if solver == "euler" else 1e-3)


def test_invert_rejects_bad_arguments():
    x = GMM.sample_data(4)
    with pytest.raises(ValueError, match="Unknown inversion solver 'heun'"):
        rf_solver_invert(GMM.velocity, x, get_sigmas_uniform(4).double(), solver="heun")
    with pytest.raises(ValueError, match="decreasing sampling schedule"):
        rf_solver_invert(GMM.velocity, x, get_sigmas_uniform(4).double().flip(0))


# --- the diffusers scheduler -------------------------------------------------------------------------------------


def _generic_pipeline_loop(scheduler, model, latents: torch.Tensor, **set_timesteps) -> torch.Tensor:
    """What any diffusers flow-matching pipeline does with its scheduler."""
    scheduler.set_timesteps(**set_timesteps)
    for t in scheduler.timesteps:
        v = model(latents, (t / 1000).expand(latents.shape[0]))
        latents = scheduler.step(v, t, latents, return_dict=False)[0]
    return latents


def test_scheduler_timesteps_and_config():
    sched = RFSolverScheduler(shift=3.0)
    sched.set_timesteps(4)
    euler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    euler.set_timesteps(4)
    assert sched.order == 2 and len(sched.timesteps) == 8 and len(sched.sigmas) == 9
    torch.testing.assert_close(sched.timesteps[::2], euler.timesteps)
    torch.testing.assert_close(sched.sigmas[::2], euler.sigmas)
    torch.testing.assert_close(sched.sigmas[1::2], (euler.sigmas[:-1] + euler.sigmas[1:]) / 2)
    torch.testing.assert_close(sched.timesteps[1::2], sched.sigmas[1::2] * 1000)
    # from_config of a FLUX-style Euler config (dynamic shifting needs mu, as in FluxPipeline)
    flux = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15)
    sched = RFSolverScheduler.from_config(flux.config)
    assert sched.config.use_dynamic_shifting and type(sched).__name__ == "RFSolverScheduler"
    sched.set_timesteps(5, mu=0.8)
    flux.set_timesteps(5, mu=0.8)
    torch.testing.assert_close(sched.sigmas[::2], flux.sigmas)
    with pytest.raises(ValueError, match="stochastic_sampling"):
        RFSolverScheduler(stochastic_sampling=True).set_timesteps(3)


def test_scheduler_loop_equals_sample_rf_solver():
    x1 = GMM.sample_noise(32, seed=6).float()
    sched = RFSolverScheduler(shift=2.0)
    out = _generic_pipeline_loop(sched, GMM.velocity, x1, num_inference_steps=6)
    ref = sample_rf_solver(GMM.velocity, x1, sched.sigmas[::2], disable=True)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    # custom sigmas (as MelDiTPipeline passes them) and a second run on the same scheduler
    sigmas = [1.0, 0.7, 0.4, 0.15]
    out = _generic_pipeline_loop(sched, GMM.velocity, x1, sigmas=sigmas)
    ref = sample_rf_solver(GMM.velocity, x1, sched.sigmas[::2], disable=True)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_scheduler_img2img_begin_index():
    """Pipelines that start mid-schedule call set_begin_index(t_start * order) and scale_noise."""
    sched = RFSolverScheduler()
    sched.set_timesteps(6)
    start = 2 * sched.order
    sched.set_begin_index(start)
    x0, noise = GMM.sample_data(8).float(), GMM.sample_noise(8).float()
    t0 = sched.timesteps[start]
    latents = sched.scale_noise(x0, t0[None], noise)
    torch.testing.assert_close(latents, sched.sigmas[start] * noise + (1 - sched.sigmas[start]) * x0)
    ref = sample_rf_solver(GMM.velocity, latents, sched.sigmas[start::2], disable=True)
    for t in sched.timesteps[start:]:
        latents = sched.step(GMM.velocity(latents, (t / 1000).expand(8)), t, latents).prev_sample
    torch.testing.assert_close(latents, ref, rtol=1e-5, atol=1e-5)


def test_scheduler_save_load(tmp_path):
    RFSolverScheduler(shift=3.0).save_pretrained(tmp_path)
    loaded = RFSolverScheduler.from_pretrained(tmp_path)
    assert loaded.config.shift == 3.0 and isinstance(loaded, RFSolverScheduler)


# --- MelDiT: pipeline drop-in and RF-Edit -------------------------------------------------------------------------

TINY = {
    "n_mels": 16,
    "num_frames": 16,
    "patch_size": (4, 4),
    "hidden_size": 32,
    "num_layers": 2,
    "num_attention_heads": 2,
    "num_programs": 8,
}


@pytest.fixture(scope="module")
def tiny_pipe() -> MelDiTPipeline:
    model = MelDiT(**TINY).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():  # non-trivial outputs (adaLN-zero starts as the identity)
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    pipe = MelDiTPipeline(model, RFSolverScheduler(shift=3.0))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("guidance_scale", [1.0, 2.5])
def test_pipeline_with_rf_solver_scheduler_equals_sampler(tiny_pipe, guidance_scale):
    latents = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    labels = {"instrument": [1, 3], "pitch": [60, 64], "velocity": [90, 70]}
    out = tiny_pipe(**labels, num_inference_steps=5, guidance_scale=guidance_scale, latents=latents,
                    output_type="latent").mels  # fmt: skip
    fn = flow_model_wrapper(tiny_pipe.transformer, [1, 3], [60, 64], [90, 70], guidance_scale=guidance_scale)
    ref = sample_rf_solver(fn, latents, tiny_pipe.scheduler.sigmas[::2], disable=True)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def _plain_edit(pipe, mel, src, tgt, num_steps, shift=3.0):
    """Inversion then regeneration with no feature sharing, by hand."""
    t = pipe.transformer
    x0 = t.normalize_mel(mel)[:, None]
    sigmas = get_sigmas_shifted(num_steps, shift=shift)
    noise = rf_solver_invert(flow_model_wrapper(t, *src), x0, sigmas, disable=True)
    return t.denormalize_mel(sample_rf_solver(flow_model_wrapper(t, *tgt), noise, sigmas, disable=True))[:, 0]


def test_rf_edit_without_injection_is_invert_then_regenerate(tiny_pipe):
    mel = torch.randn(1, 16, 16, generator=torch.Generator().manual_seed(2)) - 5
    src = {"instrument": 1, "pitch": 60, "velocity": 90}
    tgt = {"instrument": 5, "pitch": 60, "velocity": 90}
    ref = _plain_edit(tiny_pipe, mel, ([1], [60], [90]), ([5], [60], [90]), 4)
    for kwargs in ({"inject_steps": 0}, {"inject_steps": 3, "inject_blocks": []}):
        out = rf_edit(tiny_pipe, mel, src, tgt, num_steps=4, **kwargs).mels
        torch.testing.assert_close(out, ref)
    shared = rf_edit(tiny_pipe, mel, src, tgt, num_steps=4, inject_steps=2, inject_blocks=[1]).mels
    assert (shared - ref).abs().max() > 1e-4  # sharing changes the result
    # same condition: the edit is a reconstruction, and sharing the source's own values keeps it close
    recon = rf_edit(tiny_pipe, mel, src, src, num_steps=8, inject_steps=2).mels
    assert (recon - mel).abs().mean() < 0.2 * mel.std()


def test_rf_edit_injects_the_stored_values(tiny_pipe, monkeypatch):
    """The V that block 1's attention uses in the first regeneration steps is the V it had during inversion."""
    values = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def recording_sdpa(query, key, value, *args, **kwargs):
        values.append(value.clone())
        return sdpa(query, key, value, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", recording_sdpa)
    n, inject = 4, 2
    mel = torch.randn(1, 16, 16, generator=torch.Generator().manual_seed(3)) - 5
    rf_edit(
        tiny_pipe,
        mel,
        {"instrument": 1},
        {"instrument": 6},
        num_steps=n,
        inject_steps=inject,
        inject_blocks=[1],
    )
    num_blocks = 2
    assert len(values) == 2 * (2 * n) * num_blocks  # (inversion + regeneration) x 2 calls per step x blocks

    def v(model_call: int, block: int) -> torch.Tensor:
        return values[model_call * num_blocks + block]

    for step in range(n):
        for stage in range(2):
            inv_call = 2 * (n - 1 - step) + stage  # the inversion call over the same interval
            gen_call = 2 * n + 2 * step + stage
            same = torch.equal(v(gen_call, 1), v(inv_call, 1))
            assert same == (step < inject), (step, stage)
            assert not torch.equal(v(gen_call, 0), v(inv_call, 0))  # block 0 is never shared


def test_rf_edit_errors(tiny_pipe):
    mel = torch.zeros(1, 16, 16) - 5
    with pytest.raises(ValueError, match=r"inject_blocks \[2\] are out of range"):
        rf_edit(tiny_pipe, mel, None, {"instrument": 1}, num_steps=2, inject_blocks=[2])
    with pytest.raises(ValueError, match="inject_steps must be in 0..num_steps"):
        rf_edit(tiny_pipe, mel, None, {"instrument": 1}, num_steps=2, inject_steps=3)
    with pytest.raises(ValueError, match=r"source_mel must be \(B, 16, frames\)"):
        rf_edit(tiny_pipe, torch.zeros(1, 80, 16), None, {"instrument": 1})
    with pytest.raises(ValueError, match="Unknown instrument 'tuba-ish'"):
        rf_edit(tiny_pipe, mel, None, {"instrument": "tuba-ish"}, num_steps=2)
    with pytest.raises(ValueError, match="Unknown condition keys"):
        rf_edit(tiny_pipe, mel, None, {"program": 1}, num_steps=2)
    assert RFEditConfig().resolve_blocks(12) == list(range(6, 12))
