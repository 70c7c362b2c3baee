"""A fold's per-pixel band mask travels from detection to repair: the report's JSON, the repair plan's geometry
and the run record carry it; reports and provenance show only that it is there."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from emrepair.detection import Defect, DetectionReport
from emrepair.detection.band_codec import decode_band, encode_band
from emrepair.distributed.plan import plan_runs
from emrepair.errors import InputError
from emrepair.pipelines.sections import targets_of


def ragged_band(shape: tuple[int, int] = (96, 128)) -> np.ndarray:
    band = np.zeros(shape, np.uint8)
    pts = np.array([[0, 40], [60, 52], [127, 38], [127, 60], [60, 70], [0, 55]], np.int32)
    cv2.fillPoly(band, [pts], 1)
    return band.astype(bool)


def test_round_trip_and_resize() -> None:
    band = ragged_band()
    data = encode_band(band)
    assert json.loads(json.dumps(data)) == data and len(data["png"]) < band.size // 4
    np.testing.assert_array_equal(decode_band(data), band)
    twice = decode_band(data, (192, 256))
    assert twice.shape == (192, 256) and abs(twice.mean() - band.mean()) < 0.01


def test_malformed_band_is_an_input_error() -> None:
    data = encode_band(ragged_band())
    for bad in ({"shape": [96, 128], "png": "not base64!"}, {"png": data["png"]}, {**data, "shape": [10, 10]}):
        with pytest.raises(InputError, match="band mask"):
            decode_band(bad)


def test_report_json_keeps_the_band_and_repair_gets_it(tmp_path: Path) -> None:
    band = ragged_band()
    report = DetectionReport("x.h5", (5, 96, 128), [Defect(2, "fold", 0.9, [[0, 47, 127, 49]], 14.0)])
    report.band_masks[2] = band
    report.save(tmp_path / "r.json")
    loaded = DetectionReport.load(tmp_path / "r.json")
    np.testing.assert_array_equal(loaded.band_masks[2], band)
    np.testing.assert_array_equal(loaded.mask(2) > 0, band)  # --masks draws the segmented band, not the line
    kinds, geometry = targets_of(loaded)
    assert kinds == {2: "fold"}
    np.testing.assert_array_equal(decode_band(geometry[2]["band"], (96, 128)), band)
    run = plan_runs(kinds, 5, geometry)[0]
    shown = run.to_dict()["folds"]["2"]
    assert shown["band_mask"] is True and "band" not in shown and shown["width_px"] == 14.0


def test_an_older_report_without_bands_still_repairs_from_lines(tmp_path: Path) -> None:
    report = DetectionReport("x.h5", (5, 96, 128), [Defect(2, "fold", 0.9, [[0, 47, 127, 49]], 6.0)])
    document = report.to_dict()
    assert "band" not in document["defects"][0]
    (tmp_path / "r.json").write_text(json.dumps(document))
    kinds, geometry = targets_of(DetectionReport.load(tmp_path / "r.json"))
    assert "band" not in geometry[2] and geometry[2]["lines"]


def test_the_fold_repairer_repairs_the_segmented_band() -> None:
    from emrepair.distributed.fold_repairer import FoldRepairer
    from emrepair.models import load_model

    model, meta = load_model("sff", allow_random=True)
    repairer = FoldRepairer(model, "cpu", fallback=None, meta=meta)
    band = ragged_band()
    geometry = {"lines": [[0.0, 47.0, 127.0, 49.0]], "width_px": 2.0, "band": encode_band(band)}
    np.testing.assert_array_equal(repairer.band(2, (96, 128), geometry), band)
    drawn = repairer.band(3, (96, 128), {"lines": geometry["lines"], "width_px": 2.0})
    assert drawn.sum() < band.sum() / 4  # without the mask: the thin band its line and width draw
