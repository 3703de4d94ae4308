"""Every ```python block in the README runs as written (each in a fresh namespace)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def _write_tiny_ljspeech(root: Path) -> None:
    """Three short tones as an LJSpeech-style folder (the README's corpus example reads one)."""
    from accelerando.audio import save_audio

    rows, ids = [], []
    for i, freq in enumerate((220.0, 330.0, 440.0)):
        t = np.arange(22050) / 22050
        save_audio(
            root / "wavs" / f"u{i}.wav", (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 22050
        )
        rows.append(f"u{i}|Tone {i}.|Tone {i}.|spk")
        ids.append(f"u{i}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (root / "split.json").write_text(json.dumps({"train": ids, "validation": [], "test": []}))


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, tmp_path, monkeypatch):
    code = BLOCKS[index]
    if "corpora/" in code:
        _write_tiny_ljspeech(tmp_path / "corpora" / "speech")
        monkeypatch.chdir(tmp_path)
    if "127.0.0.1:8000" in code:  # a speech-API client example: serve a tiny engine, point the code at it
        from tts_helpers import LocalVocoder, tiny_fastpitch

        from accelerando.tts import StreamingSynthesizer
        from accelerando.tts.server import BackgroundServer, create_app

        monkeypatch.chdir(tmp_path)
        engine = StreamingSynthesizer(tiny_fastpitch(), LocalVocoder())
        with BackgroundServer(create_app(engine)) as live:
            code = code.replace("http://127.0.0.1:8000", live.url)
            exec(compile(code, f"README.md[python block {index}]", "exec"), {"__name__": "__readme__"})
        assert any(tmp_path.iterdir()), "the client example wrote no file"
        return
    exec(compile(code, f"README.md[python block {index}]", "exec"), {"__name__": "__readme__"})
