"""Dynamic batching of MelNEWT stream blocks: exact per stream, merged across streams, in the engine."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from tts_helpers import tiny_fastpitch

from accelerando.tts import StreamingSynthesizer
from accelerando.tts.batching import RenderBatcher
from accelerando.vocoders import GriffinLim, MelNEWT
from accelerando.vocoders.newt.mel_newt import batch_states, split_state


def _tiny_newt() -> MelNEWT:
    torch.manual_seed(0)
    return MelNEWT(hidden=24, mlp_depth=2, n_harmonics=12, n_waveshapers=3, shaper_width=4, n_noise_bands=17,
                   noise_ir_length=32, n_pitch_bins=48).eval()  # fmt: skip


def _mel(frames: int, seed: int) -> torch.Tensor:
    return torch.randn(1, 80, frames, generator=torch.Generator().manual_seed(seed)) - 6.0


def test_a_batch_of_streams_at_different_positions_renders_what_each_renders_alone():
    model = _tiny_newt()
    streams = [model.stream(seed=s) for s in (1, 2, 3)]
    for i, stream in enumerate(streams):  # different positions: 1, 2 and 3 chunks in
        for j in range(i + 1):
            stream.push(_mel(4, 10 * i + j))
    states = [s.state for s in streams]
    mel = torch.cat([_mel(4, 100 + i) for i in range(3)])
    with torch.inference_mode():
        audio, state, _ = model.render(mel, batch_states(states))
        alone = [model.render(mel[i : i + 1], states[i])[:2] for i in range(3)]
    for i, new in enumerate(split_state(state, states)):
        torch.testing.assert_close(audio[i : i + 1], alone[i][0], atol=1e-5, rtol=1e-4)
        assert new.sample_index == alone[i][1].sample_index
        assert torch.equal(new.keys, alone[i][1].keys)
        torch.testing.assert_close(new.gru_hidden, alone[i][1].gru_hidden, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="same stage"):
        batch_states([model.stream(seed=0).state, states[0]])  # a fresh stream has no context yet


def test_the_batcher_merges_concurrent_streams_and_each_gets_its_own_audio():
    model = _tiny_newt()
    batcher = RenderBatcher(model, window_s=0.05)
    chunks = {i: [_mel(5, 10 * i + j) for j in range(4)] for i in range(4)}
    expected = {}
    for i in range(4):
        stream = model.stream(seed=i)
        expected[i] = torch.cat([stream.push(c) for c in chunks[i]] + [stream.finish()], dim=-1)
    got: dict[int, torch.Tensor] = {}
    barrier = threading.Barrier(4)

    def run(i: int) -> None:
        with batcher.active():
            barrier.wait(10)
            stream = model.stream(seed=i, renderer=batcher.render)
            got[i] = torch.cat([stream.push(c) for c in chunks[i]] + [stream.finish()], dim=-1)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for i in range(4):
        torch.testing.assert_close(got[i], expected[i], atol=1e-5, rtol=1e-4)
    assert batcher.rendered == 4 * 5 and batcher.calls < batcher.rendered  # blocks were merged


def test_engine_with_batching_keeps_the_audio_and_merges_blocks():
    acoustic = tiny_fastpitch(frames_per_token=4)
    plain = StreamingSynthesizer(acoustic, _tiny_newt(), chunk_size=5, batch_window_ms=0)
    batched = StreamingSynthesizer(acoustic, plain.vocoder, chunk_size=5, batch_window_ms=20)
    assert plain.batcher is None and batched.batcher is not None
    texts = [f"Stream number {i} says hello {'again ' * i}now." for i in range(4)]
    expected = [np.concatenate(list(plain.stream(t, voice="bob"))) for t in texts]
    results: list = [None] * 4

    def run(i: int) -> None:
        results[i] = np.concatenate(list(batched.stream(texts[i], voice="bob")))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for got, want in zip(results, expected):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert batched.batcher.calls < batched.batcher.rendered


def test_batching_needs_a_block_streaming_vocoder():
    with pytest.raises(ValueError, match="batch_window_ms"):
        StreamingSynthesizer(tiny_fastpitch(), GriffinLim(), batch_window_ms=5)
    assert StreamingSynthesizer(tiny_fastpitch(), GriffinLim()).batcher is None  # default: off
