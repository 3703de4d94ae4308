"""The speech corpus builder: layout, split, resume, interrupted builds and clear errors."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import soundfile as sf

from accelerando.data import _build, speech_corpus
from accelerando.data.speech_corpus import build_speech_corpus
from accelerando.data.text_source import is_clean_sentence, load_sentences, normalize_text, number_to_words

needs_voices = pytest.mark.skipif(
    # Under CI (`make test` installs the packages) a missing package must fail, never skip.
    not os.environ.get("CI") and (shutil.which("text2wave") is None or shutil.which("espeak-ng") is None),
    reason="festival / espeak-ng not installed (make system-deps)",
)
VOICES = "kal,espeak-en-us"
HOURS = 0.003  # about 11 s of speech: four or five utterances


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("speech")
    marker = build_speech_corpus(out, hours=HOURS, voices=VOICES, seed=3, jobs=2, show_progress=False)
    return out, marker


@needs_voices
def test_layout_audio_and_metadata(corpus):
    out, marker = corpus
    assert marker["complete"] and marker["made_now"] == marker["num_utterances"] >= 3
    assert marker["hours"] * 3600 >= HOURS * 3600
    rows = [line.split("|") for line in (out / "metadata.csv").read_text().splitlines()]
    assert all(len(r) == 4 for r in rows)
    assert {r[3] for r in rows} == {"kal", "espeak-en-us"}
    assert sorted(p.stem for p in (out / "wavs").glob("*.wav")) == sorted(r[0] for r in rows)
    for item_id, text, normalized, _ in rows:
        info = sf.info(str(out / "wavs" / f"{item_id}.wav"))
        assert (info.samplerate, info.channels) == (22050, 1) and info.frames > 22050 // 2
        assert normalized == normalize_text(text) and is_clean_sentence(text)
    on_disk = json.loads((out / "corpus.json").read_text())
    assert on_disk["complete"] is True and on_disk["num_utterances"] == len(rows)


@needs_voices
def test_split_is_disjoint_complete_and_stable(corpus, tmp_path):
    out, _ = corpus
    split = json.loads((out / "split.json").read_text())
    ids = {line.split("|")[0] for line in (out / "metadata.csv").read_text().splitlines()}
    parts = [set(split[name]) for name in ("train", "validation", "test")]
    assert all(parts) and set.union(*parts) == ids and sum(map(len, parts)) == len(ids)
    again = build_speech_corpus(tmp_path, hours=HOURS, voices=VOICES, seed=3, jobs=1, show_progress=False)
    assert again["num_utterances"] == len(ids)
    assert json.loads((tmp_path / "split.json").read_text()) == split
    assert (tmp_path / "metadata.csv").read_text() == (out / "metadata.csv").read_text()


def test_split_of_an_id_does_not_depend_on_the_others():
    small = _build.assign_splits([f"u{i}" for i in range(200)], seed=1)
    large = _build.assign_splits([f"u{i}" for i in range(2000)], seed=1)
    for name in ("train", "validation", "test"):
        assert set(small[name]) <= set(large[name])
    assert 0.02 < len(large["test"]) / 2000 < 0.08


@needs_voices
def test_finished_corpus_is_not_redone_and_resume_remakes_only_missing(corpus, tmp_path):
    out, _ = corpus
    work = tmp_path / "copy"
    shutil.copytree(out, work)
    assert build_speech_corpus(work, hours=HOURS, voices=VOICES, seed=3, show_progress=False)["made_now"] == 0
    wavs = sorted((work / "wavs").glob("*.wav"))
    mtimes = {p.name: p.stat().st_mtime_ns for p in wavs}
    wavs[1].unlink()
    (work / "corpus.json").unlink()
    marker = build_speech_corpus(work, hours=HOURS, voices=VOICES, seed=3, show_progress=False)
    assert marker["made_now"] == 1 and wavs[1].is_file()
    assert all(p.stat().st_mtime_ns == mtimes[p.name] for p in wavs if p != wavs[1])


@needs_voices
def test_interrupted_build_is_never_marked_complete(tmp_path, monkeypatch):
    real = speech_corpus.make_utterance
    calls = {"n": 0}

    def flaky(utt, wav_dir):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated crash")
        return real(utt, wav_dir)

    monkeypatch.setattr(speech_corpus, "make_utterance", flaky)
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_speech_corpus(tmp_path, hours=HOURS, voices="espeak-en-us", seed=0, show_progress=False)
    assert _build.read_marker(tmp_path) is None
    assert not (tmp_path / "metadata.csv").exists() and not (tmp_path / "split.json").exists()
    monkeypatch.setattr(speech_corpus, "make_utterance", real)
    marker = build_speech_corpus(tmp_path, hours=HOURS, voices="espeak-en-us", seed=0, show_progress=False)
    assert marker["complete"] and marker["made_now"] == marker["num_utterances"] - 2


def test_missing_program_names_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(_build.shutil, "which", lambda name: None)
    with pytest.raises(
        _build.MissingSystemDependencyError, match=r"apt-get install festival.*make system-deps"
    ):
        build_speech_corpus(tmp_path, hours=0.001, voices="kal")
    with pytest.raises(_build.MissingSystemDependencyError, match=r"espeak-ng"):
        build_speech_corpus(tmp_path, hours=0.001, voices="espeak-en-gb")


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="choose another --out folder"):
        _build.prepare_output_dir(blocker)
    with pytest.raises(OSError, match="not writable"):
        _build.prepare_output_dir(blocker / "sub")


def test_unknown_voice_and_bad_hours(tmp_path):
    with pytest.raises(ValueError, match="available voices: kal, ked, slt"):
        build_speech_corpus(tmp_path, voices="kal,nobody")
    with pytest.raises(ValueError, match="hours must be > 0"):
        build_speech_corpus(tmp_path, hours=0)


def test_empty_or_unusable_text_source(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="no usable sentence"):
        load_sentences([empty])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_sentences([tmp_path / "missing.txt"])


def test_sentence_filter_and_normalization(tmp_path):
    source = tmp_path / "text.txt"
    source.write_text(
        "The cat sat on the mat. It saw 3 dogs and 12 birds! Hi.\n%\nMr. Smith went to Washington today.\n"
        "%\nWe use UNIX every day. A #hash tag is odd. Call 555-1234 now please.\n\t\t-- Some Author\n"
    )
    sentences = load_sentences([source])
    assert sentences == [
        "It saw 3 dogs and 12 birds!",
        "Mr. Smith went to Washington today.",
        "The cat sat on the mat.",
    ]
    assert normalize_text(sentences[0]) == "It saw three dogs and twelve birds!"
    assert normalize_text(sentences[1]) == "Mister Smith went to Washington today."
    assert number_to_words(1984) == "one thousand nine hundred eighty-four" and number_to_words(40) == "forty"


@needs_voices
def test_cli_builds_and_reports_errors(tmp_path, capsys):
    from accelerando.cli import main

    assert (
        main(["corpus", "speech", "--out", str(tmp_path), "--hours", "0.0005", "--voices", "espeak-en-gb-f"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["complete"] is True
    assert main(["corpus", "speech", "--out", str(tmp_path), "--voices", "nobody"]) == 2
    assert "available voices" in capsys.readouterr().err
