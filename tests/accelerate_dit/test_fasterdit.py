"""FasterDiT recipe: samplers, the log-SNR PDF, the direction loss, and the training script's recipe flags."""

from __future__ import annotations

import math

import pytest
import torch
from meldit_tiny import TINY

from accelerando.accelerate_dit import fasterdit as fd
from accelerando.generation import train as meldit_train
from accelerando.generation.mel_dit import PRESETS, MelDiT, rectified_flow_loss

SAMPLERS = [
    ("uniform", {}),
    ("logit_normal", {"mean": 0.4, "std": 1.3}),
    ("mode", {"scale": 1.29}),
    ("cosmap", {}),
]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("data_std", [0.25, 1.0, 4.0])
@pytest.mark.parametrize(("kind", "kw"), SAMPLERS)
def test_snr_pdf_integrates_to_one_and_matches_sampled_histogram(kind, kw, data_std):
    grid = torch.linspace(-60, 60, 60001, dtype=torch.float64)
    assert float(torch.trapezoid(fd.snr_pdf(grid, kind, data_std, **kw), grid)) == pytest.approx(
        1.0, abs=1e-5
    )
    lam = fd.log_snr(fd.sample_timesteps(kind, 200_000, generator=_gen(), **kw).double(), data_std)
    lo, hi = 2 * math.log(data_std) - 20, 2 * math.log(data_std) + 20
    counts, edges = torch.histogram(lam, bins=160, range=(lo, hi))
    width = edges[1] - edges[0]
    centres = (edges[1:] + edges[:-1]) / 2
    l1 = float(
        (counts / (lam.numel() * width) - fd.snr_pdf(centres, kind, data_std, **kw)).abs().sum() * width
    )
    assert l1 < 0.04, l1  # sampling noise alone is ~0.02 at 200k draws


def test_data_std_shifts_the_log_snr_pdf():
    grid = torch.linspace(-10, 10, 201, dtype=torch.float64)
    shifted = fd.snr_pdf(grid + 2 * math.log(3.0), "logit_normal", data_std=3.0)
    torch.testing.assert_close(shifted, fd.snr_pdf(grid, "logit_normal", data_std=1.0))
    # Logit-normal(m, s) on data of std d is exactly N(2 (log d - m), (2 s)^2) in log-SNR.
    normal = torch.exp(-0.5 * ((grid - 2 * (math.log(2.0) - 0.5)) / 2.6) ** 2) / (
        2.6 * math.sqrt(2 * math.pi)
    )
    torch.testing.assert_close(fd.snr_pdf(grid, "logit_normal", 2.0, mean=0.5, std=1.3), normal)


@pytest.mark.parametrize(("kind", "kw"), SAMPLERS)
def test_samplers_stay_in_the_open_unit_interval_with_the_analytic_mean(kind, kw):
    t = fd.sample_timesteps(kind, 100_000, generator=_gen(1), **kw)
    assert t.shape == (100_000,) and t.dtype == torch.float32
    assert 0 < float(t.min()) and float(t.max()) < 1
    grid = torch.linspace(1e-7, 1 - 1e-7, 200_001, dtype=torch.float64)
    density = fd.timestep_density(grid, kind, **kw)
    assert float(torch.trapezoid(density, grid)) == pytest.approx(1.0, abs=2e-3)
    assert float(t.double().mean()) == pytest.approx(float(torch.trapezoid(grid * density, grid)), abs=5e-3)


def test_logit_normal_moments_and_dispatch_errors():
    t = fd.logit_normal_timesteps(200_000, mean=-0.7, std=0.6, generator=_gen(2))
    u = torch.logit(t.double())
    assert float(u.mean()) == pytest.approx(-0.7, abs=0.01) and float(u.std()) == pytest.approx(0.6, abs=0.01)
    assert float(fd.cosmap_timesteps(100_000, generator=_gen()).mean()) == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError, match=r"'karras'.*\['cosmap', 'logit_normal', 'mode', 'uniform'\]"):
        fd.sample_timesteps("karras", 4)
    with pytest.raises(ValueError, match="mode scale"):
        fd.mode_timesteps(4, scale=2.0)
    with pytest.raises(ValueError, match="data_std"):
        fd.FasterDiTRecipe(data_std=0.0)


def test_direction_loss_is_zero_parallel_two_opposite_and_scale_invariant():
    v = torch.randn(3, 4, 5, 6, generator=_gen())
    scale = torch.rand(3, 1, 5, 6, generator=_gen(1)) + 0.1  # positive, per position
    assert float(fd.velocity_direction_loss(v * scale, v)) == pytest.approx(0.0, abs=1e-6)
    assert float(fd.velocity_direction_loss(-v, v)) == pytest.approx(2.0, abs=1e-6)
    w = torch.randn(3, 4, 5, 6, generator=_gen(2))
    base = fd.velocity_direction_loss(w, v)
    assert 0 < float(base) < 2
    torch.testing.assert_close(fd.velocity_direction_loss(7.0 * w, 0.01 * v), base)
    torch.testing.assert_close(fd.fasterdit_loss(w, v, 0.0), torch.nn.functional.mse_loss(w, v))
    torch.testing.assert_close(fd.fasterdit_loss(w, v), torch.nn.functional.mse_loss(w, v) + base)


def test_recipes():
    vanilla, faster = fd.FasterDiTRecipe.vanilla(), fd.FasterDiTRecipe.fasterdit()
    assert (vanilla.timestep_sampling, vanilla.data_std, vanilla.direction_weight) == ("uniform", None, 0.0)
    assert (faster.timestep_sampling, faster.data_std, faster.direction_weight) == ("logit_normal", 1.0, 1.0)
    assert faster.scale_data(torch.full((2,), 3.0), measured_std=2.0).tolist() == [1.5, 1.5]
    torch.testing.assert_close(
        faster.sample_timesteps(8, generator=_gen()), fd.logit_normal_timesteps(8, generator=_gen())
    )
    fig = fd.plot_snr_pdf(
        {"vanilla": {"kind": "uniform"}, "fasterdit": {"kind": "logit_normal", "data_std": 0.5}}
    )
    assert len(fig.axes[0].lines) == 2


def _args(tmp_path, *extra: str):
    return meldit_train.parse_args(
        ["--data_dir", str(tmp_path), "--output_dir", str(tmp_path / "out"), "--preset", "tiny", "--num_frames", "16",
         "--train_batch_size", "4", "--max_train_steps", "2", "--checkpointing_steps", "100", *extra]
    )  # fmt: skip


def test_recipe_flags_resolve_and_explicit_flags_win(tmp_path, monkeypatch):
    monkeypatch.setitem(PRESETS, "tiny", {})
    legacy = _args(tmp_path)
    assert (legacy.timestep_sampling, legacy.data_std, legacy.direction_loss_weight) == (
        "logit_normal",
        None,
        0.0,
    )
    faster = _args(tmp_path, "--recipe", "fasterdit", "--logit_std", "0.5")
    assert (faster.timestep_sampling, faster.logit_std, faster.data_std, faster.direction_loss_weight) == (
        "logit_normal", 0.5, 1.0, 1.0
    )  # fmt: skip
    assert (
        _args(tmp_path, "--recipe", "fasterdit", "--direction_loss_weight", "0").direction_loss_weight == 0.0
    )
    assert _args(tmp_path, "--recipe", "vanilla", "--timestep_sampling", "mode").timestep_sampling == "mode"


def test_recipe_flags_change_only_the_sigmas_data_scale_and_loss(tmp_path, monkeypatch):
    monkeypatch.setitem(PRESETS, "tiny", {k: v for k, v in TINY.items() if k != "num_frames"})
    notes = [
        {"mel": torch.randn(16, 16, generator=_gen(p)) - 5, "program": p % 8, "pitch": 60, "velocity": 100}
        for p in range(8)
    ]
    monkeypatch.setattr(meldit_train, "build_dataset", lambda args: notes)
    real_loss = meldit_train.training_loss

    def run(*flags: str) -> tuple[list, MelDiT]:
        seen = []

        def recording(model, x0, program, pitch, velocity, sigmas, direction_weight=0.0, generator=None):
            seen.append((x0.clone(), program.clone(), sigmas.clone(), direction_weight))
            return real_loss(model, x0, program, pitch, velocity, sigmas, direction_weight, generator)

        monkeypatch.setattr(meldit_train, "training_loss", recording)
        return seen, meldit_train.main(_args(tmp_path / flags[-1], *flags))

    vanilla, vanilla_model = run("--recipe", "vanilla")
    faster, faster_model = run("--recipe", "fasterdit")
    assert len(vanilla) == len(faster) == 2
    ratio = faster_model.config.mel_std / vanilla_model.config.mel_std
    for (x_v, p_v, s_v, w_v), (x_f, p_f, s_f, w_f) in zip(vanilla, faster):
        assert torch.equal(p_v, p_f)  # same batches, same order
        torch.testing.assert_close(x_f * ratio, x_v)  # the data only rescaled ...
        assert (w_v, w_f) == (0.0, 1.0)
        assert not torch.allclose(s_v, s_f)  # ... and the sigmas redrawn
    x0 = faster[0][0]
    assert float(x0.std()) == pytest.approx(
        1.0, rel=0.35
    )  # scaled to the recipe's std (estimated on all notes)


def test_direction_weight_zero_is_exactly_the_rectified_flow_loss():
    torch.manual_seed(0)
    model = MelDiT(**TINY)
    x0, sigmas = torch.randn(2, 1, 16, 16, generator=_gen()), torch.tensor([0.2, 0.7])
    labels = (torch.tensor([1, 2]), torch.tensor([60, 61]), torch.tensor([100, 90]))
    with torch.no_grad():  # model and noise identical: the two paths must agree bit for bit
        reference = rectified_flow_loss(model, x0, *labels, sigmas, generator=_gen(5))
        plain = meldit_train.training_loss(model, x0, *labels, sigmas, 0.0, generator=_gen(5))
        with_direction = meldit_train.training_loss(model, x0, *labels, sigmas, 1.0, generator=_gen(5))
    assert torch.equal(plain, reference)
    assert float(with_direction) > float(reference)
