"""The package's import graph keeps the contracts declared in pyproject.toml (import-linter).

Layers import one way (entry points -> applications -> models -> core) and no two sub-packages import each
other. A new module outside every layer is not checked, so the test also asserts every top-level module
and sub-package is named in the layers contract.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import tomllib

import accelerando

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_module_is_in_a_layer():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    named = {m.strip() for layer in layers for m in layer.split(":")}
    missing = []
    for info in pkgutil.iter_modules(accelerando.__path__):
        name = f"accelerando.{info.name}"
        if name in named:
            continue
        if not info.ispkg:
            missing.append(name)
            continue
        package = importlib.import_module(name)  # split across layers: each of its modules must be named
        missing += [
            f"{name}.{sub.name}"
            for sub in pkgutil.iter_modules(package.__path__)
            if f"{name}.{sub.name}" not in named
        ]
    assert not missing, f"modules in no layer of pyproject's import contract: {missing}"
