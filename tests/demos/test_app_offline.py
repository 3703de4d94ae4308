"""The app without a server: checkpoint discovery, tabs degrading without checkpoints, limits, the CLI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from demo_models import write_tone

from accelerando.demos.checkpoints import ModelCache, discover_checkpoints, missing_message
from accelerando.demos.common import Limits, load_input_audio


def _markdown_texts(demo) -> list[str]:
    return [
        c.get("props", {}).get("value") or ""
        for c in demo.config["components"]
        if c.get("type") == "markdown"
    ]


def test_discover_finds_roles_by_name_and_class(tmp_path: Path) -> None:
    for name, cls in [("fastpitch-speech", "IncrementalFastPitch"), ("periodwave-speech", "PeriodWaveTurbo"),
                      ("newt-flute", "NEWT"), ("note-classifier", "NoteClassifier")]:  # fmt: skip
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps({"_class_name": cls}))
    (tmp_path / "meldit-notes").mkdir()
    (tmp_path / "meldit-notes" / "model_index.json").write_text("{}")
    (tmp_path / "fregrad-speech").mkdir()  # still training: no config.json yet
    found = discover_checkpoints(tmp_path)
    assert found == {
        "fastpitch": tmp_path / "fastpitch-speech",
        "periodwave_turbo": tmp_path / "periodwave-speech",
        "newt": {"flute": tmp_path / "newt-flute"},
        "meldit": tmp_path / "meldit-notes",
    }


def test_without_checkpoints_every_tab_explains_what_is_missing() -> None:
    from accelerando.demos.app import create_app

    demo = create_app({}, device="cpu")
    text = "\n".join(_markdown_texts(demo))
    for role in ("fastpitch", "newt", "meldit", "fregrad"):
        assert missing_message(role) in text
    assert "accelerando train fastpitch" in text
    api = {dep.get("api_name") for dep in demo.config["dependencies"]}
    assert "vocode" in api and not api & {"speak", "instrument", "notes", "edit"}  # Griffin-Lim needs nothing


def test_griffin_lim_vocodes_without_checkpoints(tmp_path: Path) -> None:
    from accelerando.demos.vocoding import vocode_all

    audios, images, rows, summary = vocode_all(
        str(write_tone(tmp_path / "t.wav")), None, ModelCache({}, "cpu")
    )
    assert len(audios) == 1 and audios[0][1].dtype.name == "int16" and len(images) == 2
    assert rows[0][0] == "Griffin-Lim"


def test_speak_rejects_empty_text_before_loading_anything() -> None:
    from accelerando.demos.speak import speak_stream

    with pytest.raises(ValueError, match="type some text"):
        next(speak_stream("   ", None, 1.0, "Griffin-Lim", ModelCache({}, "cpu")))


def test_speak_sends_the_first_chunks_at_once_then_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The player can only start on what it has: the first EARLY_CHUNKS engine chunks go out as they
    come, then about CHUNK_SECONDS at a time; the stats say what the server measured, and only that."""
    import numpy as np

    from accelerando.demos import speak

    sr, chunk = 100, 35  # engine chunks of 0.35 s

    class Stream:
        closed = False

        def __iter__(self):
            return iter([np.full(chunk, 0.1, dtype=np.float32)] * 8)

        def close(self) -> None:
            Stream.closed = True

    class Engine:
        voices = ["ana"]
        sample_rate = sr

        def stream(self, text, voice=None, speed=1.0):
            return Stream()

    monkeypatch.setattr(speak, "load_engine", lambda name, cache: Engine())
    out = list(speak.speak_stream("Hello.", "ana", 1.0, "Griffin-Lim", ModelCache({}, "cpu")))
    sizes = [len(audio) for (_, audio), _ in out]
    assert sizes[: speak.EARLY_CHUNKS] == [chunk] * speak.EARLY_CHUNKS
    assert all(size >= speak.CHUNK_SECONDS * sr for size in sizes[speak.EARLY_CHUNKS : -1])
    assert 8 * chunk <= sum(sizes) <= 8 * chunk + 1 and Stream.closed  # + the final stats' silent tail
    assert all("streaming" in stats for _, stats in out[:-1]) and "done" in out[-1][1]
    assert "first audio computed on the server after" in out[-1][1] and "audio: 2.80 s" in out[-1][1]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: None, "upload or record"),
        (lambda d: (d / "a.txt").write_text("x") and d / "a.txt", "Unsupported file type '.txt'"),
        (lambda d: (d / "a.wav").write_bytes(b"RIFF nonsense") and d / "a.wav", "Could not read a.wav"),
        (lambda d: write_tone(d / "big.wav", seconds=2.0), "the limit is 0.01 MB"),
        (lambda d: write_tone(d / "long.wav", seconds=1.5, sr=8000), "the limit is 1 s"),
    ],
)
def test_input_limits_have_clear_messages(tmp_path: Path, make, message: str) -> None:
    limits = Limits(
        max_file_mb=0.01 if "big" in message or "0.01" in message else 10.0, max_audio_seconds=1.0
    )
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_input_audio(make(tmp_path), 22050, limits)


def test_user_errors_hide_tracebacks() -> None:
    import gradio as gr

    from accelerando.demos.common import user_errors

    @user_errors
    def broken() -> None:
        raise KeyError("boom")

    with pytest.raises(gr.Error, match="Internal error in broken .*see the server log"):
        broken()


def test_demo_command_reads_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    import accelerando.demos.app as app
    from accelerando.cli import build_parser

    seen: dict = {}
    monkeypatch.setattr(app, "create_app", lambda device=None: "demo")
    monkeypatch.setattr(app, "launch", lambda demo, host, port: seen.update(host=host, port=port))
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "8123")
    args = build_parser().parse_args(["demo"])
    assert args.func(args) == 0 and seen == {"host": "0.0.0.0", "port": 8123}
    args = build_parser().parse_args(["demo", "--host", "127.0.0.1", "--port", "9000"])
    assert args.func(args) == 0 and seen == {"host": "127.0.0.1", "port": 9000}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--share"])
    bad = argparse.Namespace(host=None, port="http", device=None)
    from accelerando.commands.demo import run

    with pytest.raises(ValueError, match="port must be a number"):
        run(bad)
