"""Ground-truth-aligned (GTA) mels: what Incremental FastPitch says for each corpus utterance, frame-aligned
with the recording, for fine-tuning a vocoder on the acoustic model's own (smoother) mels.

The teacher-forced pass (:meth:`IncrementalFastPitch.forward`, the static chunk mask of streaming inference)
takes the utterance's text, its real mel (for the aligner's durations) and its pYIN pitch, so the predicted
mel has exactly the recording's frames: a vocoder can be trained to turn it into the recording (the
HiFi-GAN / Tacotron 2 fine-tuning recipe). Each mel is saved as ``out_dir/<id>.npy`` (float32,
``(n_mels, frames)``; written atomically, skipped when present), ready for ``accelerando train newt-speech
--input_mels out_dir``.

``--free`` writes instead the *free-running* mel of each utterance's text in its own voice
(:meth:`IncrementalFastPitch.infer`: the model's own durations and pitch, what text-to-speech hands the
vocoder), not aligned with the recording: inputs for a loss that needs no recording
(``accelerando train newt-speech --cycle_mels out_dir``).

Example::

    python -m accelerando.tts.fastpitch.gta --model fastpitch-speech --data_dir corpora/speech \\
        --out_dir runs/gta-mels --pitch_cache_dir runs/newt-speech/f0_cache
    python -m accelerando.tts.fastpitch.gta --free --data_dir corpora/speech --out_dir runs/free-mels
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["free_mel", "gta_mel", "main", "write_free_mels", "write_gta_mels"]


@torch.inference_mode()
def gta_mel(model: Any, item: dict[str, Any]) -> np.ndarray:
    """The GTA mel ``(n_mels, frames)`` of one :class:`~accelerando.tts.fastpitch.data.TTSDataset` item."""
    mel = item["mel"][None]  # (1, n_mels, T)
    frames = mel.shape[-1]
    ids = item["ids"][None]
    out = model(
        ids,
        torch.tensor([ids.shape[1]]),
        mel,
        torch.tensor([frames]),
        item["pitch"][None],
        speaker=torch.tensor([item["speaker"]]),
        mask_mode="static",
    )
    return out.mel[0, :, :frames].float().numpy()


@torch.inference_mode()
def free_mel(model: Any, text: str, speaker: int | str = 0) -> np.ndarray:
    """The free-running mel ``(n_mels, frames)`` of ``text`` in ``speaker``'s voice (the model's own
    durations and pitch)."""
    mel, _ = model.infer(model.text_frontend().encode(text), speaker=speaker)
    return mel[0].float().numpy()


def _write_mels(
    out_dir: str | Path,
    jobs: Iterable[tuple[str, Callable[[], np.ndarray]]],
    total: int,
    desc: str,
    progress: bool,
) -> int:
    """Saves ``out_dir/<id>.npy`` = ``make()`` for each ``(id, make)`` whose file is missing (atomically; ``make``
    runs only then); returns how many it wrote."""
    from tqdm.auto import tqdm

    from accelerando.fileio import atomic_path

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    for item_id, make in tqdm(jobs, total=total, desc=desc, unit="utt", disable=not progress):
        target = out_dir / f"{item_id.replace('/', '_')}.npy"
        if target.is_file():
            continue
        with atomic_path(target, suffix=".npy") as tmp:
            np.save(tmp, make(), allow_pickle=False)
        written += 1
    return written


def write_free_mels(model: Any, dataset: Any, out_dir: str | Path, progress: bool = True) -> int:
    """Writes ``out_dir/<id>.npy``, the free-running mel of each ``dataset`` item's text in its own voice
    (an :class:`~accelerando.data.datasets.LJSpeechDataset`-like ``items`` list of ``(id, wav, text,
    speaker)``), for every item that has none yet; returns how many it wrote."""
    model.eval()
    jobs = (
        (str(item_id), functools.partial(free_mel, model, text, str(speaker)))
        for item_id, _, text, speaker in dataset.items
    )
    return _write_mels(out_dir, jobs, len(dataset.items), "free-running mels", progress)


def write_gta_mels(model: Any, dataset: Any, out_dir: str | Path, progress: bool = True) -> int:
    """Writes ``out_dir/<id>.npy`` for every item of ``dataset`` that has none yet; returns how many it wrote."""
    model.eval()

    def item_id(i: int) -> str:
        return str(dataset.base.items[i][0]) if hasattr(dataset.base, "items") else str(dataset[i]["id"])

    jobs = ((item_id(i), lambda i=i: gta_mel(model, dataset[i])) for i in range(len(dataset)))
    return _write_mels(out_dir, jobs, len(dataset), "GTA mels", progress)


def main(argv: Sequence[str] | None = None) -> int:
    from accelerando.data.datasets import LJSpeechDataset
    from accelerando.pretrained.loading import load
    from accelerando.tts.fastpitch.data import TTSDataset

    parser = argparse.ArgumentParser(
        prog="python -m accelerando.tts.fastpitch.gta",
        description="Write FastPitch's ground-truth-aligned mels of a corpus split (vocoder fine-tuning).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", default="fastpitch-speech", help="a bundled name or a FastPitch folder")
    parser.add_argument(
        "--data_dir", required=True, help="an LJSpeech-style corpus (accelerando corpus speech)"
    )
    parser.add_argument("--out_dir", required=True, help="folder for <id>.npy")
    parser.add_argument("--split", default="train", help="split of split.json (or 'all')")
    parser.add_argument(
        "--pitch_cache_dir", default=None, help="pYIN f0 cache (.npy per utterance; made here when missing)"
    )
    parser.add_argument("--pitch_fmin", type=float, default=50.0)
    parser.add_argument("--pitch_fmax", type=float, default=600.0)
    parser.add_argument(
        "--free",
        action="store_true",
        help="free-running mels of each text in its own voice (not aligned with the recording)",
    )
    args = parser.parse_args(argv)
    model = load(args.model, expect=("IncrementalFastPitch",))
    root = Path(args.data_dir)
    base = LJSpeechDataset(root, split=None if args.split == "all" else args.split)
    speakers = [str(s) for s in LJSpeechDataset(root, split=None).speakers]
    if list(model.config.speakers or []) and list(model.config.speakers) != speakers:
        raise ValueError(
            f"The model's speakers {model.config.speakers} differ from the corpus's {speakers}: "
            "use the corpus the model was trained on."
        )
    if args.free:
        written = write_free_mels(model, base, args.out_dir)
        print(f"wrote {written} free-running mels to {args.out_dir} ({len(base)} utterances in the split)")
        return 0
    dataset = TTSDataset(
        base, model.text_frontend(), speakers, cache_dir=args.pitch_cache_dir,
        pitch_fmin=args.pitch_fmin, pitch_fmax=args.pitch_fmax,
    )  # fmt: skip
    written = write_gta_mels(model, dataset, args.out_dir)
    print(f"wrote {written} GTA mels to {args.out_dir} ({len(dataset)} utterances in the split)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
