"""Shared fixtures: tiny generated datasets in the real on-disk formats, and script runners."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest

import forked

# Under pytest-xdist two workers share the 2 cores: one thread each (inherited by the runs
# they start) instead of 2 × 2 threads contending, which made MNIST training 3× slower.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

# Decoded data files (paths.cache_dir) go to a folder of this test session, not ./.cache.
os.environ.setdefault("LITNETS_CACHE_DIR", tempfile.mkdtemp(prefix="litnets-cache-"))

# The files that take longest, longest first (seconds on 2 cores: `pytest --durations=0`,
# summed per file, 2026-11-25, commands forked by forked.py): slurm 228, reproduce 202,
# reliability 198, scaling 143, install 122, readme 91, execution 90, benchmark 62,
# use_model 46, train 40; the rest < 36. xdist hands out whole files in collection order
# (`--no-loadscope-reorder`, pyproject.toml), so these start first and no long file is left
# to run alone at the end.
LONGEST_FILES = [
    "test_slurm.py", "test_reproduce.py", "test_reliability.py", "test_scaling.py",
    "test_install.py", "test_readme.py", "test_execution.py", "test_benchmark.py",
    "test_use_model.py", "test_train.py",
]  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def longest_first(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FILES.index(name) if name in LONGEST_FILES else len(LONGEST_FILES)

    items.sort(key=longest_first)  # stable: each file's own order is kept


REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
SHARED_DATA = Path(os.environ.get("LITNETS_SHARED_DATA", REPO.parent / "shared" / "data"))


# ---- writers for the real file formats ------------------------------------------------------


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file (MNIST's format), gzipped when the name ends in .gz."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    payload = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def make_mnist_like(root: Path, folder: str, n_train: int = 96, n_test: int = 48) -> Path:
    """Learnable tiny data: the class is encoded as a bright row in the image."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, size=n)
        images = rng.integers(0, 60, size=(n, 28, 28))
        images[np.arange(n), 2 + 2 * labels, :] = 255
        write_idx(root / folder / "raw" / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(root / folder / "raw" / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return root


def make_cifar_like(root: Path, per_batch: int = 20, archive: bool = False) -> Path:
    """torchvision's cifar-10-batches-py layout (or its .tar.gz), with tiny batches."""
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        labels = rng.integers(0, 10, size=per_batch)
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        entry = {b"batch_label": name.encode(), b"labels": labels.tolist(), b"data": data}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": []}, protocol=2))
    if archive:
        with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
            tar.add(folder, arcname="cifar-10-batches-py")
        for file in folder.iterdir():
            file.unlink()
        folder.rmdir()
    return root


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MNIST, Fashion-MNIST and CIFAR-10 folders with a few generated samples each."""
    root = tmp_path_factory.mktemp("tiny-data")
    make_mnist_like(root, "MNIST")
    make_mnist_like(root, "FashionMNIST")
    make_cifar_like(root)
    return root


@pytest.fixture(scope="session")
def real_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real MNIST and Fashion-MNIST files, linked (never written) from ../shared/data."""
    if not (SHARED_DATA / "MNIST" / "raw").is_dir():
        message = f"real MNIST files not found under {SHARED_DATA} (set LITNETS_SHARED_DATA)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("real-data")
    for folder in ("MNIST", "FashionMNIST"):
        raw = root / folder / "raw"
        raw.mkdir(parents=True)
        for file in (SHARED_DATA / folder / "raw").iterdir():
            (raw / file.name).symlink_to(file)
    return root


# ---- running the real scripts ----------------------------------------------------------------


def run_script(
    script: str, *overrides: str, log_dir: Path, timeout: float = 600, **env: str
) -> subprocess.CompletedProcess:
    """Run ``scripts/<script>`` as a user would, logging under ``log_dir`` (in a process
    forked after torch's and Lightning's import: ``forked.py``)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "LITNETS_LOG_DIR": str(log_dir), "PYTHONUNBUFFERED": "1", **env}
    environment.pop("HYDRA_FULL_ERROR", None)
    command = [sys.executable, str(SCRIPTS / script), *overrides]
    return forked.run(command, cwd=log_dir, env=environment, timeout=timeout)


def readme_block(tag: str) -> str:
    """The ```bash block right after ``<!-- tested: <tag> -->`` in the README."""
    import re

    readme = (REPO / "README.md").read_text()
    match = re.search(rf"<!-- tested: {tag} -->\s*```bash\n(.*?)\n```", readme, re.DOTALL)
    assert match, f"README has no tested block {tag!r}"
    return match.group(1) + "\n"


def run_dirs(log_dir: Path) -> list[Path]:
    """Every run dir (single runs and multirun jobs) that wrote a metrics.json."""
    return sorted(p.parent for p in log_dir.rglob("metrics.json"))


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def check_ok(result: subprocess.CompletedProcess) -> None:
    """Exit 0, and no traceback anywhere in the output: a run that succeeds while a thread
    of it died (Lightning's Rich progress bar did) still prints one."""
    assert result.returncode == 0, (
        f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    )
    for stream in (result.stdout, result.stderr):
        assert "Traceback (most recent call last)" not in stream, stream[-5000:]


def make_image_folder(
    root: Path,
    per_class: int = 12,
    size: tuple[int, int] = (16, 16),
    mode: str = "L",
    classes: tuple[str, ...] = ("circle", "cross", "dot"),
    seed: int = 0,
) -> Path:
    """``root/<class>/*.png``: learnable generated images (a bright band per class)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for index, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, size=(*size, 3), dtype=np.uint8)
            band = slice(index * size[0] // len(classes), (index + 1) * size[0] // len(classes))
            pixels[band] = 230
            Image.fromarray(pixels).convert(mode).save(folder / f"{i:03d}.png")
    return root
