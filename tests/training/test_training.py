"""Tests for accelerando.training, driven through the tiny example script ``train_tiny.py``.

Proves: exact resume after SIGKILL (losses and final weights), ``*.tmp`` folders never become
"latest", two-process training under ``accelerate launch`` (gloo on CPU) ends with identical weights
on both ranks and resumes exactly, checkpoints hold a loadable EMA model, pruning, flag validation.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from accelerando import training as T

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SCRIPT = HERE / "train_tiny.py"
ACCELERATE = Path(sys.executable).with_name("accelerate")
STEPS = 12  # six batches per epoch: checkpoint-8 falls mid-epoch, so resume must skip batches


def _load_script():
    spec = importlib.util.spec_from_file_location("train_tiny", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_tiny"] = module
    spec.loader.exec_module(module)
    return module


train_tiny = _load_script()


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "TRAIN_TINY_"))}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false")
    return env


def _cmd(output_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(SCRIPT),
        "--output_dir",
        str(output_dir),
        "--max_train_steps",
        str(STEPS),
        *extra,
    ]


def _run(cmd: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def _launch(output_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    with socket.socket() as sock:  # a free port: other test runs may share this machine
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    launch = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    launch += ["--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port)]
    return _run([*launch, *_cmd(output_dir, *extra)[1:]], timeout=240)


def _losses(output_dir: Path) -> dict[int, float]:
    """Step -> loss; a resumed run's lines come later in the file and win."""
    lines = (output_dir / "losses.jsonl").read_text().splitlines()
    return {rec["step"]: rec["loss"] for rec in map(json.loads, lines)}


def _final(output_dir: Path, rank: int = 0) -> dict:
    return json.loads((output_dir / f"final-rank{rank}.json").read_text())


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted single-process run: 12 steps, checkpoints every 4, EMA on."""
    out = tmp_path_factory.mktemp("reference")
    _run(_cmd(out))
    return out


def test_reference_run_layout(reference):
    assert sorted(_losses(reference)) == list(range(1, STEPS + 1))
    assert [step for step, _ in T.list_checkpoints(reference)] == [4, 8, 12]
    assert not list(reference.glob("*.tmp"))
    checkpoint = reference / "checkpoint-12"
    assert (checkpoint / "model" / "config.json").is_file()
    assert (checkpoint / "ema_state.json").is_file()
    assert (checkpoint / "optimizer.bin").is_file()  # accelerate's own training state is present ...
    assert not list((checkpoint / "model").glob("*.bin"))  # ... but the model folder is safetensors only


def test_resume_after_sigkill_is_exact(reference, tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        _cmd(out, "--step_sleep", "0.5"),
        cwd=REPO,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint-8").is_dir():
            assert proc.poll() is None, "train_tiny.py exited before writing checkpoint-8"
            assert time.monotonic() < deadline, "checkpoint-8 never appeared"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "checkpoint-12").exists(), "killed too late to test a mid-run resume"
    before = _losses(out)
    assert {step: before[step] for step in range(1, 9)} == {
        step: _losses(reference)[step] for step in range(1, 9)
    }

    leftover = out / "checkpoint-12.tmp"  # what a kill during save_state leaves behind
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"half written")
    resumed = _run(_cmd(out, "--resume_from_checkpoint", "latest"))
    assert f"Resuming from {out / 'checkpoint-8'}" in resumed.stderr

    expected, got = _losses(reference), _losses(out)
    assert [got[step] for step in range(9, STEPS + 1)] == [expected[step] for step in range(9, STEPS + 1)]
    assert _final(out)["params_sha256"] == _final(reference)["params_sha256"]
    assert _final(out)["ema_sha256"] == _final(reference)["ema_sha256"]
    assert not leftover.exists()


def test_checkpoint_holds_loadable_ema_model(reference):
    ema_model = train_tiny.TinyMLP.from_pretrained(reference / "checkpoint-12" / "model")
    final_model = train_tiny.TinyMLP.from_pretrained(reference / "model")
    final = _final(reference)
    assert train_tiny.params_sha256(ema_model.parameters()) == final["ema_sha256"]
    assert train_tiny.params_sha256(final_model.parameters()) == final["ema_sha256"]
    assert final["ema_sha256"] != final["params_sha256"]
    counters = json.loads((reference / "checkpoint-12" / "ema_state.json").read_text())
    assert counters["optimization_step"] == STEPS


def test_pruning_and_model_without_ema(tmp_path):
    out = tmp_path / "pruned"
    (out / "checkpoint-1.tmp").mkdir(parents=True)  # stale leftover: removed by the next save
    _run(_cmd(out, "--checkpointing_steps", "2", "--checkpoints_total_limit", "2", "--no-use_ema"))
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("checkpoint")) == [
        "checkpoint-10",
        "checkpoint-12",
    ]
    model = train_tiny.TinyMLP.from_pretrained(out / "checkpoint-12" / "model")
    assert train_tiny.params_sha256(model.parameters()) == _final(out)["params_sha256"]
    assert _final(out)["ema_sha256"] is None
    assert not (out / "checkpoint-12" / "ema_state.json").exists()


def _ns(tmp_path: Path, resume: str | None) -> argparse.Namespace:
    return argparse.Namespace(output_dir=str(tmp_path), resume_from_checkpoint=resume)


def test_find_resume_checkpoint(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="accelerando.training"):
        assert T.find_resume_checkpoint(_ns(tmp_path, "latest")) is None
    assert "starting fresh" in caplog.text
    assert T.find_resume_checkpoint(_ns(tmp_path, None)) is None
    for name in ["checkpoint-4", "checkpoint-10", "checkpoint-12.tmp", "checkpoint-x", "other"]:
        (tmp_path / name).mkdir()
    assert T.find_resume_checkpoint(_ns(tmp_path, "latest")) == tmp_path / "checkpoint-10"
    assert T.find_resume_checkpoint(_ns(tmp_path, "checkpoint-4")) == tmp_path / "checkpoint-4"
    assert (
        T.find_resume_checkpoint(_ns(tmp_path, str(tmp_path / "checkpoint-4"))) == tmp_path / "checkpoint-4"
    )
    with pytest.raises(FileNotFoundError) as info:
        T.find_resume_checkpoint(_ns(tmp_path, "checkpoint-99"))
    assert "checkpoint-99" in str(info.value) and "not an existing checkpoint folder" in str(info.value)
    with pytest.raises(ValueError, match="unfinished write"):
        T.find_resume_checkpoint(_ns(tmp_path, "checkpoint-12.tmp"))


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--train_batch_size", "0", "must be a positive integer, got '0'"),
        ("--max_train_steps", "ten", "must be a positive integer, got 'ten'"),
        ("--learning_rate", "-1e-3", "must be a positive number"),
        ("--learning_rate", "nan", "must be a positive number"),
        ("--checkpoints_total_limit", "0", "must be a positive integer"),
        ("--seed", "-1", "must be a non-negative integer"),
        ("--ema_decay", "1.5", "must be a number in (0, 1)"),
        ("--mixed_precision", "fp8", "invalid choice: 'fp8'"),
        ("--report_to", "nowhere", "invalid choice: 'nowhere'"),
    ],
)
def test_bad_flag_values_error_clearly(flag, value, message, capsys):
    with pytest.raises(SystemExit):
        train_tiny.parse_args([f"{flag}={value}"])
    err = capsys.readouterr().err
    assert flag in err and message in err


def test_defaults_and_overrides():
    args = train_tiny.parse_args([])
    assert (args.train_batch_size, args.use_ema, args.mixed_precision, args.report_to) == (
        8,
        True,
        "no",
        "none",
    )
    assert (
        train_tiny.parse_args(["--no-use_ema", "--checkpoints_total_limit", "3"]).checkpoints_total_limit == 3
    )
    with pytest.raises(ValueError, match="unknown flags \\['train_batchsize'\\]"):
        T.add_training_args(argparse.ArgumentParser(), train_batchsize=4)


@pytest.mark.parametrize(
    ("flags", "requested", "expected"),
    [
        ({"avx2", "avx512_bf16"}, "auto", "bf16"),
        ({"avx2", "amx_bf16"}, "auto", "bf16"),
        ({"avx2", "fma"}, "auto", "no"),
        (set(), "auto", "no"),  # unknown CPU (no /proc/cpuinfo): the safe choice
        ({"avx2"}, "bf16", "bf16"),  # an explicit choice is kept, with a warning
        ({"avx2"}, "no", "no"),
    ],
)
def test_auto_mixed_precision_picks_bf16_only_where_native(monkeypatch, caplog, flags, requested, expected):
    monkeypatch.setattr(T, "_cpu_flags", lambda: flags)
    with caplog.at_level(logging.WARNING, logger="accelerando.training"):
        assert T.resolve_mixed_precision(requested, on_cpu=True) == expected
    warned = any("emulated" in r.getMessage() for r in caplog.records)
    assert warned == (requested == "bf16" and not flags & {"avx512_bf16", "amx_bf16"})
    with pytest.raises(ValueError, match="got 'fp8'"):
        T.resolve_mixed_precision("fp8", on_cpu=True)


def test_create_accelerator_resolves_auto(tmp_path, monkeypatch):
    monkeypatch.setattr(T, "_cpu_flags", lambda: {"avx2"})
    monkeypatch.setattr(T, "launched_without_devices", lambda: True)  # a CPU run, also on a GPU machine
    args = train_tiny.parse_args(["--output_dir", str(tmp_path), "--mixed_precision", "auto"])
    accelerator = T.create_accelerator(args)
    assert args.mixed_precision == "no" and accelerator.mixed_precision == "no"


@pytest.mark.slow
def test_two_processes_agree_and_resume_exactly(tmp_path):
    out = tmp_path / "ddp"
    _launch(out)
    ranks = [_final(out, rank) for rank in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["params_sha256"] == ranks[1]["params_sha256"]
    assert ranks[0]["ema_sha256"] == ranks[1]["ema_sha256"]
    assert (out / "checkpoint-12" / "random_states_1.pkl").is_file()
    assert sorted(_losses(out)) == list(range(1, STEPS + 1))

    resumed = tmp_path / "ddp-resumed"  # resume both ranks from the mid-epoch checkpoint-8
    resumed.mkdir()
    shutil.copytree(out / "checkpoint-8", resumed / "checkpoint-8")
    _launch(resumed, "--resume_from_checkpoint", "latest")
    expected, got = _losses(out), _losses(resumed)
    assert [got[s] for s in range(9, STEPS + 1)] == [expected[s] for s in range(9, STEPS + 1)]
    for rank in (0, 1):
        assert _final(resumed, rank)["params_sha256"] == ranks[0]["params_sha256"]
        assert _final(resumed, rank)["ema_sha256"] == ranks[0]["ema_sha256"]


def test_run_training_loop_stops_on_a_non_finite_loss(tmp_path):
    args = train_tiny.parse_args(["--output_dir", str(tmp_path), "--no-use_ema", "--max_train_steps", "4"])
    accelerator = T.create_accelerator(args)
    model = train_tiny.TinyMLP()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate)
    loader = torch.utils.data.DataLoader(train_tiny.make_dataset(32, 4, 0), batch_size=8)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    seen = []

    def step_fn(batch, global_step):
        x, y = batch
        loss = torch.nn.functional.mse_loss(model(x), y)
        return (loss * float("nan") if global_step == 2 else loss), {"seen": len(seen)}

    def on_step(global_step, loss):
        seen.append(global_step)

    with pytest.raises(RuntimeError, match="Tiny training loss became nan at step 2"):
        T.run_training_loop(
            accelerator, args, model, optimizer, loader, step_fn, on_step=on_step, name="Tiny"
        )
    assert seen == [1, 2]
