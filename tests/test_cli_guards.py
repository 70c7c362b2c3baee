"""Guard rails at the CLI: outputs refused before any work, --device cuda without CUDA, train's existing -o and
poor checkpoints, eval on training sections, checkpoints named by their file; the install story and daisy 1/2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli_text import run, stack_h5


def test_existing_outputs_are_refused_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = stack_h5(tmp_path)
    out = tmp_path / "out.h5"
    out.write_bytes(b"keep me")
    import emrepair.detection as detect_module

    calls: list[int] = []
    real = detect_module.detect_volume
    monkeypatch.setattr(detect_module, "detect_volume", lambda *a, **k: calls.append(1) or real(*a, **k))
    for args in (("fix", str(path), "-o", str(out)), ("upsample-z", str(path), "-o", str(out), "--factor", "2"),
                 ("detect", str(path), "--masks", str(out))):
        result = run(*args, "--no-progress")
        assert result.exit_code == 1 and result.stderr.startswith("error: output exists"), result.output
    assert calls == [] and out.read_bytes() == b"keep me"
    demo_dir = tmp_path / "demo"
    demo_dir.mkdir()
    (demo_dir / "repaired.h5").write_bytes(b"mine")
    demo = run("demo", "-o", str(demo_dir), "--no-progress")  # --overwrite is off by default
    assert demo.exit_code == 1 and "--overwrite" in demo.stderr and (demo_dir / "repaired.h5").read_bytes() == b"mine"


def test_explicit_cuda_without_cuda_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    path = stack_h5(tmp_path)
    for args in (("fix", str(path), "-o", str(tmp_path / "f.h5"), "--model", "linear"),
                 ("eval", str(path), "--model", "linear"), ("train", str(path), "-o", str(tmp_path / "m.pt"))):
        result = run(*args, "--device", "cuda", "--no-progress")
        assert result.exit_code == 2 and "CUDA is not available" in result.stderr, result.output
    assert not (tmp_path / "f.h5").exists() and not (tmp_path / "m.pt").exists()
    auto = run("fix", str(path), "-o", str(tmp_path / "f.h5"), "--model", "linear", "--device", "auto",
               "--no-progress")
    assert auto.exit_code == 0, auto.output


def test_train_refuses_an_existing_output_and_names_poor_checkpoints(tmp_path: Path) -> None:
    from emrepair.cli.train_checks import warn_not_better_than_linear

    path = stack_h5(tmp_path, depth=12)
    out = tmp_path / "m.pt"
    out.write_bytes(b"old")
    refused = run("train", str(path), "-o", str(out), "--steps", "1", "--device", "cpu", "--no-progress")
    assert refused.exit_code == 1 and "--overwrite" in refused.stderr and out.read_bytes() == b"old"
    said: list[str] = []
    assert warn_not_better_than_linear({"val_psnr": 20.0, "linear_psnr": 21.5}, said.append)
    assert "not better than linear" in said[0] and "21.50" in said[0]
    assert not warn_not_better_than_linear({"val_psnr": 23.0, "linear_psnr": 21.5}, said.append)
    trained = run("train", str(path), "-o", str(out), "--overwrite", "--model", "ssan", "--steps", "1",
                  "--batch-size", "1", "--patch-size", "32", "--device", "cpu", "--no-progress",
                  "--set", "base_channels=4", "--no-detect")
    assert trained.exit_code == 0, trained.output
    assert "wrote" in trained.stdout
    if "validation PSNR" in trained.stdout:  # one random step is not better than linear
        assert "not better than linear" in trained.stderr

    import torch

    meta = torch.load(out, map_location="cpu", weights_only=True)["meta"]
    assert meta["training_data"][0]["train_z"] and 3 in meta["training_data"][0]["train_z"]
    scored = run("eval", str(path), "--model", str(out), "--sections", "3,7", "--device", "cpu", "--no-progress",
                 "--no-detect")
    assert scored.exit_code == 0, scored.output
    # the dropped sections 3 and 7 and their neighbours 4, 6, 8 were training sections; 2 was held out
    assert "m.pt was trained on 4 of the sections scored here (z 3, 4, 6, 8)" in scored.stderr
    clean = run("eval", str(path), "--model", str(out), "--sections", "2", "--gap", "1", "--device", "cpu",
                "--no-progress", "--no-detect")
    assert clean.exit_code == 0 and "trained on" in clean.stderr  # neighbours 1 and 3 are training sections
    fixed = run("fix", str(path), "-o", str(tmp_path / "f.zarr"), "--model", str(out), "--sections", "3",
                "--device", "cpu", "--no-progress")
    assert fixed.exit_code == 0, fixed.output
    assert "model m.pt (ssan)" in fixed.stdout  # a checkpoint is named by its file, not its architecture
    shown = run("info", str(tmp_path / "f.zarr"), "--json")
    assert json.loads(shown.stdout)["emrepair"]["model"] == "m.pt (ssan)"  # in the provenance and info too


def test_overlap_needs_the_same_stack() -> None:
    from emrepair.cli.train_checks import trained_overlap

    meta = {"training_data": [{"file": "stack.h5", "shape": [8, 32, 32], "train_z": [0, 1, 3], "val_sections": [2]}]}
    assert trained_overlap(meta, "/data/stack.h5", (8, 32, 32), {1, 2}) == [1]
    assert trained_overlap(meta, "/data/stack.h5/raw", (8, 32, 32), {2}) == []
    assert trained_overlap(meta, "/data/other.h5", (8, 32, 32), {1}) is None
    assert trained_overlap(meta, "/data/stack.h5", (9, 32, 32), {1}) is None
    old = {"training_data": [{"file": "stack.h5", "shape": [8, 32, 32], "val_sections": [2]}]}  # no train_z
    assert trained_overlap(old, "stack.h5", (8, 32, 32), {1, 2, 5}) == [1, 5]


def test_install_story_in_the_readme_and_pyproject() -> None:
    root = Path(__file__).resolve().parents[1]
    readme = root.joinpath("README.md").read_text()
    head = readme[: readme.index("## Commands")]
    cpu = head.index("download.pytorch.org/whl/cpu")
    assert cpu < head.index("pip install . &&") and "whl/cu" in head  # the PyTorch build comes first
    assert "pip install torch==" in root.joinpath(".ci", "run").read_text()  # CI keeps its CPU install
    pyproject = root.joinpath("pyproject.toml").read_text()
    assert '"daisy>=1.2,<3"' in pyproject


@pytest.mark.parametrize("version", ["1.2.3", "2.0.0"])
def test_daisy_1_and_2_are_driven_by_their_own_api(version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    from emrepair.distributed.blocks import Block
    from emrepair.distributed.daisy_executor import DaisyExecutor

    calls: dict[str, object] = {}
    fake = types.ModuleType("daisy")
    fake.__version__ = version
    fake.Roi = lambda begin, shape: (begin, shape)
    fake.Task = lambda *args, **kwargs: calls.setdefault("task", kwargs)
    fake.run_blockwise = lambda tasks, **kwargs: calls.setdefault("run", kwargs) is not None
    monkeypatch.setitem(sys.modules, "daisy", fake)
    blocks = [Block(start=i, stop=i + 1) for i in range(3)]
    DaisyExecutor(workers=2).run(blocks, setup=lambda worker: None)
    task = calls["task"]
    if version.startswith("2"):
        assert task["max_workers"] == 2 and "num_workers" not in task
        assert calls["run"] == {"progress": False, "summary": False}  # no tqdm bar, no summary on stdout
    else:
        assert task["num_workers"] == 2 and calls["run"] == {}


def test_models_info_and_provenance_name_the_weights_licence(tmp_path: Path) -> None:
    from emrepair.models.licence import data_terms
    from emrepair.models.registry import REGISTRY

    assert data_terms("isbi2012_train.h5, neuroproof_medulla_train1.h5").startswith("non-commercial research use")
    assert data_terms(["neuroproof_medulla_train1.h5"]).startswith("attribution required")
    assert data_terms("my_lab_stack.h5") is None and data_terms(None) is None
    rows = {row["name"]: row for row in json.loads(run("models", "--json").stdout)}
    assert rows["linear"]["licence"] is None
    if not REGISTRY["flowunet"].has_weights():
        pytest.skip("flowunet weights are not present")
    assert rows["flowunet"]["licence"].startswith("non-commercial research use")
    assert "non-commercial research use" in run("models").stdout
    path = stack_h5(tmp_path)
    for model, out in (("flowunet", "f.zarr"), ("linear", "l.zarr")):
        result = run("fix", str(path), "-o", str(tmp_path / out), "--model", model, "--sections", "3",
                     "--fold-model", "none", "--device", "cpu", "--no-progress")
        assert result.exit_code == 0, result.output
    shown = json.loads(run("info", str(tmp_path / "f.zarr"), "--json").stdout)
    assert shown["emrepair"]["weights_licence"].startswith("flowunet: non-commercial research use")
    assert shown["weights_licence"] == shown["emrepair"]["weights_licence"]
    assert "weights licence" in run("info", str(tmp_path / "f.zarr")).stdout
    assert json.loads(run("info", str(tmp_path / "l.zarr"), "--json").stdout)["weights_licence"] is None


def test_upsample_dry_run_estimates_time_and_warns_on_isotropic_stacks(tmp_path: Path) -> None:
    from helpers import smooth_stack, write_h5

    iso = write_h5(tmp_path / "iso.h5", smooth_stack(6, 64), resolution=(10.0, 10.0, 10.0))
    dry = run("upsample-z", iso, "--factor", "2", "--dry-run", "--model", "linear", "--no-repair", "--no-progress")
    assert dry.exit_code == 0, dry.output
    assert "already isotropic" in dry.stderr and "estimated time ~" in dry.stdout
    record = json.loads(run("upsample-z", iso, "--factor", "2", "--dry-run", "--model", "linear", "--no-repair",
                            "--json", "--no-progress").stdout)
    assert record["estimated_seconds"] is not None and record["estimated_seconds"] >= 0
    aniso = stack_h5(tmp_path)  # 40 nm sections of 4 nm pixels
    plain = run("upsample-z", str(aniso), "--factor", "2", "--dry-run", "--model", "linear", "--no-repair",
                "--no-progress")
    assert plain.exit_code == 0 and "isotropic" not in plain.stderr
