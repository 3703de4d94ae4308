"""Streaming speech engine: text → sentences → phonemes → Incremental FastPitch mel chunks → audio.

:class:`StreamingSynthesizer` runs the whole chain in a producer thread per stream and hands
float32 audio chunks to the consumer through a bounded queue, so a slow reader never grows memory
and a reader that goes away (``close()``, ``cancel_event.set()``, garbage collection) stops the
work within one mel chunk.

Seams. The acoustic model streams exactly (its chunked decoder equals the masked whole decode), but
a vocoder run on each chunk alone would click at the borders. :class:`StreamingVocoder` vocodes
every window with ``left_context_frames`` of already emitted mel on the left, holds back
``lookahead_frames`` at the right (emitted once the next chunk has arrived), and cross-fades the
first ``crossfade_frames`` of each new segment with the previous window's prediction of those
frames. For a vocoder whose receptive field is within ``left_context_frames`` to the left and
``lookahead_frames - crossfade_frames`` to the right, the stream equals the whole-utterance
synthesis to float precision; for global or stochastic vocoders (Griffin-Lim, FreGrad) the
cross-fade keeps the seams click-free (``tests/tts/test_tts_engine.py`` checks both). A vocoder that
streams natively (class attribute ``streams_mel = True`` and ``stream(seed=...)`` returning an object with
``push(mel_chunk)`` and ``finish()``, e.g. :class:`accelerando.vocoders.MelNEWT`) carries its own state
from chunk to chunk instead: no window is vocoded twice and the stream equals one whole call exactly.

Example::

    from accelerando.tts import StreamingSynthesizer

    engine = StreamingSynthesizer.from_pretrained()  # the bundled checkpoints
    for chunk in engine.stream("Hello there. How are you?", speed=1.2):  # float32 (samples,)
        play(chunk, engine.sample_rate)
    whole = engine.synthesize("Hello there.")  # the non-incremental reference, float32 (samples,)
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .fastpitch import IncrementalFastPitch
from .frontend import TextFrontend
from .word_timing import WordTiming, sentence_word_timings

__all__ = ["EngineStats", "SpeechStream", "StreamingSynthesizer", "StreamingVocoder", "load_vocoder"]

_DONE = object()


class StreamingVocoder:
    """Vocodes a growing mel stream window by window without seams (see the module docstring).

    Args:
        vocoder: anything with ``synthesize(mel (B, n_mels, frames), num_steps, generator) ->
            (B, frames * hop)`` and a hop length (``hop_length`` or ``config.hop_length``).
        left_context_frames: already emitted frames re-vocoded on the left of each window.
        lookahead_frames: frames at the right of each window held back until the next chunk.
        crossfade_frames: raised-cosine cross-fade length at each seam (<= ``lookahead_frames``).
        num_steps: passed to ``vocoder.synthesize`` (diffusion steps; ignored by Griffin-Lim).
        seed: seeds a fresh generator per window, so the stream is reproducible.
    """

    def __init__(
        self,
        vocoder: Any,
        left_context_frames: int = 16,
        lookahead_frames: int = 8,
        crossfade_frames: int = 4,
        num_steps: int | None = None,
        seed: int = 0,
        renderer: Any = None,
    ) -> None:
        if left_context_frames < 0 or lookahead_frames < 0 or crossfade_frames < 0:
            raise ValueError("left_context_frames, lookahead_frames and crossfade_frames must be >= 0.")
        if crossfade_frames > lookahead_frames:
            raise ValueError(
                f"crossfade_frames ({crossfade_frames}) must not exceed lookahead_frames "
                f"({lookahead_frames}): the cross-fade blends the held-back prediction."
            )
        self.vocoder = vocoder
        self.hop = vocoder_hop_length(vocoder)
        self.left = left_context_frames
        self.lookahead = lookahead_frames
        self.crossfade = crossfade_frames
        self.num_steps = num_steps
        self.seed = seed
        self._mel: torch.Tensor | None = None  # (n_mels, frames kept), frames from self._offset on
        self._offset = 0  # absolute index of self._mel's first frame
        self._frames = 0  # frames pushed so far
        self._emitted = 0  # frames whose audio has been returned
        self._tail = np.zeros(0, dtype=np.float32)  # previous window's audio for frames after _emitted
        self._native = None
        if getattr(vocoder, "streams_mel", False):  # seeded as vocode() seeds a whole call
            extra = {} if renderer is None else {"renderer": renderer}  # e.g. a RenderBatcher's render
            self._native = vocoder.stream(generator=torch.Generator().manual_seed(seed), **extra)

    def vocode(self, mel: torch.Tensor) -> np.ndarray:
        """One vocoder pass: (n_mels, frames) → float32 (frames * hop,)."""
        generator = torch.Generator(device=mel.device).manual_seed(self.seed)
        with torch.inference_mode():
            wav = self.vocoder.synthesize(mel[None], num_steps=self.num_steps, generator=generator)
        return wav[0].detach().float().cpu().numpy()

    def push(self, mel_chunk: torch.Tensor) -> np.ndarray:
        """Add mel frames (n_mels, frames) or (1, n_mels, frames); return newly final audio (maybe empty)."""
        if mel_chunk.dim() == 3:
            mel_chunk = mel_chunk[0]
        if self._native is not None:  # the vocoder carries its own state: exact, no re-vocoding
            self._frames += mel_chunk.shape[1]
            return self._native.push(mel_chunk[None])[0].detach().float().cpu().numpy()
        self._mel = mel_chunk if self._mel is None else torch.cat([self._mel, mel_chunk], dim=1)
        self._frames += mel_chunk.shape[1]
        target = self._frames - self.lookahead
        if target - self._emitted < max(self.crossfade, 1):
            return np.zeros(0, dtype=np.float32)
        return self._emit(target)

    def finish(self) -> np.ndarray:
        """Emit everything still held back; the stream is over."""
        if self._native is not None:
            if self._frames == 0:
                return np.zeros(0, dtype=np.float32)
            return self._native.finish()[0].detach().float().cpu().numpy()
        if self._mel is None or self._emitted >= self._frames:
            return np.zeros(0, dtype=np.float32)
        return self._emit(self._frames)

    def _emit(self, target: int) -> np.ndarray:
        assert self._mel is not None
        start = max(0, self._emitted - self.left)
        window = self._mel[:, start - self._offset :]  # frames [start, self._frames)
        wav = self.vocode(window)
        hop = self.hop
        segment = wav[(self._emitted - start) * hop : (target - start) * hop].copy()
        n = min(len(self._tail), len(segment))
        if n:
            fade = (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)
            segment[:n] = self._tail[:n] * (1.0 - fade) + segment[:n] * fade
        self._tail = wav[(target - start) * hop : (target - start + self.crossfade) * hop].copy()
        self._emitted = target
        keep_from = max(0, target - self.left)  # drop mel no later window will need
        self._mel = self._mel[:, keep_from - self._offset :]
        self._offset = keep_from
        return segment


def vocoder_hop_length(vocoder: Any) -> int:
    """Samples per mel frame: the ``hop_length`` of the mel-vocoder contract (:mod:`accelerando.vocoders.contract`)."""
    hop = getattr(vocoder, "hop_length", None)
    if hop is None:
        raise ValueError(
            f"{type(vocoder).__name__} has no hop_length, so it does not implement the mel-vocoder contract "
            "(accelerando.vocoders.contract.MelVocoder: sample_rate, hop_length, synthesize(mel, ...))."
        )
    return int(hop)


@dataclass
class EngineStats:
    """Counters of a :class:`StreamingSynthesizer` (a snapshot; see ``engine.stats``)."""

    streams_started: int = 0
    streams_completed: int = 0
    streams_cancelled: int = 0
    streams_failed: int = 0
    active_streams: int = 0
    chunks_produced: int = 0  # audio chunks handed to consumers' queues
    mel_chunks_decoded: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class SpeechStream:
    """Iterator over float32 audio chunks of one utterance, fed by a producer thread.

    Closing it (``close()``, leaving a ``with`` block, garbage collection) or setting the
    ``cancel_event`` it was made with stops the producer within one chunk. Safe to close from any
    thread, also while another thread waits in ``next()``.
    """

    def __init__(
        self,
        queue_: queue.Queue,
        cancel_event: threading.Event,
        thread: threading.Thread,
        words: list[WordTiming] | None = None,
    ) -> None:
        self._queue = queue_
        self.cancel_event = cancel_event
        self._thread = thread
        self._finished = False
        self.words: list[WordTiming] = words if words is not None else []
        self._words_taken = 0

    def take_words(self) -> list[WordTiming]:
        """Word timings announced since the last call (each sentence's words as soon as it is encoded,
        before its audio): :class:`~accelerando.tts.word_timing.WordTiming` in seconds of the output."""
        count = len(self.words)
        new = self.words[self._words_taken : count]
        self._words_taken = count
        return new

    def __iter__(self) -> SpeechStream:
        return self

    def __next__(self) -> np.ndarray:
        while not self._finished:
            if self.cancel_event.is_set():
                self._finished = True
                break
            try:
                item = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            if item is _DONE:
                self._finished = True
                break
            if isinstance(item, BaseException):
                self._finished = True
                raise item
            return item
        raise StopIteration

    def close(self) -> None:
        """Stop generation (idempotent)."""
        self.cancel_event.set()
        self._finished = True

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the producer thread to end; True when it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def __enter__(self) -> SpeechStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.cancel_event.set()


class StreamingSynthesizer:
    """Text → streamed float32 speech with Incremental FastPitch and any mel vocoder.

    Args:
        acoustic: an :class:`IncrementalFastPitch` (put in eval mode here).
        vocoder: a mel vocoder (``FreGrad``, ``GriffinLim``, ...), see :class:`StreamingVocoder`.
        frontend: the text front end; defaults to ``acoustic.text_frontend()``.
        sample_rate: output rate; defaults to the vocoder's ``sample_rate`` (22050).
        vocoder_steps: ``num_steps`` for diffusion vocoders (None: the vocoder's default).
        left_context_frames, lookahead_frames, crossfade_frames: seam handling, see
            :class:`StreamingVocoder`.
        chunk_size, past_size: decoder chunk ``S_c`` and cached past ``S_p`` (None: model config).
        queue_size: audio chunks a stream may buffer ahead of its reader.
        seed: vocoder noise seed (reproducible output).
        incremental: False makes :meth:`stream` yield the whole utterance as one chunk (full
            decode + one vocoder pass): the non-streaming baseline of benchmarks.
        batch_window_ms: dynamic batching of concurrent streams' vocoder blocks
            (:class:`~accelerando.tts.batching.RenderBatcher`, for a vocoder that streams its own state:
            MelNEWT): how long a block waits for the other streams'; 0 (default) is off. Batching changes the
            speed, not the audio. Off by default: on the 2-core CPU measured it raised the throughput at 8
            streams (52 vs 42 audio-s/s) but lowered it at 4 (50 vs 57) (``benchmarks/speech_server.py``).
    """

    def __init__(
        self,
        acoustic: IncrementalFastPitch,
        vocoder: Any,
        frontend: TextFrontend | None = None,
        sample_rate: int | None = None,
        vocoder_steps: int | None = None,
        left_context_frames: int = 16,
        lookahead_frames: int = 8,
        crossfade_frames: int = 4,
        chunk_size: int | None = None,
        past_size: int | None = None,
        queue_size: int = 4,
        seed: int = 0,
        incremental: bool = True,
        batch_window_ms: float = 0.0,
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}.")
        native = getattr(vocoder, "streams_mel", False) and hasattr(vocoder, "render")
        if batch_window_ms < 0 or (batch_window_ms > 0 and not native):
            raise ValueError(
                f"batch_window_ms={batch_window_ms!r}: needs a number >= 0, and batching needs a vocoder that "
                f"streams its own state (MelNEWT); {type(vocoder).__name__} does not (pass 0)."
            )
        self.batcher = None
        if batch_window_ms > 0:
            from .batching import RenderBatcher

            self.batcher = RenderBatcher(vocoder, window_s=batch_window_ms / 1000)
        self.acoustic = acoustic.eval()
        self.vocoder = vocoder
        self.frontend = frontend if frontend is not None else acoustic.text_frontend()
        rate = sample_rate or getattr(getattr(vocoder, "config", None), "sample_rate", None)
        rate = rate or getattr(vocoder, "sample_rate", None)
        self.sample_rate = int(rate or 22050)
        self.hop_length = vocoder_hop_length(vocoder)
        self.vocoder_steps = vocoder_steps
        self.seam = dict(
            left_context_frames=left_context_frames,
            lookahead_frames=lookahead_frames,
            crossfade_frames=crossfade_frames,
        )
        StreamingVocoder(vocoder, **self.seam)  # checks the seam settings now, not in a thread
        self.chunk_size = chunk_size
        self.past_size = past_size
        self.queue_size = queue_size
        self.seed = seed
        self.incremental = incremental
        self._stats = EngineStats()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls, path: str | Path | None = None, vocoder: Any = None, **kwargs: Any
    ) -> StreamingSynthesizer:
        """Load an Incremental FastPitch folder (default: the bundled ``fastpitch-*``) and a vocoder.

        ``vocoder`` is a vocoder object, ``"griffin-lim"``, a checkpoint folder or a bundled name;
        None takes the default chosen by measurement (:func:`load_vocoder`; Griffin-Lim unless a bundled
        vocoder beats it on the recorded held-out evaluation). Missing bundled
        checkpoints raise ``FileNotFoundError`` naming what is missing and how to pass your own.
        """
        from accelerando.pretrained import list_pretrained, pretrained_path

        bundled = list_pretrained()
        if path is None:
            names = [n for n in bundled if n.startswith("fastpitch")]
            if not names:
                raise FileNotFoundError(
                    "No bundled Incremental FastPitch checkpoint (accelerando/pretrained/fastpitch-*) "
                    f"is installed (bundled: {', '.join(bundled) or 'none yet'}); pass a folder saved "
                    "with IncrementalFastPitch.save_pretrained as `path` (or --model)."
                )
            path = pretrained_path(names[0])
        from accelerando.pretrained.loading import load

        acoustic = load(path, expect=("IncrementalFastPitch",))
        return cls(acoustic, load_vocoder(vocoder), **kwargs)

    # ------------------------------------------------------------------ public API
    @property
    def voices(self) -> list[str]:
        """Voice names (the model's ``speakers``, else ``speaker_0`` ... ``speaker_{n-1}``)."""
        names = self.acoustic.config.speakers
        return list(names) if names else [f"speaker_{i}" for i in range(self.acoustic.config.n_speakers)]

    @property
    def stats(self) -> EngineStats:
        """A snapshot of the engine's counters."""
        with self._lock:
            return EngineStats(**asdict(self._stats))

    @property
    def default_voice(self) -> str:
        """The voice used when none is asked for: the one with the best recorded intelligibility (WER) among
        :attr:`voices` (:func:`accelerando.pretrained.defaults.default_voice`), else the first."""
        from accelerando.pretrained.defaults import default_voice

        return default_voice(self.voices) or self.voices[0]

    def speaker_index(self, voice: str | int | None) -> int:
        """Speaker id for a voice name or id (None: :attr:`default_voice`); ``ValueError`` if unknown."""
        if voice is None:
            voice = self.default_voice
        if isinstance(voice, str) and voice not in self.voices:
            raise ValueError(f"Unknown voice {voice!r}; available voices: {', '.join(self.voices)}.")
        if isinstance(voice, str):
            return self.voices.index(voice)
        return self.acoustic.speaker_id(int(voice))

    def prepare(self, text: str, voice: str | int | None = None, speed: float = 1.0) -> list[str]:
        """Check the request and split it into sentences; ``ValueError`` names any bad value."""
        if not isinstance(speed, (int, float)) or not math.isfinite(speed) or speed <= 0:
            raise ValueError(f"speed must be a positive number, got {speed!r}.")
        self.speaker_index(voice)
        sentences = self.frontend.split_sentences(text)
        if not sentences:
            raise ValueError(f"Text {text[:80]!r} has no words to speak.")
        return sentences

    def stream(
        self,
        text: str,
        voice: str | int | None = None,
        speed: float = 1.0,
        cancel_event: threading.Event | None = None,
    ) -> SpeechStream:
        """Start synthesis now and return an iterator of float32 chunks at :attr:`sample_rate`.

        Bad text / voice / speed raise ``ValueError`` here, before any thread starts. ``speed``
        is FastPitch's pace (2.0 speaks twice as fast).
        """
        sentences = self.prepare(text, voice, speed)
        speaker = self.speaker_index(voice)
        cancel = cancel_event if cancel_event is not None else threading.Event()
        out: queue.Queue = queue.Queue(maxsize=self.queue_size)
        words: list[WordTiming] = []
        thread = threading.Thread(
            target=self._produce, args=(sentences, speaker, float(speed), out, cancel, words), daemon=True
        )
        with self._lock:
            self._stats.streams_started += 1
            self._stats.active_streams += 1
        thread.start()
        return SpeechStream(out, cancel, thread, words)

    def synthesize(self, text: str, voice: str | int | None = None, speed: float = 1.0) -> np.ndarray:
        """Whole-utterance reference: full (masked) decode of every sentence, one vocoder pass."""
        return self._whole(self.prepare(text, voice, speed), self.speaker_index(voice), speed)

    def word_timings(self, text: str, voice: str | int | None = None, speed: float = 1.0) -> list[WordTiming]:
        """Each word's start and end (seconds) in the audio that :meth:`stream` / :meth:`synthesize` make."""
        words: list[WordTiming] = []
        frame = 0
        for sentence in self.prepare(text, voice, speed):
            frame += self._sentence_frames(sentence, self.speaker_index(voice), speed, words, frame)[1]
        return words

    def _sentence_frames(
        self, sentence: str, speaker: int, speed: float, words: list[WordTiming], frame: int
    ) -> tuple[Any, int]:
        """``(encoder output or None, frames)`` of one sentence; its word timings go to ``words``."""
        enc = self._encode(sentence, speaker, speed)
        if enc is None:
            return None, 0
        ids, enc = enc
        length = int(enc.lengths[0])
        words.extend(
            sentence_word_timings(
                self.frontend,
                sentence,
                ids,
                enc.durations[0].tolist(),
                frame,
                self.sample_rate / self.hop_length,
            )
        )
        return enc, length

    def _whole(
        self, sentences: list[str], speaker: int, speed: float, words: list[WordTiming] | None = None
    ) -> np.ndarray:
        mels: list[torch.Tensor] = []
        frame = 0
        words = [] if words is None else words
        for sentence in sentences:
            enc, length = self._sentence_frames(sentence, speaker, speed, words, frame)
            frame += length
            if enc is None:
                continue
            with torch.inference_mode():
                mel = self.acoustic.decode_full_masked(
                    enc, chunk_size=self.chunk_size, past_size=self.past_size
                )
            mels.append(mel[0, :, : int(enc.lengths[0])])
        if not mels:
            raise ValueError("The text produced no phonemes to speak.")
        return StreamingVocoder(self.vocoder, num_steps=self.vocoder_steps, seed=self.seed).vocode(
            torch.cat(mels, dim=1)
        )

    # ------------------------------------------------------------------ producer
    def _encode(self, sentence: str, speaker: int, speed: float) -> tuple[list[int], Any] | None:
        try:
            ids = self.frontend.encode(sentence)
        except ValueError:
            return None  # nothing speakable in this sentence (e.g. only symbols): skip it
        return ids, self.acoustic.encode(torch.tensor([ids]), speaker=speaker, pace=speed)

    def _put(self, out: queue.Queue, item: Any, cancel: threading.Event) -> bool:
        """Blocking put that gives up when the stream is cancelled (bounded memory)."""
        while not cancel.is_set():
            try:
                out.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _produce(
        self,
        sentences: list[str],
        speaker: int,
        speed: float,
        out: queue.Queue,
        cancel: threading.Event,
        words: list[WordTiming],
    ) -> None:
        outcome = "completed"
        try:
            if not self.incremental:
                if self._deliver(out, self._whole(sentences, speaker, speed, words), cancel):
                    self._put(out, _DONE, cancel)
                else:
                    outcome = "cancelled"
                return
            with self.batcher.active() if self.batcher is not None else contextlib.nullcontext():
                renderer = None if self.batcher is None else self.batcher.render
                voc = StreamingVocoder(
                    self.vocoder, **self.seam, num_steps=self.vocoder_steps, seed=self.seed, renderer=renderer
                )
                pushed = False
                frame = 0
                for sentence in sentences:
                    if cancel.is_set():
                        break
                    enc, length = self._sentence_frames(sentence, speaker, speed, words, frame)
                    frame += length
                    if enc is None:
                        continue
                    done = 0
                    for mel in self.acoustic.decode_chunks(
                        enc, chunk_size=self.chunk_size, past_size=self.past_size
                    ):
                        if cancel.is_set():
                            break
                        mel = mel[:, :, : max(0, length - done)]
                        done += mel.shape[2]
                        with self._lock:
                            self._stats.mel_chunks_decoded += 1
                        audio = voc.push(mel)
                        pushed = True
                        if audio.size and not self._deliver(out, audio, cancel):
                            break
                if not cancel.is_set():
                    if not pushed:
                        raise ValueError("The text produced no phonemes to speak.")
                    tail = voc.finish()
                    if tail.size:
                        self._deliver(out, tail, cancel)
            if cancel.is_set():
                outcome = "cancelled"
            else:
                self._put(out, _DONE, cancel)
        except Exception as err:  # handed to the consumer, raised from next()
            outcome = "failed"
            self._put(out, err, cancel)
        finally:
            with self._lock:
                self._stats.active_streams -= 1
                setattr(self._stats, f"streams_{outcome}", getattr(self._stats, f"streams_{outcome}") + 1)

    def _deliver(self, out: queue.Queue, audio: np.ndarray, cancel: threading.Event) -> bool:
        if not self._put(out, audio.astype(np.float32, copy=False), cancel):
            return False
        with self._lock:
            self._stats.chunks_produced += 1
        return True


def load_vocoder(vocoder: Any = None) -> Any:
    """A vocoder object from an object, ``"griffin-lim"``, a checkpoint folder or a bundled name.

    None takes the default chosen by measurement (:func:`accelerando.pretrained.defaults.default_vocoder`):
    the best bundled vocoder that beats Griffin-Lim on the recorded held-out evaluation, else Griffin-Lim.
    Names and folders go through the one loader (:func:`accelerando.pretrained.loading.load_mel_vocoder`).
    """
    from accelerando.pretrained.loading import load_mel_vocoder

    if vocoder is not None and not isinstance(vocoder, (str, Path)):
        return vocoder
    return load_mel_vocoder(vocoder)
