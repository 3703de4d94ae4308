"""FastPitch training data, the aligner on a tiny corpus, and the training script end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from accelerando.audio import save_audio
from accelerando.data.datasets import LJSpeechDataset
from accelerando.tts import IncrementalFastPitch, TextFrontend
from accelerando.tts.fastpitch import ForwardSumLoss, monotonic_alignment_search
from accelerando.tts.fastpitch import train as fp_train
from accelerando.tts.fastpitch.data import MEL_PAD_VALUE, TTSDataset, collate, compute_pitch_stats

SR = 22050
TEXTS = ["A cat sat.", "Dogs run fast today.", "Hello there, world.", "We go home."]
FREQS = [140.0, 180.0, 220.0, 260.0]
TINY_CONFIG = dict(
    d_model=32,
    d_head=16,
    n_heads=2,
    conv_filter=64,
    enc_layers=1,
    dec_layers=1,
    predictor_filters=32,
    aligner_channels=16,
    dropout=0.0,
    attn_dropout=0.0,
    predictor_dropout=0.0,
)


def _write_corpus(root, seconds: tuple[float, ...] = (0.5, 0.7, 0.6, 0.4)) -> list[str]:
    """A 4-utterance, 2-voice LJSpeech-style folder of harmonic tones with on/off syllables."""
    (root / "wavs").mkdir(parents=True)
    rng = np.random.default_rng(0)
    ids = [f"utt_{i:02d}" for i in range(len(TEXTS))]
    rows = []
    for i, item_id in enumerate(ids):
        t = np.arange(int(seconds[i] * SR)) / SR
        tone = sum(np.sin(2 * np.pi * k * FREQS[i] * t) / k for k in (1, 2, 3))
        envelope = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * 4 * t))  # syllables: 4 per second
        wav = 0.3 * tone * envelope + 0.003 * rng.standard_normal(t.shape)
        save_audio(root / "wavs" / f"{item_id}.wav", wav.astype(np.float32), SR)
        rows.append(f"{item_id}|{TEXTS[i]}|{TEXTS[i]}|{'anna' if i % 2 else 'bob'}\n")
    (root / "metadata.csv").write_text("".join(rows))
    split = {"seed": 0, "train": ids[:3], "validation": ids[3:], "test": []}
    (root / "split.json").write_text(json.dumps(split))
    return ids


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech")
    _write_corpus(root)
    return root


@pytest.fixture(scope="module")
def dataset(corpus, tmp_path_factory) -> TTSDataset:
    base = LJSpeechDataset(corpus, split=None)
    return TTSDataset(base, TextFrontend(), base.speakers, cache_dir=tmp_path_factory.mktemp("pitch"))


def test_items_have_pitch_per_mel_frame_and_are_cached(dataset: TTSDataset) -> None:
    assert dataset.speakers == ["anna", "bob"]
    for i in range(len(dataset)):
        item = dataset[i]
        assert item["ids"].dtype == torch.long and item["ids"].numel() > 3
        assert item["mel"].shape[0] == 80
        assert item["pitch"].shape == (item["mel"].shape[1],)  # one f0 per mel frame
        assert item["speaker"] == (0 if i % 2 else 1)
        voiced = item["pitch"][item["pitch"] > 0]
        assert voiced.numel() > 0 and abs(float(voiced.median()) - FREQS[i]) < 0.1 * FREQS[i]
    assert sorted(p.stem for p in dataset.cache_dir.glob("*.npy")) == [f"utt_{i:02d}" for i in range(4)]
    # A cached file is used as is (pYIN does not run again).
    path = dataset.cache_dir / "utt_00.npy"
    np.save(path, np.full(3, 123.0, dtype=np.float32))
    try:
        pitch = dataset[0]["pitch"]
        assert torch.all(pitch[:3] == 123.0) and torch.all(pitch[3:] == 0)
    finally:
        path.unlink()
        dataset[0]  # recompute


def test_collate_pads_and_builds_the_alignment_prior(dataset: TTSDataset) -> None:
    items = [dataset[i] for i in range(3)]
    batch = collate(items)
    b = len(items)
    n, t = int(batch["ids_lens"].max()), int(batch["mel_lens"].max())
    assert batch["ids"].shape == (b, n) and batch["mel"].shape == (b, 80, t)
    assert batch["pitch"].shape == (b, t) and batch["attn_prior"].shape == (b, t, n)
    assert batch["speaker"].tolist() == [it["speaker"] for it in items]
    for i, it in enumerate(items):
        ni, ti = it["ids"].numel(), it["mel"].shape[1]
        assert batch["ids_lens"][i] == ni and batch["mel_lens"][i] == ti
        assert torch.equal(batch["ids"][i, :ni], it["ids"]) and torch.all(batch["ids"][i, ni:] == 0)
        assert torch.equal(batch["mel"][i, :, :ti], it["mel"])
        assert torch.all(batch["mel"][i, :, ti:] == MEL_PAD_VALUE)
        assert torch.all(batch["pitch"][i, ti:] == 0)
        prior = batch["attn_prior"][i]
        assert torch.allclose(prior[:ti, :ni].sum(1), torch.ones(ti), atol=1e-4)
        assert prior[ti:].abs().sum() == 0 and prior[:, ni:].abs().sum() == 0


def test_pitch_stats_are_over_voiced_frames(dataset: TTSDataset) -> None:
    mean, std = compute_pitch_stats(dataset)
    voiced = torch.cat([dataset[i]["pitch"] for i in range(len(dataset))])
    voiced = voiced[voiced > 0].double()
    assert mean == pytest.approx(float(voiced.mean()), rel=1e-4)
    assert std == pytest.approx(float(voiced.std(unbiased=False)), rel=1e-3)
    assert min(FREQS) < mean < max(FREQS)


def test_aligner_forward_sum_decreases_and_durations_sum_to_mel_lengths(dataset: TTSDataset) -> None:
    torch.manual_seed(0)
    model = IncrementalFastPitch.from_preset("small", n_speakers=2, **TINY_CONFIG)
    batch = collate([dataset[i] for i in range(len(dataset))])
    params = [*model.aligner.parameters(), *model.embedding.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-2)
    forward_sum = ForwardSumLoss()
    mask = torch.arange(batch["ids"].shape[1])[None] < batch["ids_lens"][:, None]
    losses = []
    for _ in range(60):
        emb = model.embedding(batch["ids"]).transpose(1, 2)  # (B, D, N)
        soft, logprob = model.aligner(batch["mel"], emb, mask, batch["attn_prior"])
        loss = forward_sum(logprob, batch["ids_lens"], batch["mel_lens"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.9 * np.mean(losses[:5]), losses  # ~0.71 here

    hard = monotonic_alignment_search(soft.detach(), batch["ids_lens"], batch["mel_lens"])
    durations = hard.sum(2)[:, 0]  # (B, N)
    assert torch.equal(durations.sum(1).long(), batch["mel_lens"])
    assert torch.all(durations[mask] >= 1)  # every token gets a frame
    # The model's training pass uses the same durations.
    out = model(batch["ids"], batch["ids_lens"], batch["mel"], batch["mel_lens"], batch["pitch"],
                batch["speaker"], attn_prior=batch["attn_prior"])  # fmt: skip
    assert torch.equal(out.dur_target.sum(1).long(), batch["mel_lens"])


def _args(data, out, *extra: str):
    return fp_train.parse_args(
        [
            "--data_dir", str(data), "--output_dir", str(out), "--preset", "small",
            "--model_config", json.dumps(TINY_CONFIG), "--train_batch_size", "2",
            "--checkpointing_steps", "2", "--chunk_size", "8", "--past_size", "2",
            "--lr_warmup_steps", "2", "--binarization_start_step", "1", "--binarization_warmup_steps", "1",
            *extra,
        ]
    )  # fmt: skip


@pytest.mark.slow
def test_train_script_runs_saves_loadable_models_and_resumes(corpus, tmp_path) -> None:
    out = tmp_path / "run"
    cache = tmp_path / "pitch"
    final = fp_train.main(
        _args(
            corpus, out, "--max_train_steps", "2", "--pitch_cache_dir", str(cache), "--mask_mode", "dynamic"
        )
    )
    stats = json.loads((out / fp_train.PITCH_STATS_FILE).read_text())
    assert stats["items"] == 3 and min(FREQS) < stats["pitch_mean"] < max(FREQS)
    assert len(list(cache.glob("*.npy"))) == 4  # train + validation utterances

    model = IncrementalFastPitch.from_pretrained(out / "checkpoint-2" / "model")
    cfg = model.config
    assert cfg.speakers == ["anna", "bob"] and cfg.n_speakers == 2
    assert (cfg.d_model, cfg.chunk_size, cfg.past_size) == (32, 8, 2)
    assert cfg.pitch_mean == pytest.approx(stats["pitch_mean"])
    assert IncrementalFastPitch.from_pretrained(final).config.pitch_std == pytest.approx(stats["pitch_std"])
    records = json.loads((out / fp_train.VALIDATION_FILE).read_text())
    assert [r["step"] for r in records] == [2]
    for key in ("val_mel_l1", "val_attn_max_prob", "val_forward_sum", "val_dur_rel_error"):
        assert np.isfinite(records[0][key])
    assert 0 < records[0]["val_attn_max_prob"] <= 1
    assert (out / "validation" / "step-2.png").stat().st_size > 1000

    fp_train.main(
        _args(corpus, out, "--max_train_steps", "3", "--pitch_cache_dir", str(cache),
              "--resume_from_checkpoint", "latest")
    )  # fmt: skip
    records = json.loads((out / fp_train.VALIDATION_FILE).read_text())
    assert [r["step"] for r in records] == [2, 3]
    assert (out / "validation" / "step-3.png").is_file()
    assert json.loads((out / fp_train.PITCH_STATS_FILE).read_text()) == stats  # computed once

    shipped = fp_train.export_pretrained(out, tmp_path / "fastpitch-tiny")
    assert (shipped / "config.json").is_file() and list(shipped.glob("*.safetensors"))
    card = (shipped / "README.md").read_text()
    assert "2 steps" in card and f"mel L1 {records[0]['val_mel_l1']:.4f}" in card  # newest checkpoint
    assert f"| 2 | {records[0]['val_mel_l1']:.4f} | {records[0]['val_forward_sum']:.4f} |" in card  # history
    assert "| 3 |" not in card  # records after the exported checkpoint are not its history
    assert (shipped / "validation.png").stat().st_size > 1000 and "validation.png" in card
    assert IncrementalFastPitch.from_pretrained(shipped).config.speakers == ["anna", "bob"]


def test_aligner_param_group_and_resume_of_one_group_checkpoints(tmp_path) -> None:
    torch.manual_seed(0)
    model = IncrementalFastPitch.from_preset("small", **TINY_CONFIG)
    args = fp_train.parse_args(["--data_dir", str(tmp_path), "--aligner_lr_scale", "10"])
    optimizer = fp_train.build_optimizer(model, args)
    rest, aligner = optimizer.param_groups  # the aligner last: the flat order is model.parameters()'s
    assert {id(p) for p in aligner["params"]} == {id(p) for p in model.aligner.parameters()}
    assert [id(p) for g in (rest, aligner) for p in g["params"]] == [id(p) for p in model.parameters()]
    assert (rest["lr"], aligner["lr"]) == pytest.approx((1e-3, 1e-2))
    scheduler = fp_train.WarmupInverseSqrt(optimizer, 4)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([2.5e-4, 2.5e-3])  # same warm-up

    # A checkpoint from before the aligner group: one Adam group over model.parameters().
    old_opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-9, weight_decay=1e-6)
    old_sched = torch.optim.lr_scheduler.LambdaLR(old_opt, fp_train.lr_lambda(4))
    sum(p.sum() for p in model.parameters()).backward()
    old_opt.step()
    old_sched.step()
    optimizer.load_state_dict(old_opt.state_dict())
    scheduler.load_state_dict(old_sched.state_dict())
    for p in model.parameters():  # moments follow their parameters
        assert torch.equal(optimizer.state[p]["exp_avg"], old_opt.state[p]["exp_avg"])
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([5e-4, 5e-3])
    assert scheduler.base_lrs == pytest.approx([1e-3, 1e-2]) and scheduler.last_epoch == 1
    scheduler.step()
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([7.5e-4, 7.5e-3])
    other = torch.optim.Adam(torch.nn.Linear(2, 2).parameters())
    with pytest.raises(ValueError):  # a state of another model still fails loudly
        optimizer.load_state_dict(other.state_dict())


def test_parse_args_defaults_and_model_config_errors(tmp_path) -> None:
    args = fp_train.parse_args(["--data_dir", str(tmp_path)])
    assert (args.train_batch_size, args.learning_rate, args.lr_warmup_steps) == (16, 1e-3, 1000)
    assert args.aligner_lr_scale == 1.0
    assert (args.preset, args.mask_mode, args.chunk_size, args.past_size) == ("paper", "static", 30, 5)
    assert fp_train.lr_lambda(4)(1) == pytest.approx(0.5) and fp_train.lr_lambda(4)(15) == pytest.approx(0.5)
    config = tmp_path / "c.json"
    config.write_text('{"d_model": 64}')
    assert fp_train.parse_args(["--data_dir", ".", "--model_config", str(config)]).model_config == {
        "d_model": 64
    }
    for bad in (["--model_config", "[1]"], ["--model_config", "{oops"], ["--mask_mode", "chunky"]):
        with pytest.raises(SystemExit):
            fp_train.parse_args(["--data_dir", ".", *bad])
