"""Batch synthesis of a text file across 2 CPU processes with accelerate launch (real subprocesses)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from tts_helpers import tiny_fastpitch

from accelerando.tts import StreamingSynthesizer
from accelerando.tts.batch import read_lines
from accelerando.vocoders import GriffinLim

LINES = ["Hello there.", "", "A second line.", "The third one is here.", "Four."]


@pytest.mark.slow
def test_two_processes_split_the_lines_and_match_one_process(tmp_path) -> None:
    model = tmp_path / "fastpitch"
    tiny_fastpitch().save_pretrained(model)
    texts = tmp_path / "lines.txt"
    texts.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as sock:  # a free port: other test runs may share this machine
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    # --multi_gpu on a machine without GPUs starts a CPU (gloo) process group, as in tests/training
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", port,
               "-m", "accelerando.tts.batch", "--texts", str(texts), "--out_dir", str(out),
               "--model", str(model), "--vocoder", "griffin-lim", "--voice", "bob"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 processes" in result.stdout
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rows] == [1, 3, 4, 5] and [r["text"] for r in rows] == [t for t in LINES if t]
    assert sorted(p.name for p in out.iterdir()) == ["00001.wav", "00003.wav", "00004.wav", "00005.wav",
                                                     "manifest.jsonl"]  # fmt: skip
    engine = StreamingSynthesizer(tiny_fastpitch(), GriffinLim())
    for row in rows:
        audio, sr = sf.read(out / row["file"], dtype="float32")
        expected = engine.synthesize(row["text"], voice="bob")
        assert (
            sr == 22050
            and audio.shape == expected.shape
            and row["seconds"] == pytest.approx(len(audio) / sr, abs=1e-3)
        )
        # 16-bit files; Griffin-Lim iterates float rounding
        np.testing.assert_allclose(audio, np.clip(expected, -1, 1), atol=2e-3)


def test_read_lines_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing.txt"):
        read_lines(tmp_path / "nothing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(ValueError, match="no non-empty line"):
        read_lines(empty)
