"""Registry look-ups, weight discovery, checkpoint round trips and their error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from emrepair.errors import InputError, OutputError, UsageError
from emrepair.models import SSANModel, get_spec, list_models, load_model, read_checkpoint, save_checkpoint
from emrepair.models import registry
from emrepair.models.checkpoint import file_sha256
from emrepair.models.ssan import SSANConfig

SMALL_SSAN = SSANConfig(base_channels=4, channels=8, downsample=2, rdb_blocks=1, rdb_layers=2, growth=4,
                        block=2, inner_block=2)


def small_ssan(seed: int = 0) -> SSANModel:
    """A tiny randomly initialised SSAN with non-zero attention so every part matters."""
    torch.manual_seed(seed)
    model = SSANModel(SMALL_SSAN)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("gamma"):
                param.fill_(0.5)
    return model.eval()


def test_list_models_names_and_flags(weights_dir: Path) -> None:
    specs = {spec.name: spec for spec in list_models()}
    assert list(specs) == ["linear", "flow", "flowunet", "ssan", "dan", "tsain", "gan"]
    assert {spec.name: spec.kind for spec in list_models(kind=None)}.keys() >= {"sff", "gan3d"}
    assert specs["linear"].has_weights() and not specs["linear"].learned
    assert not specs["ssan"].has_weights() and specs["ssan"].trained_on() is None
    assert all(spec.description for spec in specs.values())


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(UsageError, match="unknown model 'unet'.*linear, flow, flowunet, ssan, dan"):
        load_model("unet")
    with pytest.raises(UsageError, match="unknown model"):
        get_spec("unet")


@pytest.mark.parametrize("name", ["ssan", "dan"])
def test_learned_model_without_weights_needs_allow_random(name: str, weights_dir: Path) -> None:
    with pytest.raises(UsageError, match=f"model '{name}' has no trained weights yet.*--model flow"):
        load_model(name)
    model, meta = load_model(name, allow_random=True)
    assert not model.training and meta.weights_path is None and meta.trained_on is None


def test_default_weights_found_via_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(registry.WEIGHTS_ENV, str(tmp_path))
    assert registry.weights_dirs()[0] == tmp_path
    model = small_ssan()
    save_checkpoint(tmp_path / "ssan.pt", model, SMALL_SSAN, {"trained_on": ["cremi_a", "cremi_b"]})
    spec = get_spec("ssan")
    assert spec.has_weights() and spec.trained_on() == "cremi_a, cremi_b"
    (tmp_path / "ssan.json").write_text(json.dumps({"trained_on": "card says so"}))
    assert spec.trained_on() == "card says so"
    loaded, meta = load_model("ssan")
    assert meta.weights_path == str(tmp_path / "ssan.pt") and meta.config["channels"] == 8
    assert meta.weights_sha256 == file_sha256(tmp_path / "ssan.pt") and meta.trained_on == "cremi_a, cremi_b"


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path: Path, device: torch.device) -> None:
    model = small_ssan()
    path = save_checkpoint(tmp_path / "mine.pt", model, SMALL_SSAN, {"trained_on": "synthetic", "epoch": 3})
    payload = read_checkpoint(path)
    assert payload["model"] == "ssan" and payload["meta"]["epoch"] == 3
    loaded, meta = load_model(str(path), device=device)
    assert meta.name == "ssan" and meta.trained_on == "synthetic" and meta.config == payload["config"]
    a = torch.rand(2, 1, 16, 16)
    b = torch.rand(2, 1, 16, 16)
    t = torch.tensor([0.3, 0.6])
    with torch.no_grad():
        expected = model(a, b, t)
        got = loaded(a.to(device), b.to(device), t.to(device)).cpu()
    assert torch.allclose(got, expected, atol=1e-5) if device.type == "cuda" else torch.equal(got, expected)
    with torch.no_grad():
        assert not torch.equal(small_ssan(seed=1)(a, b, t), expected)


def test_weight_free_models_round_trip(tmp_path: Path) -> None:
    model, meta = load_model("flow")
    path = save_checkpoint(tmp_path / "flow.pt", model, model.config)
    loaded, loaded_meta = load_model(path)
    assert loaded.config == model.config and loaded_meta.config == meta.config


def test_sha256_sidecar_is_verified(weights_dir: Path) -> None:
    path = save_checkpoint(weights_dir / "ssan.pt", small_ssan(), SMALL_SSAN, {})
    sidecar = weights_dir / "ssan.pt.sha256"
    sidecar.write_text(f"{file_sha256(path)}  ssan.pt\n")
    assert load_model("ssan")[1].weights_sha256 == file_sha256(path)
    sidecar.write_text("0" * 64 + "  ssan.pt\n")
    with pytest.raises(InputError, match="fail their checksum"):
        load_model("ssan")


def test_bad_checkpoints_raise_clear_errors(tmp_path: Path, weights_dir: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        load_model(str(tmp_path / "missing.pt"))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read checkpoint"):
        load_model(str(garbage))
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(InputError, match="not an emrepair checkpoint"):
        load_model(str(foreign))
    # DAN weights saved where SSAN's are expected.
    dan, _ = load_model("dan", allow_random=True)
    save_checkpoint(weights_dir / "ssan.pt", dan, dan.config, {})
    with pytest.raises(InputError, match="are for model 'dan', not 'ssan'"):
        load_model("ssan")
    # A config the state dict does not fit.
    payload = read_checkpoint(save_checkpoint(tmp_path / "ok.pt", small_ssan(), SMALL_SSAN, {}))
    payload["config"]["channels"] = 16
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(InputError, match="does not match model 'ssan'"):
        load_model(str(tmp_path / "mismatch.pt"))
    payload["config"]["wings"] = 2
    torch.save(payload, tmp_path / "unknown_field.pt")
    with pytest.raises(InputError, match=r"config fields \['wings'\] are unknown"):
        load_model(str(tmp_path / "unknown_field.pt"))


def test_save_checkpoint_into_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        save_checkpoint(tmp_path / "nope" / "x.pt", small_ssan(), SMALL_SSAN, {})


def test_bad_device_is_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown device"):
        load_model("linear", device="tpu7")


def test_models_say_where_they_stand_beside_flow_and_auto_picks_only_those_that_beat_it(monkeypatch) -> None:
    from typer.testing import CliRunner

    from emrepair.cli.app import app
    from emrepair.pipelines import model_choice

    rows = {row["name"]: row for row in json.loads(CliRunner().invoke(app, ["models", "--json"]).stdout)}
    for name in ("ssan", "dan", "tsain", "gan", "gan3d"):
        standing = rows[name]["standing"]
        assert rows[name]["beats_flow"] is False and ("below" in standing or "not flow" in standing)
    assert rows["flowunet"]["beats_flow"] is True and rows["linear"]["beats_flow"] is None
    table = CliRunner().invoke(app, ["models"]).stdout
    assert "vs flow" in table and "reproduces" in table
    # auto takes the first preferred model that beats flow: one that does not is never picked
    assert model_choice.default_model_name() in {"flowunet", model_choice.FALLBACK_MODEL}
    monkeypatch.setattr(model_choice, "PREFERRED_MODELS", ("tsain", "flowunet"))
    assert model_choice.default_model_name() != "tsain"
