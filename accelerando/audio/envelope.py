"""Mel-envelope matching: give a waveform the log-mel it was asked for, keeping its own phase.

A vocoder's output ``y`` seldom has exactly the log-mel ``M`` it was given. One *pass* measures the difference band
by band and corrects it in the STFT domain:

1. the frames of ``y`` in the mel front end's own framing (:func:`accelerando.audio.mel_spectrogram`: reflect
   padding of ``(n_fft - hop) / 2`` samples a side, uncentred hann frames, ``T // hop`` of them), ``Y = STFT(y)``;
2. the log gain each mel band needs, ``d = M - log(clamp(B |Y|, clamp_min))``, clipped to ``+-max_gain_db``;
3. a gain per STFT bin, the band gains averaged with the filterbank's weights at that bin
   (``exp(B^T d / B^T 1)``; bins above ``f_max`` take the top band's gain);
4. ``y' = ISTFT(Y * gain)`` by weighted overlap-add (the hann window again, divided by the summed squared windows).

The phase, the harmonics' fine structure and the noise of ``y`` are kept; only the spectral envelope moves, by a
smooth, bounded gain. Each pass brings the log-mel closer (the gains of neighbouring frames overlap, so one pass
is not exact); ``passes`` chains them. It is what Griffin-Lim's magnitude step does, applied once to a waveform
whose phase is already coherent.

Streaming (:class:`MelEnvelopeMatch`): push waveform and mel chunks, get the samples whose every frame is known;
``finish()`` adds the end (the right reflect padding). The concatenated output equals one whole call
(:func:`match_mel_envelope`) to float tolerance: a pass holds back ``n_fft - (n_fft - hop) / 2`` samples (640
at the default 22.05 kHz settings: 29 ms) plus up to one hop.

Example::

    import torch
    from accelerando.audio import MelConfig, match_mel_envelope, mel_spectrogram

    target = mel_spectrogram(torch.randn(22050) * 0.1)  # (1, 80, 86)
    wav = torch.randn(1, 86 * 256) * 0.01  # any waveform of 86 frames
    matched = match_mel_envelope(wav, target, passes=2)  # (1, 22016), its log-mel close to target's
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .mel import MAGNITUDE_EPS, MelConfig, frame_padding, mel_basis

__all__ = ["MelEnvelopeMatch", "match_mel_envelope"]


def _check_settings(passes: int, max_gain_db: float) -> None:
    if isinstance(passes, bool) or not isinstance(passes, int) or passes < 1:
        raise ValueError(f"passes must be a whole number >= 1; got {passes!r}")
    if not (isinstance(max_gain_db, (int, float)) and math.isfinite(max_gain_db) and max_gain_db > 0):
        raise ValueError(f"max_gain_db must be a finite number > 0 (decibels); got {max_gain_db!r}")


class _Pass:
    """One streaming envelope-matching pass (see the module notes); ``(B, S)`` waveforms, ``(B, n_mels, F)`` mels."""

    def __init__(
        self, cfg: MelConfig, max_gain_db: float, batch_size: int, device: torch.device, dtype: torch.dtype
    ):
        self.cfg = cfg
        self.hop, self.n_fft = cfg.hop_length, cfg.n_fft
        self.left, _ = frame_padding(cfg.n_fft, cfg.hop_length)
        self.max_log_gain = max_gain_db / 20 * math.log(10)
        window = torch.hann_window(cfg.win_length, dtype=dtype, device=device)
        offset = (cfg.n_fft - cfg.win_length) // 2  # torch.stft's centred zero padding of a shorter window
        self.window = nn.functional.pad(window, (offset, cfg.n_fft - cfg.win_length - offset))  # (n_fft,)
        basis = mel_basis(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max).to(device, dtype)
        weight = basis.sum(0)  # (bins,)
        covered = torch.nonzero(weight > 0)[:, 0]
        spread = basis / weight.clamp(min=1e-12)  # (n_mels, bins): each bin's band weights sum to one
        spread[:, covered.max() + 1 :] = spread[
            :, covered.max() : covered.max() + 1
        ]  # above f_max: the top band
        spread[:, : covered.min()] = spread[:, covered.min() : covered.min() + 1]
        self.basis, self.spread = basis, spread  # (n_mels, bins) each
        self.audio = torch.zeros(batch_size, 0, device=device, dtype=dtype)  # unpadded input from audio_start
        self.audio_start = 0
        self.received = 0  # input samples so far
        self.mel = torch.zeros(batch_size, cfg.n_mels, 0, device=device, dtype=dtype)  # mel frames from frame
        self.frame = 0  # next frame to process
        self.acc = torch.zeros(
            batch_size, 0, device=device, dtype=dtype
        )  # overlap-add, padded coords acc_start..
        self.norm = torch.zeros(0, device=device, dtype=dtype)
        self.acc_start = 0
        self._norms: dict[int, Tensor] = {}
        self.emitted = 0  # output samples so far (unpadded)

    def _padded(self, start: int, stop: int, total: int | None) -> Tensor:
        """Padded samples ``[start, stop)`` (reflect at the start, and at the end once ``total`` is known)."""
        index = torch.arange(start, stop, device=self.audio.device) - self.left
        index = index.abs()
        if total is not None:
            index = torch.where(index >= total, 2 * (total - 1) - index, index)
        return self.audio[:, index - self.audio_start]

    def _process(self, frames: int, total: int | None) -> None:
        if frames <= 0:
            return
        hop, n_fft = self.hop, self.n_fft
        first = self.frame
        span = self._padded(first * hop, (first + frames - 1) * hop + n_fft, total)  # (B, L)
        chunks = span.unfold(-1, n_fft, hop)  # (B, frames, n_fft)
        spec = torch.fft.rfft(chunks * self.window, dim=-1)  # (B, frames, bins)
        magnitude = torch.sqrt(spec.real.square() + spec.imag.square() + MAGNITUDE_EPS)
        have = torch.log(torch.clamp(magnitude @ self.basis.T, min=self.cfg.clamp_min))  # (B, frames, n_mels)
        want = self.mel[..., :frames].transpose(1, 2)  # (B, frames, n_mels)
        log_gain = (want - have).clamp(
            -self.max_log_gain, self.max_log_gain
        ) @ self.spread  # (B, frames, bins)
        out = torch.fft.irfft(spec * torch.exp(log_gain), n=n_fft, dim=-1) * self.window  # (B, frames, n_fft)
        length = span.shape[-1]
        ola = nn.functional.fold(out.transpose(1, 2), (1, length), (1, n_fft), stride=(1, hop)).reshape(
            out.shape[0], length
        )  # (B, L)
        norm = self._norms.get(frames)
        if (
            norm is None
        ):  # the summed squared windows of `frames` frames, the same for every chunk of that size
            window_sq = self.window.square()[None, :, None].expand(1, n_fft, frames)
            norm = nn.functional.fold(window_sq, (1, length), (1, n_fft), stride=(1, hop)).reshape(length)
            if frames <= 64:  # streaming chunk sizes; a whole call computes its own once
                self._norms[frames] = norm
        offset = first * hop - self.acc_start
        grow = offset + length - self.acc.shape[-1]
        if grow > 0:
            self.acc = nn.functional.pad(self.acc, (0, grow))
            self.norm = nn.functional.pad(self.norm, (0, grow))
        self.acc[:, offset : offset + length] += ola
        self.norm[offset : offset + length] += norm
        self.frame += frames
        self.mel = self.mel[..., frames:]

    def _emit(self, final_padded: int, total: int | None) -> Tensor:
        """Output samples up to padded position ``final_padded`` (exclusive), then drop what is no longer needed."""
        stop = final_padded - self.left
        if total is not None:
            stop = min(stop, total)
        stop = max(stop, self.emitted)
        lo, hi = self.emitted + self.left - self.acc_start, stop + self.left - self.acc_start
        out = self.acc[:, lo:hi] / self.norm[lo:hi].clamp(min=1e-8)
        self.emitted = stop
        keep = self.frame * self.hop  # later frames start here (padded)
        drop = min(keep, self.emitted + self.left) - self.acc_start
        if drop > 0:
            self.acc, self.norm, self.acc_start = self.acc[:, drop:], self.norm[drop:], self.acc_start + drop
        need = max(0, self.frame * self.hop - self.left)  # the first sample a later frame reads
        if need > self.audio_start:
            self.audio, self.audio_start = self.audio[:, need - self.audio_start :], need
        return out

    def push(self, audio: Tensor, mel: Tensor) -> Tensor:
        self.audio = torch.cat([self.audio, audio.to(self.audio.dtype)], dim=-1)
        self.received += audio.shape[-1]
        self.mel = torch.cat([self.mel, mel.to(self.mel.dtype)], dim=-1)
        # frame t needs padded samples up to t * hop + n_fft; without the right padding that is input
        # sample t * hop + n_fft - left
        ready = (
            (self.received + self.left - self.n_fft) // self.hop + 1
            if self.received >= self.n_fft - self.left
            else 0
        )
        frames = min(ready - self.frame, self.mel.shape[-1])
        self._process(frames, None)
        return self._emit(self.frame * self.hop, None)

    def finish(self) -> Tensor:
        total = self.received
        frames = total // self.hop
        if self.frame + self.mel.shape[-1] != frames:
            raise ValueError(
                f"the waveform has {total} samples, so {frames} mel frames of hop {self.hop}; "
                f"the mel given has {self.frame + self.mel.shape[-1]}"
            )
        if total <= self.left:
            # Too short to reflect-pad like the mel front end: returned unchanged.
            out = self.audio[:, self.emitted - self.audio_start :]
            self.emitted = total
            return out
        self._process(frames - self.frame, total)
        return self._emit(total + self.left, total)


class MelEnvelopeMatch:
    """Streaming mel-envelope matching (module notes): ``push(audio_chunk, mel_chunk)`` returns the samples that
    are final, ``finish()`` the rest; together they equal :func:`match_mel_envelope` on the whole input.

    Args:
        cfg: the mel front end the target mels come from.
        passes: matching passes chained one after another (each holds back about ``n_fft - (n_fft - hop) / 2``
            more samples).
        max_gain_db: the largest boost or cut a band gets in one pass.
        batch_size: parallel streams (``(B, S)`` audio and ``(B, n_mels, F)`` mel chunks).
    """

    def __init__(
        self,
        cfg: MelConfig = MelConfig(),
        passes: int = 1,
        max_gain_db: float = 24.0,
        batch_size: int = 1,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        _check_settings(passes, max_gain_db)
        device = torch.device("cpu") if device is None else torch.device(device)
        self.cfg, self.batch_size = cfg, batch_size
        self._passes = [_Pass(cfg, max_gain_db, batch_size, device, dtype) for _ in range(passes)]
        self._finished = False

    def _check(self, audio: Tensor, mel: Tensor) -> tuple[Tensor, Tensor]:
        if self._finished:
            raise RuntimeError("this MelEnvelopeMatch is finished; start a new one")
        audio = audio.unsqueeze(0) if audio.dim() == 1 else audio
        mel = mel.unsqueeze(0) if mel.dim() == 2 else mel
        if audio.dim() != 2 or audio.shape[0] != self.batch_size:
            raise ValueError(f"audio must be ({self.batch_size}, samples); got shape {tuple(audio.shape)}")
        if mel.dim() != 3 or mel.shape[:2] != (self.batch_size, self.cfg.n_mels):
            raise ValueError(
                f"mel must be ({self.batch_size}, {self.cfg.n_mels}, frames); got shape {tuple(mel.shape)}"
            )
        return audio, mel

    def push(self, audio: Tensor, mel: Tensor) -> Tensor:
        """Feed ``audio (B, S)`` and the mel frames ``(B, n_mels, F)`` that cover it (they may run ahead of or
        behind each other); returns the matched samples that no later input can change, ``(B, S')``."""
        audio, mel = self._check(audio, mel)
        for stage in self._passes:
            audio = stage.push(audio, mel)
        return audio

    def finish(self) -> Tensor:
        """The remaining samples; the stream is then over. ``ValueError`` if the mel frames pushed are not
        ``samples // hop`` (the mel front end's frame count)."""
        if self._finished:
            raise RuntimeError("finish() was already called on this MelEnvelopeMatch")
        self._finished = True
        first = self._passes[0]
        empty_mel = first.mel[..., :0]
        tail = first.finish()
        for stage in self._passes[1:]:
            tail = torch.cat([stage.push(tail, empty_mel), stage.finish()], dim=-1)
        return tail


def match_mel_envelope(
    wav: Tensor,
    mel: Tensor,
    cfg: MelConfig = MelConfig(),
    passes: int = 1,
    max_gain_db: float = 24.0,
) -> Tensor:
    """``wav (B, T)`` or ``(T,)`` whose log-mel is moved toward ``mel (B, n_mels, T // hop)`` by ``passes``
    envelope-matching passes (module notes) -> a waveform of the same shape.

    ``ValueError`` if the frame counts disagree or a setting is out of range.
    """
    squeeze = wav.dim() == 1
    wav2 = wav.unsqueeze(0) if squeeze else wav
    if wav2.dim() != 2 or not wav2.is_floating_point():
        raise ValueError(f"wav must be a float waveform (T,) or (B, T); got {tuple(wav.shape)} {wav.dtype}")
    mel = mel.unsqueeze(0) if mel.dim() == 2 else mel
    if mel.dim() != 3 or mel.shape[1] != cfg.n_mels or mel.shape[0] != wav2.shape[0]:
        raise ValueError(f"mel must be ({wav2.shape[0]}, {cfg.n_mels}, frames); got shape {tuple(mel.shape)}")
    frames = wav2.shape[-1] // cfg.hop_length
    if mel.shape[-1] != frames:
        raise ValueError(
            f"the waveform has {wav2.shape[-1]} samples, so {frames} mel frames of hop {cfg.hop_length}; "
            f"the mel has {mel.shape[-1]}"
        )
    stream = MelEnvelopeMatch(cfg, passes, max_gain_db, wav2.shape[0], wav2.device, wav2.dtype)
    out = torch.cat([stream.push(wav2, mel), stream.finish()], dim=-1)
    return out[0] if squeeze else out
