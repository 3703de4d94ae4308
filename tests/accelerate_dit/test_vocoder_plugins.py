"""Vocoder plugins: SIM score adapters and the one-step student, the FasterDiT loss on PeriodWave, the PeriodWave cache."""

from __future__ import annotations

import json
import math

import pytest
import torch
from vocoder_corpus import write_tone_corpus

from accelerando import fasterdit
from accelerando.accelerate_dit import remove_acceleration
from accelerando.accelerate_dit.sim import SIMConfig, SIMDistiller, train_vocoder
from accelerando.accelerate_dit.sim.vocoders import (
    FreGradScore,
    PeriodWaveScore,
    SIMVocoder,
    default_init_t,
    vocoder_score_model,
)
from accelerando.accelerate_dit.vocoder_cache import (
    DEPTHS,
    PeriodWaveCacheConfig,
    apply_periodwave_cache,
)
from accelerando.vocoders import FreGrad, PeriodWave, PeriodWaveTurbo
from accelerando.vocoders.periodwave import train as periodwave_train
from accelerando.vocoders.periodwave.model import SAMPLERS

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def periodwave():
    torch.manual_seed(0)
    return PeriodWave.from_preset("tiny").eval()


def _fregrad(**overrides) -> FreGrad:
    torch.manual_seed(0)
    model = FreGrad.from_preset(
        "small", residual_layers=3, residual_channels=8, remove_cutoff_alias=False, **overrides
    )
    torch.nn.init.normal_(
        model.output_projection.weight, std=0.1
    )  # zero-initialised: make eps_hat non-trivial
    return model.eval()


def _mel(batch: int = 1, frames: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 80, frames, generator=torch.Generator().manual_seed(seed)) - 5.0


# ------------------------------------------------------------------------------------------ SIM adapters


def test_periodwave_adapter_euler_step_is_the_models_one_step_euler(periodwave):
    mel = _mel()
    reference = periodwave.synthesize(
        mel, num_steps=1, method="euler", temperature=1.0, generator=torch.Generator().manual_seed(3)
    )
    score = vocoder_score_model(periodwave).requires_grad_(False)
    assert isinstance(score, PeriodWaveScore)
    prior = periodwave.sample_prior(mel, torch.Generator().manual_seed(3))  # the same noise
    z = prior / score.prior_scale(mel)  # whitened: N(0, 1)
    with torch.no_grad():
        x = z + (0.0 - 1.0) * score.ode_velocity(z, torch.ones(1), {"mel": mel})  # one Euler step, t = 1 -> 0
    torch.testing.assert_close(score.to_waveform(x, mel), reference, rtol=0, atol=1e-6)


def test_periodwave_adapter_path_and_loss_are_the_models_own(periodwave):
    mel, audio = _mel(batch=2), 0.1 * torch.randn(2, 16 * 256, generator=torch.Generator().manual_seed(1))
    score = vocoder_score_model(periodwave)
    sigma_min, noise_scale = periodwave.config.sigma_min, periodwave.config.noise_scale
    g = torch.Generator().manual_seed(5)
    s = torch.rand(2, generator=g)  # flow_matching_loss's draws, in its order
    prior = periodwave.sample_prior(mel, g)
    scale = score.prior_scale(mel)
    y, eps, t = audio.unsqueeze(1) / scale, prior / scale, 1 - s
    x_s = (1 - (1 - sigma_min) * s[:, None, None]) * prior + s[:, None, None] * audio.unsqueeze(1)
    torch.testing.assert_close(score.add_noise(y, eps, t) * scale, x_s)
    model_loss = periodwave.flow_matching_loss(audio, mel, generator=torch.Generator().manual_seed(5))
    adapter_loss = score.training_loss(y, t, eps, {"mel": mel})
    torch.testing.assert_close(adapter_loss * noise_scale**2, model_loss, rtol=1e-4, atol=0)
    # Tweedie: the score is -(x_t - alpha D) / sigma^2
    with torch.no_grad():
        x_t = score.add_noise(y, eps, t)
        d = score.denoise(x_t, t, {"mel": mel})
        alpha, sigma = (v[:, None, None] for v in score.alpha_sigma(t))
        torch.testing.assert_close(score.score(x_t, t, {"mel": mel}), -(x_t - alpha * d) / sigma**2)


def test_periodwave_adapter_encodes_the_mel_once_for_a_frozen_teacher(periodwave):
    score = vocoder_score_model(periodwave).requires_grad_(False)
    mel, calls = _mel(), []
    handle = periodwave.mel_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        with torch.no_grad():
            x = torch.randn(score.sample_shape(mel))
            for t in (0.9, 0.5, 0.1):
                score.denoise(x, torch.full((1,), t), {"mel": mel})
    finally:
        handle.remove()
    assert len(calls) == 1


@pytest.mark.parametrize("precondition", [False, True])
def test_fregrad_adapter_x0_is_the_models_own_prediction(precondition):
    model = _fregrad(precondition=precondition)
    score = vocoder_score_model(model)
    assert isinstance(score, FreGradScore)
    mel = _mel(batch=2)
    std = model.band_std(mel)  # (B, 2, L)
    x = torch.randn(std.shape, generator=torch.Generator().manual_seed(2)) * std
    index = 20
    t = torch.full((2,), index / (len(model.config.noise_schedule) - 1))
    alpha_bar = float(
        torch.cumprod(1 - torch.tensor(model.config.noise_schedule, dtype=torch.float64), 0)[index]
    )
    with torch.no_grad():
        eps = model._predict_noise(model, x, torch.full((2,), float(index)), mel, std)
        expected = (x - math.sqrt(1 - alpha_bar) * eps) / math.sqrt(alpha_bar)
        got = score.denoise(x / std, t, {"mel": mel}) * std
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_fregrad_adapter_denoiser_is_a_one_step_ddpm_update():
    model = _fregrad(precondition=True)
    score = vocoder_score_model(model)
    mel = _mel()
    index = 35
    alpha_bar = float(
        torch.cumprod(1 - torch.tensor(model.config.noise_schedule, dtype=torch.float64), 0)[index]
    )
    wav = model.synthesize(mel, betas=[1 - alpha_bar], generator=torch.Generator().manual_seed(4))
    std = model.band_std(mel)
    x = torch.randn(std.shape, generator=torch.Generator().manual_seed(4)) * std  # synthesize's first draw
    t = torch.full((1,), index / (len(model.config.noise_schedule) - 1))
    with torch.no_grad():
        via_adapter = score.to_waveform(score.denoise(x / std, t, {"mel": mel}), mel)
    torch.testing.assert_close(via_adapter, wav, rtol=0, atol=1e-5)


def test_default_init_t():
    assert default_init_t(PeriodWave.from_preset("tiny")) == 1.0
    model = _fregrad()
    t = default_init_t(model)
    alpha_bar = torch.cumprod(1 - torch.tensor(model.config.noise_schedule, dtype=torch.float64), 0)
    start = torch.cumprod(1 - torch.tensor(model.config.inference_noise_schedule, dtype=torch.float64), 0)[-1]
    assert t * 49 == round(t * 49)  # a training step
    # where FreGrad's default (6-step) sampler starts from pure prior noise: sqrt(alpha_bar) ~ 0.59
    assert abs(float(alpha_bar[round(t * 49)].sqrt()) - float(start.sqrt())) < 0.02


# ------------------------------------------------------------------------------------------ the student


@pytest.mark.parametrize("family", ["PeriodWave", "FreGrad"])
def test_student_round_trips_save_load_exactly(family, periodwave, tmp_path):
    teacher = periodwave if family == "PeriodWave" else _fregrad()
    student = SIMVocoder.from_teacher(teacher).eval()
    assert student.loaded_from_teacher[0] == student.loaded_from_teacher[1]  # every tensor from the teacher
    student.save_pretrained(tmp_path / "student")
    files = sorted(p.name for p in (tmp_path / "student").iterdir())
    assert files == ["config.json", "diffusion_pytorch_model.safetensors"]
    loaded = SIMVocoder.from_pretrained(tmp_path / "student").eval()
    assert loaded.config.family == family and loaded.config.init_t == student.config.init_t
    own, other = student.state_dict(), loaded.state_dict()
    assert own.keys() == other.keys() and all(torch.equal(own[k], other[k]) for k in own)
    mel = _mel()
    a = student.synthesize(mel, generator=torch.Generator().manual_seed(0))
    b = loaded.synthesize(mel, generator=torch.Generator().manual_seed(0))
    assert a.shape == (1, 16 * 256)
    # The weights are bit-identical; a reloaded PeriodWave's output differs by ~2e-8 (as for PeriodWave itself:
    # the reloaded tensors' memory layout changes the conv kernels' summation order).
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert (student.sample_rate, student.hop_length) == (22050, 256)
    # the toolkit's loader (the engine, `accelerando bench`, the benchmarks' --model) opens a student folder too
    from accelerando.pretrained.loading import load_mel_vocoder

    via_loader = load_mel_vocoder(tmp_path / "student")
    assert isinstance(via_loader, SIMVocoder) and not via_loader.training
    torch.testing.assert_close(via_loader.synthesize(mel, generator=torch.Generator().manual_seed(0)), b)


@pytest.mark.parametrize("family", ["PeriodWave", "FreGrad"])
def test_student_is_one_network_evaluation_of_the_sim_generator(family, periodwave):
    teacher = periodwave if family == "PeriodWave" else _fregrad()
    student = SIMVocoder.from_teacher(teacher).eval()
    calls = []
    handle = student.backbone.register_forward_hook(lambda *a: calls.append(1))
    mel = _mel()
    try:
        wav = student.synthesize(mel, generator=torch.Generator().manual_seed(0))
    finally:
        handle.remove()
    assert len(calls) == 1
    sim = SIMDistiller(
        vocoder_score_model(teacher), SIMConfig(init_t=student.config.init_t), generator=student.score_model()
    )
    z = torch.randn(student.sample_shape(mel), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = student.score_model().to_waveform(sim.generate(z, {"mel": mel}), mel)
    torch.testing.assert_close(wav, expected, rtol=0, atol=0)


def test_lighter_student_presets():
    teacher = FreGrad.from_preset("small", prior="calibrated", prior_scales=[0.1, 1.4], prior_split_bin=71)
    student = SIMVocoder.from_teacher(teacher, preset="small", residual_layers=2)
    loaded, total = student.loaded_from_teacher
    assert (
        student.backbone.config.residual_layers == 2 and loaded == total
    )  # the first blocks come from the teacher
    fresh = SIMVocoder.from_teacher(teacher, preset="small", init="fresh", residual_layers=2)
    assert not hasattr(fresh, "loaded_from_teacher")
    assert (
        fresh.backbone.config.prior == teacher.config.prior and fresh.config.init_t == student.config.init_t
    )
    pw_student = SIMVocoder.from_teacher(PeriodWaveTurbo.from_preset("tiny", hidden_dim=48), preset="tiny")
    assert pw_student.config.family == "PeriodWave" and pw_student.backbone.config.hidden_dim == 32
    assert pw_student.backbone.config.drop_path == 0.0
    assert pw_student.synthesize(_mel()).shape == (1, 16 * 256)


@pytest.mark.parametrize("family", ["PeriodWave", "FreGrad"])
def test_a_few_distillation_steps_change_the_generator_only(family, periodwave):
    teacher = periodwave if family == "PeriodWave" else _fregrad()
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = SIMVocoder.from_teacher(teacher)
    before = [p.detach().clone() for p in student.parameters()]
    config = SIMConfig(
        init_t=student.config.init_t, t_max=min(0.98, student.config.init_t), generator_lr=1e-3, fake_lr=1e-3
    )
    sim = SIMDistiller(vocoder_score_model(teacher), config, generator=student.score_model())
    torch.manual_seed(0)
    mel = _mel(batch=2, seed=1)
    for _ in range(2):
        losses = sim.train_step(torch.randn(student.sample_shape(mel)), {"mel": mel})
        assert all(math.isfinite(v) for v in losses.values())
    changed = max((a - b).abs().max().item() for a, b in zip(before, student.parameters()))
    assert changed > 0
    assert all(torch.equal(v, teacher_before[k]) for k, v in teacher.state_dict().items())


def test_bad_inputs_give_clear_errors(periodwave):
    with pytest.raises(TypeError, match="Linear"):
        vocoder_score_model(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="family must be one of"):
        SIMVocoder(family="HiFiGAN")
    with pytest.raises(ValueError, match="init_t"):
        SIMVocoder(init_t=0.0)
    student = SIMVocoder.from_teacher(periodwave)
    with pytest.raises(ValueError, match="one-step generator"):
        student.synthesize(_mel(), num_steps=4)
    with pytest.raises(ValueError, match="n_mels|mel bins"):
        student.synthesize(torch.randn(1, 64, 16))
    with pytest.raises(ValueError, match="init must be"):
        SIMVocoder.from_teacher(periodwave, init="random")
    with pytest.raises(ValueError, match="Unknown PeriodWave preset"):
        SIMVocoder.from_teacher(periodwave, preset="XXL")
    with pytest.raises(TypeError, match="Linear"):
        SIMVocoder.from_teacher(torch.nn.Linear(2, 2))
    score = vocoder_score_model(periodwave)
    with pytest.raises(ValueError, match='cond=\\{"mel"'):
        score.denoise(torch.randn(1, 1, 4096), torch.ones(1), {})
    with pytest.raises(ValueError, match="x_t must be"):
        score.denoise(torch.randn(1, 1, 100), torch.ones(1), {"mel": _mel()})


# ------------------------------------------------------------------------------------------ the script


@pytest.mark.slow
def test_sim_vocoder_script_writes_a_loadable_student(periodwave, tmp_path):
    from accelerando.commands.train import TRAINERS

    assert TRAINERS["sim-vocoder"] == "accelerando.accelerate_dit.sim.train_vocoder"
    write_tone_corpus(tmp_path / "data")
    periodwave.save_pretrained(tmp_path / "teacher")
    argv = [
        "--teacher", str(tmp_path / "teacher"), "--data_dir", str(tmp_path / "data"), "--output_dir",
        str(tmp_path / "out"), "--segment_frames", "16", "--train_batch_size", "2", "--max_train_steps", "2",
        "--checkpointing_steps", "2", "--learning_rate", "1e-3",
    ]  # fmt: skip
    student = train_vocoder.main(train_vocoder.parse_args(argv))
    loaded = SIMVocoder.from_pretrained(tmp_path / "out" / "model")
    assert (tmp_path / "out" / "checkpoint-2" / "model" / "config.json").is_file()
    log = [json.loads(line) for line in (tmp_path / "out" / "sim_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [1, 2]
    assert any(
        not torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), periodwave.state_dict().values())
    )
    assert torch.equal(student.state_dict()["backbone.final.out.parametrizations.weight.original0"],
                       loaded.state_dict()["backbone.final.out.parametrizations.weight.original0"])  # fmt: skip
    assert loaded.synthesize(_mel()).shape == (1, 16 * 256)
    with pytest.raises(TypeError, match="sim-vocoder distills"):
        train_vocoder.load_teacher(tmp_path / "out" / "model")


# ------------------------------------------------------------------------------------------ FasterDiT on PeriodWave


def _plain_flow_matching_loss(model, audio, mel, generator):
    """The loss as it was before the FasterDiT options (reference)."""
    x1 = audio.unsqueeze(1)
    sigma_min = model.config.sigma_min
    t = torch.rand(x1.shape[0], generator=generator)
    std = model.prior_std_samples(mel)
    x0 = model.sample_prior(mel, generator)
    tt = t[:, None, None]
    x_t = (1 - (1 - sigma_min) * tt) * x0 + tt * x1
    return (((model(x_t, t, mel) - (x1 - (1 - sigma_min) * x0)) / std) ** 2).mean()


def test_periodwave_fasterdit_defaults_reproduce_the_plain_loss(periodwave):
    mel, audio = _mel(batch=3), 0.1 * torch.randn(3, 16 * 256, generator=torch.Generator().manual_seed(1))
    plain = _plain_flow_matching_loss(periodwave, audio, mel, torch.Generator().manual_seed(7))
    default = periodwave.flow_matching_loss(audio, mel, generator=torch.Generator().manual_seed(7))
    explicit = periodwave.flow_matching_loss(
        audio,
        mel,
        generator=torch.Generator().manual_seed(7),
        timestep_sampling="uniform",
        direction_weight=0.0,
    )
    assert torch.equal(plain, default) and torch.equal(default, explicit)


def test_periodwave_fasterdit_options(periodwave):
    mel, audio = _mel(batch=3), 0.1 * torch.randn(3, 16 * 256, generator=torch.Generator().manual_seed(1))
    seen = []

    def estimator(x_t, t, mel_):
        out = periodwave(x_t, t, mel_)
        seen.append((t, out))
        return out

    kw = {"timestep_sampling": "logit_normal", "logit_mean": 0.5, "logit_std": 0.8}
    base = periodwave.flow_matching_loss(audio, mel, torch.Generator().manual_seed(3), estimator, **kw)
    expected_t = 1 - fasterdit.logit_normal_timesteps(3, 0.5, 0.8, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(seen[0][0], expected_t)
    with_dir = periodwave.flow_matching_loss(
        audio, mel, torch.Generator().manual_seed(3), estimator, direction_weight=0.5, **kw
    )
    g = torch.Generator().manual_seed(3)
    fasterdit.logit_normal_timesteps(3, 0.5, 0.8, generator=g)  # advance g past the times
    prior = periodwave.sample_prior(mel, g)
    std = periodwave.prior_std_samples(mel)
    target = audio.unsqueeze(1) - (1 - periodwave.config.sigma_min) * prior
    direction = fasterdit.velocity_direction_loss((seen[1][1] / std).flatten(1), (target / std).flatten(1))
    torch.testing.assert_close(with_dir, base + 0.5 * direction)
    with pytest.raises(ValueError, match="timestep_sampling"):
        periodwave.flow_matching_loss(audio, mel, timestep_sampling="cosine")
    with pytest.raises(ValueError, match="direction_weight"):
        periodwave.flow_matching_loss(audio, mel, direction_weight=-1.0)
    args = periodwave_train.parse_args(
        ["--data_dir", "x", "--timestep_sampling", "logit_normal", "--direction_weight", "1"]
    )
    assert (args.timestep_sampling, args.logit_mean, args.logit_std, args.direction_weight) == (
        "logit_normal",
        0.0,
        1.0,
        1.0,
    )
    assert periodwave_train.parse_args(["--data_dir", "x"]).timestep_sampling == "uniform"
    with pytest.raises(SystemExit):
        periodwave_train.parse_args(["--data_dir", "x", "--direction_weight", "-1"])


# ------------------------------------------------------------------------------------------ the PeriodWave cache


def _sample(model, method, steps=4):
    return model.synthesize(
        _mel(), num_steps=steps, method=method, generator=torch.Generator().manual_seed(0)
    )


@pytest.mark.parametrize("method", list(SAMPLERS))
def test_cache_interval_one_is_exact_and_remove_restores(method, periodwave):
    reference = _sample(periodwave, method)
    for depth in DEPTHS:
        cache = apply_periodwave_cache(
            periodwave, PeriodWaveCacheConfig(interval=1, depth=depth, forecast="taylor1")
        )
        assert torch.equal(_sample(periodwave, method), reference)
        assert cache.state.reused == 0
        cache.remove()
    cache = apply_periodwave_cache(periodwave, PeriodWaveCacheConfig(interval=2, forecast="taylor1"))
    cached = _sample(periodwave, method)
    evaluations = 4 * SAMPLERS[method] + (method == "fireflow")
    periods = len(periodwave.periods)
    assert cache.state.computed == periods * math.ceil(evaluations / 2)
    assert cache.state.reused == periods * (evaluations // 2)
    assert torch.isfinite(cached).all() and not torch.equal(cached, reference)
    assert cache.remove() is periodwave
    for module in (
        periodwave,
        periodwave.unet,
        periodwave.unet.mid,
        periodwave.unet.ups[0],
        periodwave.unet.downs[2],
    ):
        assert "forward" not in module.__dict__ and "_accelerando_hooks" not in module.__dict__
    assert "_accelerando_plugins" not in periodwave.__dict__
    assert torch.equal(_sample(periodwave, method), reference)


def test_cache_skips_the_deep_blocks_and_works_on_turbo(periodwave):
    calls = []
    handle = periodwave.unet.mid.res.register_forward_pre_hook(
        lambda *a: calls.append(1)
    )  # inside mid.forward
    try:
        _sample(periodwave, "euler", steps=6)
        plain = len(calls)
        cache = apply_periodwave_cache(periodwave, PeriodWaveCacheConfig(interval=3, depth="mid"))
        calls.clear()
        _sample(periodwave, "euler", steps=6)
        assert len(calls) == plain // 3  # the mid block ran only at refreshes
        cache.remove()
    finally:
        handle.remove()
    turbo = PeriodWaveTurbo.from_periodwave(periodwave, num_steps=4).eval()
    reference = turbo.synthesize(_mel(), generator=torch.Generator().manual_seed(0))
    apply_periodwave_cache(turbo, PeriodWaveCacheConfig(interval=1))
    assert torch.equal(turbo.synthesize(_mel(), generator=torch.Generator().manual_seed(0)), reference)
    remove_acceleration(turbo)  # the DiT plugins' remover takes the cache off too
    assert "forward" not in turbo.__dict__ and "forward" not in turbo.unet.mid.__dict__


def test_cache_errors(periodwave):
    with pytest.raises(ValueError, match="interval"):
        PeriodWaveCacheConfig(interval=0)
    with pytest.raises(ValueError, match="depth"):
        PeriodWaveCacheConfig(depth="bottom")
    with pytest.raises(ValueError, match="forecast"):
        PeriodWaveCacheConfig(forecast="taylor3")
    with pytest.raises(TypeError, match="FreGrad"):
        apply_periodwave_cache(_fregrad())
    cache = apply_periodwave_cache(periodwave)
    try:
        with pytest.raises(ValueError, match="already applied"):
            apply_periodwave_cache(periodwave)
    finally:
        cache.remove()
