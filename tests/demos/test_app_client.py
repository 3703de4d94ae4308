"""Every tab's endpoint through gradio_client: valid audio / images for good input, a clear error for bad."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from demo_models import write_tone
from gradio_client import handle_file
from gradio_client.exceptions import AppError


def _audio(path: str | dict) -> tuple[np.ndarray, int]:
    path = path["path"] if isinstance(path, dict) else path
    data, sr = sf.read(path) if not str(path).endswith((".mp3", ".aac", ".ts")) else _decode(path)
    assert data.size > 0 and np.isfinite(data).all()
    return data, sr


def _decode(path: str) -> tuple[np.ndarray, int]:
    import librosa

    data, sr = librosa.load(path, sr=None)
    return data, sr


def _image(path: str | dict) -> None:
    from PIL import Image

    path = path["path"] if isinstance(path, dict) else path
    with Image.open(path) as img:
        assert img.size[0] > 50 and img.size[1] > 50


def _error(excinfo: pytest.ExceptionInfo) -> str:
    return str(excinfo.value)


def _playlist_seconds(path: str) -> float:
    """Total duration of a streamed-audio HLS playlist (Gradio 6 streams audio as ~1 s AAC segments)."""
    lines = Path(path).read_text().splitlines()
    assert lines[0] == "#EXTM3U" and "#EXT-X-ENDLIST" in lines
    segments = [float(line.split(":")[1].rstrip(",")) for line in lines if line.startswith("#EXTINF:")]
    assert segments and all(s > 0 for s in segments)
    return sum(segments)


def test_speak_streams_audio_with_stats(client) -> None:
    job = client.submit(
        "Hello there. How are you today? I am fine.", "bob", 1.0, "FreGrad (2 steps)", api_name="/speak"
    )
    audio, stats = job.result(timeout=120)
    assert "first audio computed on the server" in stats and "RTF" in stats and "done" in stats
    outputs = job.outputs()
    assert len(outputs) >= 2  # streamed in about one-second chunks, then the final stats
    assert all("streaming" in o[1] for o in outputs[:-1])
    spoken = float(stats.split("· audio: ")[1].split(" s")[0])
    assert abs(_playlist_seconds(audio) - spoken) < 0.1 * len(outputs) + 0.1


@pytest.mark.parametrize(
    ("text", "voice", "speed", "message"),
    [
        ("", "ana", 1.0, "type some text"),
        ("x" * 1001, "ana", 1.0, "limit is 1000"),
        ("Hello.", "ana", 9.0, "maximum value 2.0"),  # the slider's own check
    ],
)
def test_speak_bad_input_is_a_clear_error(client, text, voice, speed, message) -> None:
    with pytest.raises(AppError) as excinfo:
        client.submit(text, voice, speed, "Griffin-Lim", api_name="/speak").result(timeout=60)
    assert message in _error(excinfo)


def test_vocode_returns_audio_images_and_metrics(client, tone: Path) -> None:
    out = client.predict(handle_file(str(tone)), ["FreGrad (2 steps)", "Griffin-Lim"], api_name="/vocode")
    audios, images, table, summary = out[:6], out[6:13], out[13], out[14]
    ran = [a for a in audios if a]
    assert len(ran) == 2
    for audio in ran:
        _audio(audio)
    for image in [i for i in images if i]:
        _image(image)
    assert len([i for i in images if i]) == 3  # the input and the two vocoders
    assert len(table["data"]) == 2 and "2 vocoders" in summary


def test_vocode_rejects_unsupported_and_too_long_files(client, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not audio")
    with pytest.raises(AppError) as excinfo:
        client.predict(handle_file(str(text)), ["Griffin-Lim"], api_name="/vocode")
    assert (
        "upload audio as" in _error(excinfo) or "Unsupported" in _error(excinfo) or "file" in _error(excinfo)
    )
    long = write_tone(tmp_path / "long.wav", seconds=21.0, sr=8000)
    with pytest.raises(AppError) as excinfo:
        client.predict(handle_file(str(long)), ["Griffin-Lim"], api_name="/vocode")
    assert "limit is 20 s" in _error(excinfo)


def test_vocode_without_audio_asks_for_some(client) -> None:
    with pytest.raises(AppError) as excinfo:
        client.predict(None, ["Griffin-Lim"], api_name="/vocode")
    assert "upload or record" in _error(excinfo)


def test_instrument_renders_the_melody(client, tone: Path) -> None:
    audio, plot, summary = client.predict(handle_file(str(tone)), "violin", True, 0, api_name="/instrument")
    data, sr = _audio(audio)
    assert sr == 8000 and len(data) > 0.5 * sr
    _image(plot)
    assert "FastNEWT" in summary


def test_instrument_silence_is_a_clear_error(client, tmp_path: Path) -> None:
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(8000, dtype=np.float32), 8000)
    with pytest.raises(AppError) as excinfo:
        client.predict(handle_file(str(silent)), "violin", False, 0, api_name="/instrument")
    assert "silent" in _error(excinfo)


def test_notes_reports_time_and_speedup(client) -> None:
    audio, image, summary = client.predict(
        "Acoustic Grand Piano", 60, 100, 4, "RF-Solver", 0.5, 2, False, 3.0, api_name="/notes"
    )
    _audio(audio)
    _image(image)
    assert "speedup" in summary and "RF-Solver" in summary and "ToMe 0.5" in summary
    audio, _, summary = client.predict(
        "Acoustic Grand Piano", 60, 100, 4, "Euler", 0.0, 1, True, 1.0, api_name="/notes"
    )
    _audio(audio)
    assert "SIM one-step" in summary


def test_notes_plain_run_is_run_and_timed_once_per_setting(client) -> None:
    _, _, first = client.predict(
        "Acoustic Grand Piano", 62, 100, 4, "Euler", 0.0, 1, False, 1.0, api_name="/notes"
    )
    assert "this *is* the plain run" in first and "speedup" not in first  # no speedup against itself
    plain = re.search(r"timed once per setting: ([0-9.]+) s", first).group(1)
    _, _, second = client.predict(
        "Acoustic Grand Piano", 62, 100, 4, "Euler", 0.0, 2, False, 1.0, api_name="/notes"
    )
    assert f"timed once per setting) {plain} s" in second and "speedup" in second  # the cached baseline


def test_notes_unknown_instrument_is_an_error(client) -> None:
    with pytest.raises(AppError) as excinfo:
        client.predict("Kazoo", 60, 100, 4, "Euler", 0.0, 1, False, 1.0, api_name="/notes")
    assert "Kazoo" in _error(excinfo)
    with pytest.raises(AppError) as excinfo:  # a GM program the checkpoint never saw in training
        client.predict("Honky-tonk Piano", 60, 100, 4, "Euler", 0.0, 1, False, 1.0, api_name="/notes")
    assert "Honky-tonk Piano" in _error(excinfo)  # the dropdown offers the trained programs only:
    assert "['Acoustic Grand Piano', 'Bright Acoustic Piano', 'Electric Piano 1']" in _error(excinfo)


def test_edit_changes_the_instrument(client, tone: Path) -> None:
    audio, before, after, summary = client.predict(
        handle_file(str(tone)), "Bright Acoustic Piano", "", 57, 4, 1, api_name="/edit"
    )
    data, sr = _audio(audio)
    assert abs(len(data) / sr - 0.8) < 0.05  # the input's length
    _image(before)
    _image(after)
    assert "Bright Acoustic Piano" in summary


def test_edit_rejects_a_long_recording(client, tmp_path: Path) -> None:
    long = write_tone(tmp_path / "long.wav", seconds=7.0, sr=8000)
    with pytest.raises(AppError) as excinfo:
        client.predict(handle_file(str(long)), "Bright Acoustic Piano", "", 57, 4, 1, api_name="/edit")
    assert "limit is 6 s" in _error(excinfo)
