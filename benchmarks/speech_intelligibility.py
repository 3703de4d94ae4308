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
each other and with the reference, not with published ASR figures. Writes
``benchmarks/results/speech_intelligibility.{json,png}``::

    python benchmarks/speech_intelligibility.py                       # everything, 1 torch thread
    python benchmarks/speech_intelligibility.py --max-sentences 6 --vocoder griffin-lim --out /tmp/si.json
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
VOICE = "slt"
GRIFFIN_LIM = "griffin-lim"
GL_ITERATIONS = 32
MEL_VOCODER_ROLES = ("periodwave_turbo", "fregrad", "periodwave")  # roles of discover_checkpoints
SHOWN = ("mstft", "pesq_wb", "vuv_f1")  # copy-synthesis columns of the table


@dataclass
class Vocoder:
    name: str
    model: Any
    source: str


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


def available_vocoders(models: dict[str, str]) -> dict[str, str]:
    """Name -> what :func:`load_vocoder` takes: Griffin-Lim, the bundled mel vocoders, then ``--model``."""
    from accelerando.demos.checkpoints import discover_checkpoints

    found = discover_checkpoints()
    names = {GRIFFIN_LIM: GRIFFIN_LIM}
    names.update({found[role].name: found[role].name for role in MEL_VOCODER_ROLES if role in found})
    for name, path in models.items():
        if name in names:
            raise SystemExit(f"--model name {name!r} is already taken ({', '.join(names)})")
        names[name] = path
    return names


def load_vocoders(available: dict[str, str], selected: list[str] | None) -> list[Vocoder]:
    from accelerando.tts.engine import load_vocoder
    from accelerando.vocoders import GriffinLim

    names = selected or list(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise SystemExit(f"unknown --vocoder {', '.join(unknown)}; available: {', '.join(available)}")
    out = []
    for name in dict.fromkeys(names):
        if name == GRIFFIN_LIM:
            out.append(
                Vocoder(name, GriffinLim(n_iter=GL_ITERATIONS, seed=0), f"GriffinLim({GL_ITERATIONS})")
            )
        else:
            source = available[name]
            out.append(Vocoder(name, load_vocoder(source), str(source)))
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


def tts_mels(sentences: list[str], acoustic: str | None) -> tuple[list[torch.Tensor], dict[str, Any]]:
    """The bundled (or ``acoustic``) Incremental FastPitch's mel (1, 80, frames) for each sentence, voice slt.

    The mel is taken from the engine's whole-utterance path (:meth:`StreamingSynthesizer.synthesize`:
    sentence split, phonemes, masked full decode), so it is what the engine would vocode.
    """
    from accelerando.tts import StreamingSynthesizer

    recorder = _MelRecorder()
    engine = StreamingSynthesizer.from_pretrained(acoustic, vocoder=recorder)
    mels, seconds = [], 0.0
    for text in tqdm(sentences, desc=f"FastPitch mels ({VOICE})", unit="sentence"):
        started = time.perf_counter()
        engine.synthesize(text, voice=VOICE)
        seconds += time.perf_counter() - started
        assert recorder.mel is not None
        mels.append(recorder.mel)
    audio = sum(m.shape[-1] for m in mels) * recorder.hop_length / recorder.sample_rate
    info = {
        "acoustic": str(engine.acoustic.config.get("_name_or_path") or acoustic or "bundled fastpitch-*"),
        "voice": VOICE,
        "parameters": sum(p.numel() for p in engine.acoustic.parameters()),
        "rtf": seconds / audio,
    }
    return mels, info


def vocode_all(vocoder: Vocoder, mels: list[torch.Tensor], desc: str, seed: int) -> tuple[list, float, float]:
    """Each mel through the vocoder (seeded per item); returns (waveforms, compute s, audio s)."""
    model = vocoder.model
    with torch.inference_mode():
        model.synthesize(mels[0][..., :16], generator=torch.Generator().manual_seed(seed))  # warm-up
        wavs, compute = [], 0.0
        for i, mel in enumerate(tqdm(mels, desc=desc, unit="sentence")):
            generator = torch.Generator().manual_seed(seed + i)
            started = time.perf_counter()
            wav = model.synthesize(mel, generator=generator)
            compute += time.perf_counter() - started
            wavs.append(wav[0].float().cpu().numpy())
    audio = sum(len(w) for w in wavs) / MelConfig().sample_rate
    return wavs, compute, audio


def score_chain(
    name: str,
    kind: str,
    vocoder: str | None,
    sentences: list[str],
    wavs: list[np.ndarray],
    refs: list[np.ndarray] | None = None,
    timing: tuple[float, float] | None = None,
    save_dir: Path | None = None,
) -> dict[str, Any]:
    """WER over the chain's waveforms (and the vocoder metrics against ``refs``, and RTF)."""
    sr = MelConfig().sample_rate
    items, hyps = [], []
    for i, (text, wav) in enumerate(
        tqdm(list(zip(sentences, wavs)), desc=f"scoring {name}", unit="sentence")
    ):
        hyp = transcribe(wav, sr)
        hyps.append(hyp)
        row: dict[str, Any] = {"index": i, "text": text, "hypothesis": hyp, "seconds": len(wav) / sr}
        row["wer"] = word_error_rate([text], [hyp])
        if refs is not None:
            row.update(evaluate_vocoder(wav, refs[i], sr, strict=False))
        if save_dir is not None:
            save_audio(save_dir / name.replace(" ", "_").replace(":", "") / f"{i:03d}.wav", wav, sr)
        items.append(row)
    chain: dict[str, Any] = {"kind": kind, "vocoder": vocoder, "wer": word_error_rate(sentences, hyps)}
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


def plot(payload: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chains = payload["chains"]
    vocoders = list(dict.fromkeys(c["vocoder"] for c in chains.values() if c["vocoder"]))
    reference = next((c["wer"] for c in chains.values() if c["kind"] == "reference"), None)
    fig, ax = plt.subplots(figsize=(2.0 + 1.7 * (len(vocoders) + 1), 4.2))
    width = 0.38
    x0 = 0
    if reference is not None:
        ax.bar(x0, reference, 2 * width, color="0.55")
        ax.annotate(f"{reference:.2f}", (x0, reference), ha="center", va="bottom", fontsize=8)
        ax.axhline(reference, color="0.4", ls="--", lw=0.9)
    for v_index, vocoder in enumerate(vocoders, start=1):
        for offset, kind, color in ((-width / 2, "copy", "tab:blue"), (width / 2, "tts", "tab:orange")):
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
        Patch(
            facecolor="white",
            edgecolor="black",
            hatch="//",
            label=f"Griffin-Lim floor ({GL_ITERATIONS} iter.)",
        ),
    ]
    ax.legend(handles=legend, fontsize=8, ncol=2, loc="upper left")
    ax.set_title(
        f"Intelligibility, {payload['settings']['n_sentences']} sentences; dashed: the reference; "
        "hatched: Griffin-Lim",
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
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seed", type=int, default=0, help="vocoder noise seed (+ sentence index)")
    parser.add_argument("--save-audio", default=None, help="also write every chain's wavs under this folder")
    parser.add_argument("--out", default="benchmarks/results/speech_intelligibility.json")
    args = parser.parse_args(argv)
    if args.max_sentences is not None and args.max_sentences < 1:
        parser.error("--max-sentences must be >= 1")
    if args.threads < 1:
        parser.error("--threads must be >= 1")

    torch.set_num_threads(args.threads)
    sentences = load_sentences(args.sentences)[: args.max_sentences]
    available = available_vocoders(parse_models(args.model))
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
            wavs, compute, audio = vocode_all(v, mels, f"copy: {v.name}", args.seed)
            chains[f"copy: {v.name}"] = score_chain(
                f"copy: {v.name}", "copy", v.name, sentences, wavs, trimmed, (compute, audio), save_dir
            )
    if not args.no_tts:
        mels, tts_info = tts_mels(sentences, args.acoustic)
        for v in vocoders:
            wavs, compute, audio = vocode_all(v, mels, f"TTS: {v.name}", args.seed)
            chains[f"TTS: {v.name}"] = score_chain(
                f"TTS: {v.name}", "tts", v.name, sentences, wavs, None, (compute, audio), save_dir
            )

    env = environment()
    payload: dict[str, Any] = {
        "benchmark": "speech_intelligibility",
        "what": "WER of PocketSphinx (en-us, offline) on festival slt references, copy synthesis through each "
        "vocoder (plus vocoder metrics against the reference) and FastPitch TTS through each vocoder",
        "hardware": f"{cpu_model()} ({os.cpu_count()} logical CPUs visible, shared)",
        "settings": {
            "sentences_file": str(args.sentences),
            "n_sentences": len(sentences),
            "n_words": sum(len(s.split()) for s in sentences),
            "voice": VOICE,
            "cache": str(args.cache),
            "threads": args.threads,
            "seed": args.seed,
            "sample_rate": cfg.sample_rate,
            "recognizer": "pocketsphinx Decoder, bundled en-us acoustic model + en-us.lm.bin + cmudict, 16 kHz",
            "wer": "jiwer corpus-level WER (S + D + I) / reference words after lowercase and punctuation removal",
            "rtf": "vocoder compute seconds / audio seconds over the sentences (one warm-up call first)",
            "vocoders": {v.name: {"source": v.source, "class": type(v.model).__name__} for v in vocoders},
            "vocoder_steps": "each vocoder's default (FreGrad: config schedule, Turbo: its trained steps)",
            "griffin_lim_iterations": GL_ITERATIONS,
            "higher_is_better": VOCODER_METRICS,
        },
        "tts": tts_info,
        "versions": {**env["versions"], **_versions()},
        "environment": env,
        "load_average_at_end": os.getloadavg(),
        "chains": chains,
    }
    out = Path(args.out)
    write_results(out.with_suffix(".json"), payload)
    plot(payload, out.with_suffix(".png"))
    print(markdown_table(chains))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")
    return payload


if __name__ == "__main__":
    main()
