"""accelerando recipe: the commands a recipe runs (resume, skip, from-bundled, paper) and a safe export."""

from __future__ import annotations

import pytest
import torch

import accelerando.pretrained as pretrained
from accelerando.commands import recipe as recipes
from accelerando.vocoders import FreGrad


@pytest.fixture
def tiny_recipe(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path / "pretrained")
    (tmp_path / "pretrained").mkdir()
    teacher = recipes.Stage("periodwave", str(tmp_path / "runs/teacher"), 10, ["--a"], ["--paper-a"])
    student = recipes.Stage(
        "periodwave-turbo", str(tmp_path / "runs/student"), 20, ["--b"], ["--paper-b"], init_flag="--init"
    )
    recipe = recipes.Recipe("tiny-speech", [teacher, student], float16=True)
    monkeypatch.setitem(recipes.RECIPES, "tiny-speech", recipe)
    return recipe


def _checkpoint(run, step):
    folder = run / f"checkpoint-{step}" / "model"
    torch.manual_seed(step)
    FreGrad.from_preset("small", residual_layers=2).save_pretrained(folder)
    return folder


def test_commands_resume_each_stage_and_chain_them(tiny_recipe, tmp_path):
    commands = recipes.stage_commands(tiny_recipe, paper=False, max_train_steps=None, from_bundled=False)
    assert commands[0][0] == "corpus"
    teacher, student = commands[1], commands[2]
    assert teacher[:3] == ["train", "periodwave", "--a"] and teacher[-2:] == [
        "--resume_from_checkpoint",
        "latest",
    ]
    assert student[student.index("--init") + 1] == f"{tmp_path}/runs/teacher/model"
    _checkpoint(tmp_path / "runs/teacher", 10)  # the teacher reached its budget: skipped
    commands = recipes.stage_commands(tiny_recipe, paper=True, max_train_steps=50, from_bundled=False)
    assert [c[1] for c in commands[1:]] == ["periodwave-turbo"]
    assert "--paper-b" in commands[1] and commands[1][commands[1].index("--max_train_steps") + 1] == "50"
    commands = recipes.stage_commands(tiny_recipe, paper=False, max_train_steps=None, from_bundled=True)
    assert commands[1][commands[1].index("--init") + 1] == str(pretrained.PRETRAINED_DIR / "tiny-speech")
    # a one-stage recipe from scratch names no initial model (not an empty one)
    fresh = recipes.stage_commands(recipes.RECIPES["fregrad-speech"], True, None, from_bundled=False)
    assert "--init_model" not in fresh[-1] and "" not in fresh[-1]


def test_export_ships_the_newest_checkpoint_in_float16_and_keeps_the_card(tiny_recipe, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint to export"):
        recipes.export("tiny-speech")
    _checkpoint(tmp_path / "runs/student", 5)
    newest = _checkpoint(tmp_path / "runs/student", 7)
    target = pretrained.PRETRAINED_DIR / "tiny-speech"
    target.mkdir()
    (target / "README.md").write_text("card")
    (target / "learning_curve.json").write_text("{}")  # what the card shows stays too
    (target / "old.safetensors").write_bytes(b"stale")  # weights are the export's own
    out = recipes.export("tiny-speech")
    assert out == target and (target / "README.md").read_text() == "card"
    assert (target / "learning_curve.json").read_text() == "{}" and not (target / "old.safetensors").exists()
    from safetensors.torch import load_file

    stored = load_file(str(target / "diffusion_pytorch_model.safetensors"))
    assert {t.dtype for t in stored.values()} == {torch.float16}  # small on disk, loads as float32
    shipped, source = FreGrad.from_pretrained(target), FreGrad.from_pretrained(newest)
    torch.testing.assert_close(shipped.float().state_dict(), source.half().float().state_dict())
    assert [p.name for p in pretrained.PRETRAINED_DIR.iterdir()] == ["tiny-speech"]  # no leftovers


def test_unknown_recipe_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown recipe 'nope'; available: "):
        recipes.run_recipe("nope", dry_run=True)


def test_export_can_ship_the_lookup_table_form(tmp_path, monkeypatch):
    from accelerando.vocoders import MelNEWT

    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path / "pretrained")
    (tmp_path / "pretrained").mkdir()
    run = tmp_path / "runs/newt"
    stage = recipes.Stage("newt-speech", str(run), 10, [], [])
    monkeypatch.setitem(
        recipes.RECIPES,
        "tiny-newt",
        recipes.Recipe(
            "tiny-newt", [stage], lookup_tables=True, inference_config={"voicing_temperature": 0.5}
        ),
    )
    torch.manual_seed(0)
    trained = MelNEWT(hidden=8, mlp_depth=2, n_harmonics=4, n_waveshapers=2, shaper_width=2, n_noise_bands=5,
                      noise_ir_length=16, n_pitch_bins=16).eval()  # fmt: skip
    trained.save_pretrained(run / "checkpoint-3" / "model")
    shipped = MelNEWT.from_pretrained(recipes.export("tiny-newt")).eval()
    assert shipped.config.use_lookup_table and shipped.config.voicing_temperature == 0.5
    mel = torch.randn(1, 80, 6) - 5
    expected = MelNEWT.from_config(trained.to_fast().config, voicing_temperature=0.5).eval()
    expected.load_state_dict(trained.to_fast().state_dict())
    torch.testing.assert_close(shipped.synthesize(mel, seed=0), expected.synthesize(mel, seed=0))
    bad = recipes.Recipe("tiny-newt", [stage], inference_config={"no_such_setting": 1})
    monkeypatch.setitem(recipes.RECIPES, "tiny-newt", bad)
    with pytest.raises(ValueError, match="no_such_setting"):
        recipes.export("tiny-newt")


def test_export_ships_a_meldit_pipeline_with_the_shipped_scheduler(tmp_path, monkeypatch):
    from diffusers import FlowMatchEulerDiscreteScheduler
    from meldit_tiny import TINY

    from accelerando.generation import MelDiT, MelDiTPipeline

    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path / "pretrained")
    run = tmp_path / "runs/meldit"
    stage = recipes.Stage("meldit", str(run), 10, [], [])
    monkeypatch.setitem(recipes.RECIPES, "tiny-dit", recipes.Recipe("tiny-dit", [stage], pipeline=True))
    torch.manual_seed(0)
    old = MelDiT(**TINY)
    MelDiTPipeline(transformer=old, scheduler=FlowMatchEulerDiscreteScheduler(shift=2.5)).save_pretrained(
        tmp_path / "pretrained" / "tiny-dit"
    )
    (tmp_path / "pretrained" / "tiny-dit" / "README.md").write_text("card")
    trained = MelDiT(**TINY)
    trained.save_pretrained(run / "checkpoint-4" / "model")
    target = recipes.export("tiny-dit")
    pipe = MelDiTPipeline.from_pretrained(target)
    assert pipe.scheduler.config.shift == 2.5 and (target / "README.md").read_text() == "card"
    for name, value in trained.state_dict().items():
        torch.testing.assert_close(pipe.transformer.state_dict()[name], value)
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in target.rglob("*") if p.is_file())


def test_newt_speech_builds_the_tts_mels_before_training_on_them():
    commands = recipes.stage_commands(recipes.RECIPES["newt-speech"], False, None, False)
    assert commands[0][:2] == ["corpus", "speech"]
    assert commands[1] == ["corpus", "tts-mels", "--data_dir", "corpora/speech", "--out", recipes.TTS_MELS]
    train = commands[2]
    assert (
        train[:2] == ["train", "newt-speech"] and train[train.index("--cycle_mels") + 1] == recipes.TTS_MELS
    )


def test_corpus_tts_mels_writes_a_fastpitchs_free_running_mels(tmp_path):
    import json

    import numpy as np

    from accelerando.cli import main as cli_main
    from accelerando.tts.fastpitch import IncrementalFastPitch

    root = tmp_path / "corpus"
    (root / "wavs").mkdir(parents=True)
    (root / "metadata.csv").write_text("a|hello there|hello there|slt\nb|good day|good day|kal\n")
    (root / "split.json").write_text(json.dumps({"seed": 0, "train": ["a"], "validation": ["b"], "test": []}))
    model = IncrementalFastPitch.from_preset("small", n_speakers=2, speakers=["kal", "slt"])
    model.save_pretrained(tmp_path / "fp")
    assert cli_main(["corpus", "tts-mels", "--data_dir", str(root), "--out", str(tmp_path / "mels"),
                     "--model", str(tmp_path / "fp")]) == 0  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "mels").iterdir()) == ["a.npy"]  # the training split only
    mel = np.load(tmp_path / "mels" / "a.npy")
    assert mel.shape[0] == model.config.n_mels and mel.shape[1] > 0


@pytest.mark.parametrize("name", sorted(recipes.RECIPES))
@pytest.mark.parametrize("paper", [False, True])
def test_every_recipe_command_parses_with_its_training_script(name, paper, monkeypatch, tmp_path):
    import importlib

    from accelerando.commands.train import TRAINERS

    # as on a fresh machine after the recipe's corpus stages: no stage is skipped, the corpus folders exist
    monkeypatch.setattr(recipes, "_latest", lambda run: (0, None))
    monkeypatch.chdir(tmp_path)
    for corpus in ("corpora/speech", "corpora/instruments/notes", recipes.TTS_MELS):
        (tmp_path / corpus).mkdir(parents=True)

    for argv in recipes.stage_commands(recipes.RECIPES[name], paper, None, from_bundled=False):
        if argv[0] != "train":
            continue
        flags = [
            flag if flag else "runs/previous/model" for flag in argv[2:]
        ]  # an empty init: no earlier run
        args = importlib.import_module(TRAINERS[argv[1]]).parse_args(flags)
        assert args.output_dir == argv[argv.index("--output_dir") + 1]


def test_meldit_sim_notes_distils_the_bundled_teacher_as_the_demo_samples_it(monkeypatch):
    from accelerando.accelerate_dit.sim import train as sim_train

    monkeypatch.setattr(recipes, "_latest", lambda run: (0, None))

    (command,) = [c for c in recipes.stage_commands(recipes.RECIPES["meldit-sim-notes"], False, None, False)
                  if c[0] == "train"]  # fmt: skip
    args = sim_train.parse_args(command[2:])
    assert args.guidance_scale == 3.0 and recipes.RECIPES["meldit-sim-notes"].float16
    from accelerando.pretrained.loading import class_name, resolve

    teacher = resolve(args.teacher)
    assert (
        teacher == pretrained.PRETRAINED_DIR / "meldit-notes" / "transformer"
        and class_name(teacher) == "MelDiT"
    )


def test_from_bundled_needs_a_last_stage_that_takes_an_initial_model(tiny_recipe):
    no_init = recipes.Recipe("tiny-sim", [recipes.Stage("sim", "runs/sim", 10, ["--c"])])
    with pytest.raises(ValueError, match=r"'tiny-sim' cannot start from the bundled checkpoint.*\(sim\)"):
        recipes.stage_commands(no_init, paper=False, max_train_steps=None, from_bundled=True)
    assert recipes.stage_commands(no_init, paper=False, max_train_steps=None, from_bundled=False)[1][:2] == [
        "train",
        "sim",
    ]
    for (
        name,
        recipe,
    ) in recipes.RECIPES.items():  # every bundled trainer's recipe can go on from the shipped model
        if name != "meldit-sim-notes":  # distilled from its teacher, not continued
            assert recipe.stages[-1].init_flag, name
