"""Checkpoints: one ``torch.save`` file of plain data and tensors, loadable with ``weights_only=True``."""

from __future__ import annotations

import os
import platform
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from auxtune import __version__
from auxtune.config import from_dict, to_dict
from auxtune.robust.config import TrainConfig
from auxtune.robust.device import resolve_device
from auxtune.robust.model import MultiHeadNet

FORMAT = 1


def versions() -> dict[str, str]:
    """Library versions recorded with every checkpoint and run."""
    return {
        "auxtune": __version__,
        "torch": str(torch.__version__),
        "python": platform.python_version(),
    }


def checkpoint_dict(trainer: Any) -> dict[str, Any]:
    """The checkpoint of a :class:`~auxtune.robust.trainer.Trainer` as plain data."""
    return {
        "format": FORMAT,
        "config": to_dict(trainer.cfg),
        "num_classes": trainer.num_classes,
        "trainer": trainer.state_dict(),
        "versions": versions(),
    }


def save_checkpoint(trainer: Any, path: str | Path) -> Path:
    """Write the trainer's checkpoint atomically (temp file in the same directory, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(checkpoint_dict(trainer), tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint file safely (``weights_only=True``), failing clearly on a bad file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of foreign files
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or foreign files
        raise ValueError(
            f"checkpoint {path} is not an auxtune checkpoint ({_load_failure(err)}); auxtune "
            "reads checkpoints only with torch.load(weights_only=True), which runs no code"
        ) from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path} is not an auxtune checkpoint (format {FORMAT})")
    return data


def _load_failure(err: Exception) -> str:
    """The reason in torch's message, without its advice to load with ``weights_only=False``
    (which would run whatever code a crafted file holds)."""
    reason = str(err).partition("Check the documentation")[0]
    reason = reason.rpartition("from a trusted source.")[2]  # torch's advice ends here
    reason = reason.rpartition("WeightsUnpickler error:")[2]
    return " ".join(reason.split()) or type(err).__name__


def config_of(checkpoint: dict[str, Any]) -> TrainConfig:
    return from_dict(TrainConfig, checkpoint["config"])


def load_model(
    path: str | Path, device: torch.device | str | None = None
) -> tuple[MultiHeadNet, TrainConfig]:
    """The trained network of a checkpoint, in eval mode on ``device`` (default: auto)."""
    checkpoint = load_checkpoint(path)
    cfg = config_of(checkpoint)
    model = MultiHeadNet(cfg.model, cfg.tasks, int(checkpoint["num_classes"]))
    model.load_state_dict(checkpoint["trainer"]["model"])
    model.to(torch.device(device) if device else resolve_device(cfg.runtime.device))
    return model.eval(), cfg
