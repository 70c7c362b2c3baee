"""Weights are what they claim: the shipped files' SHA-256 is pinned in the package, other weights are named by
their hash in a warning and the provenance, and no checkpoint can run code when it is loaded."""

from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from emrepair.errors import InputError, InputWarning
from emrepair.models import load_model, save_checkpoint
from emrepair.models import pins, registry
from emrepair.models.checkpoint import file_sha256
from emrepair.models.linear import LinearConfig, LinearModel

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "weights"


def test_pins_match_the_shipped_files_and_sidecars() -> None:
    pinned = {spec.name: spec.weights_sha256 for spec in registry.REGISTRY.values() if spec.learned}
    assert all(pinned.values()), f"learned models without a pinned hash: {pinned}"
    for name, digest in pinned.items():
        path = SHIPPED / f"{name}.pt"
        if not path.is_file():
            continue
        assert file_sha256(path) == digest, f"{path} does not match its pin in emrepair/models/pins.py"
        sidecar = SHIPPED / f"{name}.pt.sha256"
        assert sidecar.read_text().split()[0] == digest, f"{sidecar} disagrees with the pin"


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder that plays the package's own weights folder (and is the only one searched)."""
    folder = tmp_path / "package_weights"
    folder.mkdir()
    monkeypatch.setattr(pins, "package_weights_dirs", lambda: [folder])
    monkeypatch.setattr(registry, "weights_dirs", lambda: [folder])
    monkeypatch.delenv(pins.WEIGHTS_ENV, raising=False)
    return folder


def _other_ssan(path: Path) -> Path:
    model, _ = load_model("ssan", allow_random=True)
    return save_checkpoint(path, model, model.config, {"trained_on": "nothing"})


def test_tampered_shipped_weights_without_sidecar_are_refused(fake_package: Path) -> None:
    path = _other_ssan(fake_package / "ssan.pt")  # no .sha256 beside it: only the pin can tell
    with pytest.raises(InputError, match=r"not the ones this emrepair ships .*sha256 " + file_sha256(path)[:16]):
        load_model("ssan")


def test_genuine_shipped_weights_load_as_shipped(fake_package: Path) -> None:
    if not (SHIPPED / "ssan.pt").is_file():
        pytest.skip("weights/ssan.pt is not in this checkout")
    shutil.copy(SHIPPED / "ssan.pt", fake_package / "ssan.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, meta = load_model("ssan")
    assert meta.weights_source == "shipped" and meta.weights_sha256 == registry.REGISTRY["ssan"].weights_sha256


def test_env_weights_are_named_by_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / "env"
    env.mkdir()
    path = _other_ssan(env / "ssan.pt")
    monkeypatch.setenv(pins.WEIGHTS_ENV, str(env))
    digest = file_sha256(path)
    with pytest.warns(InputWarning, match=rf"EMREPAIR_WEIGHTS.*not emrepair's shipped ssan weights.*{digest}"):
        _, meta = load_model("ssan")
    assert meta.weights_source == "EMREPAIR_WEIGHTS" and meta.weights_sha256 == digest
    assert meta.to_dict()["weights_sha256"] == digest and meta.to_dict()["weights_source"] == "EMREPAIR_WEIGHTS"


def test_checkpoint_by_path_is_named_by_hash(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "mine.pt", LinearModel(LinearConfig()), LinearConfig())
    with pytest.warns(InputWarning, match=rf"given by path.*{file_sha256(path)}"):
        _, meta = load_model(str(path))
    assert meta.weights_source == "path"


def test_copy_of_shipped_weights_by_path_is_shipped(tmp_path: Path) -> None:
    if not (SHIPPED / "gan3d.pt").is_file():
        pytest.skip("weights/gan3d.pt is not in this checkout")
    shutil.copy(SHIPPED / "gan3d.pt", tmp_path / "copy.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, meta = load_model(str(tmp_path / "copy.pt"))
    assert meta.weights_source == "shipped"


class _WritesMarker:
    """Unpickling this calls ``open(marker, "w")``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_crafted_pickle_never_runs(tmp_path: Path, fake_package: Path) -> None:
    marker = tmp_path / "pwned"
    payload = {"model": "ssan", "config": {}, "state_dict": {}, "meta": {"x": _WritesMarker(marker)}}
    evil = tmp_path / "evil.pt"
    torch.save(payload, evil)
    assert not marker.exists()
    with pytest.raises(InputError, match="cannot read checkpoint"):
        load_model(str(evil))
    shutil.copy(evil, fake_package / "ssan.pt")
    with pytest.raises(InputError):
        load_model("ssan")
    assert not marker.exists()
    ran = torch.load(evil, weights_only=False)  # the control: without weights_only the file does run code
    ran["meta"]["x"].close()
    assert marker.exists()


def test_every_torch_load_is_weights_only() -> None:
    calls = []
    for path in (ROOT / "emrepair").rglob("*.py"):
        text = path.read_text()
        for match in re.finditer(r"torch\.load\(([^)]*)\)", text):
            calls.append((path.relative_to(ROOT), match.group(1)))
    assert calls, "no torch.load found: the scan is broken"
    unsafe = [f"{p}: torch.load({args})" for p, args in calls if "weights_only=True" not in args]
    assert not unsafe, unsafe
    assert not [p for p in (ROOT / "emrepair").rglob("*.py") if re.search(r"\bpickle\.loads?\(", p.read_text())]

