"""Masks as NGFF labels: fix and upsample-z put them inside an .ome.zarr output (``labels/synthetic``) with named,
coloured values, label outputs carry the same image-label block, ome-zarr-models and ome-zarr-py accept both, a
Ctrl-C while the pyramid is made leaves a run that --continue finishes, and ``info`` lists levels and labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from helpers import smooth_stack, textured_stack, write_h5, write_zarr
from typer.testing import CliRunner

from emrepair.cli.app import app
from emrepair.detection import KIND_LABELS
from emrepair.io import open_volume
from emrepair.io.ome_labels import DETECT_LABELS, FIX_LABELS, UPSAMPLE_LABELS
from emrepair.io.writers import pyramid
from emrepair.pipelines.upsample.plan import INTERPOLATED_LABEL

FIX_ARGS = ["--sections", "1,4", "--model", "linear", "--no-progress"]


def run(*args: str) -> object:
    """Invoke the CLI in-process."""
    return CliRunner().invoke(app, list(args))


@pytest.fixture(autouse=True)
def small_levels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pyramids down to 16 px, so that 64 px volumes get three levels."""
    monkeypatch.setattr("emrepair.io.ome.PYRAMID_MIN_PX", 16)


def test_label_tables_match_the_values_the_commands_write() -> None:
    for table in (DETECT_LABELS, FIX_LABELS):  # every defect kind's value is named after the kind
        assert all(table[v].name.startswith(kind) for kind, v in KIND_LABELS.items())
    assert UPSAMPLE_LABELS[INTERPOLATED_LABEL].name == "synthetic"
    for kind in ("missing", "fold", "partial"):  # the defect kinds upsample-z repairs keep fix's values and names
        assert UPSAMPLE_LABELS[KIND_LABELS[kind]].name == FIX_LABELS[KIND_LABELS[kind]].name
    assert INTERPOLATED_LABEL not in KIND_LABELS.values()
    assert all(table[0].rgba[3] == 0 for table in (DETECT_LABELS, FIX_LABELS, UPSAMPLE_LABELS))


def validate_image(path: Path) -> object:
    """The image (with its labels) as ome-zarr-models reads it; fails on any NGFF violation."""
    models = pytest.importorskip("ome_zarr_models.v05")
    return models.Image.from_zarr(zarr.open_group(str(path), mode="r"))


def test_fix_puts_the_masks_inside_the_ome_zarr_image(tmp_path: Path) -> None:
    src = write_zarr(tmp_path / "in.zarr", textured_stack(6, 64), chunks=(1, 32, 32))
    out, masks = tmp_path / "out.ome.zarr", tmp_path / "m.ome.zarr"
    result = run("fix", src, "-o", str(out), "--masks", str(masks), *FIX_ARGS)
    assert result.exit_code == 0, result.output
    image = validate_image(out)  # also checks that labels/synthetic has as many levels as the image
    assert image.labels.label_paths == ["synthetic"]
    group = zarr.open_group(str(out), mode="r")
    label = group["labels/synthetic"]
    np.testing.assert_array_equal(label["0"][:], zarr.open_group(str(masks), mode="r")["0"][:])
    assert label["0"][1].min() == 1 and label["0"][0].max() == 0 and label["2"][4].min() == 1
    block = label.attrs["ome"]["image-label"]
    assert block["source"] == {"image": "../../"}
    names = {p["label-value"]: p["class"] for p in block["properties"]}
    assert {v: names[v] for v in range(4)} == {0: "original", 1: "missing", 2: "fold band", 3: "partial"}
    assert {c["label-value"] for c in block["colors"]} == set(names)
    standalone = pytest.importorskip("ome_zarr_models.v05").ImageLabel.from_zarr(zarr.open_group(str(masks), mode="r"))
    assert [p.label_value for p in standalone.attributes.ome.image_label.properties] == sorted(FIX_LABELS)

    reader = pytest.importorskip("ome_zarr.reader")
    from ome_zarr.io import parse_url

    nodes = list(reader.Reader(parse_url(str(out)))())
    labelled = [n for n in nodes if any(type(s).__name__ == "Label" for s in n.specs)]
    assert len(labelled) == 1 and len(labelled[0].data) == 3
    assert labelled[0].metadata["properties"][2]["class"] == "fold band"
    assert labelled[0].metadata["color"][1][3] == pytest.approx(200 / 255)

    shown = json.loads(run("info", str(out), "--json").stdout)
    assert [lv["path"] for lv in shown["levels"]] == ["0", "1", "2"]
    assert shown["levels"][2]["scale"] == [40.0, 16.0, 16.0] or shown["levels"][2]["scale"][1] == 4 * shown[
        "levels"][0]["scale"][1]
    assert [(e["name"], e["levels"]) for e in shown["labels"]] == [("synthetic", 3)]
    values = shown["labels"][0]["values"]
    assert {v: values[v] for v in "0123"} == {"0": "original", "1": "missing", "2": "fold band", "3": "partial"}
    text = run("info", str(out)).stdout
    assert "labels/synthetic: 3 levels; 0 original, 1 missing" in text and "2: 6 x 16 x 16" in text


def test_fix_with_masks_elsewhere_still_labels_the_image(tmp_path: Path) -> None:
    src = write_h5(tmp_path / "in.h5", smooth_stack(6, 64))
    out, masks = tmp_path / "out.ome.zarr", tmp_path / "m.h5"
    assert run("fix", src, "-o", str(out), "--masks", str(masks), *FIX_ARGS).exit_code == 0
    validate_image(out)
    with open_volume(masks) as vol:
        np.testing.assert_array_equal(zarr.open_group(str(out), mode="r")["labels/synthetic/0"][:],
                                      vol.read_region(slice(None), slice(None), slice(None)))
    with open_volume(out) as vol:  # the image itself still reads as the repaired stack, level 0
        assert vol.shape == (6, 64, 64) and vol.info.voxel_size == (40.0, 4.0, 4.0)


def test_upsample_labels_name_the_interpolated_sections(tmp_path: Path) -> None:
    src = write_h5(tmp_path / "in.h5", smooth_stack(3, 64), resolution=(40.0, 4.0, 4.0))
    out, masks = tmp_path / "up.ome.zarr", tmp_path / "um.ome.zarr"
    result = run("upsample-z", src, "--factor", "2", "-o", str(out), "--masks", str(masks), "--model", "linear",
                 "--no-repair", "--no-progress")
    assert result.exit_code == 0, result.output
    validate_image(out)
    label = zarr.open_group(str(out), mode="r")["labels/synthetic"]
    assert label["0"].shape == (5, 64, 64) and label["0"][1].min() == INTERPOLATED_LABEL and label["0"][2].max() == 0
    props = {p["label-value"]: p["class"] for p in label.attrs["ome"]["image-label"]["properties"]}
    assert props[INTERPOLATED_LABEL] == "synthetic" and props[0] == "original"
    scale = label.attrs["ome"]["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == [20.0, 4.0, 4.0]


def test_detect_masks_are_an_image_label_with_names(tmp_path: Path) -> None:
    data = smooth_stack(6, 96)
    data[3] = 0
    src = write_h5(tmp_path / "s.h5", data)
    result = run("detect", src, "--masks", str(tmp_path / "m.ome.zarr"), "--no-progress")
    assert result.exit_code == 0, result.output
    block = zarr.open_group(str(tmp_path / "m.ome.zarr"), mode="r").attrs["ome"]["image-label"]
    names = {p["label-value"]: p["class"] for p in block["properties"]}
    assert {v: names[v] for v in range(4)} == {0: "good", 1: "missing", 2: "fold band", 3: "partial"}
    models = pytest.importorskip("ome_zarr_models.v05")
    models.ImageLabel.from_zarr(zarr.open_group(str(tmp_path / "m.ome.zarr"), mode="r"))


def test_ctrl_c_while_the_pyramid_is_made_then_continue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = write_zarr(tmp_path / "in.zarr", textured_stack(6, 64), chunks=(1, 32, 32))
    ref, out = tmp_path / "ref.ome.zarr", tmp_path / "out.ome.zarr"
    assert run("fix", src, "-o", str(ref), "--masks", str(tmp_path / "rm.h5"), *FIX_ARGS).exit_code == 0
    real = pyramid.write_level
    calls = [0]

    def interrupted(*args: object, **kwargs: object) -> object:
        calls[0] += 1
        if calls[0] == 2:  # the image's level 2, after level 1 (the masks, an .h5, have no pyramid)
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(pyramid, "write_level", interrupted)
    first = run("fix", src, "-o", str(out), "--masks", str(tmp_path / "m.h5"), *FIX_ARGS)
    assert first.exit_code != 0 and not out.exists() and calls[0] == 2
    monkeypatch.setattr(pyramid, "write_level", real)
    again = run("fix", src, "-o", str(out), "--masks", str(tmp_path / "m.h5"), *FIX_ARGS, "--continue")
    assert again.exit_code == 0, again.output
    validate_image(out)
    done, expected = zarr.open_group(str(out), mode="r"), zarr.open_group(str(ref), mode="r")
    for name in ("0", "1", "2", "labels/synthetic/0", "labels/synthetic/2"):
        np.testing.assert_array_equal(done[name][:], expected[name][:])
