"""The accelerando Gradio app: Speak, Vocode, Instrument, Notes and Edit tabs.

Each tab's logic lives in a small module of plain functions (``speak``, ``vocoding``,
``instrument``, ``notes``) that raise ``gr.Error`` for bad input; this file only lays out and wires
them. Checkpoints are found at start-up (:func:`~accelerando.demos.checkpoints.discover_checkpoints`);
a tab without its checkpoint shows how to train one instead of failing. Models load lazily, once.

Example::

    from accelerando.demos.app import create_app

    demo = create_app()  # or create_app({"fastpitch": "out/fastpitch", "fregrad": "out/fregrad"})
    demo.launch(server_name="127.0.0.1", server_port=7860, show_error=True)

API names (for ``gradio_client``): ``/speak`` (a generator), ``/vocode``, ``/instrument``, ``/notes``,
``/edit``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any

from accelerando.demos.checkpoints import ModelCache, discover_checkpoints, missing_message
from accelerando.demos.common import LIMITS

__all__ = ["create_app", "launch"]

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

_AUDIO_IN = dict(sources=["upload", "microphone"], type="filepath")

# The Speak tab's "time to first sound at your player": from the click on Speak to the first `playing`
# event of the streamed <audio> in #speak-audio, measured in the page. The server's figure (first audio
# computed) misses what follows: Gradio encodes the chunks to AAC segments of a live HLS playlist
# (one ffmpeg process per stream, started by the first chunk), the page learns the playlist's address
# with the first chunk, and hls.js fetches it, finds it empty or nearly so while the encoder starts,
# and asks again only 1 s later (then 2 s). `js_on_load` runs in the gr.HTML below
# (setting `props.value` re-renders it); the listeners go on the document once, on the capture phase
# since media events do not bubble.
_PLAYER_TIMER_JS = """
const timer = window.accelerandoSpeakTimer || (window.accelerandoSpeakTimer = {});
timer.props = props;
timer.show = (text) => { timer.props.value = text; };
timer.cancel = () => { timer.armed = false; timer.show('–'); };
if (!timer.installed) {
  timer.installed = true;
  document.addEventListener('click', (event) => {
    if (!(event.target instanceof Element) || !event.target.closest('#speak-button')) return;
    const audio = document.querySelector('#speak-audio audio');
    timer.before = audio ? audio.currentSrc : '';
    timer.start = performance.now();
    timer.armed = true;
    timer.show('…');
  }, true);
  document.addEventListener('playing', (event) => {
    const audio = event.target;
    if (!timer.armed || !(audio instanceof HTMLMediaElement) || !audio.closest('#speak-audio')) return;
    if (audio.currentSrc && audio.currentSrc === timer.before) return;  // the previous run's audio
    timer.armed = false;
    timer.ms = Math.round(performance.now() - timer.start);
    timer.show(timer.ms + ' ms');
  }, true);
}
"""
_STATS_WORKING = "**working…**"
_FAILED_JS = """() => {
  if (window.accelerandoSpeakTimer) window.accelerandoSpeakTimer.cancel();
  return '**failed**: no figures for this run (see the error message).';
}"""


def _missing(role: str) -> None:
    import gradio as gr

    gr.Markdown(f"⚠️ {missing_message(role)}", elem_classes=["missing-checkpoint"])


def _load_or_explain(role: str, load: Any) -> Any:
    """``load()``, or None after showing why the checkpoint of ``role`` could not be loaded."""
    import gradio as gr

    try:
        return load()
    except Exception as exc:  # a broken checkpoint disables its tab, not the app
        gr.Markdown(f"⚠️ The {role} checkpoint could not be loaded ({exc.__class__.__name__}: {exc}).")
        return None


def _speak_tab(cache: ModelCache) -> None:
    import gradio as gr

    from accelerando.demos.speak import speak_tab, voices
    from accelerando.demos.vocoding import available_variants, default_variant
    from accelerando.pretrained.defaults import default_voice

    if not cache.has("fastpitch"):
        _missing("fastpitch")
        return
    names = _load_or_explain("fastpitch", lambda: voices(cache))
    if names is None:
        return
    vocoder_names = [v.name for v in available_variants(cache) if v.num_steps != 50]
    default, why = default_variant(cache)  # chosen by the recorded held-out measurements
    with gr.Row():
        with gr.Column():
            text = gr.Textbox(label="Text", lines=3, max_lines=8, placeholder="Type something to say…")
            voice = gr.Dropdown(names, value=default_voice(names), label="Voice")
            speed = gr.Slider(0.5, 2.0, value=1.0, step=0.05, label="Speed")
            vocoder = gr.Dropdown(vocoder_names, value=default.name, label="Vocoder")
            gr.Markdown(f"Default vocoder — {why}", elem_id="speak-default-why")
            button = gr.Button("Speak", variant="primary", elem_id="speak-button")
        with gr.Column():
            audio = gr.Audio(label="Speech", streaming=True, autoplay=True, elem_id="speak-audio")
            gr.HTML(
                "–",
                html_template="Time to first sound at your player: <b>${value}</b>",
                js_on_load=_PLAYER_TIMER_JS,
                elem_id="speak-player",
            )
            stats = gr.Markdown(elem_id="speak-stats")
    # In the browser only: the previous run's figures go at the click (this listener comes first: the
    # page runs a trigger's listeners in order, each to its end), and an error replaces them.
    button.click(None, None, [stats], js=f"() => {_STATS_WORKING!r}", queue=False, api_visibility="private")
    speak = button.click(
        functools.partial(speak_tab, cache=cache),
        [text, voice, speed, vocoder],
        [audio, stats],
        api_name="speak",
        show_progress_on=[audio],  # the stats stay readable, also after an error
    )
    speak.failure(None, None, [stats], js=_FAILED_JS, queue=False, api_visibility="private")


def _vocode_tab(cache: ModelCache) -> None:
    import gradio as gr

    from accelerando.demos.vocoding import METRIC_COLUMNS, available_variants, default_selection, vocode_tab

    variants = available_variants(cache)
    if len(variants) == 1:
        gr.Markdown(
            "Only Griffin-Lim is available. "
            + missing_message("fregrad")
            + " "
            + missing_message("periodwave")
        )
    with gr.Row():
        source = gr.Audio(
            label=f"Speech (≤ {LIMITS.max_audio_seconds:g} s)", elem_id="vocode-source", **_AUDIO_IN
        )
        input_image = gr.Image(label="input mel", type="numpy", interactive=False)
    initial = default_selection(cache)
    selected = gr.CheckboxGroup(
        [v.name for v in variants],
        value=initial,
        label="Vocoders to run" + (" (many-step ones are slow on a CPU)" if cache.device == "cpu" else ""),
    )
    button = gr.Button("Vocode", variant="primary", elem_id="vocode-button")
    audios, images = [], [input_image]
    with gr.Row():
        for i, variant in enumerate(variants):
            with gr.Column(min_width=220):
                visible = variant.name in initial  # an unticked vocoder shows no empty boxes
                audios.append(
                    gr.Audio(
                        label=variant.name, interactive=False, visible=visible, elem_id=f"vocode-audio-{i}"
                    )
                )
                images.append(
                    gr.Image(
                        label=variant.name,
                        type="numpy",
                        interactive=False,
                        visible=visible,
                        elem_id=f"vocode-image-{i}",
                    )  # fmt: skip
                )
    table = gr.Dataframe(headers=METRIC_COLUMNS, label="Against the input", interactive=False)
    summary = gr.Markdown(elem_id="vocode-summary")

    def shown(ticked: list[str] | None) -> tuple[Any, ...]:
        """Show the boxes of the ticked vocoders only (an unticked one would stay empty)."""
        flags = [v.name in (ticked or []) for v in variants]
        return tuple(gr.update(visible=flag) for flag in flags + flags)

    button.click(
        functools.partial(vocode_tab, cache=cache),
        [source, selected],
        [*audios, *images, table, summary],
        api_name="vocode",
    )
    selected.change(shown, [selected], [*audios, *images[1:]], api_visibility="private")


def _instrument_tab(cache: ModelCache) -> None:
    import gradio as gr

    from accelerando.demos.instrument import instrument_tab, instruments

    names = instruments(cache)
    if not names:
        _missing("newt")
        return
    with gr.Row():
        with gr.Column():
            source = gr.Audio(label="A hum or a melody", **_AUDIO_IN)
            instrument = gr.Radio(names, value=names[0], label="Instrument")
            fast = gr.Checkbox(value=False, label="FastNEWT (lookup-table waveshapers)")
            transpose = gr.Slider(-24, 24, value=0, step=1, label="Transpose (semitones)")
            button = gr.Button("Play it", variant="primary", elem_id="instrument-button")
        with gr.Column():
            audio = gr.Audio(label="Instrument", interactive=False)
            plot = gr.Image(label="f0 and loudness", type="numpy", interactive=False)
            summary = gr.Markdown()
    button.click(
        functools.partial(instrument_tab, cache=cache),
        [source, instrument, fast, transpose],
        [audio, plot, summary],
        api_name="instrument",
    )


def _notes_tab(cache: ModelCache) -> None:
    import gradio as gr

    from accelerando.demos.notes import SAMPLERS, instrument_names, notes_tab

    if not cache.has("meldit"):
        _missing("meldit")
        return
    names = _load_or_explain("meldit", lambda: instrument_names(cache))
    if names is None:
        return
    with gr.Row():
        with gr.Column():
            instrument = gr.Dropdown(names, value=names[0], label="Instrument")
            pitch = gr.Slider(21, 108, value=60, step=1, label="Pitch (MIDI)")
            velocity = gr.Slider(1, 127, value=100, step=1, label="Velocity")
            steps = gr.Slider(1, 50, value=16, step=1, label="Steps")
            sampler = gr.Radio(list(SAMPLERS), value="Euler", label="Sampler")
            tome = gr.Slider(0.0, 0.75, value=0.0, step=0.05, label="ToMe ratio (0 = off)")
            fora = gr.Slider(1, 6, value=1, step=1, label="FORA interval, taylor1 forecast (1 = off)")
            sim_label = "One step (SIM)" + ("" if cache.has("meldit_sim") else " — no SIM checkpoint yet")
            one_step = gr.Checkbox(value=False, label=sim_label, interactive=cache.has("meldit_sim"))
            guidance = gr.Slider(1.0, 6.0, value=3.0, step=0.5, label="Guidance scale")
            button = gr.Button("Generate", variant="primary", elem_id="notes-button")
        with gr.Column():
            audio = gr.Audio(label="Note", interactive=False, elem_id="notes-audio")
            image = gr.Image(label="mel", type="numpy", interactive=False)
            summary = gr.Markdown(elem_id="notes-summary")
    button.click(
        functools.partial(notes_tab, cache=cache),
        [instrument, pitch, velocity, steps, sampler, tome, fora, one_step, guidance],
        [audio, image, summary],
        api_name="notes",
    )


def _edit_tab(cache: ModelCache) -> None:
    import gradio as gr

    from accelerando.demos.notes import MAX_EDIT_SECONDS, edit_tab, instrument_names

    if not cache.has("meldit"):
        _missing("meldit")
        return
    names = _load_or_explain("meldit", lambda: instrument_names(cache))
    if names is None:
        return
    with gr.Row():
        with gr.Column():
            source_audio = gr.Audio(label=f"A note (≤ {MAX_EDIT_SECONDS:g} s)", **_AUDIO_IN)
            target = gr.Dropdown(names, value=names[min(1, len(names) - 1)], label="Make it a…")
            source = gr.Dropdown(["", *names], value="", label="It is a… (empty: unknown)")
            pitch = gr.Number(value=0, precision=0, label="MIDI pitch (0 = estimate)")
            steps = gr.Slider(2, 32, value=16, step=1, label="RF-Solver steps")
            inject = gr.Slider(0, 8, value=2, step=1, label="Steps sharing the source's values")
            button = gr.Button("Edit", variant="primary", elem_id="edit-button")
        with gr.Column():
            audio = gr.Audio(label="Edited note", interactive=False)
            with gr.Row():
                before = gr.Image(label="input", type="numpy", interactive=False)
                after = gr.Image(label="edited", type="numpy", interactive=False)
            summary = gr.Markdown()
    button.click(
        functools.partial(edit_tab, cache=cache),
        [source_audio, target, source, pitch, steps, inject],
        [audio, before, after, summary],
        api_name="edit",
    )


def create_app(checkpoints: Mapping[str, Any] | None = None, device: str | None = None) -> Any:
    """Build the Gradio Blocks app.

    Args:
        checkpoints: role → checkpoint folder (roles in :data:`~accelerando.demos.checkpoints.ROLES`;
            ``"newt"`` maps instrument names to folders). None finds the bundled checkpoints.
        device: ``"cpu"`` / ``"cuda"``; None picks the GPU when there is one.
    """
    import gradio as gr

    found = discover_checkpoints() if checkpoints is None else dict(checkpoints)
    cache = ModelCache(found, device=device)
    with gr.Blocks(title="accelerando", analytics_enabled=False) as demo:
        gr.Markdown(
            "# accelerando\nFast generative audio: streaming TTS, diffusion and flow vocoders, "
            f"neural waveshaping, a mel diffusion transformer and its accelerators. Running on **{cache.device}**."
        )
        with gr.Tab("Speak", id="speak"):
            _speak_tab(cache)
        with gr.Tab("Vocode", id="vocode"):
            _vocode_tab(cache)
        with gr.Tab("Instrument", id="instrument"):
            _instrument_tab(cache)
        with gr.Tab("Notes", id="notes"):
            _notes_tab(cache)
        with gr.Tab("Edit", id="edit"):
            _edit_tab(cache)
    demo.accelerando_cache = cache  # for tests and callers that want the loaded models
    return demo


def launch(
    demo: Any, host: str = "127.0.0.1", port: int | None = None, prevent_thread_lock: bool = False
) -> Any:
    """Launch with the app's limits (uploads ≤ ``LIMITS.max_file_mb``), errors shown, no share link."""
    return demo.queue(default_concurrency_limit=1).launch(
        server_name=host,
        server_port=port,
        share=False,
        show_error=True,
        max_file_size=f"{LIMITS.max_file_mb:g}mb",
        prevent_thread_lock=prevent_thread_lock,
        ssr_mode=False,
        quiet=True,
    )
