"""Checkpoints made by `emrepair train` record the licence terms they inherit (from --init weights and from the
training data), and `train`, `info` of a checkpoint, `models` and a run's provenance terms show them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_eval import write_shifted_stack  # tests/ is on sys.path (no __init__.py)
from typer.testing import CliRunner

from emrepair.cli.app import app
from emrepair.models import get_spec, read_checkpoint
from emrepair.models.checkpoint import file_sha256
from emrepair.models.licence import (
    NON_COMMERCIAL,
    inherited_terms,
    model_terms,
    run_weights_terms,
)

SHIPPED = "flowunet"


def run(*args: str) -> object:
    """Invoke the CLI in-process."""
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def shipped() -> str:
    if get_spec(SHIPPED).weights_path() is None:
        pytest.skip(f"the shipped {SHIPPED} weights are not installed")
    return SHIPPED


def test_terms_from_init_weights_and_from_the_data() -> None:
    own = inherited_terms(None, ["mystack.h5"])
    assert own.startswith("the terms of its training data") and "mystack.h5" in own
    assert NON_COMMERCIAL not in own
    public = inherited_terms(None, ["vnc_stack.h5", "mystack.h5"])
    assert public.startswith(f"{NON_COMMERCIAL}, share-alike") and "VNC: CC BY-NC-SA 3.0" in public


def test_fine_tuned_checkpoint_inherits_the_shipped_terms(tmp_path: Path, shipped: str) -> None:
    write_shifted_stack(tmp_path / "s.h5", depth=12)
    out = tmp_path / "ft.pt"
    result = run("train", str(tmp_path / "s.h5"), "-o", str(out), "--model", shipped, "--init", shipped,
                 "--steps", "1", "--batch-size", "1", "--patch-size", "32", "--device", "cpu", "--no-progress")
    assert result.exit_code == 0, result.output
    recorded = read_checkpoint(out)["meta"]["weights_licence"]
    assert recorded.startswith(NON_COMMERCIAL) and f"--init {shipped}: {model_terms(shipped)}" in recorded
    assert "training data s.h5: the terms of that data" in recorded
    assert f"weights licence: {recorded}" in result.stdout.replace("\n", "")
    shown = json.loads(run("info", str(out), "--json").stdout)
    assert shown["weights_licence"] == recorded and shown["model"] == shipped and shown["trained_on"] == ["s.h5"]
    assert "weights licence: non-commercial" in run("info", str(out)).stdout
    # a run with this checkpoint names its terms in its provenance; shipped weights by their hash
    terms = run_weights_terms((str(out), file_sha256(out)))
    assert terms == f"ft.pt: {recorded}"
    shipped_path = get_spec(shipped).weights_path()
    assert run_weights_terms((shipped, file_sha256(shipped_path))).startswith(f"{shipped}: {NON_COMMERCIAL}")
    # and a checkpoint fine-tuned from this one inherits the same terms, nested
    assert model_terms(str(out)) == recorded
    # fix with it: the output's provenance (shown by info) names those terms
    fixed = tmp_path / "fixed.zarr"
    done = run("fix", str(tmp_path / "s.h5"), "-o", str(fixed), "--model", str(out), "--sections", "3",
               "--fold-model", "none", "--device", "cpu", "--no-progress")
    assert done.exit_code == 0, done.output
    assert json.loads(run("info", str(fixed), "--json").stdout)["weights_licence"] == f"ft.pt: {recorded}"


def test_models_lists_the_terms_of_the_shipped_weights(shipped: str) -> None:
    rows = {row["name"]: row for row in json.loads(run("models", "--json").stdout)}
    assert rows[shipped]["licence"].startswith(NON_COMMERCIAL)
    assert rows["linear"]["licence"] is None
