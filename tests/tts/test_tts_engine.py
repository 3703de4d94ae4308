"""StreamingSynthesizer / StreamingVocoder: stream == whole, no clicks at seams, cancellation, bounds."""

from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest
import torch
from scipy.signal import butter, sosfilt
from tts_helpers import CountingVocoder, LocalVocoder, tiny_fastpitch

from accelerando.audio import MelConfig, mel_spectrogram
from accelerando.tts import StreamingSynthesizer, StreamingVocoder
from accelerando.vocoders import FreGrad, GriffinLim, MelNEWT

TEXT = "Hello world, this is a streaming test. A second sentence follows here!"


@pytest.mark.parametrize("chunk_size", [7, 30])
def test_stream_equals_whole_utterance(chunk_size: int) -> None:
    engine = StreamingSynthesizer(tiny_fastpitch(), LocalVocoder(), chunk_size=chunk_size)
    chunks = list(engine.stream(TEXT, voice="bob"))
    whole = engine.synthesize(TEXT, voice="bob")
    assert len(chunks) >= 3 and all(c.dtype == np.float32 and c.ndim == 1 for c in chunks)
    streamed = np.concatenate(chunks)
    assert streamed.shape == whole.shape and whole.std() > 1e-3
    np.testing.assert_allclose(streamed, whole, atol=2e-5, rtol=0)
    assert engine.stats.streams_completed == 1 and engine.stats.active_streams == 0


def test_non_incremental_mode_yields_the_whole_utterance_once() -> None:
    engine = StreamingSynthesizer(tiny_fastpitch(), LocalVocoder(), incremental=False)
    chunks = list(engine.stream(TEXT))
    assert len(chunks) == 1
    np.testing.assert_array_equal(chunks[0], engine.synthesize(TEXT))


def test_naive_chunking_is_not_exact() -> None:
    # The exactness above comes from the context/look-ahead: without it the seams differ.
    engine = StreamingSynthesizer(
        tiny_fastpitch(),
        LocalVocoder(),
        chunk_size=7,
        left_context_frames=0,
        lookahead_frames=0,
        crossfade_frames=0,
    )
    streamed = np.concatenate(list(engine.stream(TEXT)))
    assert np.abs(streamed - engine.synthesize(TEXT)).max() > 1e-3


def _highpass_energy(x: np.ndarray, block: int = 256) -> np.ndarray:
    hp = sosfilt(butter(8, 5000, "highpass", fs=22050, output="sos"), x)
    n = len(x) // block
    return (hp[: n * block].reshape(n, block) ** 2).mean(1)  # (blocks,)


def _seam_ratio(vocoder, mel: torch.Tensor, chunk: int, **seam) -> float:
    """Max high-frequency (> 5 kHz) energy in blocks at the seams / median elsewhere."""
    sv = StreamingVocoder(vocoder, **seam)
    out, seams = [], []
    for i in range(0, mel.shape[1], chunk):
        audio = sv.push(mel[:, i : i + chunk])
        if audio.size:
            out.append(audio)
            seams.append(sum(map(len, out)))
    out.append(sv.finish())
    energy = _highpass_energy(np.concatenate(out))
    at_seams = sorted({b for s in seams[:-1] for b in (s // 256 - 1, s // 256)})
    elsewhere = np.delete(energy, at_seams + [0, len(energy) - 1])
    return float(energy[at_seams].max() / np.median(elsewhere))


def test_no_click_at_seams_griffin_lim() -> None:
    sr = 22050
    t = np.arange(int(sr * 1.5)) / sr
    phase = 2 * np.pi * np.cumsum(180 + 40 * np.sin(2 * np.pi * 1.5 * t)) / sr  # a gliding voiced tone
    wav = sum(0.3 / k * np.sin(k * phase) for k in range(1, 6)).astype(np.float32)
    mel = mel_spectrogram(torch.from_numpy(wav)[None], MelConfig())[0]  # (80, frames)
    vocoder = GriffinLim(n_iter=16)
    ours = _seam_ratio(vocoder, mel, 20, left_context_frames=16, lookahead_frames=8, crossfade_frames=4)
    naive = _seam_ratio(vocoder, mel, 20, left_context_frames=0, lookahead_frames=0, crossfade_frames=0)
    assert ours < 3.0, ours  # seams look like the rest of the signal (measured ~1.2)
    assert naive > 10.0, naive  # the test can see a click: naive chunking gives huge ratios


def test_fregrad_streams_with_fixed_noise() -> None:
    torch.manual_seed(0)
    fregrad = FreGrad(
        residual_layers=2, residual_channels=8, dilation_cycle_length=2, diffusion_hidden_dim=32
    ).eval()
    engine = StreamingSynthesizer(tiny_fastpitch(), fregrad, vocoder_steps=2, chunk_size=10)
    first = np.concatenate(list(engine.stream("Hi there.")))
    second = np.concatenate(list(engine.stream("Hi there.")))
    whole = engine.synthesize("Hi there.")
    assert first.shape == whole.shape and np.isfinite(first).all()
    np.testing.assert_array_equal(first, second)  # seeded per window: reproducible


@pytest.mark.parametrize("chunk_size", [5, 23])
def test_a_natively_streaming_vocoder_streams_exactly(chunk_size: int) -> None:
    """MelNEWT carries its state from chunk to chunk: the stream equals the whole call, with no context."""
    torch.manual_seed(0)
    vocoder = MelNEWT(hidden=16, mlp_depth=2, n_harmonics=8, n_waveshapers=2, shaper_width=4,
                      n_noise_bands=9, noise_ir_length=32, n_pitch_bins=32).eval()  # fmt: skip
    engine = StreamingSynthesizer(tiny_fastpitch(), vocoder, chunk_size=chunk_size)
    streamed = np.concatenate(list(engine.stream(TEXT)))
    whole = engine.synthesize(TEXT)
    assert streamed.shape == whole.shape and whole.std() > 1e-4
    np.testing.assert_allclose(streamed, whole, atol=2e-5, rtol=0)


def test_speed_is_pace_and_voices() -> None:
    engine = StreamingSynthesizer(tiny_fastpitch(), LocalVocoder())
    assert engine.voices == ["ana", "bob"] and engine.sample_rate == 22050
    normal = sum(map(len, engine.stream("Speak at two speeds please.")))
    fast = sum(map(len, engine.stream("Speak at two speeds please.", speed=2.0)))
    assert 0.4 < fast / normal < 0.6


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(text="   "), "empty"),
        (dict(text="Hi.", voice="nobody"), "Unknown voice 'nobody'"),
        (dict(text="Hi.", speed=0.0), "speed"),
        (dict(text="Hi.", speed=float("nan")), "speed"),
        (dict(text="!!! ???"), "no words"),
    ],
)
def test_bad_input_raises_before_any_work(tiny_engine, kwargs, match) -> None:
    started = tiny_engine.stats.streams_started
    with pytest.raises(ValueError, match=match):
        tiny_engine.stream(**kwargs)
    assert tiny_engine.stats.streams_started == started


def test_cancel_stops_within_one_chunk() -> None:
    vocoder = CountingVocoder(delay=0.02)
    engine = StreamingSynthesizer(tiny_fastpitch(frames_per_token=8), vocoder, chunk_size=5, queue_size=1)
    stream = engine.stream(TEXT * 3)
    next(stream)
    stream.close()
    assert stream.join(5)
    calls = vocoder.calls
    time.sleep(0.1)
    stats = engine.stats
    assert stats.streams_cancelled == 1 and stats.active_streams == 0 and vocoder.calls == calls
    # the queue holds 1 chunk, the producer may have one more in hand: nowhere near the utterance
    total_chunks = engine.synthesize(TEXT * 3).size // (5 * 256)
    assert stats.mel_chunks_decoded <= 5 < total_chunks


def test_cancel_event_and_garbage_collection_cancel() -> None:
    engine = StreamingSynthesizer(tiny_fastpitch(frames_per_token=8), CountingVocoder(0.01), chunk_size=5)
    event = threading.Event()
    stream = engine.stream(TEXT * 3, cancel_event=event)
    next(stream)
    event.set()
    assert stream.join(5) and list(stream) == []
    stream = engine.stream(TEXT * 3)
    thread = stream._thread
    del stream
    gc.collect()
    thread.join(5)
    assert not thread.is_alive() and engine.stats.streams_cancelled == 2


def test_slow_reader_is_bounded_by_the_queue() -> None:
    vocoder = CountingVocoder()
    engine = StreamingSynthesizer(tiny_fastpitch(frames_per_token=8), vocoder, chunk_size=5, queue_size=2)
    stream = engine.stream(TEXT * 3)
    next(stream)
    time.sleep(0.5)  # the reader stalls; the producer must block on the full queue
    assert engine.stats.chunks_produced <= 1 + 2 + 1 and engine.stats.active_streams == 1
    chunks = [c for c in stream]
    assert len(chunks) > 10 and engine.stats.streams_completed == 1


@pytest.mark.filterwarnings("ignore:TextFrontend dropped")
def test_unspeakable_sentence_is_an_error_from_the_stream(tiny_engine) -> None:
    with pytest.raises(ValueError):
        list(tiny_engine.stream("___"))


def test_from_pretrained(tmp_path, monkeypatch) -> None:
    import accelerando.pretrained as pretrained

    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="fastpitch-"):
        StreamingSynthesizer.from_pretrained()
    tiny_fastpitch().save_pretrained(tmp_path / "fastpitch-tiny")
    engine = StreamingSynthesizer.from_pretrained()  # no measured vocoder: Griffin-Lim
    assert isinstance(engine.vocoder, GriffinLim) and engine.voices == ["ana", "bob"]
    assert engine.default_voice == "ana"  # no recorded voice WERs: the first voice
    FreGrad(residual_layers=2, residual_channels=8, diffusion_hidden_dim=32).save_pretrained(
        tmp_path / "fregrad-tiny"
    )
    engine = StreamingSynthesizer.from_pretrained(vocoder="fregrad-tiny")
    assert isinstance(engine.vocoder, FreGrad)
    from accelerando.pretrained.defaults import record_evaluation

    gl = {"wer_copy": 0.1, "wer_tts": 0.2, "mstft": 1.5, "pesq_wb": 2.5, "vuv_f1": 0.9}
    record_evaluation({"vocoders": {"griffin-lim": gl}, "voices": {"ana": 0.5, "bob": 0.3}})
    engine = StreamingSynthesizer.from_pretrained()
    assert engine.default_voice == "bob" and engine.speaker_index(None) == 1  # the best-measured voice
    with pytest.raises(FileNotFoundError, match="griffin-lim"):
        StreamingSynthesizer.from_pretrained(tmp_path / "fastpitch-tiny", vocoder=tmp_path / "nothing")


def test_default_vocoder_is_chosen_by_the_recorded_measurements(tmp_path, monkeypatch) -> None:
    import accelerando.pretrained as pretrained
    from accelerando.pretrained.defaults import record_evaluation
    from accelerando.tts.engine import load_vocoder
    from accelerando.vocoders import GriffinLim, PeriodWave, PeriodWaveTurbo

    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    assert isinstance(load_vocoder(None), GriffinLim)  # nothing measured: the floor
    teacher = PeriodWave.from_preset("tiny")
    PeriodWaveTurbo.from_periodwave(teacher).save_pretrained(tmp_path / "periodwave-turbo-s-x")
    FreGrad.from_preset("small", residual_layers=2).save_pretrained(tmp_path / "fregrad-x")
    floor = {"wer_copy": 0.08, "wer_tts": 0.23, "mstft": 1.7, "pesq_wb": 2.6, "vuv_f1": 0.98}
    worse = {"wer_copy": 0.89, "wer_tts": 0.9, "mstft": 1.9, "pesq_wb": 1.0, "vuv_f1": 0.01}
    better = {"wer_copy": 0.07, "wer_tts": 0.22, "mstft": 1.2, "pesq_wb": 3.1, "vuv_f1": 0.95}
    rows = {"griffin-lim": floor, "periodwave-turbo-s-x": worse, "fregrad-x": worse}
    record_evaluation({"vocoders": rows})
    assert isinstance(load_vocoder(None), GriffinLim)  # measured worse than the floor: never the default
    record_evaluation({"vocoders": {**rows, "fregrad-x": better}})
    assert type(load_vocoder(None)) is FreGrad
    assert (
        type(load_vocoder("periodwave-turbo-s-x")) is PeriodWaveTurbo
    )  # a bundled name still picks that one
