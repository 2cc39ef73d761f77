"""Resumable training: checkpoints inside a stage, written atomically and without pickle.

A checkpoint is a folder `step-000050/` holding
  weights.safetensors    the trained parameters, by name
  optimizer.safetensors  the optimizer's tensors (`state.<param index>.<key>`)
  extras.safetensors     the batch generator's state (uint8) and other tensors the run needs again
  state.json             step, a fingerprint of the settings, the optimizer's scalars and param groups, logs
It is written to a temporary folder and renamed into place, so a killed run leaves either the whole
checkpoint or none; older checkpoints are removed after the new one is in place.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

STEP_FOLDER = re.compile(r"^step-(\d{6,})$")
FILES = ("weights.safetensors", "optimizer.safetensors", "extras.safetensors", "state.json")


@dataclass
class Checkpoint:
    step: int
    fingerprint: dict[str, Any]
    weights: dict[str, torch.Tensor]
    optimizer: dict[str, Any]  # torch's optimizer state_dict layout
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    records: dict[str, Any] = field(default_factory=dict)  # JSON-able: logs, probe rows


def _split_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in state_dict["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                # a copy each: 8-bit optimizers share one quantisation map between parameters
                tensors[f"state.{index}.{key}"] = value.detach().to("cpu", copy=True).contiguous()
            elif value is None or isinstance(value, (bool, int, float, str)):
                scalars.setdefault(str(index), {})[key] = value
            else:
                kind = type(value).__name__
                raise ValueError(f"optimizer state {index}.{key} is a {kind}: it cannot be saved without pickle")
    return tensors, {"scalars": scalars, "param_groups": state_dict["param_groups"]}


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = tensor
    for index, entries in meta["scalars"].items():
        state.setdefault(int(index), {}).update(entries)
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    with open(path, "w") as handle:
        json.dump(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(directory: Path, checkpoint: Checkpoint) -> Path:
    """Write `directory/step-NNNNNN/` atomically and remove older checkpoints; returns the new folder."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"step-{checkpoint.step:06d}"
    if final.is_dir():
        return final
    temporary = directory / f".tmp-step-{checkpoint.step:06d}-{os.getpid()}"
    if temporary.exists():
        shutil.rmtree(temporary)
    temporary.mkdir()
    optimizer_tensors, optimizer_meta = _split_optimizer(checkpoint.optimizer)
    weights = {name: t.detach().cpu().contiguous() for name, t in checkpoint.weights.items()}
    extras = {name: t.detach().cpu().contiguous() for name, t in checkpoint.extras.items()}
    for name, tensors in (("weights", weights), ("optimizer", optimizer_tensors), ("extras", extras)):
        path = temporary / f"{name}.safetensors"
        save_file(tensors, str(path))
        _fsync(path)
    state = {
        "step": checkpoint.step,
        "fingerprint": checkpoint.fingerprint,
        "optimizer": optimizer_meta,
        "records": checkpoint.records,
    }
    _write_json(temporary / "state.json", state)
    os.replace(temporary, final)
    _fsync(directory)
    for other in directory.iterdir():
        match = STEP_FOLDER.match(other.name)
        stale = match is not None and int(match.group(1)) < checkpoint.step
        if stale or (other.name.startswith(".tmp-step-") and other != temporary):
            shutil.rmtree(other, ignore_errors=True)
    return final


def latest_checkpoint(directory: Path) -> Path | None:
    if not directory.is_dir():
        return None
    steps = [
        (int(m.group(1)), p)
        for p in directory.iterdir()
        if (m := STEP_FOLDER.match(p.name)) and (p / "state.json").is_file()
    ]
    return max(steps)[1] if steps else None


def load_checkpoint(folder: Path) -> Checkpoint:
    """Everything on the CPU: the optimizer moves its state to its parameters' devices as torch expects."""
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        raise ValueError(f"checkpoint {folder} is incomplete: {', '.join(missing)} missing")
    try:
        state = json.loads((folder / "state.json").read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{folder / 'state.json'} is not valid JSON: {error}") from error
    optimizer_tensors = load_file(str(folder / "optimizer.safetensors"))
    return Checkpoint(
        step=int(state["step"]),
        fingerprint=state["fingerprint"],
        weights=load_file(str(folder / "weights.safetensors")),
        optimizer=_join_optimizer(optimizer_tensors, state["optimizer"]),
        extras=load_file(str(folder / "extras.safetensors")),
        records=state["records"],
    )


def check_fingerprint(folder: Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    """A resumed run only equals an uninterrupted one with the same settings: name what differs."""
    differences = [
        f"{key}: checkpoint {saved.get(key)!r}, now {current.get(key)!r}"
        for key in sorted(set(saved) | set(current))
        if saved.get(key) != current.get(key)
    ]
    if differences:
        raise ValueError(
            f"checkpoint {folder} was written with other settings; remove it or restore them ("
            + "; ".join(differences)
            + ")"
        )
