"""Weight averaging of two checkpoints of one architecture (a fine-tuned model and the weights it started from).

A fine-tune that gains on new data can lose on data it no longer sees; the average of the two weight sets, which
lie in one basin when one was started from the other, often keeps most of the gain and gives back most of the loss.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from emrepair.errors import InputError
from emrepair.models.checkpoint import atomic_torch_save, file_sha256, read_checkpoint


def merged_training_data(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Both checkpoints' ``training_data`` entries, one per (file, shape), with the union of their ``train_z`` and
    the held-out sections that neither trained on."""
    merged: dict[tuple[str, tuple[int, ...]], dict[str, Any]] = {}
    for entry in list(first) + list(second):
        key = (str(entry.get("file")), tuple(entry.get("shape", ())))
        if key not in merged:
            merged[key] = dict(entry)
            continue
        kept = merged[key]
        train = sorted(set(kept.get("train_z", [])) | set(entry.get("train_z", [])))
        kept["train_z"], kept["train_sections"] = train, len(train)
        kept["val_sections"] = sorted(set(kept.get("val_sections", [])) - set(train))
    return list(merged.values())


def average_checkpoints(base: str | Path, tuned: str | Path, weight: float, output: str | Path) -> Path:
    """Write ``(1 - weight) * base + weight * tuned`` (every tensor) to ``output``, with ``tuned``'s model and
    config and a meta that names both sources by SHA-256 and merges their training data.

    Raises:
        InputError: the two checkpoints are of different models, configs or tensor sets, or weight is outside [0, 1].
    """
    if not 0.0 <= weight <= 1.0:
        raise InputError(f"weight must be in [0, 1], got {weight}")
    a, b = read_checkpoint(base), read_checkpoint(tuned)
    if a.get("model") != b.get("model") or a.get("config") != b.get("config"):
        raise InputError(f"{base} and {tuned} are not the same architecture: "
                         f"{a.get('model')} {a.get('config')} vs {b.get('model')} {b.get('config')}")
    if set(a["state_dict"]) != set(b["state_dict"]):
        raise InputError(f"{base} and {tuned} hold different tensors")
    state = {}
    for key, value in b["state_dict"].items():
        mixed = (1.0 - weight) * a["state_dict"][key].double() + weight * value.double()
        state[key] = mixed.to(value.dtype) if value.is_floating_point() else value.clone()
    meta_a, meta_b = dict(a.get("meta", {})), dict(b.get("meta", {}))
    meta = dict(meta_b)
    meta["trained_on"] = sorted(set(meta_a.get("trained_on", [])) | set(meta_b.get("trained_on", [])))
    meta["training_data"] = merged_training_data(meta_a.get("training_data", []), meta_b.get("training_data", []))
    meta["averaged"] = {"base": Path(base).name, "base_sha256": file_sha256(Path(base)),
                        "tuned": Path(tuned).name, "tuned_sha256": file_sha256(Path(tuned)), "weight": weight}
    meta["metrics"] = {}   # the tuned run's validation figures do not describe the average
    meta["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    payload = {"model": b["model"], "config": b["config"], "state_dict": state, "meta": meta}
    output = Path(output)
    atomic_torch_save(payload, output, "checkpoint")
    return output
