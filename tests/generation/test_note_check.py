"""The classifier-free note check: pYIN pitch of Griffin-Lim-vocoded mels, instrument by nearest render.

Synthetic data only (harmonic tones, injected render functions): no corpus, no network; the one test that renders
with fluidsynth is skipped where it and the GM soundfont are missing (as in tests/data).
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from accelerando.audio import MelConfig, mel_spectrogram
from accelerando.data import MissingSystemDependencyError
from accelerando.data.midi_render import DEFAULT_SOUNDFONT
from accelerando.generation.note_check import (
    PYIN_MIN_MIDI,
    NoteJudgement,
    NoteRenderer,
    candidate_programs,
    fluidsynth_render_fn,
    independent_note_metrics,
    judge_notes,
    mel_config_from,
    nearest_pitches,
    nearest_programs,
    note_distance,
    pitch_from_mel,
    pitches_from_mels,
    summarize,
)

CFG = MelConfig()
SR = CFG.sample_rate
FLOOR = math.log(CFG.clamp_min)
SECONDS = 0.75  # 64 frames


def tone(pitch: float, *, harmonics: int = 8, rolloff: float = 1.0, decay: float = 0.0, gain: float = 0.3):
    """A harmonic tone of MIDI ``pitch``: harmonic k at amplitude ``k ** -rolloff``, exponential ``decay`` per s."""
    t = np.arange(int(SECONDS * SR)) / SR
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    wav = sum(
        k**-rolloff * np.sin(2 * np.pi * k * f0 * t) for k in range(1, harmonics + 1) if k * f0 < SR / 2
    )
    wav = wav * np.exp(-decay * t) * np.minimum(1.0, t / 0.01)  # 10 ms attack
    return torch.from_numpy((gain * wav / np.abs(wav).max()).astype(np.float32))


def mel_of(wav: torch.Tensor) -> torch.Tensor:
    return mel_spectrogram(wav, CFG)[0]  # (80, frames)


# Three synthetic "instruments": a decaying bright tone (a plucked string), a sustained bright one (a bowed
# string) and a sustained near-sine (a flute).
SYNTH = {
    24: dict(harmonics=12, rolloff=0.7, decay=6.0),
    40: dict(harmonics=12, rolloff=0.7, decay=0.0),
    73: dict(harmonics=3, rolloff=2.5, decay=0.0),
}


def synth_render_fn(calls: list | None = None):
    def render(program: int, velocity: int, pitches):
        if calls is not None:
            calls.append((program, velocity, tuple(pitches)))
        if program not in SYNTH:  # a program the "soundfont" lacks renders silence
            return [torch.full((CFG.n_mels, int(SECONDS * SR) // CFG.hop_length), FLOOR) for _ in pitches]
        return [mel_of(tone(p, gain=0.3 * velocity / 100, **SYNTH[program])) for p in pitches]

    return render


# ------------------------------------------------------------------------------------------------ pYIN pitch


@pytest.mark.parametrize("pitch", [45, 69, 88])
def test_pitch_from_mel_recovers_a_harmonic_tone(pitch):
    heard = pitch_from_mel(mel_of(tone(pitch)), CFG)
    assert abs(heard - pitch) < 0.3


def test_pitch_from_mel_takes_fractional_pitch_and_batches():
    heard = pitches_from_mels(torch.stack([mel_of(tone(60.4)), mel_of(tone(72))]), CFG)
    assert heard.shape == (2,) and abs(heard[0] - 60.4) < 0.25 and abs(heard[1] - 72) < 0.25


def test_silence_and_noise_are_unvoiced():
    silence = torch.full((CFG.n_mels, 64), FLOOR)
    assert math.isnan(pitch_from_mel(silence, CFG))
    noise = torch.from_numpy(np.random.default_rng(0).normal(0, 0.1, int(SECONDS * SR)).astype(np.float32))
    assert math.isnan(pitch_from_mel(mel_of(noise), CFG))


def test_pitch_from_mel_rejects_bad_input():
    with pytest.raises(ValueError, match=r"one log-mel of shape \(80, frames\); got \(40, 64\)"):
        pitch_from_mel(torch.zeros(40, 64), CFG)  # wrong n_mels
    with pytest.raises(ValueError, match="one log-mel"):
        pitch_from_mel(torch.zeros(2, 80, 64), CFG)  # a batch
    with pytest.raises(ValueError, match="too short"):
        pitch_from_mel(torch.zeros(80, 4), CFG)
    with pytest.raises(ValueError, match="NaN"):
        pitch_from_mel(torch.full((80, 64), float("nan")), CFG)
    with pytest.raises(ValueError, match="fmin_midi"):
        pitch_from_mel(mel_of(tone(60)), CFG, fmin_midi=80, fmax_midi=70)


# ------------------------------------------------------------------------------------------------ distance


def test_note_distance_is_zero_on_itself_and_tolerates_a_small_shift():
    pluck, bow = mel_of(tone(60, **SYNTH[24])), mel_of(tone(60, **SYNTH[40]))
    shifted = torch.cat([torch.full((CFG.n_mels, 3), FLOOR), pluck[:, :-3]], dim=1)
    assert note_distance(pluck, pluck) == 0.0
    assert note_distance(pluck, shifted) < 0.5 * note_distance(pluck, bow)
    assert note_distance(pluck, bow) == pytest.approx(note_distance(bow, pluck))
    # the envelope term is what separates a decaying tone from a sustained one of the same spectrum shape
    assert note_distance(pluck, bow) > note_distance(pluck, bow, envelope_weight=0.0)


def test_note_distance_rejects_mismatched_mels():
    with pytest.raises(ValueError, match="two"):
        note_distance(np.zeros((80, 10)), np.zeros((40, 10)))
    with pytest.raises(ValueError, match="max_shift"):
        note_distance(np.zeros((80, 10)), np.zeros((80, 10)), max_shift=-1)


# ---------------------------------------------------------------------------------------- nearest render


def perturbed(mel: torch.Tensor, seed: int) -> torch.Tensor:
    """``mel`` 2 frames late, 2 dB quieter, with log-domain noise: a stand-in for a generated note."""
    g = torch.Generator().manual_seed(seed)
    late = torch.cat([torch.full((mel.shape[0], 2), FLOOR), mel[:, :-2]], dim=1) - 2 / 8.686
    return (late + 0.2 * torch.randn(late.shape, generator=g)).clamp_min(FLOOR)


def test_nearest_render_picks_the_right_candidate_and_caches_renders():
    calls: list = []
    renderer = NoteRenderer(CFG, render_fn=synth_render_fn(calls))
    programs, pitches = [24, 40, 73, 40, 73, 24], [50, 50, 50, 64, 64, 77]
    velocities = [100, 100, 100, 60, 60, 60]
    notes = torch.stack(
        [
            perturbed(mel_of(tone(q, gain=0.3 * v / 100, **SYNTH[p])), i)
            for i, (p, q, v) in enumerate(zip(programs, pitches, velocities))
        ]
    )
    chosen, distances = nearest_programs(notes, pitches, velocities, [24, 40, 73], renderer)
    assert chosen.tolist() == programs
    assert distances.shape == (6, 3) and np.all(np.isfinite(distances))
    # one render_fn call per (program, velocity), every pitch of it at once; nothing rendered twice
    assert sorted(calls) == sorted(
        [(p, 60, (64, 77)) for p in (24, 40, 73)] + [(p, 100, (50,)) for p in (24, 40, 73)]
    )
    nearest_programs(notes, pitches, velocities, [24, 40, 73], renderer)
    assert len(calls) == 6 and renderer.renders == 6 and len(renderer) == 9


def test_a_silent_render_is_never_the_nearest():
    renderer = NoteRenderer(CFG, render_fn=synth_render_fn())
    quiet = torch.full((1, CFG.n_mels, 64), FLOOR + 0.5)  # nearly silent note
    chosen, distances = nearest_programs(quiet, [60], [80], [0, 73], renderer)  # program 0 renders silence
    assert chosen.tolist() == [73] and math.isinf(distances[0, 0])


def test_judge_and_metrics_on_synthetic_notes():
    renderer = NoteRenderer(CFG, render_fn=synth_render_fn())
    programs, pitches, velocities = [24, 40, 73, 73], [52, 69, 81, 30], [80, 80, 80, 80]
    notes = torch.stack([mel_of(tone(q, **SYNTH[p])) for p, q in zip(programs, pitches)])
    judgement = judge_notes(notes, programs, pitches, velocities, candidates=[24, 40, 73], renderer=renderer)
    assert judgement.program.tolist() == programs
    assert np.all(np.abs(judgement.pitch_pyin[:3] - pitches[:3]) < 0.3)
    scores = summarize(judgement, programs, pitches)
    assert scores["instrument_accuracy_render"] == 1.0
    assert scores["pitch_accuracy_pyin"] == scores["pitch_accuracy_pyin_within_1"] == 1.0
    assert scores["pitch_octave_error_pyin"] == 0.0 and scores["pitch_unvoiced_pyin"] == 0.0
    assert scores["pyin_num_notes"] == 3 and scores["num_notes"] == 4  # MIDI 30 < PYIN_MIN_MIDI: not scored
    # asked for the wrong labels, the same notes score low
    wrong = independent_note_metrics(
        notes, [40, 73, 24, 40], [p + 2 for p in pitches], velocities, candidates=[24, 40, 73],
        renderer=renderer, pyin=False,
    )  # fmt: skip
    assert wrong["instrument_accuracy_render"] == 0.0 and "pitch_accuracy_pyin" not in wrong


def test_nearest_pitches_tells_adjacent_low_keys_apart():
    renderer = NoteRenderer(CFG, render_fn=synth_render_fn())
    programs, pitches, velocities = [24, 40, 73, 24, 40], [30, 31, 35, 36, 2], [80, 80, 60, 100, 80]
    notes = torch.stack(
        [
            perturbed(mel_of(tone(q, gain=0.3 * v / 100, **SYNTH[p])), i)
            for i, (p, q, v) in enumerate(zip(programs, pitches, velocities))
        ]
    )
    chosen, distances = nearest_pitches(notes, programs, pitches, velocities, renderer, span=3)
    assert chosen.tolist() == pitches
    assert distances.shape == (5, 7)
    # the fifth note, MIDI 2 with span 3, has no MIDI -1 to compare with
    assert np.all(np.isinf(distances[4, :1])) and np.all(np.isfinite(distances[4, 1:]))
    # the same notes asked one semitone higher are heard one semitone lower than asked
    chosen, _ = nearest_pitches(notes, programs, [q + 1 for q in pitches], velocities, renderer, span=3)
    assert chosen.tolist() == pitches
    with pytest.raises(ValueError, match="span must be a whole number of semitones >= 1; got 0"):
        nearest_pitches(notes, programs, pitches, velocities, renderer, span=0)


def test_judge_notes_scores_low_notes_by_nearest_render():
    renderer = NoteRenderer(CFG, render_fn=synth_render_fn())
    programs, pitches, velocities = [24, 40, 73, 24], [30, 33, 60, 38], [80, 80, 80, 80]
    notes = torch.stack([mel_of(tone(q, **SYNTH[p])) for p, q in zip(programs, pitches)])
    kwargs = dict(candidates=[24, 40, 73], renderer=renderer, pyin=False)
    judgement = judge_notes(notes, programs, pitches, velocities, **kwargs)
    assert judgement.pitch_render.tolist() == [30, 33, -1, 38]  # MIDI 60 is pYIN's, not the render's
    scores = summarize(judgement, programs, pitches)
    assert scores["pitch_accuracy_render_low"] == 1.0 and scores["render_low_num_notes"] == 3
    wrong = independent_note_metrics(notes, programs, [31, 32, 60, 38], velocities, **kwargs)
    assert wrong["pitch_accuracy_render_low"] == pytest.approx(1 / 3)
    off = judge_notes(notes, programs, pitches, velocities, low_pitch_render=False, **kwargs)
    assert off.pitch_render is None and "pitch_accuracy_render_low" not in summarize(off, programs, pitches)


def test_summarize_counts_octave_errors_unvoiced_notes_and_skips_low_notes():
    heard = np.array([60.2, 71.6, np.nan, 48.0, 30.0])
    judgement = NoteJudgement(np.zeros(5, dtype=np.int64), np.zeros((5, 1)), [0], heard)
    scores = summarize(judgement, [0] * 5, [60, 60, 60, 49, 30])
    assert PYIN_MIN_MIDI > 30 and scores["pyin_num_notes"] == 4
    assert scores["pitch_accuracy_pyin"] == 0.25  # 60.2 -> 60
    assert scores["pitch_accuracy_pyin_within_1"] == 0.5  # and 48 for 49
    assert scores["pitch_octave_error_pyin"] == 0.25  # 71.6 -> 72 = 60 + 12
    assert scores["pitch_unvoiced_pyin"] == 0.25
    assert scores["pitch_median_abs_cents_pyin"] == pytest.approx(100.0)  # of 20, 100, 1160 cents


def test_errors_name_the_problem():
    renderer = NoteRenderer(CFG, render_fn=synth_render_fn())
    notes = torch.full((2, CFG.n_mels, 64), FLOOR)
    kwargs = dict(candidates=[24, 40], renderer=renderer, pyin=False)
    with pytest.raises(ValueError, match=r"program\(s\) \[73\] are not among the candidate programs"):
        judge_notes(notes, [24, 73], [60, 60], [80, 80], **kwargs)
    with pytest.raises(ValueError, match="GM program numbers 0-127"):
        judge_notes(notes, [24, 40], [60, 60], [80, 80], candidates=[24, 200], renderer=renderer)
    with pytest.raises(ValueError, match=r"\(B, 80, frames\)"):
        judge_notes(torch.zeros(2, 64, 64), [24, 40], [60, 60], [80, 80], **kwargs)
    with pytest.raises(ValueError, match="programs has 2 values for 3 notes"):
        judge_notes(torch.zeros(3, 80, 64), [24, 40], [60, 60, 60], [80, 80, 80], **kwargs)
    with pytest.raises(ValueError, match="velocities must be integers 1-127"):
        judge_notes(notes, [24, 40], [60, 60], [0, 80], **kwargs)
    with pytest.raises(ValueError, match="mel_config"):
        judge_notes(notes, [24, 40], [60, 60], [80, 80], mel_config=MelConfig(f_max=None), **kwargs)
    bad = NoteRenderer(CFG, render_fn=lambda program, velocity, pitches: [])
    with pytest.raises(ValueError, match="returned 0 mels for 1 pitches"):
        bad.mel(0, 60, 80)


def test_fluidsynth_render_fn_names_what_is_missing(tmp_path):
    render = fluidsynth_render_fn(CFG, soundfont=tmp_path / "missing.sf2")  # nothing checked until a render
    with pytest.raises((FileNotFoundError, MissingSystemDependencyError), match="fluidsynth|[Ss]oundfont"):
        render(0, 80, [60])


def test_candidates_and_mel_config_come_from_the_model_config():
    assert candidate_programs({"trained_programs": [0, 40]}) == [0, 40]
    assert candidate_programs({"trained_programs": None}) == [0, 11, 19, 24, 33, 40, 42, 48, 56, 65, 71, 73]
    with pytest.raises(ValueError, match="duplicates"):
        candidate_programs({"trained_programs": [0, 0]})
    cfg = mel_config_from({"sample_rate": 22050, "n_mels": 64, "f_min": 0.0, "f_max": 8000.0})
    assert (cfg.n_mels, cfg.f_max, cfg.hop_length) == (64, 8000.0, 256)


@pytest.mark.skipif(
    not os.environ.get("CI")
    and (shutil.which("fluidsynth") is None or not Path(DEFAULT_SOUNDFONT).is_file()),
    reason="fluidsynth / fluid-soundfont-gm not installed (make system-deps)",
)
def test_fluidsynth_renders_are_judged_as_what_they_are():
    renderer = NoteRenderer(CFG)
    flute = torch.as_tensor(renderer.mel(73, 67, 100))  # the corpus's rendering: (80, 129)
    assert flute.shape == (80, 129)
    chosen, distances = nearest_programs(flute[None, :, :128], [67], [100], [40, 73], renderer)
    assert chosen.tolist() == [73] and distances[0, 1] < 1e-6 < distances[0, 0]
    assert round(pitch_from_mel(flute, CFG)) == 67
