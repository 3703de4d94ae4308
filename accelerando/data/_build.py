"""Shared machinery of the corpus builders: system checks, atomic files, splits, parallel units.

A corpus folder is *complete* only when its marker file ``corpus.json`` holds
``"complete": true``. A build removes the marker (and the manifests it is about to rewrite)
before it starts, writes every unit's audio atomically, checks that every listed file exists and
reads, and only then writes the manifests and, last, the marker. So an interrupted build is never
mistaken for a finished one, and a rebuild skips every unit whose output is already valid.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, TypeVar

from accelerando.fileio import atomic_write_text

MARKER = "corpus.json"
SPLIT_FILE = "split.json"
SPLITS = ("train", "validation", "test")
# Fractions of ids in each split, in SPLITS order. Test ids are held out of every training run.
SPLIT_FRACTIONS = (0.90, 0.05, 0.05)

T = TypeVar("T")
R = TypeVar("R")


class MissingSystemDependencyError(RuntimeError):
    """A Debian program, festival voice or data file the builder needs is not installed."""


def install_hint(packages: Iterable[str]) -> str:
    """The sentence telling users how to install ``packages``."""
    names = " ".join(dict.fromkeys(packages))
    return f"install it with `sudo apt-get install {names}` (or run `make system-deps`, which installs every Debian package accelerando needs)"


def check_system_dependencies(
    binaries: dict[str, str] | None = None,
    files: dict[str, str] | None = None,
) -> None:
    """Raises :class:`MissingSystemDependencyError` naming every missing program or file.

    Args:
        binaries: program name -> Debian package that provides it (looked up with ``shutil.which``).
        files: absolute path -> Debian package that provides it.
    """
    missing: list[tuple[str, str]] = []
    for name, package in (binaries or {}).items():
        if shutil.which(name) is None:
            missing.append((f"program `{name}`", package))
    for path, package in (files or {}).items():
        if not Path(path).exists():
            missing.append((f"file {path}", package))
    if missing:
        what = ", ".join(f"{item} (Debian package {package})" for item, package in missing)
        raise MissingSystemDependencyError(f"Missing {what}; " + install_hint(p for _, p in missing) + ".")


def run_tool(cmd: Sequence[str], what: str, timeout: float = 300.0, input_text: str | None = None) -> str:
    """Runs an external program; returns its stderr. Raises ``RuntimeError`` with the stderr tail on failure."""
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, input=input_text)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{what}: `{cmd[0]}` did not finish within {timeout:g} s") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-500:]
        raise RuntimeError(f"{what}: `{' '.join(cmd[:3])} ...` exited with status {proc.returncode}: {tail}")
    return proc.stderr


def rows_to_csv(rows: list[dict[str, Any]], fields: tuple[str, ...]) -> str:
    """Rows as CSV text with a header line."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def prepare_output_dir(path: str | os.PathLike) -> Path:
    """Creates ``path`` if needed and checks that it is a writable folder; returns it as a Path."""
    out = Path(path).expanduser()
    hint = "choose another --out folder or fix its permissions"
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"Output path {str(out)!r} exists and is not a folder; {hint}.")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise PermissionError(
            f"Output folder {str(out)!r} is not writable ({exc.strerror or exc}); {hint}."
        ) from exc
    return out


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Writes ``obj`` as indented JSON, atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_marker(root: str | os.PathLike) -> dict[str, Any] | None:
    """The corpus marker of a finished build, or None when the folder is not complete."""
    path = Path(root) / MARKER
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("complete") is True else None


def is_complete(root: str | os.PathLike, request: dict[str, Any]) -> bool:
    """True when ``root`` holds a finished build made with the same ``request`` settings."""
    marker = read_marker(root)
    return marker is not None and marker.get("request") == request


def begin_build(root: Path, outputs: Iterable[str] = ()) -> None:
    """Removes the completion marker and the manifests a build rewrites, so a half-built corpus never looks finished."""
    (root / MARKER).unlink(missing_ok=True)
    for name in outputs:
        (root / name).unlink(missing_ok=True)


def finish_build(
    root: Path, request: dict[str, Any], summary: dict[str, Any], files: Iterable[Path]
) -> dict[str, Any]:
    """Checks that every listed file exists, then writes the ``"complete": true`` marker; returns it."""
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise RuntimeError(
            f"Corpus at {str(root)!r} is incomplete: {len(missing)} listed file(s) are missing "
            f"(first: {missing[0]}); run the same command again to finish it."
        )
    marker = {"complete": True, "request": request, **summary}
    atomic_write_json(root / MARKER, marker)
    return marker


def split_score(seed: int, item_id: str) -> float:
    """A uniform number in [0, 1) fixed by ``seed`` and ``item_id`` (SHA-1 based, platform independent)."""
    digest = hashlib.sha1(f"{seed}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_splits(
    ids: Sequence[str], seed: int, fractions: Sequence[float] = SPLIT_FRACTIONS
) -> dict[str, list[str]]:
    """Splits ``ids`` into train / validation / test by hash score thresholds.

    Each id's split depends only on ``(seed, id)``, so adding ids to a corpus never moves an old id
    between splits. When the corpus has 3 or more ids and a held-out split would be empty, the id
    with the lowest score among the train ids moves there, so tiny corpora still have all three.
    """
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(
            f"split fractions must be three non-negative numbers summing to 1; got {fractions!r}"
        )
    test_cut, val_cut = fractions[2], fractions[2] + fractions[1]
    scores = {i: split_score(seed, i) for i in ids}
    splits: dict[str, list[str]] = {"train": [], "validation": [], "test": []}
    for item_id in ids:
        u = scores[item_id]
        splits["test" if u < test_cut else "validation" if u < val_cut else "train"].append(item_id)
    if len(ids) >= 3:
        for name in ("test", "validation"):
            if not splits[name] and len(splits["train"]) > 1:
                moved = min(splits["train"], key=lambda i: scores[i])
                splits["train"].remove(moved)
                splits[name].append(moved)
    return {name: sorted(members) for name, members in splits.items()}


def write_splits(root: Path, ids: Sequence[str], seed: int) -> dict[str, list[str]]:
    """Computes the fixed split of ``ids`` and writes ``split.json``; returns the split."""
    splits = assign_splits(ids, seed)
    atomic_write_json(
        root / SPLIT_FILE, {"seed": seed, "fractions": dict(zip(SPLITS, SPLIT_FRACTIONS)), **splits}
    )
    return splits


def read_split_ids(root: str | os.PathLike, split: str) -> set[str]:
    """The ids of ``split`` from ``root/split.json``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None; got {split!r}")
    path = Path(root) / SPLIT_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"split={split!r} needs {str(path)!r}, which does not exist; pass split=None to use every item"
        )
    data = json.loads(path.read_text(encoding="utf-8"))
    return set(data.get(split, []))


def run_parallel(
    fn: Callable[[T], R],
    items: Sequence[T],
    jobs: int = 1,
    on_result: Callable[[T, R], None] | None = None,
) -> list[R]:
    """Runs ``fn`` on every item with ``jobs`` threads; returns the results in item order.

    The work is external programs and file I/O, so threads suffice. ``on_result`` is called in the
    calling thread as each item finishes (the place to update a progress bar). The first error
    stops new work and is raised after running items finish.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1; got {jobs}")
    results: dict[int, R] = {}
    if jobs == 1:
        for index, item in enumerate(items):
            results[index] = fn(item)
            if on_result is not None:
                on_result(item, results[index])
        return [results[i] for i in range(len(items))]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        pending = {}
        queue = iter(enumerate(items))
        for index, item in queue:
            pending[pool.submit(fn, item)] = (index, item)
            if len(pending) >= 2 * jobs:
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                index, item = pending.pop(future)
                results[index] = future.result()  # re-raises; the executor waits for running work
                if on_result is not None:
                    on_result(item, results[index])
                nxt = next(queue, None)
                if nxt is not None:
                    pending[pool.submit(fn, nxt[1])] = nxt
    return [results[i] for i in range(len(items))]


def valid_audio_file(path: Path, sample_rate: int | None = None, channels: int = 1) -> float | None:
    """Duration in seconds of a readable audio file with the given format, or None if it is not valid."""
    import soundfile as sf

    if not path.is_file():
        return None
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError):
        return None
    if (
        info.frames <= 0
        or info.channels != channels
        or (sample_rate is not None and info.samplerate != sample_rate)
    ):
        return None
    return info.frames / info.samplerate


def progress(total: float | None, desc: str, unit: str = "it", initial: float = 0):
    """A tqdm progress bar (to stderr) for the builders."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, initial=initial, dynamic_ncols=True)
