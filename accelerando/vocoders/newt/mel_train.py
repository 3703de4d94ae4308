"""Train MelNEWT, the mel-conditioned NEWT speech vocoder (:mod:`accelerando.vocoders.newt.mel_newt`).

NEWT's recipe (Adam, lr 1e-3 decayed by 0.9 every 10k steps, gradient norm clipped at 2.0, multi-resolution
STFT loss) on random crops of an LJSpeech-style corpus, plus the pitch heads' losses:

- the oscillator runs at pYIN's f0 (teacher forcing; unvoiced gaps filled log-linearly between voiced
  neighbours with :func:`~.mel_newt.fill_unvoiced`), computed once per utterance and cached as ``.npy`` in
  ``output_dir/f0_cache`` (search range ``--f0_min``..``--f0_max``);
- ``--pitch_loss_weight`` x cross-entropy of the pitch classifier against Gaussian-blurred pYIN bins on
  voiced frames, ``--voicing_loss_weight`` x binary cross-entropy of the voicing head;
- optionally (``--cycle_mels``, ``--cycle_weight``) a mel-consistency loss on mels that have no recording,
  e.g. the acoustic model's free-running mels (``python -m accelerando.tts.fastpitch.gta --free``): random
  crops are vocoded from the mel alone (predicted f0) and the L1 between the output's log-mel and the input
  mel is added, so the vocoder learns to render what text-to-speech hands it as faithfully as Griffin-Lim
  does (Griffin-Lim's whole objective), beside copying recordings.

At each checkpoint a few validation utterances are synthesised *from the mel alone* (predicted f0) to
``output_dir/validation/step-N/`` with mel L1 and M-STFT in the log, as for the other mel vocoders.

Example::

    accelerate launch -m accelerando.vocoders.newt.mel_train --data_dir corpora/speech \\
        --output_dir runs/newt-speech --max_train_steps 20000
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from accelerando import training as T
from accelerando.audio import MelConfig, MultiResolutionSTFTLoss, cached_f0, mel_spectrogram
from accelerando.vocoders.newt.mel_newt import MelNEWT, fill_unvoiced
from accelerando.vocoders.training_utils import add_vocoder_data_arguments, fit_mel_vocoder, vocoder_datasets

__all__ = ["add_arguments", "main", "parse_args", "utterance_f0"]

logger = logging.getLogger(__name__)

# name -> (fft sizes, hop sizes, window lengths) of the MultiResolutionSTFTLoss
SPECTRAL_LOSSES: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {
    "mrstft": ((1024, 2048, 512), (120, 240, 50), (600, 1200, 240)),
    "multiscale": (
        (2048, 1024, 512, 256, 128, 64),
        (512, 256, 128, 64, 32, 16),
        (2048, 1024, 512, 256, 128, 64),
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """MelNEWT's flags, the shared vocoder data flags and the shared training flags (NEWT's defaults)."""
    add = parser.add_argument
    add("--model_config", type=str, default=None, help="A MelNEWT config.json (default: MelNEWT()).")
    add(
        "--init_model",
        type=str,
        default=None,
        help="Start from this MelNEWT (a folder or a bundled name, e.g. newt-speech); a lookup-table "
        "(FastNEWT) checkpoint gets MLP waveshapers fitted to its tables first. With --model_config, the "
        "config may add modules (e.g. aperiodicity_bands) that start from their initialisation.",
    )
    add("--f0_min", type=T.positive_float, default=50.0, help="pYIN search range, low end (Hz).")
    add("--f0_max", type=T.positive_float, default=600.0, help="pYIN search range, high end (Hz).")
    add(
        "--spectral_loss",
        choices=sorted(SPECTRAL_LOSSES),
        default="mrstft",
        help="mrstft: Parallel WaveGAN's 3 resolutions (NEWT's loss); multiscale: DDSP's 6 FFT sizes 2048..64.",
    )
    add(
        "--input_mels",
        type=str,
        default=None,
        help="A folder of <id>.npy mels frame-aligned with the recordings (e.g. an acoustic model's "
        "ground-truth-aligned mels: python -m accelerando.tts.fastpitch.gta); a crop's input mel is taken "
        "from there with probability --input_mel_prob (the target stays the recording).",
    )
    add("--input_mel_prob", type=float, default=0.5, help="Share of crops that use --input_mels.")
    add(
        "--cycle_mels",
        type=str,
        default=None,
        help="A folder of .npy mels (n_mels, frames) without recordings (e.g. python -m "
        "accelerando.tts.fastpitch.gta --free): each step also vocodes --cycle_batch_size random crops of them "
        "and adds --cycle_weight x L1(log-mel of the output, the input mel).",
    )
    add("--cycle_weight", type=float, default=1.0, help="Weight of the --cycle_mels mel-consistency loss.")
    add("--cycle_batch_size", type=T.positive_int, default=8, help="Crops of --cycle_mels per step.")
    add("--pitch_loss_weight", type=float, default=0.1, help="Weight of the pitch cross-entropy.")
    add("--voicing_loss_weight", type=float, default=0.1, help="Weight of the voicing cross-entropy.")
    add("--lr_decay", type=T.positive_float, default=0.9, help="Learning-rate factor every interval.")
    add("--lr_decay_interval", type=T.positive_int, default=10_000, help="Steps between decays.")
    add("--validation_num_steps", type=T.positive_int, default=1, help="Unused by MelNEWT (one pass).")
    add_vocoder_data_arguments(parser, segment_frames=64, energy_max_default="4.0")
    return T.add_training_args(
        parser,
        output_dir="output/newt-speech",
        train_batch_size=16,
        learning_rate=1e-3,
        max_train_steps=50_000,
        checkpointing_steps=1000,
        max_grad_norm=2.0,
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="accelerando train newt-speech",
        description="Train MelNEWT, the mel-conditioned NEWT speech vocoder.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    args = add_arguments(parser).parse_args(argv)
    if not args.f0_max > args.f0_min:
        parser.error(f"--f0_max ({args.f0_max}) must exceed --f0_min ({args.f0_min})")
    if not 0.0 <= args.input_mel_prob <= 1.0:
        parser.error(f"--input_mel_prob must be in [0, 1]; got {args.input_mel_prob}")
    if args.input_mels and not Path(args.input_mels).is_dir():
        parser.error(f"--input_mels {args.input_mels!r} is not a folder")
    if args.cycle_mels and not Path(args.cycle_mels).is_dir():
        parser.error(f"--cycle_mels {args.cycle_mels!r} is not a folder")
    if args.cycle_weight < 0:
        parser.error(f"--cycle_weight must be >= 0; got {args.cycle_weight}")
    return args


def utterance_f0(
    utterances: Any, cache_dir: Path, f0_min: float, f0_max: float, cfg: MelConfig = MelConfig()
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{id: (f0 with unvoiced gaps filled (frames,), voiced (frames,) bool)}`` for every utterance.

    pYIN runs once per utterance (cached as ``cache_dir/<id>.npy``); frames line up with the mel's.
    """
    from tqdm.auto import tqdm

    out = {}
    for i in tqdm(range(len(utterances)), desc="pYIN f0", unit="utt"):
        item_id = str(utterances.items[i][0])
        path = cache_dir / f"{item_id.replace('/', '_')}.npy"
        audio = None if path.is_file() else utterances.load_audio(i)  # read only when pYIN must run
        f0 = torch.from_numpy(cached_f0(audio, cfg.sample_rate, path, cfg.hop_length, f0_min, f0_max))
        out[item_id] = (fill_unvoiced(f0[None])[0], f0 > 0)
    return out


def crop_f0(
    tracks: dict[str, tuple[torch.Tensor, torch.Tensor]],
    ids: Sequence[str],
    starts: torch.Tensor,
    frames: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The crops' ``(f0 (B, frames), voiced (B, frames))``, zero-padded past an utterance's end."""
    f0s, voiced = [], []
    for item_id, start in zip(ids, starts.tolist()):
        f0, flag = tracks[item_id]
        f0, flag = f0[start : start + frames], flag[start : start + frames]
        pad = frames - len(f0)
        hold = float(f0[-1]) if len(f0) else 150.0
        f0s.append(F.pad(f0, (0, pad), value=hold))
        voiced.append(F.pad(flag, (0, pad)))
    return torch.stack(f0s), torch.stack(voiced)


def load_input_mels(folder: str | Path, ids: Sequence[str]) -> dict[str, torch.Tensor]:
    """``{id: (n_mels, frames)}`` from ``folder/<id>.npy`` for every id; ``FileNotFoundError`` names the
    first missing one (make them for the whole training split)."""
    import numpy as np

    out = {}
    for item_id in ids:
        path = Path(folder) / f"{item_id.replace('/', '_')}.npy"
        if not path.is_file():
            raise FileNotFoundError(
                f"--input_mels has no {path.name} (utterance {item_id!r}); make every one"
            )
        out[item_id] = torch.from_numpy(np.load(path, allow_pickle=False))
    return out


def swap_input_mels(
    mel: torch.Tensor,
    ids: Sequence[str],
    starts: torch.Tensor,
    mels: dict[str, torch.Tensor],
    prob: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``mel (B, n_mels, F)`` with each crop's rows replaced, with probability ``prob``, by the same frames of
    its utterance's mel in ``mels`` (frames past the end keep the crop's own)."""
    if prob <= 0:
        return mel
    mel = mel.clone()
    frames = mel.shape[-1]
    pick = torch.rand(len(ids), generator=generator) < prob
    for b, (item_id, start) in enumerate(zip(ids, starts.tolist())):
        if pick[b]:
            source = mels[item_id][:, start : start + frames]
            mel[b, :, : source.shape[-1]] = source.to(mel)
    return mel


def load_cycle_mels(folder: str | Path, frames: int, n_mels: int) -> list[torch.Tensor]:
    """Every ``folder/*.npy`` mel ``(n_mels, >= frames)`` (shorter ones are left out: a crop must fit);
    ``ValueError`` when none fits or a file has another number of mel bins."""
    import numpy as np

    out = []
    for path in sorted(Path(folder).glob("*.npy")):
        mel = torch.from_numpy(np.load(path, allow_pickle=False)).float()
        if mel.dim() != 2 or mel.shape[0] != n_mels:
            raise ValueError(
                f"--cycle_mels {path.name} has shape {tuple(mel.shape)}; expected ({n_mels}, frames)"
            )
        if mel.shape[1] >= frames:
            out.append(mel)
    if not out:
        raise ValueError(f"--cycle_mels {str(folder)!r} has no .npy mel of at least {frames} frames")
    return out


def cycle_crops(
    mels: Sequence[torch.Tensor], batch_size: int, frames: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``(batch_size, n_mels, frames)`` random crops of random ``mels`` (each at least ``frames`` long)."""
    picks = torch.randint(len(mels), (batch_size,), generator=generator).tolist()
    crops = []
    for i in picks:
        start = int(torch.randint(mels[i].shape[1] - frames + 1, (1,), generator=generator))
        crops.append(mels[i][:, start : start + frames])
    return torch.stack(crops)


def mel_consistency_loss(
    audio: torch.Tensor, mel: torch.Tensor, cfg: MelConfig, edge: int = 2
) -> torch.Tensor:
    """L1 between the log-mel of ``audio (B, F * hop)`` and ``mel (B, n_mels, F)``, leaving out ``edge`` frames
    at each end (their analysis windows reach past the crop)."""
    rebuilt = mel_spectrogram(audio.float(), cfg)[..., : mel.shape[-1]]
    return (rebuilt - mel.float())[..., edge : mel.shape[-1] - edge].abs().mean()


def grown_model(trained: MelNEWT, config: dict[str, Any]) -> MelNEWT:
    """A MelNEWT built from ``config`` with every weight of ``trained`` it shares; its new modules (e.g. the
    ``aperiodicity_bands`` head) keep their initialisation. ``ValueError`` when a shared weight's shape differs or
    ``trained`` has a weight the new model lacks (the config must only add to the trained one)."""
    base = {k: v for k, v in trained.config.items() if not k.startswith("_")}  # not diffusers' bookkeeping
    model = MelNEWT.from_config({**base, **config, "use_lookup_table": False}).train()
    own = model.state_dict()
    for key, value in trained.state_dict().items():
        if key not in own or own[key].shape != value.shape:
            raise ValueError(
                f"--model_config does not extend --init_model: weight {key!r} "
                f"{'is missing' if key not in own else f'has shape {tuple(own[key].shape)}'} in the new model"
            )
    missing, _ = model.load_state_dict(trained.state_dict(), strict=False)
    logger.info("Grew the model: new weights %s keep their initialisation", missing)
    return model


def build_model(args: argparse.Namespace) -> MelNEWT:
    """The model to train: the resumed checkpoint's architecture (its weights come with the checkpoint state, so
    ``--init_model`` is not read and may be gone), else ``--init_model`` (grown by ``--model_config``), else
    ``--model_config`` or ``MelNEWT()``."""
    resumed = T.resumed_model_folder(args)
    if resumed is not None:
        config = json.loads((resumed / "config.json").read_text())
        logger.info(
            "Resuming %s: the model is built from its config; --init_model is not read", resumed.parent
        )
        return MelNEWT.from_config({k: v for k, v in config.items() if not k.startswith("_")}).train()
    if args.init_model:
        from accelerando.pretrained.loading import load

        model = load(args.init_model, expect=("MelNEWT",)).train()
        if model.config.use_lookup_table:
            logger.info("Fitting MLP waveshapers to the lookup tables of %s", args.init_model)
            model = model.to_trainable()
        if args.model_config is None:
            return model
        return grown_model(model, json.loads(Path(args.model_config).read_text()))
    if args.model_config is None:
        return MelNEWT()
    return MelNEWT.from_config(json.loads(Path(args.model_config).read_text()))


def main(args: argparse.Namespace) -> Path:
    """Train; returns the folder of the final model (``output_dir/model``)."""
    accelerator = T.create_accelerator(args, project_name="newt-speech")
    train_utts, crops, valid_utts = vocoder_datasets(args)
    tracks = utterance_f0(train_utts, Path(args.output_dir) / "f0_cache", args.f0_min, args.f0_max)
    input_mels = load_input_mels(args.input_mels, list(tracks)) if args.input_mels else None
    model = build_model(args)
    mel_cfg, cycle = MelConfig(), None
    if args.cycle_mels and args.cycle_weight > 0:
        cycle = load_cycle_mels(args.cycle_mels, args.segment_frames, model.config.n_mels)
        logger.info(
            "Mel-consistency loss on %d mels of %s (weight %g)",
            len(cycle),
            args.cycle_mels,
            args.cycle_weight,
        )
    if model.config.use_lookup_table:
        raise ValueError("Train the MLP model (use_lookup_table=False); make a FastNEWT with to_fast()")
    logger.info("MelNEWT: %d parameters", model.num_parameters())
    loss_fn = MultiResolutionSTFTLoss(*SPECTRAL_LOSSES[args.spectral_loss]).to(accelerator.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, args.lr_decay_interval, args.lr_decay)

    def step_loss(
        batch: dict[str, Any], prepared: torch.nn.Module, newt: MelNEWT
    ) -> tuple[torch.Tensor, dict]:
        audio, mel = batch["audio"], batch["mel"]  # (B, T), (B, 80, frames)
        if input_mels is not None:
            mel = swap_input_mels(mel, batch["id"], batch["start_frame"], input_mels, args.input_mel_prob)
        f0, voiced = crop_f0(tracks, batch["id"], batch["start_frame"], mel.shape[-1])
        f0, voiced = f0.to(mel.device), voiced.to(mel.device)
        out = prepared(mel, f0_hz=f0)
        stft = loss_fn(out.audio, audio)
        log_probs = out.pitch_logits.float().log_softmax(-1)
        ce = -(newt.pitch_targets(f0) * log_probs).sum(-1)  # (B, F)
        pitch = (ce * voiced).sum() / voiced.sum().clamp_min(1)
        voicing = F.binary_cross_entropy_with_logits(out.voicing_logits.float(), voiced.float())
        loss = stft + args.pitch_loss_weight * pitch + args.voicing_loss_weight * voicing
        logs = {"stft": stft.detach(), "pitch_ce": pitch.detach(), "voicing_bce": voicing.detach()}
        if cycle is not None:
            crops = cycle_crops(cycle, args.cycle_batch_size, mel.shape[-1]).to(mel.device)
            consistency = mel_consistency_loss(prepared(crops).audio, crops, mel_cfg)
            loss = loss + args.cycle_weight * consistency
            logs["cycle_mel_l1"] = consistency.detach()
        return loss, logs

    return fit_mel_vocoder(
        accelerator,
        args,
        model,
        optimizer,
        crops,
        valid_utts,
        step_loss,
        name="MelNEWT",
        lr_scheduler=scheduler,
    )


if __name__ == "__main__":
    main(parse_args())
