"""Classifier-free check of generated note mels: instrument by nearest fluidsynth render, pitch by pYIN.

``NoteClassifier`` (:mod:`accelerando.generation.classifier`) judges MelDiT's notes with a learned model; this
module judges them without one, so that a flaw shared by the generator and the classifier cannot hide. The
references are rendered with fluidsynth through the corpus's own code
(:func:`accelerando.data.instrument_corpus.render_note_unit`: same soundfont, note length, hold, gain and mel
front end), so a real corpus note is at distance ~0 from the render of its own label.

- **instrument** (:func:`nearest_programs`): the asked (pitch, velocity) is rendered for every candidate program
  (the model's ``trained_programs``); the program whose render is nearest under :func:`note_distance` (long-term
  log spectrum + shift-tolerant energy envelope) is the recognised one.
- **pitch** (:func:`pitch_from_mel`): the log-mel is inverted with Griffin-Lim
  (:class:`accelerando.vocoders.griffin_lim.GriffinLim`), pYIN (``librosa.pyin`` through
  :func:`accelerando.audio.extract_f0`) tracks f0 over MIDI 24-108, and the median f0 of the voiced frames is
  the note's pitch. It needs no render but fails on notes below MIDI 41 (:data:`PYIN_MIN_MIDI`), where the
  80-bin mel does not resolve the harmonics; those notes are left out of the pYIN figures.
- **low pitch** (:func:`nearest_pitches`): for the notes asked below MIDI 41 only, the pitch within six
  semitones of the asked one whose render (asked program and velocity) is nearest under :func:`note_distance`.
  Over all notes this was tried and dropped for pYIN (the spectral distance confuses timbre with pitch when the
  timbre differs from the renders); below MIDI 41, where pYIN hears nothing, adjacent keys of one program differ
  mostly in the spectral envelope of the resampled sample, which this distance reads.

:func:`independent_note_metrics` returns the batch figures (``instrument_accuracy_render``,
``pitch_accuracy_pyin``, ``pitch_accuracy_render_low``, ...). :class:`NoteRenderer` caches the renders per
(program, pitch, velocity) and renders all missing pitches of one (program, velocity) in one fluidsynth run, as the corpus
does; its ``render_fn`` can be replaced (tests run without fluidsynth).

Example::

    from accelerando.generation.note_check import NoteRenderer, candidate_programs, independent_note_metrics
    from accelerando.generation.note_check import mel_config_from

    renderer = NoteRenderer(mel_config_from(pipe.transformer.config))
    scores = independent_note_metrics(mels, programs, pitches, velocities, renderer=renderer,
                                      candidates=candidate_programs(pipe.transformer.config))
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from accelerando.audio import MelConfig, extract_f0, mel_spectrogram
from accelerando.data.instrument_corpus import DEFAULT_NOTE_INSTRUMENTS, NoteUnit, render_note_unit
from accelerando.data.midi_render import DEFAULT_SOUNDFONT, check_render_dependencies, resolve_instrument

__all__ = [
    "PITCH_FMAX_MIDI",
    "PITCH_FMIN_MIDI",
    "PYIN_MIN_MIDI",
    "NoteJudgement",
    "NoteRenderer",
    "RenderFn",
    "candidate_programs",
    "fluidsynth_render_fn",
    "independent_note_metrics",
    "judge_notes",
    "mel_config_from",
    "nearest_pitches",
    "nearest_programs",
    "note_distance",
    "pitch_from_mel",
    "pitches_from_mels",
    "summarize",
]

PITCH_FMIN_MIDI = 24  # C1, 32.7 Hz: below the corpus's lowest note (E1 = 28, electric bass)
PITCH_FMAX_MIDI = 108  # C8, 4186 Hz: an octave above the corpus's highest note (C7 = 96)
# Below MIDI 41 (87 Hz) harmonics lie less than ~2.3 mel bins apart (80 slaney bins to 8 kHz are 37.7 Hz apart
# below 1 kHz), Griffin-Lim puts the energy on the bin centres, and pYIN locks onto that 37.7 Hz comb (MIDI 26)
# or its double: measured on fluidsynth renders, it misses nearly every note from 28 to 40 and none above.
PYIN_MIN_MIDI = 41
PYIN_FRAME_LENGTH = 2048  # at 22050 Hz a 93 ms window holds 3 periods of C1
MIN_VOICED_FRAMES = 3

# (program, velocity, pitches) -> one log-mel (n_mels, frames) per pitch, in order.
RenderFn = Callable[[int, int, Sequence[int]], Sequence["np.ndarray | torch.Tensor"]]


def mel_config_from(config: Mapping[str, Any] | Any | None = None) -> MelConfig:
    """The :class:`MelConfig` a model's mels are in, from its config (``sample_rate``, ``n_mels``, ``f_min``,
    ``f_max``; e.g. ``pipe.transformer.config``); missing keys keep ``MelConfig``'s defaults."""
    if config is None:
        return MelConfig()
    get = config.get if isinstance(config, Mapping) else lambda k, d=None: getattr(config, k, d)
    defaults = MelConfig()
    return MelConfig(
        sample_rate=int(get("sample_rate", defaults.sample_rate)),
        n_mels=int(get("n_mels", defaults.n_mels)),
        f_min=float(get("f_min", defaults.f_min)),
        f_max=get("f_max", defaults.f_max),
    )


def candidate_programs(config: Mapping[str, Any] | Any | None = None) -> list[int]:
    """The programs to render: the model config's ``trained_programs`` when it records them, else the note
    corpus's default instruments (``accelerando corpus instruments``)."""
    programs = None
    if config is not None:
        get = config.get if isinstance(config, Mapping) else lambda k, d=None: getattr(config, k, d)
        programs = get("trained_programs", None)
    if not programs:
        programs = [resolve_instrument(name).program for name in DEFAULT_NOTE_INSTRUMENTS]
    return _check_programs(programs, "candidate_programs")


def _check_programs(programs: Iterable[Any], name: str) -> list[int]:
    out = []
    for p in programs:
        if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or not 0 <= int(p) <= 127:
            raise ValueError(f"{name} must hold GM program numbers 0-127; got {p!r}")
        out.append(int(p))
    if not out:
        raise ValueError(f"{name} is empty")
    if len(set(out)) != len(out):
        raise ValueError(f"{name} has duplicates: {out}")
    return out


def _as_mels(mels: Any, n_mels: int, name: str = "mels") -> np.ndarray:
    """``(B, n_mels, T)`` float64 from a tensor/array of shape ``(B, n_mels, T)`` or ``(B, 1, n_mels, T)``."""
    array = (
        mels.detach().cpu().double().numpy() if isinstance(mels, torch.Tensor) else np.asarray(mels, float)
    )
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3 or array.shape[1] != n_mels or array.shape[2] < 1:
        raise ValueError(
            f"{name} must have shape (B, {n_mels}, frames) or (B, 1, {n_mels}, frames); got {tuple(array.shape)}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return array


def _as_mel(mel: Any, n_mels: int, name: str = "mel") -> np.ndarray:
    """``(n_mels, T)`` float64 from ``(n_mels, T)``, ``(1, n_mels, T)`` or ``(1, 1, n_mels, T)``."""
    array = mel.detach().cpu().double().numpy() if isinstance(mel, torch.Tensor) else np.asarray(mel, float)
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2 or array.shape[0] != n_mels:
        raise ValueError(f"{name} must be one log-mel of shape ({n_mels}, frames); got {tuple(mel.shape)}")
    return _as_mels(array[None], n_mels, name)[0]


# ---------------------------------------------------------------------------------------------------- pitch


def pitches_from_mels(
    mels: torch.Tensor | np.ndarray,
    mel_config: MelConfig | None = None,
    *,
    fmin_midi: float = PITCH_FMIN_MIDI,
    fmax_midi: float = PITCH_FMAX_MIDI,
    n_iter: int = 32,
    frame_length: int = PYIN_FRAME_LENGTH,
    min_voiced_frames: int = MIN_VOICED_FRAMES,
) -> np.ndarray:
    """MIDI pitch (fractional) of each log-mel note, ``nan`` where pYIN finds fewer than ``min_voiced_frames``
    voiced frames. See :func:`pitch_from_mel`.

    Args:
        mels: ``(B, n_mels, frames)`` or ``(B, 1, n_mels, frames)`` natural-log mels in ``mel_config`` units.

    Returns:
        ``(B,)`` float64.
    """
    from accelerando.vocoders.griffin_lim import GriffinLim

    cfg = mel_config or MelConfig()
    if not 0 < fmin_midi < fmax_midi:
        raise ValueError(f"need 0 < fmin_midi < fmax_midi; got {fmin_midi}, {fmax_midi}")
    fmin, fmax = _midi_to_hz(fmin_midi), _midi_to_hz(fmax_midi)
    if fmax >= cfg.sample_rate / 2:
        raise ValueError(f"fmax_midi {fmax_midi} ({fmax:.0f} Hz) is above the Nyquist frequency")
    if min_voiced_frames < 1:
        raise ValueError(f"min_voiced_frames must be >= 1; got {min_voiced_frames}")
    array = _as_mels(mels, cfg.n_mels)
    if array.shape[2] * cfg.hop_length < frame_length:
        raise ValueError(
            f"the mels have {array.shape[2]} frames, too short for pYIN's {frame_length}-sample window"
        )
    vocoder = GriffinLim(cfg, n_iter=n_iter)
    out = np.full(len(array), math.nan)
    for i, mel in enumerate(array):
        wav = vocoder.synthesize(torch.from_numpy(mel))[0].numpy()  # (frames * hop,)
        if not np.any(np.abs(wav) > 1e-4):  # silence: pYIN would only warn
            continue
        f0, voiced, _ = extract_f0(
            wav, cfg.sample_rate, hop_length=cfg.hop_length, fmin=fmin, fmax=fmax, frame_length=frame_length
        )
        f0 = f0[voiced & (f0 > 0)]
        if len(f0) >= min_voiced_frames:
            out[i] = float(np.median(69.0 + 12.0 * np.log2(f0 / 440.0)))
    return out


def pitch_from_mel(
    mel: torch.Tensor | np.ndarray, mel_config: MelConfig | None = None, **options: Any
) -> float:
    """The MIDI pitch a log-mel note sounds at, without any learned model; ``nan`` when it is unvoiced.

    The mel is inverted with Griffin-Lim (``n_iter`` iterations, fixed seed), pYIN tracks f0 between
    ``fmin_midi`` and ``fmax_midi`` (default MIDI 24-108, wide enough for the note corpus's 28-96 plus an
    octave to show octave errors) with a ``frame_length``-sample window, and the median f0 of the voiced frames
    is returned in MIDI units (fractional: ``round`` it to compare with an asked pitch).

    Args:
        mel: ``(n_mels, frames)`` (or with leading singleton axes) natural-log mel in ``mel_config`` units.
        mel_config: the mel front end (default ``MelConfig()``, the pipeline's and the corpus's).
        options: :func:`pitches_from_mels`'s keywords (``fmin_midi``, ``fmax_midi``, ``n_iter``,
            ``frame_length``, ``min_voiced_frames``: fewer voiced frames than this count as unvoiced, ``nan``).
    """
    cfg = mel_config or MelConfig()
    return float(pitches_from_mels(_as_mel(mel, cfg.n_mels)[None], cfg, **options)[0])


def _midi_to_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


# ----------------------------------------------------------------------------------------------- instrument


def note_distance(a: Any, b: Any, *, envelope_weight: float = 1.0, max_shift: int = 4) -> float:
    """Distance between two single-note log-mels ``(n_mels, frames)`` (natural log), robust to small timing shifts.

    ``mean_f |mean_t a - mean_t b|`` (the long-term log spectrum: timbre, i.e. the balance of the harmonics and
    the noise; blind to timing) plus ``envelope_weight`` times ``min_k mean_t |e_a(t) - e_b(t + k)|`` over shifts
    ``|k| <= max_shift`` frames, where ``e(t) = log mean_f exp(mel)`` is the frame-energy envelope (attack,
    decay, sustain and release: a piano decays, an organ holds). Both terms are mean absolute differences in
    nepers, so neither needs scaling; the notes are compared over their common length.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or b.shape[0] != a.shape[0]:
        raise ValueError(f"note_distance needs two (n_mels, frames) mels; got {a.shape} and {b.shape}")
    if max_shift < 0 or envelope_weight < 0:
        raise ValueError(f"max_shift and envelope_weight must be >= 0; got {max_shift}, {envelope_weight}")
    frames = min(a.shape[1], b.shape[1])
    if frames < 1:
        raise ValueError("note_distance needs at least one frame in each mel")
    a, b = a[:, :frames], b[:, :frames]
    spectrum = float(np.mean(np.abs(a.mean(axis=1) - b.mean(axis=1))))
    ea, eb = _envelope(a), _envelope(b)
    envelope = math.inf
    for k in range(-min(max_shift, frames - 1), min(max_shift, frames - 1) + 1):
        x, y = (ea[: frames - k], eb[k:]) if k >= 0 else (ea[-k:], eb[: frames + k])
        envelope = min(envelope, float(np.mean(np.abs(x - y))))
    return spectrum + envelope_weight * envelope


def _envelope(mel: np.ndarray) -> np.ndarray:
    """``log mean_f exp(mel)`` per frame (log-sum-exp, stable)."""
    peak = mel.max(axis=0)
    return peak + np.log(np.mean(np.exp(mel - peak), axis=0))


def fluidsynth_render_fn(
    mel_config: MelConfig | None = None,
    soundfont: str | os.PathLike = DEFAULT_SOUNDFONT,
    note_seconds: float = 1.5,
    hold_fraction: float = 0.75,
) -> RenderFn:
    """A :data:`RenderFn` that renders exactly as the note corpus does: one fluidsynth run per (program,
    velocity) with :func:`~accelerando.data.instrument_corpus.render_note_unit` (same MIDI, gain, gaps, cut and
    16-bit wav), read back and turned into mels as :class:`~accelerando.data.NoteDataset` does.

    ``note_seconds`` and ``hold_fraction`` must match the corpus (``accelerando corpus instruments``: 1.5, 0.75).
    Raises ``MissingSystemDependencyError`` / ``FileNotFoundError`` naming fluidsynth or the soundfont (and its
    Debian package, ``make system-deps`` installs both) on the first render when either is missing.
    """
    from accelerando.data.datasets import read_audio

    cfg = mel_config or MelConfig()

    def render(program: int, velocity: int, pitches: Sequence[int]) -> list[torch.Tensor]:
        check_render_dependencies(soundfont)
        unit = NoteUnit(resolve_instrument(int(program)), int(velocity), tuple(int(p) for p in pitches))
        with tempfile.TemporaryDirectory(prefix="accelerando-note-check-") as tmp:
            render_note_unit(unit, Path(tmp), note_seconds, hold_fraction, str(soundfont))
            audios = [read_audio(Path(tmp) / f"{unit.note_id(p)}.wav", cfg.sample_rate) for p in unit.pitches]
        return [mel_spectrogram(audio, cfg)[0] for audio in audios]  # (n_mels, frames) each

    return render


class NoteRenderer:
    """Reference renders of (program, pitch, velocity) as log-mels, cached in memory.

    Args:
        mel_config: the mel front end (must match the mels judged).
        render_fn: ``(program, velocity, pitches) -> [mel (n_mels, frames) per pitch]``; default
            :func:`fluidsynth_render_fn` (the corpus's rendering). Inject another one to test without fluidsynth.
        soundfont, note_seconds, hold_fraction: for the default ``render_fn`` only.
    """

    def __init__(
        self,
        mel_config: MelConfig | None = None,
        render_fn: RenderFn | None = None,
        soundfont: str | os.PathLike = DEFAULT_SOUNDFONT,
        note_seconds: float = 1.5,
        hold_fraction: float = 0.75,
    ) -> None:
        self.mel_config = mel_config or MelConfig()
        self.render_fn = render_fn or fluidsynth_render_fn(
            self.mel_config, soundfont, note_seconds, hold_fraction
        )
        self._cache: dict[tuple[int, int, int], np.ndarray] = {}
        self.renders = 0  # render_fn calls made (one per (program, velocity) with missing pitches)

    def __len__(self) -> int:
        return len(self._cache)

    def prepare(self, notes: Iterable[tuple[int, int, int]]) -> None:
        """Render every missing ``(program, pitch, velocity)``, one ``render_fn`` call per (program, velocity)."""
        missing: dict[tuple[int, int], set[int]] = {}
        for program, pitch, velocity in notes:
            key = (int(program), int(pitch), int(velocity))
            if not (0 <= key[0] <= 127 and 0 <= key[1] <= 127 and 1 <= key[2] <= 127):
                raise ValueError(f"(program, pitch, velocity) must be (0-127, 0-127, 1-127); got {key}")
            if key not in self._cache:
                missing.setdefault((key[0], key[2]), set()).add(key[1])
        for (program, velocity), pitch_set in sorted(missing.items()):
            pitches = sorted(pitch_set)
            mels = list(self.render_fn(program, velocity, pitches))
            self.renders += 1
            if len(mels) != len(pitches):
                raise ValueError(f"render_fn returned {len(mels)} mels for {len(pitches)} pitches")
            for pitch, mel in zip(pitches, mels):
                self._cache[(program, pitch, velocity)] = _as_mel(
                    mel, self.mel_config.n_mels, "a rendered mel"
                )

    def mel(self, program: int, pitch: int, velocity: int) -> np.ndarray:
        """The render's log-mel ``(n_mels, frames)`` (rendered now if not cached)."""
        self.prepare([(program, pitch, velocity)])
        return self._cache[(int(program), int(pitch), int(velocity))]


def nearest_programs(
    mels: torch.Tensor | np.ndarray,
    pitches: Sequence[int] | torch.Tensor,
    velocities: Sequence[int] | torch.Tensor,
    programs: Sequence[int],
    renderer: NoteRenderer,
    *,
    envelope_weight: float = 1.0,
    max_shift: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """For each note, the candidate program whose render at the note's (pitch, velocity) is nearest.

    Args:
        mels: ``(B, n_mels, frames)`` or ``(B, 1, n_mels, frames)`` log-mels.
        pitches, velocities: ``(B,)`` the (asked) MIDI pitch and velocity of each note.
        programs: the candidate GM programs (e.g. :func:`candidate_programs`).
        renderer: renders and caches the references.
        envelope_weight, max_shift: see :func:`note_distance`.

    Returns:
        ``(chosen (B,) int64 programs, distances (B, len(programs)) float64)``; a render that is silent (the
        soundfont has no sample there) gets distance ``inf``.
    """
    programs = _check_programs(programs, "programs")
    array = _as_mels(mels, renderer.mel_config.n_mels)
    pitches_l = _labels(pitches, len(array), "pitches", 0)
    velocities_l = _labels(velocities, len(array), "velocities", 1)
    keys = [[(p, q, v) for p in programs] for q, v in zip(pitches_l, velocities_l)]
    distances = _distances(array, keys, renderer, envelope_weight, max_shift)
    chosen = np.array(programs, dtype=np.int64)[np.argmin(distances, axis=1)]
    return chosen, distances


def nearest_pitches(
    mels: torch.Tensor | np.ndarray,
    programs: Sequence[int] | torch.Tensor,
    pitches: Sequence[int] | torch.Tensor,
    velocities: Sequence[int] | torch.Tensor,
    renderer: NoteRenderer,
    *,
    span: int = 6,
    envelope_weight: float = 1.0,
    max_shift: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """For each note, the pitch within ``span`` semitones of the asked one whose render (asked program and
    velocity) is nearest: the pitch check for notes too low for pYIN.

    Returns ``(chosen (B,) int64 pitches, distances (B, 2 * span + 1) float64)``; column ``j`` is the asked pitch
    ``+ j - span`` (``inf`` where that is outside MIDI 0-127 or its render is silent).
    """
    if not isinstance(span, int) or span < 1:
        raise ValueError(f"span must be a whole number of semitones >= 1; got {span!r}")
    array = _as_mels(mels, renderer.mel_config.n_mels)
    programs_l = _labels(programs, len(array), "programs", 0)
    pitches_l = _labels(pitches, len(array), "pitches", 0)
    velocities_l = _labels(velocities, len(array), "velocities", 1)
    offsets = range(-span, span + 1)
    keys = [
        [(p, min(max(q + d, 0), 127), v) for d in offsets]
        for p, q, v in zip(programs_l, pitches_l, velocities_l)
    ]
    distances = _distances(array, keys, renderer, envelope_weight, max_shift)
    asked = np.asarray(pitches_l)[:, None] + np.asarray(list(offsets))[None, :]
    distances[(asked < 0) | (asked > 127)] = math.inf  # clamped keys stand in for pitches that do not exist
    chosen = asked[np.arange(len(array)), np.argmin(distances, axis=1)]
    return chosen.astype(np.int64), distances


def _distances(
    array: np.ndarray,
    keys: list[list[tuple[int, int, int]]],
    renderer: NoteRenderer,
    envelope_weight: float,
    max_shift: int,
) -> np.ndarray:
    """``(B, C)`` :func:`note_distance` of note ``i`` to the render ``keys[i][j]`` (``inf`` if it is silent)."""
    renderer.prepare(k for row in keys for k in row)
    floor = math.log(renderer.mel_config.clamp_min)
    out = np.full((len(keys), max((len(row) for row in keys), default=0)), math.inf)
    for i, (mel, row) in enumerate(zip(array, keys)):
        for j, key in enumerate(row):
            ref = renderer.mel(*key)
            if ref.max() > floor + 1e-3:  # a silent render is no candidate
                out[i, j] = note_distance(mel, ref, envelope_weight=envelope_weight, max_shift=max_shift)
    return out


def _labels(values: Sequence[int] | torch.Tensor, n: int, name: str, low: int) -> list[int]:
    out = torch.as_tensor(values).reshape(-1).tolist() if not isinstance(values, list) else list(values)
    if len(out) != n:
        raise ValueError(f"{name} has {len(out)} values for {n} notes")
    for v in out:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not low <= v <= 127:
            raise ValueError(f"{name} must be integers {low}-127; got {v!r}")
    return [int(v) for v in out]


# -------------------------------------------------------------------------------------------------- metrics


@dataclass
class NoteJudgement:
    """Per-note results of :func:`judge_notes`.

    Attributes:
        program: ``(B,)`` program of the nearest render at the asked (pitch, velocity).
        program_distances: ``(B, P)`` :func:`note_distance` to each candidate program's render.
        programs: the ``P`` candidate programs, in ``program_distances``'s column order.
        pitch_pyin: ``(B,)`` MIDI pitch heard by pYIN (fractional; ``nan`` = unvoiced), or ``None`` (not run).
        pitch_render: ``(B,)`` pitch of the nearest render (:func:`nearest_pitches`) for the notes asked below
            :data:`PYIN_MIN_MIDI`, ``-1`` for the others; ``None`` when not run.
    """

    program: np.ndarray
    program_distances: np.ndarray
    programs: list[int]
    pitch_pyin: np.ndarray | None = None
    pitch_render: np.ndarray | None = None


def judge_notes(
    mels: torch.Tensor | np.ndarray,
    programs: Sequence[int] | torch.Tensor,
    pitches: Sequence[int] | torch.Tensor,
    velocities: Sequence[int] | torch.Tensor,
    *,
    candidates: Sequence[int] | None = None,
    mel_config: MelConfig | None = None,
    renderer: NoteRenderer | None = None,
    pyin: bool = True,
    low_pitch_render: bool = True,
    pitch_options: Mapping[str, Any] | None = None,
    distance_options: Mapping[str, Any] | None = None,
) -> NoteJudgement:
    """Nearest-render program and pYIN pitch of each note (see the module docstring).

    Args:
        mels: ``(B, n_mels, frames)`` or ``(B, 1, n_mels, frames)`` log-mels.
        programs, pitches, velocities: ``(B,)`` what was asked; every asked program must be a candidate.
        candidates: the programs to render (default :func:`candidate_programs`, the corpus's).
        mel_config: the mels' front end (default that of ``renderer``, else ``MelConfig()``).
        renderer: a :class:`NoteRenderer` (reuse one across calls to share its cache); default a fluidsynth one.
        pyin: run :func:`pitches_from_mels` (about a second per note on one CPU core).
        low_pitch_render: judge the pitch of the notes asked below :data:`PYIN_MIN_MIDI` by :func:`nearest_pitches`.
        pitch_options: keyword arguments of :func:`pitches_from_mels`.
        distance_options: ``envelope_weight`` / ``max_shift`` of :func:`note_distance`.
    """
    candidates = _check_programs(candidates if candidates is not None else candidate_programs(), "candidates")
    cfg = mel_config or (renderer.mel_config if renderer is not None else MelConfig())
    renderer = renderer if renderer is not None else NoteRenderer(cfg)
    if renderer.mel_config != cfg:
        raise ValueError(f"the renderer's mel_config {renderer.mel_config} differs from mel_config {cfg}")
    array = _as_mels(mels, cfg.n_mels)
    asked = _labels(programs, len(array), "programs", 0)
    unknown = sorted(set(asked) - set(candidates))
    if unknown:
        raise ValueError(
            f"asked program(s) {unknown} are not among the candidate programs {candidates}: the nearest-render "
            "check can only recognise a candidate (pass the model's trained_programs)"
        )
    options = dict(distance_options or {})
    chosen, distances = nearest_programs(array, pitches, velocities, candidates, renderer, **options)
    pitch_pyin = None
    if pyin:
        pitch_pyin = pitches_from_mels(array, cfg, **dict(pitch_options or {}))
    pitch_render = None
    if low_pitch_render:
        pitch_render = np.full(len(array), -1, dtype=np.int64)
        pitches_l = _labels(pitches, len(array), "pitches", 0)
        velocities_l = _labels(velocities, len(array), "velocities", 1)
        low = [i for i, pitch in enumerate(pitches_l) if pitch < PYIN_MIN_MIDI]
        if low:
            take = [[values[i] for i in low] for values in (asked, pitches_l, velocities_l)]
            pitch_render[low], _ = nearest_pitches(array[low], *take, renderer, **options)
    return NoteJudgement(chosen, distances, candidates, pitch_pyin, pitch_render)


def summarize(
    judgement: NoteJudgement,
    programs: Sequence[int] | torch.Tensor,
    pitches: Sequence[int] | torch.Tensor,
    pyin_min_midi: int = PYIN_MIN_MIDI,
) -> dict[str, float]:
    """Batch figures of a :class:`NoteJudgement` against the asked programs and pitches.

    Returns:
        ``instrument_accuracy_render``: nearest render's program == asked.
        ``pitch_accuracy_pyin`` / ``_within_1`` / ``pitch_octave_error_pyin`` / ``pitch_unvoiced_pyin``:
        ``round(pYIN pitch)`` == asked / within one semitone / off by a non-zero whole number of octaves / no
        pitch found (unvoiced notes count as wrong), and
        ``pitch_median_abs_cents_pyin`` (median ``|heard - asked|`` in cents over voiced notes), all over the
        ``pyin_num_notes`` notes asked at ``pyin_min_midi`` or above (when pYIN was run).
        ``pitch_accuracy_render_low``: nearest render's pitch (:func:`nearest_pitches`) == asked, over the
        ``render_low_num_notes`` notes asked below :data:`PYIN_MIN_MIDI` (when that check was run).
        ``num_notes``. A figure with no note to average is ``nan``.
    """
    n = len(judgement.program)
    if n == 0:
        raise ValueError("no notes to summarize")
    asked_program = np.asarray(_labels(programs, n, "programs", 0))
    asked_pitch = np.asarray(_labels(pitches, n, "pitches", 0))
    out: dict[str, float] = {"instrument_accuracy_render": float(np.mean(judgement.program == asked_program))}
    if judgement.pitch_pyin is not None:
        scored = asked_pitch >= pyin_min_midi
        heard, asked = judgement.pitch_pyin[scored], asked_pitch[scored]
        voiced = np.isfinite(heard)
        diff = np.where(voiced, np.round(np.nan_to_num(heard)) - asked, np.nan)  # nan: unvoiced, always wrong
        with np.errstate(invalid="ignore"):
            octave = voiced & (diff != 0) & (np.nan_to_num(diff) % 12 == 0)
        cents = 100.0 * np.abs(heard[voiced] - asked[voiced])
        mean = (lambda x: float(np.mean(x))) if len(heard) else (lambda x: math.nan)
        out.update(
            {
                "pitch_accuracy_pyin": mean(diff == 0),
                "pitch_accuracy_pyin_within_1": mean(np.abs(diff) <= 1),
                "pitch_octave_error_pyin": mean(octave),
                "pitch_unvoiced_pyin": mean(~voiced),
                "pitch_median_abs_cents_pyin": float(np.median(cents)) if len(cents) else math.nan,
                "pyin_num_notes": int(scored.sum()),
            }
        )
    if judgement.pitch_render is not None:
        judged = judgement.pitch_render >= 0  # the notes asked below PYIN_MIN_MIDI
        hit = judgement.pitch_render[judged] == asked_pitch[judged]
        out["pitch_accuracy_render_low"] = float(np.mean(hit)) if judged.any() else math.nan
        out["render_low_num_notes"] = int(judged.sum())
    out["num_notes"] = n
    return out


def independent_note_metrics(
    mels: torch.Tensor | np.ndarray,
    programs: Sequence[int] | torch.Tensor,
    pitches: Sequence[int] | torch.Tensor,
    velocities: Sequence[int] | torch.Tensor,
    **kwargs: Any,
) -> dict[str, float]:
    """Classifier-free figures of a batch of notes: :func:`judge_notes` then :func:`summarize`.

    ``kwargs`` go to :func:`judge_notes` (``candidates``, ``mel_config``, ``renderer``, ``pyin``,
    ``pitch_options``, ``distance_options``). Returns :func:`summarize`'s dict.
    """
    return summarize(judge_notes(mels, programs, pitches, velocities, **kwargs), programs, pitches)
