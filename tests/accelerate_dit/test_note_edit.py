"""The one note edit behind ``accelerando edit`` and the demo's Edit tab (accelerando.accelerate_dit.note_edit).

Both front ends must edit the same note the same way: same pitch estimate (pYIN over A0-C8), same mel, padding,
RF-Edit settings, vocoding, trimming and normalisation. Tiny random MelDiTs, as in tests/test_edit_cli.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from meldit_tiny import TINY, TinyVocoder, randomize

from accelerando.accelerate_dit import RFEditConfig, note_edit
from accelerando.accelerate_dit.note_edit import (
    NoteEdit,
    PitchNotFoundError,
    edit_note_audio,
    estimate_f0_hz,
    estimate_midi_pitch,
    note_mel_config,
)
from accelerando.audio import MelConfig, extract_f0, mel_spectrogram, save_audio
from accelerando.generation import MelDiT, MelDiTPipeline

SR = MelConfig().sample_rate
CONFIG = RFEditConfig(num_steps=2, inject_steps=1)


def _sine(hz: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _tone(hz: float = 220.0, seconds: float = 1.0) -> np.ndarray:
    """A harmonic note with an attack and a release."""
    t = np.arange(int(seconds * SR)) / SR
    wav = sum(0.3 / k * np.sin(2 * np.pi * k * hz * t) for k in range(1, 4))
    return (wav * np.minimum(1, 20 * t) * np.minimum(1, 20 * (seconds - t))).astype(np.float32)


def _pipe(vocoder: bool) -> MelDiTPipeline:
    model = randomize(MelDiT(**{**TINY, "num_programs": 128})).eval()
    return MelDiTPipeline(model, vocoder=TinyVocoder(n_mels=TINY["n_mels"], hop=256) if vocoder else None)


@pytest.fixture(scope="module")
def pipe() -> MelDiTPipeline:
    return _pipe(vocoder=True)


@pytest.fixture(scope="module")
def pipe_dirs(tmp_path_factory) -> dict[str, Path]:
    """Saved pipelines, one with the tiny vocoder and one without (Griffin-Lim)."""
    root = tmp_path_factory.mktemp("meldit-pipes")
    dirs = {"tiny vocoder": root / "tiny", "griffin-lim": root / "gl"}
    _pipe(vocoder=True).save_pretrained(dirs["tiny vocoder"])
    _pipe(vocoder=False).save_pretrained(dirs["griffin-lim"])
    return dirs


# --- the pitch estimate ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("hz", "midi"), [(220.0, 57), (41.2, 28), (2093.0, 96)])
def test_pitch_estimate_covers_the_corpus_range(hz, midi):
    """The corpus spans E1 (MIDI 28, 41 Hz, bass) to C7 (96, 2093 Hz, flute); pYIN's default 65-2093 Hz range
    read every note below C2 as C2 (36) and C7 an octave low (84). (On the corpus's notes below C2 or above A#6 at
    velocity 80 the estimate is right for 21 of 25, was 8; church-organ timbres still fool pYIN by an octave.)"""
    wav = _sine(hz)
    assert estimate_midi_pitch(wav, SR) == midi
    assert estimate_midi_pitch(torch.from_numpy(wav), SR) == midi
    assert abs(1200 * np.log2(estimate_f0_hz(wav, SR) / hz)) < 20
    if midi == 28:  # the default range misses it
        f0, voiced, _ = extract_f0(wav, SR)
        f0 = f0[voiced & (f0 > 0)]
        assert f0.size == 0 or round(69 + 12 * np.log2(float(np.median(f0)) / 440.0)) != 28


def test_no_voiced_frame_is_a_clear_error(pipe):
    silence = np.zeros(SR // 2, dtype=np.float32)
    assert np.isnan(estimate_f0_hz(silence, SR))
    message = "No pitch was found in the note: pYIN found no voiced frame between 27.5 and 4186 Hz"
    with pytest.raises(PitchNotFoundError, match=message):
        estimate_midi_pitch(silence, SR)
    with pytest.raises(ValueError, match=message):  # PitchNotFoundError is a ValueError
        edit_note_audio(pipe, silence, "Flute", config=CONFIG)
    with pytest.raises(ValueError, match="Need 0 < fmin < fmax for the f0 search, got fmin=300"):
        estimate_f0_hz(silence, SR, fmin=300.0, fmax=200.0)


# --- edit_note_audio ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_samples", [500, 5000, 11025])  # < n_fft; frames 19 and 43: padded to 20 and 44
def test_edit_keeps_the_input_length_and_trims_the_mels(pipe, num_samples):
    cfg = note_mel_config(pipe)
    wav = _tone(seconds=num_samples / SR)
    edit = edit_note_audio(pipe, wav, "Flute", "Violin", pitch=57, config=CONFIG)
    assert isinstance(edit, NoteEdit) and edit.sample_rate == cfg.sample_rate == SR
    assert edit.audio.shape == (num_samples,) and edit.audio.dtype == np.float32
    assert np.isfinite(edit.audio).all() and np.abs(edit.audio).max() <= 1.0
    frames = max(num_samples, cfg.n_fft) // cfg.hop_length
    assert edit.mel_in.shape == edit.mel_out.shape == (cfg.n_mels, frames)
    padded = np.pad(wav, (0, max(0, cfg.n_fft - num_samples)))
    torch.testing.assert_close(edit.mel_in, mel_spectrogram(torch.from_numpy(padded), cfg)[0])
    assert (edit.pitch, edit.pitch_estimated) == (57, False) and edit.seconds > 0


def test_edit_vocodes_with_the_pipeline_vocoder_or_griffin_lim(pipe):
    from accelerando.vocoders.griffin_lim import GriffinLim

    cfg = note_mel_config(pipe)
    wav = _tone(seconds=0.3)  # 6615 samples: 25 whole frames (6400 samples), padded to 28
    own = edit_note_audio(pipe, wav, 73, pitch=57, config=CONFIG)
    np.testing.assert_array_equal(
        own.audio, edit_note_audio(pipe, wav, 73, pitch=57, config=CONFIG, vocoder=pipe.vocoder).audio
    )
    whole = own.mel_out.shape[-1] * cfg.hop_length
    assert np.abs(own.audio[whole:]).max() > 0  # the padded frames are vocoded: no silent tail
    # without a vocoder in the pipeline: Griffin-Lim at the model's mel front end (same transformer weights)
    gl = edit_note_audio(_pipe(vocoder=False), wav, 73, pitch=57, config=CONFIG)
    explicit = edit_note_audio(pipe, wav, 73, pitch=57, config=CONFIG, vocoder=GriffinLim(cfg))
    np.testing.assert_array_equal(gl.audio, explicit.audio)
    assert gl.audio.shape == wav.shape and not np.array_equal(gl.audio, own.audio)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"pitch": 200}, ValueError, "Pitch must be a whole MIDI number 0-127, got 200"),
        ({"pitch": 60.5}, ValueError, "Pitch must be a whole MIDI number 0-127, got 60.5"),
        ({"velocity": -1}, ValueError, "Velocity must be a whole MIDI number 0-127, got -1"),
        ({"target": "kazoo-ish"}, ValueError, "Unknown instrument 'kazoo-ish'"),
        ({"source": 300}, ValueError, "program 300 is out of range: accepted values are 0..127"),
        ({"wav": np.zeros((2, 4096), np.float32)}, ValueError, r"shape \(T,\), got shape \(2, 4096\)"),
        ({"wav": np.zeros(0, np.float32)}, ValueError, r"got shape \(0,\)"),
        ({"wav": np.zeros(4096, np.int16)}, ValueError, "floating-point samples"),
        ({"wav": np.full(4096, np.nan, np.float32)}, ValueError, "NaN or Inf"),
        ({"wav": [0.0] * 4096}, TypeError, "NumPy array or a torch.Tensor, got list"),
        ({"config": RFEditConfig(num_steps=2, inject_steps=3)}, ValueError, "inject_steps must be in 0"),
    ],
)
def test_edit_errors_name_the_bad_value(pipe, kwargs, error, message):
    args = {"wav": _tone(seconds=0.2), "target": "Flute", "pitch": 57, "config": CONFIG, **kwargs}
    with pytest.raises(error, match=message):
        edit_note_audio(pipe, **args)


# --- the two front ends ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vocoder", ["tiny vocoder", "griffin-lim"])
def test_the_cli_and_the_demo_edit_a_note_identically(pipe_dirs, vocoder, tmp_path, monkeypatch):
    """The same note, settings and seed through ``accelerando edit`` and the demo's Edit tab: the same edit."""
    from accelerando.cli import main
    from accelerando.demos.checkpoints import ModelCache
    from accelerando.demos.common import to_int16
    from accelerando.demos.notes import edit_note

    edits: list[NoteEdit] = []

    def spy(*args, **kwargs) -> NoteEdit:
        edits.append(edit_note_audio(*args, **kwargs))
        return edits[-1]

    monkeypatch.setattr(note_edit, "edit_note_audio", spy)
    wav = _tone(220.0, seconds=0.5)
    note = save_audio(tmp_path / "note.wav", wav, SR, subtype="FLOAT")
    out = tmp_path / "edited.wav"
    argv = ["edit", "--input", str(note), "--to-instrument", "Flute", "--from-instrument", "Violin"]
    argv += ["--out", str(out), "--model", str(pipe_dirs[vocoder]), "--steps", "3", "--inject-steps", "1"]
    assert main(argv) == 0
    cache = ModelCache({"meldit": pipe_dirs[vocoder]}, device="cpu")
    (sr, audio), _, _, summary = edit_note(str(note), "Flute", "Violin", 0, 3, 1, cache)

    cli, demo = edits
    assert cli.pitch == demo.pitch == 57  # the same pYIN search
    assert cli.pitch_estimated and "pitch 57 (estimated)" in summary
    np.testing.assert_array_equal(cli.audio, demo.audio)
    torch.testing.assert_close(cli.mel_in, demo.mel_in, rtol=0, atol=0)
    torch.testing.assert_close(cli.mel_out, demo.mel_out, rtol=0, atol=0)
    # and each front end hands out its edit: the CLI as a PCM_16 file, the demo as int16 samples
    written, written_sr = sf.read(out, dtype="float32")
    assert sr == written_sr == SR and written.shape == audio.shape == wav.shape
    np.testing.assert_allclose(written, cli.audio, rtol=0, atol=1 / 32768)
    np.testing.assert_array_equal(audio, to_int16(demo.audio))


def test_the_cli_says_how_to_give_the_pitch(pipe_dirs, tmp_path, capsys):
    from accelerando.cli import main

    silent = save_audio(tmp_path / "silent.wav", np.zeros(SR // 2, np.float32), SR)
    argv = ["edit", "--input", str(silent), "--to-instrument", "Flute", "--out", str(tmp_path / "o.wav")]
    assert main([*argv, "--model", str(pipe_dirs["tiny vocoder"]), "--steps", "2"]) == 2
    err = capsys.readouterr().err
    assert "No pitch was found in the note" in err and "Pass --pitch MIDI_NUMBER." in err, err
