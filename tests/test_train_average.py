"""Weight averaging of two checkpoints (emrepair.training.average)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from emrepair.errors import InputError
from emrepair.models import load_model, save_checkpoint
from emrepair.models.flowunet import FlowUNetConfig, FlowUNetModel
from emrepair.training.average import average_checkpoints, merged_training_data


def _save(path: Path, seed: int, widths: tuple[int, ...] = (4, 8), train_z: list[int] | None = None) -> Path:
    torch.manual_seed(seed)
    config = FlowUNetConfig(widths=widths)
    model = FlowUNetModel(config)
    data = [{"file": "s.h5", "shape": [10, 32, 32], "train_z": train_z or [0, 1, 3], "val_sections": [2, 7]}]
    return save_checkpoint(path, model, config, {"trained_on": ["s.h5"], "training_data": data})


def test_the_average_is_the_weighted_mean_of_every_tensor_and_loads(tmp_path: Path) -> None:
    a = _save(tmp_path / "a.pt", 0)
    b = _save(tmp_path / "b.pt", 1, train_z=[0, 1, 3, 4])
    out = average_checkpoints(a, b, 0.25, tmp_path / "mix.pt")
    sa, sb = (torch.load(p, weights_only=True)["state_dict"] for p in (a, b))
    mixed = torch.load(out, weights_only=True)
    for key, value in mixed["state_dict"].items():
        torch.testing.assert_close(value, 0.75 * sa[key] + 0.25 * sb[key])
    meta = mixed["meta"]
    assert meta["averaged"]["weight"] == 0.25 and len(meta["averaged"]["base_sha256"]) == 64
    assert meta["training_data"][0]["train_z"] == [0, 1, 3, 4]
    model = load_model(str(out), device="cpu")[0]
    assert isinstance(model, FlowUNetModel) and model.config.widths == (4, 8)


def test_weight_one_reproduces_the_tuned_checkpoint(tmp_path: Path) -> None:
    a, b = _save(tmp_path / "a.pt", 0), _save(tmp_path / "b.pt", 1)
    out = average_checkpoints(a, b, 1.0, tmp_path / "mix.pt")
    sb = torch.load(b, weights_only=True)["state_dict"]
    assert all(torch.equal(v, sb[k]) for k, v in torch.load(out, weights_only=True)["state_dict"].items())


def test_different_architectures_or_weights_outside_the_unit_range_are_refused(tmp_path: Path) -> None:
    a, b = _save(tmp_path / "a.pt", 0), _save(tmp_path / "b.pt", 1, widths=(4, 8, 16))
    with pytest.raises(InputError, match="not the same architecture"):
        average_checkpoints(a, b, 0.5, tmp_path / "mix.pt")
    with pytest.raises(InputError, match="weight"):
        average_checkpoints(a, a, 1.5, tmp_path / "mix.pt")


def test_training_data_of_a_file_given_twice_is_merged_and_sections_trained_on_are_not_held_out() -> None:
    first = [{"file": "s.h5", "shape": [10, 8, 8], "train_z": [0, 1], "val_sections": [2, 7]}]
    second = [{"file": "s.h5", "shape": [10, 8, 8], "train_z": [0, 7], "val_sections": [2]},
              {"file": "t.h5", "shape": [5, 8, 8], "train_z": [0], "val_sections": [2]}]
    merged = merged_training_data(first, second)
    assert [e["file"] for e in merged] == ["s.h5", "t.h5"]
    assert merged[0]["train_z"] == [0, 1, 7] and merged[0]["val_sections"] == [2]
