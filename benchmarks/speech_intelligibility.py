"""Intelligibility of the speech chains: word error rate of an offline recogniser on what each chain says.

Every sentence of ``benchmarks/data/intelligibility_sentences.txt`` (ordinary English written for this
benchmark, 6-14 common words each) goes through these chains, and PocketSphinx
(:func:`accelerando.metrics.transcribe`, its wheel's en-us model, offline) writes down what it hears; jiwer
scores the words against the text (:func:`accelerando.metrics.word_error_rate`, corpus-level):

- **reference**: festival's ``slt`` voice, rendered as the speech corpus renders it
  (:func:`accelerando.data.speech_corpus.make_utterance`: 22050 Hz, peak 0.9) and cached under ``--cache``;
- **copy synthesis**: reference -> :func:`accelerando.audio.mel_spectrogram` -> vocoder, also scored against
  the reference with :func:`accelerando.metrics.evaluate_vocoder` (M-STFT, PESQ-wb, V/UV F1, ...);
- **TTS**: text -> the bundled Incremental FastPitch (voice ``slt``; the whole-utterance decode of
  :meth:`accelerando.tts.StreamingSynthesizer.synthesize`) -> mel -> vocoder (no time-aligned reference,
  so WER only).

Vocoders: Griffin-Lim (32 iterations, the quality floor) and every bundled mel vocoder (found by
:func:`accelerando.demos.checkpoints.discover_checkpoints`, loaded by :func:`accelerando.tts.engine.load_vocoder`),
each at its own default number of steps; ``--model NAME=PATH`` adds a checkpoint folder, ``--vocoder NAME``
(repeatable) keeps a subset. RTF is the vocoder's compute time over the audio's duration (one warm-up call
first). PocketSphinx is weak (its WER on the clean festival reference is not zero), so compare chains with
each other and with the reference, not with published ASR figures.

Voices: for every voice of the FastPitch (:attr:`accelerando.tts.StreamingSynthesizer.voices`; ``--voices``
keeps some, ``--no-voices`` skips them), text -> FastPitch(voice) -> Griffin-Lim -> WER on all sentences
(the ``slt`` run is the ``TTS: griffin-lim`` chain when that one was run: the same computation).

Development sentences (``--dev-sentences``, default ``benchmarks/data/intelligibility_dev_sentences.txt``; off
with ``--no-dev``): 36 more sentences of the same kind, spoken by festival and run through the TTS chains only
(``TTS dev: NAME``). Checkpoints are chosen on these (``--sentences`` pointed at the dev file), so the test
sentences' figures stay unbiased; the recorded default must also hold there (``wer_tts_dev``): between
checkpoints of one run the TTS WER on 36 sentences moves by up to 0.05.

Draws (``--draws``, default 3): a neural vocoder's noise changes what the recogniser hears. One draw of
``newt-speech`` at step 12000 gave development-sentence TTS WER 0.402 with seed 0 and 0.449 with seed 1, so
every vocoder chain is run ``--draws`` times (item ``i`` of draw ``k`` seeded ``seed + 1000 k + i``;
Griffin-Lim's initial phase seeded ``k``) and ``wer`` is the mean of the draws' WERs (``wer_draws``); the
vocoder metrics (M-STFT, PESQ-wb, V/UV F1) are of the first draw.

``--record`` then writes the evaluation beside the bundled checkpoints
(:func:`accelerando.pretrained.defaults.record_evaluation`): one row per vocoder (Griffin-Lim and the bundled
ones, not ``--model`` extras) and the per-voice WERs, from which
:func:`~accelerando.pretrained.defaults.default_vocoder` and
:func:`~accelerando.pretrained.defaults.default_voice` choose the defaults. Only a complete run may record:
``--record`` refuses ``--max-sentences``, ``--no-copy``, ``--no-tts``, ``--no-dev``, ``--no-voices``, ``--acoustic``, a
``--voices`` subset and a ``--vocoder`` subset that leaves out a bundled vocoder. Writes
``benchmarks/results/speech_intelligibility.{json,png}``::

    python benchmarks/speech_intelligibility.py                       # everything, 1 torch thread
    python benchmarks/speech_intelligibility.py --record              # ... and set the defaults
    python benchmarks/speech_intelligibility.py --max-sentences 6 --vocoder griffin-lim --out /tmp/si.json
    python benchmarks/speech_intelligibility.py --voices slt kal --no-copy --vocoder griffin-lim
    python benchmarks/speech_intelligibility.py --model mine=runs/fregrad/model --vocoder mine
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from accelerando.audio import MelConfig, mel_spectrogram, save_audio
from accelerando.metrics import VOCODER_METRICS, evaluate_vocoder, transcribe, word_error_rate
from accelerando.metrics.report import environment, save_figure, summarize, write_results
from accelerando.metrics.timing import cpu_model

SENTENCES = Path(__file__).resolve().parent / "data" / "intelligibility_sentences.txt"
# the development sentences: checkpoints are chosen on these, never on SENTENCES (whose figures stay unbiased)
DEV_SENTENCES = Path(__file__).resolve().parent / "data" / "intelligibility_dev_sentences.txt"
VOICE = "slt"
GRIFFIN_LIM = "griffin-lim"
GL_ITERATIONS = 32
DRAW_STRIDE = 1000  # noise seed of draw k, item i: seed + DRAW_STRIDE * k + i
SHOWN = ("mstft", "pesq_wb", "vuv_f1")  # copy-synthesis columns of the table
ROW_KEYS = (
    "wer_copy",
    "wer_tts",
    "wer_tts_dev",
    "mstft",
    "pesq_wb",
    "vuv_f1",
    "rtf",
)  # a recorded vocoder row


@dataclass
class Vocoder:
    name: str
    model: Any
    source: str
    folder: Path | None = None  # the checkpoint folder (None: Griffin-Lim)
    fingerprint: str | None = None  # of that folder when it was loaded


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


def fingerprint(folder: str | os.PathLike) -> str:
    """A short sha256 over a checkpoint folder's configs and weights (names and bytes), to tell exports apart.

    The card's files (``README.md``, ``learning_curve.json``, pictures) are not part of the model and not hashed.
    """
    digest = hashlib.sha256()
    files = sorted(
        f
        for f in Path(folder).rglob("*")
        if f.is_file()
        and (
            f.name in ("config.json", "model_index.json", "scheduler_config.json")
            or f.suffix in WEIGHT_SUFFIXES
        )
    )
    for f in files:
        digest.update(str(f.relative_to(folder)).encode("utf-8"))
        digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


def load_sentences(path: str | os.PathLike = SENTENCES) -> list[str]:
    """Non-empty lines of ``path`` that are not ``#`` comments."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    sentences = [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]
    if not sentences:
        raise ValueError(f"{path} holds no sentences")
    return sentences


def render_references(sentences: list[str], cache: Path) -> list[np.ndarray]:
    """festival ``slt`` renders of ``sentences`` at 22050 Hz, made once and kept in ``cache``.

    A render's file name holds a hash of its text, so an edited sentence is rendered again.
    """
    from accelerando.audio import load_audio
    from accelerando.data.speech_corpus import (
        SAMPLE_RATE,
        Utterance,
        check_speech_dependencies,
        make_utterance,
    )
    from accelerando.data.text_source import normalize_text

    check_speech_dependencies([VOICE], default_text=False)
    cache.mkdir(parents=True, exist_ok=True)
    refs = []
    for k, text in enumerate(tqdm(sentences, desc=f"festival {VOICE} references", unit="sentence")):
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]
        utt = Utterance(f"{VOICE}_{k:03d}_{digest}", text, normalize_text(text), VOICE)
        make_utterance(utt, cache)
        refs.append(load_audio(cache / f"{utt.id}.wav", SAMPLE_RATE).numpy())
    return refs


def parse_models(items: list[str]) -> dict[str, str]:
    models = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--model takes NAME=PATH; got {item!r}")
        models[name] = path
    return models


def bundled_vocoders() -> list[str]:
    """Folder names of the bundled mel vocoders (the names their recorded rows go under)."""
    from accelerando.demos.checkpoints import MEL_VOCODER_ROLES, discover_checkpoints

    found = discover_checkpoints()
    return [found[role].name for role in MEL_VOCODER_ROLES if role in found]


def available_vocoders(models: dict[str, str]) -> dict[str, str]:
    """Name -> what :func:`load_vocoder` takes: Griffin-Lim, the bundled mel vocoders, then ``--model``."""
    names = {GRIFFIN_LIM: GRIFFIN_LIM}
    names.update({name: name for name in bundled_vocoders()})
    for name, path in models.items():
        if name in names:
            raise SystemExit(f"--model name {name!r} is already taken ({', '.join(names)})")
        names[name] = path
    return names


def griffin_lim() -> Vocoder:
    from accelerando.vocoders import GriffinLim

    return Vocoder(GRIFFIN_LIM, GriffinLim(n_iter=GL_ITERATIONS, seed=0), f"GriffinLim({GL_ITERATIONS})")


def load_vocoders(available: dict[str, str], selected: list[str] | None) -> list[Vocoder]:
    from accelerando.pretrained import PRETRAINED_DIR
    from accelerando.tts.engine import load_vocoder

    names = selected or list(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise SystemExit(f"unknown --vocoder {', '.join(unknown)}; available: {', '.join(available)}")
    out = []
    for name in dict.fromkeys(names):
        if name == GRIFFIN_LIM:
            out.append(griffin_lim())
        else:
            source = available[name]
            folder = Path(source) if Path(source).is_dir() else PRETRAINED_DIR / source
            digest = fingerprint(folder)  # before loading: a re-export after this shows up at the end
            out.append(Vocoder(name, load_vocoder(source), str(source), folder, digest))
    return out


class _MelRecorder:
    """A stand-in vocoder that keeps the mel the speech engine hands it and returns silence."""

    sample_rate = MelConfig().sample_rate
    hop_length = MelConfig().hop_length

    def __init__(self) -> None:
        self.mel: torch.Tensor | None = None

    def synthesize(self, mel: torch.Tensor, num_steps: Any = None, generator: Any = None) -> torch.Tensor:
        self.mel = mel.detach().clone()
        return torch.zeros(mel.shape[0], mel.shape[-1] * self.hop_length)


def load_engine(acoustic: str | None) -> tuple[Any, _MelRecorder, dict[str, Any]]:
    """The bundled (or ``acoustic``) Incremental FastPitch in a speech engine whose vocoder records mels."""
    from accelerando.pretrained import list_pretrained, pretrained_path
    from accelerando.tts import StreamingSynthesizer

    if acoustic is None:
        names = [n for n in list_pretrained() if n.startswith("fastpitch")]
        folder: Path | None = pretrained_path(names[0]) if names else None  # what from_pretrained takes
    else:
        folder = Path(acoustic)
    digest = fingerprint(folder) if folder is not None and folder.is_dir() else None
    recorder = _MelRecorder()
    engine = StreamingSynthesizer.from_pretrained(acoustic, vocoder=recorder)
    info = {
        "acoustic": str(engine.acoustic.config.get("_name_or_path") or acoustic or folder),
        "folder": str(folder) if folder is not None else None,
        "fingerprint": digest,
        "voices": engine.voices,
        "parameters": sum(p.numel() for p in engine.acoustic.parameters()),
    }
    return engine, recorder, info


def tts_mels(
    engine: Any, recorder: _MelRecorder, sentences: list[str], voice: str = VOICE
) -> tuple[list[torch.Tensor], dict[str, Any]]:
    """The FastPitch mel (1, 80, frames) of ``engine`` for each sentence, spoken by ``voice``.

    The mel is taken from the engine's whole-utterance path (:meth:`StreamingSynthesizer.synthesize`:
    sentence split, phonemes, masked full decode), so it is what the engine would vocode.
    """
    mels, seconds = [], 0.0
    for text in tqdm(sentences, desc=f"FastPitch mels ({voice})", unit="sentence"):
        started = time.perf_counter()
        engine.synthesize(text, voice=voice)
        seconds += time.perf_counter() - started
        assert recorder.mel is not None
        mels.append(recorder.mel)
    audio = sum(m.shape[-1] for m in mels) * recorder.hop_length / recorder.sample_rate
    return mels, {"voice": voice, "rtf": seconds / audio}


def voice_chains(
    engine: Any,
    recorder: _MelRecorder,
    sentences: list[str],
    voices: list[str],
    seed: int,
    chains: dict[str, Any],
    save_dir: Path | None = None,
    draws: int = 1,
) -> dict[str, Any]:
    """Voice -> the chain text -> FastPitch(voice) -> Griffin-Lim, scored by WER.

    The ``slt`` chain is the ``TTS: griffin-lim`` one of ``chains`` when that was run (same mels, same
    vocoder and seeds, so the same waveforms); the other voices are run here.
    """
    gl = griffin_lim()
    out: dict[str, Any] = {}
    for voice in voices:
        done = chains.get(f"TTS: {GRIFFIN_LIM}")
        if voice == VOICE and done is not None:
            same = {k: v for k, v in done.items() if k != "items"}  # the items are in that chain
            out[voice] = {**same, "kind": "voice", "voice": voice, "same_as": f"TTS: {GRIFFIN_LIM}"}
            continue
        mels, _ = tts_mels(engine, recorder, sentences, voice)
        name = f"voice {voice}: {GRIFFIN_LIM}"
        wavs, compute, audio = vocode_all(gl, mels, f"TTS {voice}: {GRIFFIN_LIM}", seed, draws)
        chain = score_chain(name, "voice", GRIFFIN_LIM, sentences, wavs, None, (compute, audio), save_dir)
        out[voice] = {**chain, "voice": voice}
    return out


def vocode_all(
    vocoder: Vocoder, mels: list[torch.Tensor], desc: str, seed: int, draws: int = 1
) -> tuple[list[list[np.ndarray]], float, float]:
    """Each mel through the vocoder, ``draws`` times with different noise; returns (waveforms per draw,
    compute s, audio s over all draws).

    Draw ``k`` seeds item ``i`` with ``seed + DRAW_STRIDE * k + i`` (draw 0 is the single-draw run of before);
    Griffin-Lim, whose only randomness is its initial phase, starts draw ``k`` from its phase seed + ``k``.
    """
    model = vocoder.model
    with torch.inference_mode():
        model.synthesize(mels[0][..., :16], generator=torch.Generator().manual_seed(seed))  # warm-up
        out, compute = [], 0.0
        phase_seed = model.seed if vocoder.name == GRIFFIN_LIM else None
        for k in range(draws):
            if phase_seed is not None:
                model.seed = phase_seed + k
            wavs = []
            label = desc if draws == 1 else f"{desc} (draw {k + 1}/{draws})"
            for i, mel in enumerate(tqdm(mels, desc=label, unit="sentence")):
                generator = torch.Generator().manual_seed(seed + DRAW_STRIDE * k + i)
                started = time.perf_counter()
                wav = model.synthesize(mel, generator=generator)
                compute += time.perf_counter() - started
                wavs.append(wav[0].float().cpu().numpy())
            out.append(wavs)
        if phase_seed is not None:
            model.seed = phase_seed
    audio = sum(len(w) for wavs in out for w in wavs) / MelConfig().sample_rate
    return out, compute, audio


def score_chain(
    name: str,
    kind: str,
    vocoder: str | None,
    sentences: list[str],
    wavs: list[np.ndarray] | list[list[np.ndarray]],
    refs: list[np.ndarray] | None = None,
    timing: tuple[float, float] | None = None,
    save_dir: Path | None = None,
) -> dict[str, Any]:
    """WER over the chain's waveforms (and the vocoder metrics against ``refs``, and RTF).

    ``wavs``: one waveform per sentence, or several draws of them (a list of such lists, from
    :func:`vocode_all`): then ``wer`` is the mean of the draws' corpus WERs (``wer_draws`` lists them), the
    items and the vocoder metrics are of the first draw, and only the first draw's audio is saved.
    """
    sr = MelConfig().sample_rate
    draws = [wavs] if not wavs or isinstance(wavs[0], np.ndarray) else wavs
    items, draw_wers = [], []
    for k, draw in enumerate(draws):
        hyps = []
        label = f"scoring {name}" if len(draws) == 1 else f"scoring {name} (draw {k + 1}/{len(draws)})"
        for i, (text, wav) in enumerate(tqdm(list(zip(sentences, draw)), desc=label, unit="sentence")):
            hyp = transcribe(wav, sr)
            hyps.append(hyp)
            if k:
                items[i]["wer_draws"].append(word_error_rate([text], [hyp]))
                continue
            row: dict[str, Any] = {"index": i, "text": text, "hypothesis": hyp, "seconds": len(wav) / sr}
            row["wer"] = word_error_rate([text], [hyp])
            row["wer_draws"] = [row["wer"]]
            if refs is not None:
                row.update(evaluate_vocoder(wav, refs[i], sr, strict=False))
            if save_dir is not None:
                save_audio(save_dir / name.replace(" ", "_").replace(":", "") / f"{i:03d}.wav", wav, sr)
            items.append(row)
        draw_wers.append(word_error_rate(sentences, hyps))
    chain: dict[str, Any] = {"kind": kind, "vocoder": vocoder, "wer": float(np.mean(draw_wers))}
    chain["wer_draws"] = draw_wers
    if refs is not None:
        chain["summary"] = {m: summarize([r[m] for r in items]) for m in VOCODER_METRICS}
        chain.update({m: chain["summary"][m]["mean"] for m in SHOWN})
    if timing is not None:
        compute, audio = timing
        chain.update(rtf=compute / audio, compute_s=compute, audio_s=audio)
    chain["items"] = items
    return chain


def _fmt(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown_table(chains: dict[str, Any]) -> str:
    lines = [
        "| chain | WER ↓ | M-STFT ↓ | PESQ-wb ↑ | V/UV F1 ↑ | vocoder RTF ↓ |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, c in chains.items():
        cells = [_fmt(c["wer"]), *(_fmt(c.get(m)) for m in SHOWN), _fmt(c.get("rtf"), 2)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def voice_table(voices: dict[str, Any]) -> str:
    lines = [f"| voice | TTS WER, FastPitch -> {GRIFFIN_LIM} ↓ | vocoder RTF ↓ |", "| --- | --- | --- |"]
    for voice, c in voices.items():
        lines.append(f"| {voice} | {_fmt(c['wer'])} | {_fmt(c.get('rtf'), 2)} |")
    return "\n".join(lines)


def evaluation_payload(payload: dict[str, Any], bundled: list[str], note: str = "") -> dict[str, Any]:
    """What ``--record`` writes (:func:`accelerando.pretrained.defaults.record_evaluation`) from a run.

    One row for Griffin-Lim and for each ``bundled`` vocoder (the ``--model`` extras are left out): copy
    synthesis WER, M-STFT, PESQ-wb and V/UV F1 (means over the sentences), TTS WER, and the vocoder's RTF
    on the TTS mels. ``voices``: each voice's TTS WER through Griffin-Lim.

    Raises:
        ValueError: a vocoder without both its copy and TTS chain, or a Griffin-Lim row with a missing value
            (the floor every neural vocoder is compared with must be complete).
    """
    chains = payload["chains"]
    rows: dict[str, dict[str, float | None]] = {}
    for name in [GRIFFIN_LIM, *bundled]:
        copy, tts = chains.get(f"copy: {name}"), chains.get(f"TTS: {name}")
        if copy is None or tts is None:
            raise ValueError(f"no copy-synthesis and TTS chains for {name!r}: run every bundled vocoder")
        dev = chains.get(f"TTS dev: {name}")
        row = {"wer_copy": copy["wer"], "wer_tts": tts["wer"], **{m: copy.get(m) for m in SHOWN}}
        row["wer_tts_dev"] = dev["wer"] if dev is not None else None
        row["rtf"] = tts.get("rtf")
        rows[name] = {k: _number(row[k]) for k in ROW_KEYS}
    missing = [k for k, v in rows[GRIFFIN_LIM].items() if v is None and k != "wer_tts_dev"]
    if missing:
        raise ValueError(
            f"the {GRIFFIN_LIM} floor has no value for {', '.join(missing)}; nothing to compare with"
        )
    settings = payload["settings"]
    checkpoints = {n: v["fingerprint"] for n, v in settings["vocoders"].items() if n in bundled}
    if payload.get("tts") and payload["tts"].get("folder"):
        checkpoints[Path(payload["tts"]["folder"]).name] = payload["tts"]["fingerprint"]
    return {
        "benchmark": "speech_intelligibility",
        "hardware": payload["hardware"],
        "time_utc": payload["environment"]["time_utc"],
        "sentences": settings["n_sentences"],
        "vocoders": rows,
        "voices": {voice: _number(c["wer"]) for voice, c in payload.get("voices", {}).items()},
        "checkpoints": checkpoints,  # sha256[:16] of each folder's config + weights, as measured
        "note": (
            f"benchmarks/speech_intelligibility.py --record: {settings['n_sentences']} sentences "
            f"({settings['n_words']} words) of {Path(settings['sentences_file']).name}, PocketSphinx en-us "
            f"+ jiwer corpus WER, mean of {settings.get('draws', 1)} noise draw(s). wer_copy: festival {VOICE} -> mel -> vocoder; mstft, pesq_wb, vuv_f1: "
            "means of that copy against the festival reference; wer_tts: text -> bundled FastPitch "
            f"({VOICE}) -> vocoder; wer_tts_dev: the same on the development sentences (checkpoints are "
            "chosen on those); rtf: vocoder compute / audio seconds on the TTS mels, "
            f"{settings['threads']} torch thread(s) on a shared CPU; {GRIFFIN_LIM}: {GL_ITERATIONS} "
            "iterations; neural vocoders at their default steps. voices: TTS WER of each FastPitch voice "
            f"through {GRIFFIN_LIM}." + (f" {note}" if note else "")
        ),
    }


def _number(value: Any) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def plot(payload: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chains = payload["chains"]
    voices = payload.get("voices") or {}
    vocoders = list(dict.fromkeys(c["vocoder"] for c in chains.values() if c["vocoder"]))
    reference = next((c["wer"] for c in chains.values() if c["kind"] == "reference"), None)
    width_left = 2.0 + 1.7 * (len(vocoders) + 1)
    if voices:
        width_right = max(3.4, 1.4 + 0.75 * len(voices))
        fig, (ax, ax_voices) = plt.subplots(
            1,
            2,
            figsize=(width_left + width_right, 4.4),
            sharey=True,
            gridspec_kw={"width_ratios": [width_left, width_right]},
        )
    else:
        fig, ax = plt.subplots(figsize=(width_left, 4.2))
    width = 0.27
    x0 = 0
    if reference is not None:
        ax.bar(x0, reference, 2 * width, color="0.55")
        ax.annotate(f"{reference:.2f}", (x0, reference), ha="center", va="bottom", fontsize=8)
        ax.axhline(reference, color="0.4", ls="--", lw=0.9)
    for v_index, vocoder in enumerate(vocoders, start=1):
        bars = ((-width, "copy", "tab:blue"), (0.0, "tts", "tab:orange"), (width, "tts_dev", "navajowhite"))
        for offset, kind, color in bars:
            chain = next((c for c in chains.values() if c["kind"] == kind and c["vocoder"] == vocoder), None)
            if chain is None:
                continue
            gl = vocoder == GRIFFIN_LIM
            ax.bar(
                v_index + offset,
                chain["wer"],
                width,
                color=color,
                hatch="//" if gl else None,
                edgecolor="black" if gl else None,
            )
            ax.annotate(
                f"{chain['wer']:.2f}", (v_index + offset, chain["wer"]), ha="center", va="bottom", fontsize=8
            )
    ticks = [f"festival {VOICE}\n(reference)"] + [
        f"{v}\n(floor, {GL_ITERATIONS} iter.)" if v == GRIFFIN_LIM else v for v in vocoders
    ]
    ax.set_xticks(range(len(ticks)), ticks, fontsize=8)
    top = max(c["wer"] for c in chains.values())
    ax.set_ylim(0, max(1.0, top) * 1.3)  # room for the legend above the bars
    ax.set_ylabel("word error rate (PocketSphinx en-us) ↓")
    from matplotlib.patches import Patch

    legend = [
        Patch(color="0.55", label=f"festival {VOICE} reference (dashed line)"),
        Patch(color="tab:blue", label="copy synthesis (reference mel)"),
        Patch(color="tab:orange", label="TTS (FastPitch mel)"),
        Patch(color="navajowhite", label="TTS, development sentences"),
        Patch(
            facecolor="white",
            edgecolor="black",
            hatch="//",
            label=f"Griffin-Lim floor ({GL_ITERATIONS} iter.)",
        ),
    ]
    ax.legend(handles=legend, fontsize=8, ncol=2, loc="upper left")
    ax.set_title(
        f"Intelligibility, {payload['settings']['n_sentences']} sentences\ndashed: the reference; "
        "hatched: Griffin-Lim",
        fontsize=9,
    )
    if voices:
        names = list(voices)
        wers = [voices[v]["wer"] for v in names]
        colors = ["tab:orange" if v == VOICE else "tab:olive" for v in names]
        ax_voices.bar(range(len(names)), wers, 0.6, color=colors, hatch="//", edgecolor="black")
        for i, wer in enumerate(wers):
            ax_voices.annotate(f"{wer:.2f}", (i, wer), ha="center", va="bottom", fontsize=8)
        if reference is not None:
            ax_voices.axhline(reference, color="0.4", ls="--", lw=0.9)
        ax_voices.set_xticks(range(len(names)), names, fontsize=8, rotation=30, ha="right")
        ax_voices.set_ylim(0, max(1.0, top, *wers) * 1.3)
        ax_voices.tick_params(labelleft=True)
        ax_voices.set_title(
            f"TTS per voice, FastPitch -> {GRIFFIN_LIM}\ndashed: festival {VOICE} reference",
            fontsize=9,
        )
    save_figure(fig, path)


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in ("pocketsphinx", "jiwer"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    try:
        run = subprocess.run(["festival", "--version"], capture_output=True, text=True, timeout=30)
        out["festival"] = (run.stdout or run.stderr).strip() or None
    except (OSError, subprocess.SubprocessError):
        out["festival"] = None
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sentences", default=str(SENTENCES), help="one sentence a line; # comments")
    parser.add_argument("--max-sentences", type=int, default=None, help="only the first N (quick run)")
    parser.add_argument(
        "--dev-sentences", default=str(DEV_SENTENCES), help="development sentences (TTS chains only)"
    )
    parser.add_argument("--no-dev", action="store_true", help="skip the development-sentence TTS chains")
    parser.add_argument("--cache", default=".cache/intelligibility", help="folder of the festival renders")
    parser.add_argument(
        "--vocoder",
        action="append",
        default=None,
        help="keep this vocoder (repeatable): griffin-lim, a bundled name or a --model NAME; default all",
    )
    parser.add_argument(
        "--model", action="append", default=[], help="NAME=PATH: another vocoder folder (repeatable)"
    )
    parser.add_argument("--acoustic", default=None, help="Incremental FastPitch folder (default: bundled)")
    parser.add_argument("--no-copy", action="store_true", help="skip the copy-synthesis chains")
    parser.add_argument("--no-tts", action="store_true", help="skip the TTS chains")
    parser.add_argument(
        "--voices",
        nargs="+",
        default=None,
        metavar="VOICE",
        help="FastPitch voices for the per-voice TTS WER (through Griffin-Lim); default: all of them",
    )
    parser.add_argument("--no-voices", action="store_true", help="skip the per-voice TTS chains")
    parser.add_argument(
        "--record",
        action="store_true",
        help="write the evaluation beside the bundled checkpoints (it chooses the default vocoder and "
        "voice); needs a complete run",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seed", type=int, default=0, help="vocoder noise seed (+ sentence index)")
    parser.add_argument(
        "--draws",
        type=int,
        default=3,
        help="noise draws per vocoder chain (Griffin-Lim: initial phases); WER is their mean",
    )
    parser.add_argument("--save-audio", default=None, help="also write every chain's wavs under this folder")
    parser.add_argument("--out", default="benchmarks/results/speech_intelligibility.json")
    args = parser.parse_args(argv)
    if args.max_sentences is not None and args.max_sentences < 1:
        parser.error("--max-sentences must be >= 1")
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    if args.draws < 1:
        parser.error(f"--draws must be >= 1; got {args.draws}")
    if args.voices is not None and args.no_voices:
        parser.error("--voices and --no-voices do not go together")
    voices_asked = [v for item in args.voices or [] for v in item.split(",") if v]
    if args.record:
        partial = [
            flag
            for flag, on in (
                ("--max-sentences", args.max_sentences is not None),
                ("--no-copy", args.no_copy),
                ("--no-tts", args.no_tts),
                ("--no-dev", args.no_dev),
                ("--no-voices", args.no_voices),
                ("--acoustic", args.acoustic is not None),
            )
            if on
        ]
        if partial:
            parser.error(
                f"--record sets the project's default vocoder and voice, so it needs a complete run of the "
                f"bundled checkpoints; {' and '.join(partial)} make(s) a partial one (drop it or drop --record)"
            )

    torch.set_num_threads(args.threads)
    sentences = load_sentences(args.sentences)[: args.max_sentences]
    available = available_vocoders(parse_models(args.model))
    bundled = bundled_vocoders()  # the --model extras are not recorded
    if args.record and args.vocoder is not None:
        left_out = [n for n in (GRIFFIN_LIM, *bundled) if n not in args.vocoder]
        if left_out:
            parser.error(
                f"--record needs every bundled vocoder and {GRIFFIN_LIM} (the floor); --vocoder leaves out "
                f"{', '.join(left_out)}"
            )
    engine = recorder = engine_info = None
    voices: list[str] = []
    if not (args.no_tts and args.no_voices):
        engine, recorder, engine_info = load_engine(args.acoustic)
        if not args.no_voices:
            unknown = [v for v in voices_asked if v not in engine.voices]
            if unknown:
                parser.error(
                    f"unknown --voices {', '.join(unknown)}; the FastPitch has {', '.join(engine.voices)}"
                )
            voices = list(dict.fromkeys(voices_asked)) or list(engine.voices)
            if args.record and set(voices) != set(engine.voices):
                parser.error(
                    f"--record needs every voice ({', '.join(engine.voices)}); --voices keeps {', '.join(voices)}"
                )
    vocoders = load_vocoders(available, args.vocoder)
    save_dir = Path(args.save_audio) if args.save_audio else None
    cfg = MelConfig()

    refs = render_references(sentences, Path(args.cache))
    chains: dict[str, Any] = {}
    chains[f"festival {VOICE} (reference)"] = score_chain(
        f"festival {VOICE}", "reference", None, sentences, refs, save_dir=save_dir
    )

    tts_info = None
    if not args.no_copy:
        trimmed = [r[: (len(r) // cfg.hop_length) * cfg.hop_length] for r in refs]
        mels = [mel_spectrogram(torch.from_numpy(r), cfg) for r in trimmed]  # (1, 80, frames)
        for v in vocoders:
            wavs, compute, audio = vocode_all(v, mels, f"copy: {v.name}", args.seed, args.draws)
            chains[f"copy: {v.name}"] = score_chain(
                f"copy: {v.name}", "copy", v.name, sentences, wavs, trimmed, (compute, audio), save_dir
            )
    if engine is not None:
        tts_info = dict(engine_info or {})
    if not args.no_tts:
        mels, info = tts_mels(engine, recorder, sentences, VOICE)
        tts_info.update(info)
        for v in vocoders:
            wavs, compute, audio = vocode_all(v, mels, f"TTS: {v.name}", args.seed, args.draws)
            chains[f"TTS: {v.name}"] = score_chain(
                f"TTS: {v.name}", "tts", v.name, sentences, wavs, None, (compute, audio), save_dir
            )
    if not (args.no_tts or args.no_dev):
        dev_sentences = load_sentences(args.dev_sentences)[: args.max_sentences]
        dev_refs = render_references(dev_sentences, Path(args.cache))
        chains[f"festival {VOICE} (reference, dev)"] = score_chain(
            f"festival {VOICE} dev", "reference_dev", None, dev_sentences, dev_refs, save_dir=save_dir
        )
        mels, _ = tts_mels(engine, recorder, dev_sentences, VOICE)
        for v in vocoders:
            wavs, compute, audio = vocode_all(v, mels, f"TTS dev: {v.name}", args.seed, args.draws)
            chains[f"TTS dev: {v.name}"] = score_chain(
                f"TTS dev: {v.name}", "tts_dev", v.name, dev_sentences, wavs, None, (compute, audio), save_dir
            )
    voice_results = {}
    if voices:
        voice_results = voice_chains(
            engine, recorder, sentences, voices, args.seed, chains, save_dir, args.draws
        )

    env = environment()
    payload: dict[str, Any] = {
        "benchmark": "speech_intelligibility",
        "what": "WER of PocketSphinx (en-us, offline) on festival slt references, copy synthesis through each "
        "vocoder (plus vocoder metrics against the reference), FastPitch TTS through each vocoder and "
        "FastPitch TTS of each voice through Griffin-Lim",
        "hardware": f"{cpu_model()} ({os.cpu_count()} logical CPUs visible, shared)",
        "settings": {
            "sentences_file": str(args.sentences),
            "dev_sentences_file": None if args.no_tts or args.no_dev else str(args.dev_sentences),
            "n_sentences": len(sentences),
            "n_words": sum(len(s.split()) for s in sentences),
            "voice": VOICE,
            "cache": str(args.cache),
            "threads": args.threads,
            "seed": args.seed,
            "draws": args.draws,
            "sample_rate": cfg.sample_rate,
            "recognizer": "pocketsphinx Decoder, bundled en-us acoustic model + en-us.lm.bin + cmudict, 16 kHz",
            "wer": "jiwer corpus-level WER (S + D + I) / reference words after lowercase and punctuation removal",
            "rtf": "vocoder compute seconds / audio seconds over the sentences (one warm-up call first)",
            "vocoders": {
                v.name: {"source": v.source, "class": type(v.model).__name__, "fingerprint": v.fingerprint}
                for v in vocoders
            },
            "voices": voices,
            "vocoder_steps": "each vocoder's default (FreGrad: config schedule, Turbo: its trained steps)",
            "griffin_lim_iterations": GL_ITERATIONS,
            "higher_is_better": VOCODER_METRICS,
        },
        "tts": tts_info,
        "versions": {**env["versions"], **_versions()},
        "environment": env,
        "load_average_at_end": os.getloadavg(),
        "chains": chains,
        "voices": voice_results,
    }
    out = Path(args.out)
    write_results(out.with_suffix(".json"), payload)
    plot(payload, out.with_suffix(".png"))
    print(markdown_table(chains))
    if voice_results:
        print()
        print(voice_table(voice_results))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")
    if args.record:
        record(payload, vocoders, bundled, voices)
    return payload


def record(payload: dict[str, Any], vocoders: list[Vocoder], bundled: list[str], voices: list[str]) -> None:
    """``--record``: write the evaluation with :func:`record_evaluation` and print the defaults it gives."""
    from accelerando.pretrained.defaults import default_vocoder, default_voice, record_evaluation

    changed = [v.name for v in vocoders if v.folder is not None and fingerprint(v.folder) != v.fingerprint]
    tts = payload.get("tts") or {}
    if tts.get("fingerprint") and fingerprint(tts["folder"]) != tts["fingerprint"]:
        changed.append(Path(tts["folder"]).name)
    note = ""
    if changed:
        note = (
            f"Warning: {', '.join(changed)} changed on disk during the run; these figures are of the "
            "weights loaded at its start (fingerprints under checkpoints)."
        )
        print(note)
    try:
        evaluation = evaluation_payload(payload, bundled, note)
    except ValueError as err:
        raise SystemExit(f"--record: {err}") from err
    path = record_evaluation(evaluation)
    choice = default_vocoder()
    print(f"recorded {path}")
    print(f"default vocoder: {choice.name} -- {choice.reason}")
    print(f"default voice: {default_voice(voices)}")


if __name__ == "__main__":
    main()
