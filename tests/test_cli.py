"""The ``accelerando`` command: entry points, help text and ``info``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from accelerando.cli import build_parser, main


def test_python_dash_m_runs_info_as_json():
    out = subprocess.run(
        [sys.executable, "-m", "accelerando", "info", "--json"], capture_output=True, text=True, check=True
    )
    info = json.loads(out.stdout)
    assert info["versions"]["torch"] != "not installed"
    assert info["device"].split()[0] in {"cpu", "cuda", "mps"}
    assert info["torch_threads"] >= 1
    assert isinstance(info["pretrained"], list)


def test_info_human_readable(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "device:" in out and "bundled checkpoints:" in out


def test_every_subcommand_help_lists_its_flags_with_defaults():
    parser = build_parser()
    subactions = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    assert subactions, "the CLI has no sub-commands"
    for name, sub in subactions[0].choices.items():
        text = sub.format_help()
        assert name in text
        for action in sub._actions:
            if action.option_strings and action.default not in (None, False, "==SUPPRESS==") and action.help:
                assert "default" in text, f"`accelerando {name} --help` does not show defaults"


def test_unknown_command_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["no-such-command"])
    assert excinfo.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_user_errors_print_one_line_not_a_traceback(capsys, monkeypatch):
    import accelerando.commands.info as info_module

    def boom(args):
        raise ValueError("bad value 'x'; accepted: y or z")

    monkeypatch.setattr(info_module, "run", boom)
    assert main(["info"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: bad value 'x'; accepted: y or z"


def test_train_dispatches_flags_to_the_model_script(capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["train", "fregrad", "--help"])
    assert excinfo.value.code == 0
    out = capsys.readouterr().out
    assert "--data_dir" in out and "--resume_from_checkpoint" in out


def test_train_unknown_model_lists_choices(capsys):
    with pytest.raises(SystemExit):
        main(["train", "wavenet"])
    assert "invalid choice: 'wavenet'" in capsys.readouterr().err


def test_sim_is_a_train_command(capsys):
    from accelerando.commands.train import TRAINERS

    assert TRAINERS["sim"] == "accelerando.accelerate_dit.sim.train"
    with pytest.raises(SystemExit):
        main(["train", "sim", "--help"])
    assert "usage: accelerando train sim" in capsys.readouterr().out
