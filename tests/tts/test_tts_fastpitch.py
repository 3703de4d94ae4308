"""IncrementalFastPitch: presets, streaming equivalence, masks, length regulation, training, I/O."""

from __future__ import annotations

import pytest
import torch
from tts_helpers import TINY

from accelerando.tts import IncrementalFastPitch
from accelerando.tts.fastpitch import chunk_attention_mask, dynamic_chunk_masks, regulate_length


def tiny(**overrides) -> IncrementalFastPitch:
    torch.manual_seed(0)
    return IncrementalFastPitch.from_preset("small", **{**TINY, **overrides}).eval()


def test_paper_preset_builds() -> None:
    model = IncrementalFastPitch.from_preset("paper")
    cfg = model.config
    assert (cfg.enc_layers, cfg.dec_layers, cfg.d_model, cfg.n_heads, cfg.d_head, cfg.conv_filter) == (
        6,
        6,
        384,
        1,
        64,
        1536,
    )
    assert (cfg.chunk_size, cfg.past_size, cfg.n_mels) == (30, 5, 80)
    assert 40_000_000 < model.num_parameters() < 55_000_000  # 46.3 M with the aligner
    model.eval()
    features = torch.randn(1, 70, 384)  # 2 full chunks of 30 frames and a partial one of 10
    chunks = list(model.decode_chunks(features))
    assert [c.shape[2] for c in chunks] == [30, 30, 10]
    torch.testing.assert_close(torch.cat(chunks, 2), model.decode_full_masked(features), atol=1e-5, rtol=0)


def test_text_to_mel_end_to_end() -> None:
    model = tiny()
    frontend = model.text_frontend()
    ids = torch.tensor([frontend.encode("Hello world, 42 apples.")])
    mel, durations = model.infer(ids, pace=0.1)
    assert mel.shape[:2] == (1, 80) and mel.shape[2] == int(durations.sum()) and torch.isfinite(mel).all()


def test_small_preset_shapes() -> None:
    model = IncrementalFastPitch.from_preset("small", n_speakers=3).eval()
    assert model.num_parameters() < 3_000_000
    ids = torch.randint(1, model.config.n_symbols, (2, 9))
    enc = model.encode(ids, speaker=torch.tensor([0, 2]))
    assert enc.features.shape[:2] == (2, int(enc.lengths.max())) and enc.features.shape[2] == 128
    mel, durations = model.infer(ids, speaker=torch.tensor([0, 2]))
    assert mel.shape == (2, 80, enc.features.shape[1]) and durations.shape == (2, 9)
    assert torch.equal(durations.sum(1), enc.lengths)


@pytest.mark.parametrize(("chunk", "past"), [(30, 5), (7, 3), (5, 12), (4, 0), (1, 2), (64, 0)])
def test_streaming_equals_full_masked_decode(chunk: int, past: int) -> None:
    model = tiny()
    features = torch.randn(2, 53, 32)  # 53 frames: the last chunk is partial for most sizes
    lengths = torch.tensor([53, 38])
    full = model.decode_full_masked(features, lengths, chunk_size=chunk, past_size=past)
    chunks = list(model.decode_chunks(features, lengths, chunk_size=chunk, past_size=past))
    assert all(c.shape[:2] == (2, 80) and c.shape[2] <= chunk for c in chunks)
    assert len(chunks) == -(-53 // chunk)
    torch.testing.assert_close(torch.cat(chunks, dim=2), full, atol=1e-5, rtol=0)


def test_streaming_from_encoder_output_uses_config_sizes() -> None:
    model = tiny(chunk_size=6, past_size=4)
    enc = model.encode(torch.randint(1, 50, (1, 6)), pace=0.05)  # slow pace: many frames
    chunks = list(model.decode_chunks(enc))
    assert chunks[0].shape[2] == 6
    assert len(chunks) > 1
    torch.testing.assert_close(torch.cat(chunks, 2), model.decode_full_masked(enc), atol=1e-5, rtol=0)


def test_chunk_mask_static_and_dynamic() -> None:
    m = chunk_attention_mask(10, chunk_size=4, past_size=2)
    assert m.shape == (10, 10) and m.dtype == torch.bool
    assert m[5].tolist() == [False, False, True, True, True, True, True, True, False, False]
    assert m[0].tolist() == [True] * 4 + [False] * 6
    assert not torch.triu(m, diagonal=4).any()  # nothing beyond the own chunk
    masks, chunk, past = dynamic_chunk_masks(3, 20, generator=torch.Generator().manual_seed(1))
    assert masks.shape == (3, 20, 20) and chunk.shape == past.shape == (3,)
    for b in range(3):
        assert torch.equal(masks[b], chunk_attention_mask(20, int(chunk[b]), int(past[b])))


def test_decoder_output_of_a_chunk_ignores_later_frames() -> None:
    model = tiny()
    x = torch.randn(1, 40, 32)
    y = x.clone()
    y[:, 20:] += torch.randn(1, 20, 32)  # change everything from chunk 2 (chunk size 10) on
    a = model.decode_full_masked(x, chunk_size=10, past_size=5)
    b = model.decode_full_masked(y, chunk_size=10, past_size=5)
    torch.testing.assert_close(a[..., :20], b[..., :20], atol=1e-6, rtol=0)
    assert (a[..., 20:] - b[..., 20:]).abs().max() > 1e-3


def test_length_regulation_and_pace() -> None:
    x = torch.arange(3.0)[None, :, None].expand(1, 3, 2)  # (1, 3, 2)
    out, lengths, reps = regulate_length(x, torch.tensor([[2.0, 0.0, 3.0]]))
    assert lengths.tolist() == [5] and reps.tolist() == [[2, 0, 3]]
    assert out[0, :, 0].tolist() == [0, 0, 2, 2, 2]
    durations = torch.full((1, 20), 6.0)
    _, slow, _ = regulate_length(torch.zeros(1, 20, 2), durations, pace=1.0)
    _, fast, _ = regulate_length(torch.zeros(1, 20, 2), durations, pace=2.0)
    assert fast.item() == slow.item() // 2
    model = tiny()
    ids = torch.randint(1, 50, (1, 12))
    n1 = model.encode(ids, pace=0.1).lengths.item()
    n2 = model.encode(ids, pace=0.2).lengths.item()
    assert abs(n2 - n1 / 2) <= 12  # rounding per token


def _batch(model: IncrementalFastPitch, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, model.config.n_symbols, (2, 7), generator=g)
    ids[1, 5:] = 0
    mel = torch.randn(2, 80, 36, generator=g) * 0.5 - 5.0
    mel[1, :, 28:] = 0.0
    pitch = torch.rand(2, 36, generator=g) * 100 + 100
    pitch[:, ::5] = 0.0
    return ids, torch.tensor([7, 5]), mel, torch.tensor([36, 28]), pitch


@pytest.mark.parametrize("mask_mode", ["static", "dynamic", "full"])
def test_training_step_lowers_loss(mask_mode: str) -> None:
    model = tiny(n_speakers=2, pitch_mean=150.0, pitch_std=30.0).train()
    ids, ids_lens, mel, mel_lens, pitch = _batch(model)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for step in range(8):
        out = model(
            ids,
            ids_lens,
            mel,
            mel_lens,
            pitch,
            speaker=torch.tensor([0, 1]),
            mask_mode=mask_mode,
            generator=gen,
        )
        total, parts = model.loss(out, mel, step=step, bin_loss_warmup_steps=4)
        assert all(torch.isfinite(v) for v in parts.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(total.item())
    assert out.mel.shape == mel.shape
    assert out.dur_target.sum(1).tolist() == [36, 28]  # the hard alignment covers every frame
    assert losses[-1] < losses[0]


def test_bin_loss_warm_up_weight() -> None:
    model = tiny()
    out = model(*_batch(model))
    mel = _batch(model)[2]
    weights = [
        model.loss(out, mel, step=s, bin_loss_start_step=10, bin_loss_warmup_steps=10)[1]["bin_weight"]
        for s in (0, 9, 10, 14, 19, 100)
    ]
    assert [round(float(w), 2) for w in weights] == [0.0, 0.0, 0.1, 0.5, 1.0, 1.0]


def test_save_load_round_trip(tmp_path) -> None:
    model = tiny(n_speakers=2, speakers=["alice", "bob"])
    model.save_pretrained(tmp_path / "ifp")
    loaded = IncrementalFastPitch.from_pretrained(tmp_path / "ifp").eval()
    ids = torch.randint(1, 50, (1, 10))
    a, da = model.infer(ids, speaker="bob", pace=0.2)
    b, db = loaded.infer(ids, speaker="bob", pace=0.2)
    # Equal weights; the loaded copy's tensors may take another oneDNN kernel (AMD vs Intel): 1e-7 apart.
    assert torch.equal(da, db)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert loaded.text_frontend().symbols == model.text_frontend().symbols
    assert loaded.config.symbols == list(model.text_frontend().symbols)


def test_bad_inputs_name_the_value() -> None:
    model = tiny(n_speakers=2, speakers=["alice", "bob"])
    ids = torch.randint(1, 50, (1, 5))
    with pytest.raises(ValueError, match="empty|non-empty"):
        model.infer(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="non-empty"):
        model.infer([])
    with pytest.raises(ValueError, match="speaker id 5"):
        model.infer(ids, speaker=5)
    with pytest.raises(ValueError, match="'carol'"):
        model.infer(ids, speaker="carol")
    for pace in (0.0, -1.0):
        with pytest.raises(ValueError, match=f"pace must be > 0, got {pace}"):
            model.infer(ids, pace=pace)
    with pytest.raises(ValueError, match="Symbol id 9999"):
        model.infer(torch.tensor([[1, 9999]]))
    with pytest.raises(ValueError, match="Unknown preset 'huge'"):
        IncrementalFastPitch.from_preset("huge")
    with pytest.raises(ValueError, match="chunk_size"):
        list(model.decode_chunks(torch.zeros(1, 4, 32), chunk_size=0))
