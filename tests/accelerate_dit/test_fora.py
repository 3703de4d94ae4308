"""FORA: exactness at interval 1, call counts, warm-up / per-block intervals, the Taylor forecast, pipelines,
composition with ToMe and torch.compile."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from accel_dit_models import MODELS, at_timestep, meldit, meldit_inputs, output
from diffusers import FlowMatchEulerDiscreteScheduler

from accelerando.accelerate_dit import (
    FORAConfig,
    ToMeConfig,
    apply_fora,
    apply_tome,
    remove_acceleration,
    reset_acceleration_state,
)
from accelerando.generation import MelDiT, MelDiTPipeline


def run_steps(model: torch.nn.Module, args: tuple, kwargs: dict, num_steps: int = 4) -> list[torch.Tensor]:
    """Outputs of ``num_steps`` calls at decreasing timesteps (a denoising loop with a fixed input)."""
    top = float(kwargs["timestep"].max())
    return [output(model, args, at_timestep(kwargs, top * (1 - i / num_steps))) for i in range(num_steps)]


def count_calls(model: MelDiT) -> list[int]:
    """[attention calls, MLP calls], counted on inner layers (below the FORA wrapper)."""
    counts = [0, 0]
    for block in model.transformer_blocks:
        block.attn1.to_q.register_forward_pre_hook(lambda *_: counts.__setitem__(0, counts[0] + 1))
        block.ff.net[0].register_forward_pre_hook(lambda *_: counts.__setitem__(1, counts[1] + 1))
    return counts


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("forecast", ["none", "taylor1"])
def test_interval_one_is_exactly_the_baseline(name: str, forecast: str) -> None:
    make, inputs = MODELS[name]
    model = make()
    args, kwargs = inputs()
    baseline = run_steps(model, args, kwargs)
    apply_fora(model, FORAConfig(interval=1, forecast=forecast))
    assert all(torch.equal(a, b) for a, b in zip(run_steps(model, args, kwargs), baseline, strict=True))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_cached_steps_differ_but_stay_finite(name: str) -> None:
    make, inputs = MODELS[name]
    model = make()
    args, kwargs = inputs()
    baseline = run_steps(model, args, kwargs)
    state = apply_fora(model, FORAConfig(interval=2))
    cached = run_steps(model, args, kwargs)
    assert torch.equal(cached[0], baseline[0]) and torch.equal(cached[2], baseline[2])  # refresh steps
    assert not torch.equal(cached[1], baseline[1]) and torch.isfinite(cached[1]).all()
    assert state.reused == state.computed  # half of the sub-module calls were served from the cache


@pytest.mark.parametrize(
    ("interval", "warmup", "expected"), [(1, 0, 8), (2, 0, 4), (3, 0, 3), (3, 2, 4), (4, 1, 3)]
)
def test_call_counts_drop_by_the_expected_fraction(interval: int, warmup: int, expected: int) -> None:
    model = meldit()
    counts = count_calls(model)
    apply_fora(model, FORAConfig(interval=interval, warmup_steps=warmup))
    run_steps(model, *meldit_inputs(), num_steps=8)
    num_blocks = len(model.transformer_blocks)
    assert counts == [expected * num_blocks, expected * num_blocks]


def test_per_block_intervals() -> None:
    model = meldit()
    counts = count_calls(model)
    apply_fora(model, FORAConfig(interval=2, block_intervals=[1, 4]))
    run_steps(model, *meldit_inputs(), num_steps=8)
    assert counts == [8 + 2, 8 + 2]


def test_new_generation_and_reset_clear_the_cache() -> None:
    model = meldit()
    args, kwargs = meldit_inputs()
    baseline = run_steps(model, args, kwargs)
    state = apply_fora(model, FORAConfig(interval=3, forecast="taylor1"))
    first = run_steps(model, args, kwargs)
    second = run_steps(model, args, kwargs)  # the first call's larger timestep starts a new generation
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert torch.equal(first[0], baseline[0])
    reset_acceleration_state(model)
    assert state.entries == {} and state.computed == 0


def euler_sample(model: MelDiT, num_steps: int, seed: int = 0) -> torch.Tensor:
    """A plain rectified-flow Euler loop (a custom loop: no pipeline)."""
    args, kwargs = meldit_inputs(batch=2, seed=seed)
    x = args[0]
    sigmas = torch.linspace(1.0, 0.0, num_steps + 1)
    for i in range(num_steps):
        v = output(model, (x,), at_timestep(kwargs, float(sigmas[i]) * 1000))
        x = x + (sigmas[i + 1] - sigmas[i]) * v
    return x


def test_taylor_forecast_against_plain_fora_at_equal_compute(capsys: pytest.CaptureFixture) -> None:
    """Distance to the uncached sample over 16 Euler steps; the numbers are printed (weak assertion only)."""
    model = meldit(seed=2, num_layers=4)
    baseline = euler_sample(model, 16)
    lines = []
    for interval in (2, 3, 4):
        errors = {}
        for forecast in ("none", "taylor1"):
            apply_fora(model, FORAConfig(interval=interval, warmup_steps=2, forecast=forecast))
            errors[forecast] = (euler_sample(model, 16) - baseline).abs().mean().item()
            remove_acceleration(model)
        assert all(torch.isfinite(torch.tensor(e)) for e in errors.values())
        lines.append(f"interval {interval}: L1 FORA {errors['none']:.4g}, taylor1 {errors['taylor1']:.4g}")
    with capsys.disabled():
        print("\n" + "\n".join(lines))


def tiny_pipeline() -> MelDiTPipeline:
    return MelDiTPipeline(meldit(seed=3), FlowMatchEulerDiscreteScheduler(shift=3.0))


def generate(pipe: MelDiTPipeline, seed: int = 0) -> torch.Tensor:
    return pipe(
        instrument=[1, 2],
        pitch=[60, 64],
        num_inference_steps=6,
        guidance_scale=3.0,
        num_frames=16,
        generator=torch.Generator().manual_seed(seed),
        output_type="pt",
    ).mels


def test_meldit_pipeline_with_cfg_both_plugins_and_repeated_calls() -> None:
    pipe = tiny_pipeline()
    pipe.set_progress_bar_config(disable=True)
    baseline = generate(pipe)
    apply_tome(pipe.transformer, ToMeConfig(ratio=0.0))
    apply_fora(pipe.transformer, FORAConfig(interval=1))
    assert torch.equal(generate(pipe), baseline)  # ratio 0 + interval 1 compose to the baseline exactly
    remove_acceleration(pipe.transformer)

    counts = count_calls(pipe.transformer)
    apply_tome(pipe.transformer, ToMeConfig(ratio=0.5, merge_mlp=True))
    apply_fora(pipe.transformer, FORAConfig(interval=2, forecast="taylor1"))
    first = generate(pipe)
    assert counts == [3 * 2, 3 * 2]  # 6 steps, one (cond + uncond) forward each, refresh every 2nd, 2 blocks
    second = generate(pipe)
    assert torch.isfinite(first).all() and torch.equal(first, second)  # state resets between calls
    assert not torch.equal(first, baseline)


def test_unmodified_diffusers_dit_pipeline() -> None:
    from accel_dit_models import randomize
    from diffusers import AutoencoderKL, DDIMScheduler, DiTPipeline, DiTTransformer2DModel

    transformer = randomize(
        DiTTransformer2DModel(
            num_attention_heads=2,
            attention_head_dim=8,
            in_channels=4,
            out_channels=8,
            num_layers=2,
            sample_size=8,
            patch_size=2,
        )
    )
    vae = AutoencoderKL(
        block_out_channels=(8,),
        down_block_types=("DownEncoderBlock2D",),
        up_block_types=("UpDecoderBlock2D",),
        latent_channels=4,
        norm_num_groups=8,
        layers_per_block=1,
        sample_size=8,
    ).eval()
    pipe = DiTPipeline(transformer=transformer, vae=vae, scheduler=DDIMScheduler())
    pipe.set_progress_bar_config(disable=True)

    def run() -> torch.Tensor:
        generator = torch.Generator().manual_seed(0)
        return pipe(
            [1, 2], num_inference_steps=4, guidance_scale=2.0, generator=generator, output_type="pt"
        ).images

    baseline = run()
    apply_fora(transformer, FORAConfig(interval=2))
    apply_tome(transformer, ToMeConfig(ratio=0.5))
    first, second = run(), run()
    assert torch.isfinite(first).all() and torch.equal(first, second)
    remove_acceleration(transformer)
    assert torch.equal(run(), baseline)


FORA_PLUGIN = lambda m: apply_fora(m, FORAConfig(interval=2, forecast="taylor1"))  # noqa: E731
TOME_PLUGIN = lambda m: apply_tome(m, ToMeConfig(ratio=0.5, merge_mlp=True))  # noqa: E731


@pytest.mark.parametrize(
    ("plugin", "backend"),
    [
        (FORA_PLUGIN, "aot_eager"),
        (TOME_PLUGIN, "aot_eager"),
        pytest.param(
            FORA_PLUGIN, "inductor", marks=pytest.mark.slow
        ),  # about a minute of C++ compile on a CPU
    ],
    ids=["fora-aot_eager", "tome-aot_eager", "fora-inductor"],
)
def test_torch_compile_matches_eager(plugin: object, backend: str) -> None:
    """The plugins' bookkeeping runs outside the graph (graph breaks, documented); results match eager."""
    torch._dynamo.reset()
    eager, compiled_model = meldit(), meldit()
    plugin(eager)
    plugin(compiled_model)
    compiled = torch.compile(compiled_model, backend=backend)
    args, kwargs = meldit_inputs()
    with torch.no_grad():
        for step in range(4):
            kw = at_timestep(kwargs, 900.0 - 200 * step)
            expected = eager(*args, **kw).sample
            got = compiled(*args, **kw).sample
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_block_fast_path_is_bit_identical_and_skips_the_norms(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a step where a MelDiT block reuses both caches, only its gates and residual adds run."""
    from accelerando.accelerate_dit import _registry

    model = meldit(num_layers=3)
    args, kwargs = meldit_inputs()
    norm_calls = [0]
    for block in model.transformer_blocks:
        block.norm1.register_forward_pre_hook(lambda *_: norm_calls.__setitem__(0, norm_calls[0] + 1))
    for forecast in ("none", "taylor2"):
        apply_fora(model, FORAConfig(interval=3, forecast=forecast))
        norm_calls[0] = 0
        fast = run_steps(model, args, kwargs, num_steps=7)
        assert norm_calls[0] == 3 * 3  # refresh steps 0, 3, 6 only
        remove_acceleration(model)
        spec = _registry.BLOCKS["MelDiTBlock"]
        monkeypatch.setitem(_registry.BLOCKS, "MelDiTBlock", dataclasses.replace(spec, cached_forward=None))
        apply_fora(model, FORAConfig(interval=3, forecast=forecast))
        generic = run_steps(model, args, kwargs, num_steps=7)
        remove_acceleration(model)
        monkeypatch.setitem(_registry.BLOCKS, "MelDiTBlock", spec)
        assert all(torch.equal(a, b) for a, b in zip(fast, generic, strict=True))
    apply_fora(model, FORAConfig(interval=3, slots=("attn",)))  # the MLP computes: no fast path
    norm_calls[0] = 0
    run_steps(model, args, kwargs, num_steps=7)
    assert norm_calls[0] == 3 * 7


def test_refresh_steps_per_block_and_after_the_last_listed_step() -> None:
    model = meldit()
    counts = count_calls(model)
    state = apply_fora(model, FORAConfig(interval=4, refresh_steps=[[0, 1, 5], [0, 6]]))
    run_steps(model, *meldit_inputs(), num_steps=12)
    # block 0: 0, 1, 5, then every 4 steps after 5 -> 9; block 1: 0, 6, then 10.
    assert counts == [4 + 3, 4 + 3]
    assert state.computed == 2 * (4 + 3) and state.reused == 2 * (24 - 7)
    remove_acceleration(model)
    counts[:] = [0, 0]
    apply_fora(model, FORAConfig(refresh_steps=[0, 2], interval=100))  # one list: every block
    run_steps(model, *meldit_inputs(), num_steps=6)
    assert counts == [2 * 2, 2 * 2]


class _Polynomial(torch.nn.Module):
    """A sub-module whose output is ``x * p(t)`` for a polynomial ``p`` of the current timestep."""

    def __init__(self, coefficients: list[float]) -> None:
        super().__init__()
        self.coefficients = coefficients
        self.t = 0.0

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return hidden_states * sum(c * self.t**k for k, c in enumerate(self.coefficients))


@pytest.mark.parametrize(("forecast", "degree"), [("none", 0), ("taylor1", 1), ("taylor2", 2)])
def test_taylor_forecast_is_exact_on_polynomials_of_its_order(forecast: str, degree: int) -> None:
    """The Newton-form forecast at non-uniform timesteps reproduces a polynomial of its order exactly."""
    from types import SimpleNamespace

    from accelerando.accelerate_dit.fora import FORAHook, FORAState, _Schedule

    module = _Polynomial([0.5, -1.5, 0.75][: degree + 1])
    config = FORAConfig(interval=3, forecast=forecast)
    hook = FORAHook(config, _Schedule(3, 0), "hidden_states", FORAState())
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    times = [
        1.0,
        0.93,
        0.84,
        0.71,
        0.6,
        0.45,
        0.33,
        0.2,
        0.1,
        0.04,
    ]  # uneven steps, as shifted schedules make
    for step, t in enumerate(times):
        hook.tracker = SimpleNamespace(step=step, slot=0, timestep=t * 1000)
        module.t = t
        got = hook.new_forward(module, module.forward, x)
        if step > 3 * degree:  # enough refreshes for the forecast's order
            torch.testing.assert_close(got, module(x))


def test_refresh_steps_validation() -> None:
    with pytest.raises(ValueError, match="step indices"):
        FORAConfig(refresh_steps=[0, -1])
    with pytest.raises(ValueError, match="refresh_steps has 3"):
        apply_fora(meldit(), FORAConfig(refresh_steps=[[0], [0, 2], [1]]))
    with pytest.raises(ValueError, match="taylor3"):
        FORAConfig(forecast="taylor3")


# ---------------------------------------------------------------- caching levels and the adaptive refresh

STACKABLE = ["DiTTransformer2DModel", "MelDiT", "PixArtTransformer2DModel", "StableAudioDiTModel"]
NO_OP = [(name, {"level": "output", "interval": 1}) for name in sorted(MODELS)]
NO_OP += [(name, {"level": "blocks", "interval": 1, "forecast": "taylor2"}) for name in STACKABLE]
NO_OP += [(name, {"level": "blocks", "threshold": 0.0}) for name in STACKABLE]
NO_OP += [(name, {"threshold": 0, "forecast": "taylor1"}) for name in sorted(MODELS)]
NO_OP += [("MelDiT", {"level": "output", "interval": 1, "forecast": "taylor1", "forecast_space": "noise"})]


@pytest.mark.parametrize(("name", "options"), NO_OP, ids=[f"{n}-{o}" for n, o in NO_OP])
def test_no_op_settings_of_the_new_options_are_exactly_the_baseline(name: str, options: dict) -> None:
    """N = 1 at every level, and threshold 0 (refresh at every step), give the plain model's outputs bit for bit."""
    make, inputs = MODELS[name]
    model = make()
    args, kwargs = inputs()
    baseline = run_steps(model, args, kwargs, num_steps=5)
    state = apply_fora(model, FORAConfig(**options))
    got = run_steps(model, args, kwargs, num_steps=5)
    assert all(torch.equal(a, b) for a, b in zip(got, baseline, strict=True))
    assert state.reused == 0 and state.computed > 0


@pytest.mark.parametrize("level", ["blocks", "output"])
def test_whole_model_levels_skip_every_block_on_cached_steps_and_remove_restores(level: str) -> None:
    model = meldit()
    args, kwargs = meldit_inputs()
    baseline = run_steps(model, args, kwargs, num_steps=6)
    dicts = {name: set(m.__dict__) for name, m in model.named_modules()}
    counts = count_calls(model)
    state = apply_fora(model, FORAConfig(level=level, interval=3, forecast="taylor1"))
    got = run_steps(model, args, kwargs, num_steps=6)
    num_blocks = len(model.transformer_blocks)
    assert counts == [2 * num_blocks, 2 * num_blocks]  # steps 0 and 3 ran the blocks, 4 steps ran none
    assert (state.computed, state.reused) == (2, 4)
    assert torch.equal(got[0], baseline[0]) and torch.equal(got[3], baseline[3])
    assert not torch.equal(got[4], baseline[4]) and torch.isfinite(got[4]).all()
    # return_dict=True on a cached step: the same dataclass (the output level rebuilds it)
    reset_acceleration_state(model)
    with torch.no_grad():
        outs = [model(*args, **at_timestep(kwargs, t)) for t in (500.0, 400.0)]
    assert type(outs[1]) is type(outs[0])
    if level == "output":  # N = 3 and one refresh so far: the cache is repeated
        assert torch.equal(outs[1].sample, outs[0].sample)
    remove_acceleration(model)
    assert {name: set(m.__dict__) for name, m in model.named_modules()} == dicts
    assert all(torch.equal(a, b) for a, b in zip(run_steps(model, args, kwargs, 6), baseline, strict=True))


def test_output_level_forecast_is_exact_on_a_velocity_linear_in_the_timestep() -> None:
    """A model whose output is linear in the timestep is forecast exactly by taylor1 at the output level."""
    model = meldit()
    args, kwargs = meldit_inputs()
    times = [1000.0, 960.0, 900.0, 810.0, 700.0, 560.0, 400.0, 220.0]

    def linear(t: float) -> torch.Tensor:  # output(t) = a + t * (b - a) / 1000, from two real outputs
        a = output(model, args, at_timestep(kwargs, 0.0))
        b = output(model, args, at_timestep(kwargs, 1000.0))
        return a + (b - a) * (t / 1000.0)

    expected = [linear(t) for t in times]
    original = type(model).forward

    def forward(self: MelDiT, hidden_states: torch.Tensor, timestep: torch.Tensor, *a, **k):  # noqa: ANN002, ANN003
        return (expected[times.index(float(timestep.max()))],)

    model.forward = forward.__get__(
        model
    )  # an instance forward, as user code may install: wrapped and restored
    apply_fora(model, FORAConfig(level="output", interval=3, forecast="taylor1"))
    got = [output(model, args, at_timestep(kwargs, t)) for t in times]
    for step in range(4, len(times)):  # after the second refresh (step 3) the line is known
        torch.testing.assert_close(got[step], expected[step])
    remove_acceleration(model)
    assert model.forward.__func__ is forward and type(model).forward is original


def _noise_linear_model(times: list[float]) -> tuple[MelDiT, list[torch.Tensor], list[torch.Tensor]]:
    """A MelDiT whose noise estimate ``x + (1 - s) v`` is linear in ``s``, called on a new input at every step."""
    model = meldit()
    args, _ = meldit_inputs()
    e0, e1 = torch.randn(args[0].shape, generator=torch.Generator().manual_seed(3)), args[0]
    inputs = [
        torch.randn(args[0].shape, generator=torch.Generator().manual_seed(10 + i)) for i in range(len(times))
    ]
    velocities = []
    for t, x in zip(times, inputs, strict=True):
        s = t / 1000.0
        velocities.append((e0 + s * e1 - x) / (1 - s))

    def forward(self: MelDiT, hidden_states: torch.Tensor, timestep: torch.Tensor, *a, **k):  # noqa: ANN002, ANN003
        return (velocities[times.index(float(timestep.max()))],)

    model.forward = forward.__get__(model)
    return model, inputs, velocities


@pytest.mark.parametrize("space", ["velocity", "noise"])
def test_noise_space_forecast_is_exact_on_a_noise_estimate_linear_in_the_noise_level(space: str) -> None:
    """Rectified flow: forecasting the noise estimate follows the input of each cached step; the velocity does not."""
    times = [950.0, 900.0, 820.0, 700.0, 560.0, 400.0, 220.0, 100.0]
    model, inputs, expected = _noise_linear_model(times)
    _, kwargs = meldit_inputs()
    state = apply_fora(
        model, FORAConfig(level="output", interval=3, forecast="taylor1", forecast_space=space)
    )
    got = [output(model, (x,), at_timestep(kwargs, t)) for t, x in zip(times, inputs, strict=True)]
    assert (state.computed, state.reused) == (3, 5)  # steps 0, 3, 6 ran
    for step in (0, 3, 6):
        assert torch.equal(got[step], expected[step])
    errors = [float((got[step] - expected[step]).abs().max()) for step in (4, 5, 7)]
    if space == "noise":  # after the second refresh (step 3) the line is known
        assert max(errors) < 1e-4
    else:  # the velocity is not linear in s here: its forecast misses
        assert min(errors) > 1e-2


def test_noise_space_refuses_what_it_cannot_convert() -> None:
    with pytest.raises(ValueError, match="forecast_space='noise'.*level='output', got level='blocks'"):
        FORAConfig(level="blocks", forecast_space="noise")
    with pytest.raises(ValueError, match="forecast_space 'eps' is not supported"):
        FORAConfig(level="output", forecast_space="eps")
    with pytest.raises(ValueError, match="flow_timestep_scale 0 is not accepted"):
        FORAConfig(level="output", forecast_space="noise", flow_timestep_scale=0)
    model = meldit()
    args, kwargs = meldit_inputs()  # timestep 500: s = 500 with a scale of 1
    apply_fora(model, FORAConfig(level="output", forecast_space="noise", flow_timestep_scale=1.0))
    with pytest.raises(ValueError, match=r"s = timestep / 1 = 500, outside \[0, 1\].*flow_timestep_scale"):
        output(model, args, kwargs)
    wide = meldit()  # a learned-variance output: twice the input's channels

    def forward(self: MelDiT, hidden_states: torch.Tensor, timestep: torch.Tensor, *a, **k):  # noqa: ANN002, ANN003
        return (torch.cat([hidden_states, hidden_states], 1),)

    wide.forward = forward.__get__(wide)
    apply_fora(wide, FORAConfig(level="output", forecast_space="noise"))
    with pytest.raises(ValueError, match="output shaped like the input.*forecast_space='velocity'"):
        output(wide, args, kwargs)


def _policy_run(
    threshold: float, inputs: list[torch.Tensor], **options: object
) -> tuple[list[int], list[float]]:
    """Steps that refreshed, and the accumulated signal at every step, for a constructed input sequence."""
    model = meldit()
    with torch.no_grad():  # block 0's modulated input = norm1(tokens): the timestep does not change it
        model.transformer_blocks[0].adaLN_modulation[-1].weight.zero_()
        model.transformer_blocks[0].adaLN_modulation[-1].bias.zero_()
    _, kwargs = meldit_inputs()
    state = apply_fora(model, FORAConfig(level="blocks", threshold=threshold, forecast="taylor1", **options))
    for step, x in enumerate(inputs):
        output(model, (x,), at_timestep(kwargs, 1000.0 - 100 * step))
    assert [s[0] for s in state.signals] == list(range(len(inputs)))
    return [s[0] for s in state.signals if s[3]], [s[2] for s in state.signals]


def test_adaptive_policy_refreshes_when_the_accumulated_signal_crosses_its_threshold() -> None:
    """Constructed: the input is constant except a jump at step 3, so only step 3 has a non-zero signal."""
    x, jump = meldit_inputs()[0][0], meldit_inputs(seed=5)[0][0]
    inputs = [x, x, x, jump, jump, jump]
    refreshed, signal = _policy_run(0.01, inputs)
    assert signal[1] == signal[2] == 0.0 and signal[3] > 0.01 and signal[4] == signal[5] == 0.0
    assert refreshed == [0, 3]
    # just above the jump's change: never crossed, so no refresh after step 0; just below: refresh at step 3
    assert _policy_run(signal[3] * 1.01, inputs)[0] == [0]
    assert _policy_run(signal[3] * 0.99, inputs)[0] == [0, 3]
    # accumulation: two half jumps cross a threshold that one half jump does not reach
    half = x + 0.5 * (jump - x)
    refreshed, signal = _policy_run(1e9, [x, half, half, jump, jump])
    assert refreshed == [0]
    step_one, step_three = signal[1], signal[3] - signal[1]
    threshold = 1.01 * max(step_one, step_three)  # above either change alone, below their sum
    assert threshold < step_one + step_three
    assert _policy_run(threshold, [x, half, half, jump, jump])[0] == [0, 3]
    # a cap on consecutive cached steps forces refreshes on a constant input
    assert _policy_run(1.0, [x] * 7, max_cached_steps=2)[0] == [0, 3, 6]
    assert _policy_run(1.0, [x] * 4, warmup_steps=2)[0] == [0, 1]


def test_adaptive_policy_at_the_submodule_level_skips_the_sub_modules() -> None:
    model = meldit()
    counts = count_calls(model)
    x = meldit_inputs()[0][0]
    _, kwargs = meldit_inputs()
    state = apply_fora(model, FORAConfig(threshold=1e9))
    for step in range(4):
        output(model, (x,), at_timestep(kwargs, 900.0 - 100 * step))
    assert counts == [len(model.transformer_blocks)] * 2  # step 0 only
    assert [s[3] for s in state.signals] == [True, False, False, False]


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"level": "model"}, "level 'model' is not supported"),
        ({"threshold": -0.1}, "threshold -0.1 is not accepted"),
        ({"threshold": float("nan")}, "threshold nan is not accepted"),
        ({"threshold": True}, "threshold True is not accepted"),
        ({"threshold": "0.1"}, "threshold '0.1' is not accepted"),
        ({"threshold": 0.1, "max_cached_steps": 0}, "max_cached_steps 0 is not accepted"),
        ({"max_cached_steps": 2}, "set threshold too"),
    ],
)
def test_bad_new_options_are_refused_clearly(options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FORAConfig(**options)


def test_levels_that_do_not_fit_the_model_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="FluxTransformerBlock.*level='submodules'"):
        apply_fora(MODELS["FluxTransformer2DModel"][0](), FORAConfig(level="blocks"))
    with pytest.raises(ValueError, match="threshold.*level='output'"):
        apply_fora(meldit(), FORAConfig(level="output", threshold=0.1))


@pytest.mark.parametrize("name", ["DiTTransformer2DModel", "MelDiT", "PixArtTransformer2DModel"])
def test_adaptive_signal_is_what_the_first_attention_sees(name: str) -> None:
    """The registered modulated input of the first block equals the input of its self-attention."""
    from accelerando.accelerate_dit._fora_cache import signal_fn
    from accelerando.accelerate_dit._registry import find_blocks

    make, inputs = MODELS[name]
    model = make()
    first = find_blocks(model)[0]
    seen: dict[str, object] = {}
    first.block.register_forward_pre_hook(
        lambda _m, a, k: seen.update(signal=signal_fn(first)(first.block, *a, **k)), with_kwargs=True
    )
    first.block.attn1.register_forward_pre_hook(
        lambda _m, a, k: seen.update(attn=a[0] if a else k["hidden_states"]), with_kwargs=True
    )
    output(model, *inputs())
    torch.testing.assert_close(seen["signal"], seen["attn"])
