"""SIM one-step distillation: sign and exactness of the generator gradient on 1-D Gaussians, the adapters,
frozen teacher, toy distillation, the training script and its loadable one-step checkpoints."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler, FlowMatchEulerDiscreteScheduler
from torch import nn

from accelerando.accelerate_dit import SIMConfig, SIMDistiller
from accelerando.accelerate_dit.sim import ScoreModel, as_score_model, distance_grad, sim_generator_loss
from accelerando.accelerate_dit.sim import train as sim_train
from accelerando.accelerate_dit.sim.toy import TOY_CONFIG, ToyFlowMLP, gmm_8d, gmm_teacher, run_toy
from accelerando.generation import MelDiT, MelDiTPipeline
from accelerando.generation.toy import GaussianMixtureFlow

MELDIT_TINY = {
    "n_mels": 8,
    "num_frames": 8,
    "patch_size": (4, 4),
    "hidden_size": 32,
    "num_layers": 1,
    "num_attention_heads": 2,
    "num_programs": 4,
}


def tiny_meldit(seed: int = 0) -> MelDiT:
    model = MelDiT(**MELDIT_TINY)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return model.eval()


def tiny_cond(b: int = 2) -> dict[str, torch.Tensor]:
    return {"program": torch.arange(b) % 4, "pitch": torch.full((b,), 60), "velocity": torch.full((b,), 100)}


# ---- 1-D Gaussian: the divergence and its gradient in closed form (Gauss-Hermite quadrature) ----------------

T, MU_P, SD_P = 0.6, 1.5, 0.7
NODES, WEIGHTS = np.polynomial.hermite_e.hermegauss(80)
NODES, WEIGHTS = torch.tensor(NODES), torch.tensor(WEIGHTS / WEIGHTS.sum())


def _denoiser(mu: float, sd: float, x: torch.Tensor) -> torch.Tensor:  # E[x0 | x_t] for N(mu, sd^2) data
    a, s = 1 - T, T
    return mu + a * sd**2 / (a**2 * sd**2 + s**2) * (x - a * mu)


def _divergence(mu_g: float, sd_g: float, distance: str, sample_from: tuple[float, float]) -> torch.Tensor:
    """``E_{x ~ N(sample_from)} d(D_p(x) - D_q(x))`` with denoiser-unit y as in the module docstring."""
    x = sample_from[0] + sample_from[1] * NODES
    y = _denoiser(MU_P, SD_P, x) - _denoiser(mu_g, sd_g, x)
    c = SIMConfig.huber_c
    d = y**2 if distance == "l2" else torch.sqrt(y**2 + c**2) - c
    return (WEIGHTS * d).sum()


def _marginal(mu: float, sd: float) -> tuple[float, float]:
    return (1 - T) * mu, ((1 - T) ** 2 * sd**2 + T**2) ** 0.5


def _surrogate_grad(mu_g: float, sd_g: float, distance: str, estimator: str) -> torch.Tensor:
    teacher = gmm_teacher(GaussianMixtureFlow(torch.tensor([[MU_P]]), torch.tensor([SD_P]), torch.ones(1)))
    fake = gmm_teacher(GaussianMixtureFlow(torch.tensor([[mu_g]]), torch.tensor([sd_g]), torch.ones(1)))
    params = torch.tensor([mu_g, sd_g], dtype=torch.float64, requires_grad=True)
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(200_000, 1, generator=gen, dtype=torch.float64)
    z = torch.cat([z, -z])  # antithetic: halves the Monte Carlo error of the mean terms
    noise = torch.randn(z.shape, generator=gen, dtype=torch.float64)
    x0 = params[0] + params[1] * z
    t = torch.full((z.shape[0],), T, dtype=torch.float64)
    config = SIMConfig(distance=distance, estimator=estimator)
    sim_generator_loss(teacher, fake, x0, t, noise, None, config).backward()
    return params.grad


def _total(mu_g: float, sd_g: float, distance: str) -> torch.Tensor:
    """The divergence with the generator's own diffused distribution as sampling distribution."""
    return _divergence(mu_g, sd_g, distance, _marginal(mu_g, sd_g))


@pytest.mark.parametrize("distance", ["pseudo_huber", "l2"])
def test_sim_estimator_is_the_gradient_with_fixed_sampling_distribution(distance):
    mu_g, sd_g, h = -0.5, 1.2, 1e-5
    grad = _surrogate_grad(mu_g, sd_g, distance, "sim")
    pi = _marginal(mu_g, sd_g)
    d_mu = (_divergence(mu_g + h, sd_g, distance, pi) - _divergence(mu_g - h, sd_g, distance, pi)) / (2 * h)
    d_sd = (_divergence(mu_g, sd_g + h, distance, pi) - _divergence(mu_g, sd_g - h, distance, pi)) / (2 * h)
    assert grad[0].item() == pytest.approx(d_mu.item(), rel=0.03)
    assert grad[1].item() == pytest.approx(d_sd.item(), rel=0.05, abs=2e-4)
    # ... and a descent direction of the divergence whose sampling distribution moves with the generator.
    step = 0.05 * grad / grad.norm()
    assert _total(mu_g - step[0].item(), sd_g - step[1].item(), distance) < _total(mu_g, sd_g, distance)
    assert mu_g - step[0].item() > mu_g  # moves the generator's mean towards the teacher's (1.5)


@pytest.mark.parametrize("distance", ["pseudo_huber", "l2"])
def test_detached_estimator_is_right_for_the_mean_only(distance):
    mu_g, sd_g, h = -0.5, 1.2, 1e-5
    grad = _surrogate_grad(mu_g, sd_g, distance, "detached")

    d_mu = (_total(mu_g + h, sd_g, distance) - _total(mu_g - h, sd_g, distance)) / (2 * h)
    d_sd = (_total(mu_g, sd_g + h, distance) - _total(mu_g, sd_g - h, distance)) / (2 * h)
    assert d_mu < 0  # sanity of the setup: mu_g < mu_p
    assert grad[0].item() == pytest.approx(d_mu.item(), rel=0.03)  # right for the mean (a translation)
    assert torch.dot(grad, torch.stack([d_mu, d_sd])) > 0  # a descent direction of the divergence
    if distance == "l2":  # but not for the spread: 0.42 where the divergence's derivative is 0.73
        assert grad[1].item() < 0.8 * d_sd.item()


def test_distance_grad():
    y = torch.tensor([[3.0, 4.0]])
    assert torch.allclose(distance_grad(y, "l2"), 2 * y)
    c = 0.5 / 2**0.5  # huber_c * sqrt(dim) = 0.5
    assert torch.allclose(distance_grad(y, "pseudo_huber", c), y / (25 + 0.25) ** 0.5)
    with pytest.raises(ValueError, match="'l1'.*pseudo_huber"):
        distance_grad(y, "l1")


# ---- adapters -------------------------------------------------------------------------------------------------


class Oracle(nn.Module):
    """Returns the exact target of a known (x0, noise) pair for each parameterisation."""

    def __init__(self, x0, noise, kind, alpha_sigma, t):
        super().__init__()
        self.x0, self.noise, self.kind, self.alpha_sigma, self.t = x0, noise, kind, alpha_sigma, t

    def forward(self, x, timestep):
        alpha, sigma = (v[:, None] for v in self.alpha_sigma(self.t))
        return {
            "flow": self.noise - self.x0,
            "epsilon": self.noise,
            "v_prediction": alpha * self.noise - sigma * self.x0,
        }[self.kind]


@pytest.mark.parametrize("kind", ["flow", "epsilon", "v_prediction"])
def test_score_model_parameterisations_recover_x0_and_tweedie_score(kind):
    x0, noise = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    acp = None if kind == "flow" else DDPMScheduler().alphas_cumprod
    model = ScoreModel(nn.Identity(), kind, acp, call=lambda net, x, ts, cond: net(x, ts))
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    model.net = Oracle(x0, noise, kind, model.alpha_sigma, t)
    x_t = model.add_noise(x0, noise, t)
    assert torch.allclose(model.denoise(x_t, t), x0, atol=1e-10)
    alpha, sigma = (v[:, None] for v in model.alpha_sigma(t))
    assert torch.allclose(
        model.score(x_t, t), -noise / sigma, atol=1e-8
    )  # grad log q(x_t | x0) at x0_hat = x0
    assert model.training_loss(x0, t, noise) < 1e-20


def test_unsupported_teachers_get_clear_errors():
    with pytest.raises(TypeError, match="class Linear.*MelDiT.*DiTTransformer2DModel"):
        SIMDistiller(nn.Linear(2, 2))
    from accel_dit_models import dit

    with pytest.raises(ValueError, match="needs its diffusers scheduler"):
        as_score_model(dit())
    model = as_score_model(dit(), DDPMScheduler())  # DiT: epsilon prediction, learned-sigma head sliced off
    x = torch.randn(2, 4, 8, 8)
    out = model.denoise(x, torch.tensor([0.3, 0.7]), {"class_labels": torch.tensor([0, 1])})
    assert out.shape == x.shape and model.prediction == "epsilon"
    assert as_score_model(dit(), FlowMatchEulerDiscreteScheduler()).prediction == "flow"
    with pytest.raises(ValueError, match="distance 'l1'"):
        SIMConfig(distance="l1")


# ---- the distiller on a MelDiT --------------------------------------------------------------------------------


def test_fake_score_and_generator_steps_leave_the_teacher_frozen():
    teacher = tiny_meldit()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    sim = SIMDistiller(teacher, SIMConfig(generator_lr=1e-3, fake_lr=1e-3, ema_decay=0.5))
    assert not any(p.requires_grad for p in sim.teacher.parameters()) and not sim.teacher.training
    z, cond = torch.randn(2, 1, 8, 8), tiny_cond()
    gen0 = [p.clone() for p in sim.generator.parameters()]
    fake0 = [p.clone() for p in sim.fake_score.parameters()]
    sim.fake_score_step(z, cond)
    assert all(torch.equal(p, q) for p, q in zip(gen0, sim.generator.parameters()))  # generator untouched
    assert any(not torch.equal(p, q) for p, q in zip(fake0, sim.fake_score.parameters()))
    fake1 = [p.clone() for p in sim.fake_score.parameters()]
    sim.generator_step(z, cond)
    assert all(torch.equal(p, q) for p, q in zip(fake1, sim.fake_score.parameters()))  # fake untouched
    assert any(not torch.equal(p, q) for p, q in zip(gen0, sim.generator.parameters()))
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
    assert all(p.grad is None for p in sim.teacher.parameters())
    ema = list(sim.generator_ema.parameters())
    assert all(torch.allclose(e, 0.5 * a + 0.5 * b) for e, a, b in zip(ema, gen0, sim.generator.parameters()))


def _small_toy(gmm: GaussianMixtureFlow, steps: int, estimator: str = "sim") -> dict:
    torch.set_num_threads(1)
    config = dataclasses.replace(TOY_CONFIG, estimator=estimator, ema_decay=0.9)
    kw = dict(batch=128, fit_steps=200, hidden=64, num_eval=400, teacher_steps=(1, 32))
    return run_toy(gmm, steps=steps, config=config, **kw)


def _component_counts(x: torch.Tensor, gmm: GaussianMixtureFlow) -> torch.Tensor:
    return torch.bincount(torch.cdist(x.double(), gmm.means).argmin(1), minlength=gmm.means.shape[0])


def test_toy_distillation_beats_the_one_step_teacher():
    result = _small_toy(GaussianMixtureFlow.default(), steps=200)
    m = result["metrics"]
    assert m["sim_init_1"]["sw2"] > 0.7 * m["teacher_1"]["sw2"]  # starts near the one-step teacher
    assert m["sim_1"]["sw2"] < 0.3 * m["teacher_1"]["sw2"]
    assert m["sim_1"]["mmd2"] < 0.2 * m["teacher_1"]["mmd2"]


def test_8d_toy_recovers_every_component_where_the_detached_estimator_collapses():
    gmm = gmm_8d(0)
    sim = _small_toy(gmm, steps=200)
    m = sim["metrics"]
    assert m["sim_1"]["sw2"] < 0.35 * m["teacher_1"]["sw2"]
    counts = _component_counts(sim["samples"]["sim_1"], gmm)
    assert (counts > 0.05 * counts.sum()).all(), counts  # all six components (weights 0.13-0.22)
    detached = _small_toy(gmm, steps=150, estimator="detached")
    assert detached["metrics"]["sim_1"]["sw2"] > 2 * m["sim_1"]["sw2"]
    assert (_component_counts(detached["samples"]["sim_1"], gmm) > 0.05 * counts.sum()).sum() < 6


# ---- the training script --------------------------------------------------------------------------------------


def _write_label_corpus(root, rows: list[tuple[str, int, int, int]], train: list[str] | None = None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    lines = ["id,instrument,program,pitch,velocity"] + [f"{i},x,{p},{k},{v}" for i, p, k, v in rows]
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    if train is not None:
        (root / "split.json").write_text(json.dumps({"train": train, "test": []}))


def test_label_table_samples_corpus_rows_and_rejects_bad_ones(tmp_path):
    rows = [("a", 1, 60, 80), ("b", 3, 62, 40), ("c", 2, 64, 120)]
    _write_label_corpus(tmp_path / "notes", rows, train=["a", "b"])
    table = sim_train.load_label_table(tmp_path / "notes", num_programs=4)
    assert table.tolist() == [[1, 60, 80], [3, 62, 40]]  # the train split only
    labels = sim_train.sample_labels(64, 4, torch.Generator().manual_seed(0), torch.device("cpu"), table)
    got = set(zip(labels["program"].tolist(), labels["pitch"].tolist(), labels["velocity"].tolist()))
    assert got == {(1, 60, 80), (3, 62, 40)}
    with pytest.raises(ValueError, match=r"label row \[3, 62, 40\] is outside.*program < 2"):
        sim_train.load_label_table(tmp_path / "notes", num_programs=2)
    with pytest.raises(FileNotFoundError, match="'.*missing' has no manifest.csv"):
        sim_train.load_label_table(tmp_path / "missing", num_programs=4)


def test_train_script_writes_loadable_one_step_meldit(tmp_path):
    teacher_dir = tmp_path / "teacher"
    tiny_meldit().save_pretrained(teacher_dir)
    _write_label_corpus(tmp_path / "notes", [("a", 0, 60, 100), ("b", 1, 64, 80)])
    out = tmp_path / "out"
    argv = [
        "--teacher",
        str(teacher_dir),
        "--output_dir",
        str(out),
        "--max_train_steps",
        "2",
        "--checkpointing_steps",
        "1",
        "--train_batch_size",
        "2",
        "--use_ema",
        "--learning_rate",
        "1e-3",
        "--label_corpus",
        str(tmp_path / "notes"),
        "--guidance_scale",
        "2",
    ]
    sim_train.main(sim_train.parse_args(argv))
    log = [json.loads(line) for line in (out / "sim_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [1, 2] and all(np.isfinite(row["generator_loss"]) for row in log)
    assert (out / "checkpoint-2" / "model" / "config.json").is_file()
    sim_config = json.loads((out / "sim_config.json").read_text())
    assert sim_config["one_step"] is True and sim_config["args"]["guidance_scale"] == 2.0
    assert MelDiT.from_pretrained(out / "model").config.class_dropout_prob == 0.0
    generator = MelDiT.from_pretrained(out / "model")
    assert any(not torch.equal(p, q) for p, q in zip(generator.parameters(), tiny_meldit().parameters()))
    # One flow-Euler step from sigma = 1 is exactly the generator x0 = z - v(z, 1000).
    z = torch.randn(2, 1, 8, 8)
    pipe = MelDiTPipeline(generator, FlowMatchEulerDiscreteScheduler(shift=3.0))
    pipe.set_progress_bar_config(disable=True)
    labels = dict(instrument=[0, 1], pitch=60, velocity=100)
    x0 = pipe(**labels, num_inference_steps=1, latents=z, output_type="latent").mels
    sim = SIMDistiller(generator)
    with torch.no_grad():
        expected = sim.generate(
            z,
            {
                "program": torch.tensor([0, 1]),
                "pitch": torch.tensor([60, 60]),
                "velocity": torch.tensor([100, 100]),
            },
        )
    assert torch.allclose(x0, expected, atol=1e-5)
    # Resuming continues from the latest checkpoint.
    sim_train.main(sim_train.parse_args([*argv[:5], "3", *argv[6:], "--resume_from_checkpoint", "latest"]))
    assert (out / "checkpoint-3").is_dir()
    assert [json.loads(line)["step"] for line in (out / "sim_log.jsonl").read_text().splitlines()] == [
        1,
        2,
        3,
    ]


def test_train_script_rejects_a_non_meldit_teacher(tmp_path):
    ToyFlowMLP(dim=2, hidden=8).save_pretrained(tmp_path / "mlp")
    with pytest.raises(TypeError, match="holds a ToyFlowMLP.*MelDiT"):
        sim_train.load_teacher(tmp_path / "mlp")
    with pytest.raises(FileNotFoundError, match="neither a bundled checkpoint"):
        sim_train.load_teacher(tmp_path / "missing")


def test_guided_teacher_is_the_pipelines_guided_velocity_and_students_drop_no_labels():
    from accelerando.generation.mel_dit import guidance_labels, guided_velocity

    teacher = tiny_meldit().eval()
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([0.3, 0.8])
    cond = {
        "program": torch.tensor([0, 1]),
        "pitch": torch.tensor([60, 64]),
        "velocity": torch.tensor([100, 80]),
    }
    labels = [cond["program"], cond["pitch"], cond["velocity"]]
    with torch.no_grad():
        guided = sim_train.guided_teacher(teacher, 3.0).predict(x, t, cond)
        expected = guided_velocity(teacher, x, t * 1000, guidance_labels(labels, 3.0), 3.0)
        plain = sim_train.guided_teacher(teacher, 1.0).predict(x, t, cond)
        unguided = teacher(x, t * 1000, *labels, return_dict=False)[0]
    assert torch.allclose(guided, expected, atol=1e-6) and not torch.allclose(guided, unguided, atol=1e-4)
    assert torch.equal(plain, unguided)
    with pytest.raises(ValueError, match="guidance_scale must be > 0.*got 0"):
        sim_train.guided_teacher(teacher, 0.0)
    student = sim_train.student(teacher)
    assert student.training and student.net.config.class_dropout_prob == 0.0
    assert teacher.config.class_dropout_prob > 0  # the teacher itself is untouched
    with torch.no_grad():  # in training mode the student is still the conditional teacher, sample for sample
        assert torch.allclose(student.predict(x, t, cond), unguided, atol=1e-6)
    assert all(torch.equal(p, q) for p, q in zip(student.net.parameters(), teacher.parameters()))
