"""Detector tests on small synthetic volumes: each defect kind, fold geometry, edge cases, report schema."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from emrepair.detection import KIND_LABELS, DetectConfig, DetectionReport, detect_volume
from emrepair.errors import InputError
from emrepair.io import ArrayVolume
from emrepair.simulate import MISSING_KINDS, FoldParams, simulate_fold, simulate_missing
from emrepair.simulate.fold_b import FoldBParams, simulate_fold_b


def tissue(depth: int, size: int = 128, dtype: type = np.uint8, seed: int = 0) -> np.ndarray:
    """EM-like stand-in: smooth random texture (lag-1 autocorrelation ≈ 0.9), drifting slowly in z."""
    rng = np.random.default_rng(seed)
    base = rng.random((size + 8 * depth, size + 8 * depth)).astype(np.float32)
    base = cv2.GaussianBlur(base, (0, 0), 2.0)
    base = (base - base.min()) / (base.max() - base.min())
    stack = np.stack([base[2 * z:2 * z + size, 3 * z:3 * z + size] for z in range(depth)])
    stack = 0.35 + 0.55 * stack
    if dtype == np.float32:
        return stack.astype(np.float32)
    return (stack * np.iinfo(dtype).max).astype(dtype)


def straight_fold(section: np.ndarray, seed: int = 3, width: int = 12) -> object:
    """A straight, pure-black fold of a fixed width."""
    params = FoldParams(line_width=(width, width), darkness=(0.95, 0.95), curvature_prob=0.0, contrast_box_prob=0.0)
    return simulate_fold(section, np.random.default_rng(seed), params)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.mark.parametrize("kind", MISSING_KINDS)
def test_each_missing_kind_is_found(kind: str) -> None:
    vol = tissue(5)
    vol[2] = simulate_missing(vol[2], kind, np.random.default_rng(4))
    report = detect_volume(ArrayVolume(vol))
    if kind == "tear":  # 55-85 % lost: a partly lost section whose tissue is kept (tests/test_partial_detect.py)
        assert [(d.z, d.kind) for d in report.defects] == [(2, "partial")]
        return
    assert [(d.z, d.kind) for d in report.defects] == [(2, "missing")]
    assert 0.5 < report.defects[0].score <= 1.0
    assert np.all(report.mask(2, (128, 128)) == KIND_LABELS["missing"])
    assert np.all(report.mask(1, (128, 128)) == 0)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_fold_found_with_line_width_and_band(dtype: type) -> None:
    vol = tissue(4, size=256, dtype=dtype)
    fold = straight_fold(vol[1])
    vol[1] = fold.image
    report = detect_volume(ArrayVolume(vol))
    assert report.defective_z() == [1]
    defect = report.defects[0]
    assert defect.kind == "fold" and defect.score >= DetectConfig().fold_threshold
    assert defect.width_px == pytest.approx(fold.width_px, rel=0.25)
    # the reported line runs along the true one: both end points lie on the true band's centre line
    x0, y0, x1, y1 = fold.line
    normal = np.array([y0 - y1, x1 - x0]) / np.hypot(x1 - x0, y1 - y0)
    for line in defect.lines:
        for px, py in (line[:2], line[2:]):
            assert abs(np.dot([px - x0, py - y0], normal)) < 3
    length = sum(np.hypot(l[2] - l[0], l[3] - l[1]) for l in defect.lines)
    assert length > 0.8 * np.hypot(x1 - x0, y1 - y0)
    assert iou(report.mask(1, (256, 256)) == KIND_LABELS["fold"], fold.band_mask) > 0.7


def test_curved_fold_is_found() -> None:
    vol = tissue(3, size=256)
    params = FoldParams(line_width=(10, 10), curvature_prob=1.0, max_sagitta=0.04, contrast_box_prob=0.0,
                        darkness=(0.9, 0.9))
    fold = simulate_fold(vol[1], np.random.default_rng(11), params)
    vol[1] = fold.image
    report = detect_volume(ArrayVolume(vol))
    assert report.defective_z() == [1] and report.defects[0].kind == "fold"
    assert iou(report.mask(1, (256, 256)) > 0, fold.band_mask) > 0.6


def test_clean_and_contrast_changed_sections_are_not_flagged() -> None:
    vol = tissue(6).astype(np.float32)
    vol[2] *= 0.5  # darker
    vol[3] = np.clip((vol[3] - 90) * 2.5, 0, 255)  # contrast-stretched and clipped
    vol[4] = vol[4] * np.linspace(0.6, 1.1, 128)[None, :]  # uneven illumination
    report = detect_volume(ArrayVolume(vol.astype(np.uint8)))
    assert report.defects == []
    assert len(report.sections) == 6


def test_dark_blobs_and_short_dark_lines_are_not_folds() -> None:
    vol = tissue(3, size=256)
    cv2.circle(vol[1], (80, 80), 20, 0, -1)  # a dark blob
    cv2.line(vol[1], (150, 30), (200, 90), 0, 8)  # a short dark streak
    cv2.line(vol[1], (10, 200), (80, 185), 0, 3)  # black and straight, but under 40 % of the side
    report = detect_volume(ArrayVolume(vol))
    assert report.defects == []


def family_b(section: np.ndarray, seed: int, **overrides: object) -> object:
    """One family-B fold with every optional feature off unless ``overrides`` turns it on."""
    base = {"two_folds_prob": 0.0, "edge_prob": 0.0, "knot_prob": 0.0, "broken_prob": 0.0, "washout_prob": 0.0,
                "rect_prob": 0.0, "jpeg_prob": 0.0, "meander": 0.0}
    base.update(overrides)
    return simulate_fold_b(section, np.random.default_rng(seed), FoldBParams(**base))


def fold_found(vol: np.ndarray, z: int, band: np.ndarray, min_iou: float) -> object:
    """Detect, check that exactly section ``z`` is a fold with a band mask of at least ``min_iou``."""
    report = detect_volume(ArrayVolume(vol))
    assert [(d.z, d.kind) for d in report.defects] == [(z, "fold")]
    assert iou(report.mask(z, band.shape) == KIND_LABELS["fold"], band) >= min_iou
    return report


def test_thin_near_black_line_is_found_at_full_resolution() -> None:
    vol = tissue(3, size=256)
    fold = family_b(vol[1], 1, kind_probs=(1.0, 0.0, 0.0), thin_width=(3.0, 3.0))
    vol[1] = fold.image
    report = fold_found(vol, 1, fold.band_mask, 0.5)
    assert 1.5 <= report.defects[0].width_px <= 5.0


def test_faint_band_is_judged_against_the_tissue_beside_it() -> None:
    vol = tissue(3, size=256)
    fold = family_b(vol[1], 2, kind_probs=(0.0, 0.0, 1.0), faint_width=(20.0, 20.0), faint_darkness=(0.5, 0.5))
    vol[1] = fold.image
    fold_found(vol, 1, fold.band_mask, 0.6)
    # the same band on a section whose left half is dimmed to 60 %: still a fold, and the dim half is not
    dim = tissue(3, size=256, seed=1)
    dim[1] = (dim[1] * np.where(np.arange(256) < 128, 0.6, 1.0)[None, :]).astype(np.uint8)
    fold = family_b(dim[1], 2, kind_probs=(0.0, 0.0, 1.0), faint_width=(20.0, 20.0), faint_darkness=(0.5, 0.5))
    dim[1] = fold.image
    fold_found(dim, 1, fold.band_mask, 0.5)


def test_broken_fold_is_one_fold_and_its_mask_follows_ragged_edges() -> None:
    vol = tissue(3, size=256)
    fold = family_b(vol[1], 4, kind_probs=(0.0, 1.0, 0.0), wide_width=(24.0, 24.0), broken_prob=1.0)
    vol[1] = fold.image
    assert "broken" in fold.folds[0].features
    report = fold_found(vol, 1, fold.band_mask, 0.7)
    lines = report.defects[0].lines
    assert sum(np.hypot(l[2] - l[0], l[3] - l[1]) for l in lines) > 0.8 * min(256, 256)


def test_two_folds_and_a_fold_along_the_border() -> None:
    vol = tissue(3, size=256)
    a = family_b(vol[1], 5, kind_probs=(0.0, 1.0, 0.0), wide_width=(14.0, 14.0))
    b = family_b(a.image, 2, kind_probs=(0.0, 1.0, 0.0), wide_width=(10.0, 10.0), edge_prob=1.0)
    assert not (a.band_mask & b.band_mask).any()
    vol[1] = b.image
    band = a.band_mask | b.band_mask
    report = fold_found(vol, 1, band, 0.6)
    mask = report.mask(1, band.shape) == KIND_LABELS["fold"]
    for one in (a.band_mask, b.band_mask):  # each band is covered, not just the darker one
        assert (mask & one).sum() > 0.6 * one.sum()


def test_a_straight_dark_line_ending_inside_the_section_is_not_a_fold() -> None:
    vol = tissue(3, size=256)
    cv2.line(vol[1], (0, 100), (150, 110), 0, 4)  # black, straight, 60 % of the side, then it ends
    assert detect_volume(ArrayVolume(vol)).defects == []


@pytest.mark.parametrize("depth", [1, 2])
def test_fewer_than_three_sections(depth: int) -> None:
    vol = tissue(depth)
    assert detect_volume(ArrayVolume(vol)).defects == []
    vol[0] = 0
    report = detect_volume(ArrayVolume(vol))
    assert report.defective_z() == [0] and report.defects[0].kind == "missing"


def test_fold_in_a_single_section_volume() -> None:
    vol = tissue(1, size=256)
    vol[0] = straight_fold(vol[0]).image
    assert [d.kind for d in detect_volume(ArrayVolume(vol)).defects] == ["fold"]


def test_non_finite_pixels_count_as_lost() -> None:
    vol = tissue(5, dtype=np.float32)
    vol[1, :90, :] = np.nan  # 70 % NaN: partly lost (missing only above 90 %)
    vol[3, 5:9, 5:9] = np.inf  # a few inf pixels: fine
    vol[4, :, :20] = -np.inf  # a 16 % stripe: partly lost
    report = detect_volume(ArrayVolume(vol))
    assert [(d.z, d.kind) for d in report.defects] == [(1, "partial"), (4, "partial")]
    assert report.sections[1]["nonfinite_fraction"] == pytest.approx(90 / 128, abs=0.01)
    vol[2] = np.nan
    vol[1, :120, :] = np.nan
    assert [(d.z, d.kind) for d in detect_volume(ArrayVolume(vol)).defects] == [
        (1, "missing"), (2, "missing"), (4, "partial")]


def test_constant_volume_is_all_missing() -> None:
    report = detect_volume(ArrayVolume(np.full((4, 64, 64), 117, np.uint8)))
    assert report.defective_z() == [0, 1, 2, 3]
    assert all(d.kind == "missing" and d.score == 1.0 for d in report.defects)


def test_tiny_sections_are_handled() -> None:
    report = detect_volume(ArrayVolume(tissue(3, size=8)))
    assert report.defects == []


def test_progress_is_reported_per_section() -> None:
    calls: list[tuple[int, int]] = []
    detect_volume(ArrayVolume(tissue(4)), progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_unsupported_dtype_is_an_input_error() -> None:
    with pytest.raises(InputError):
        detect_volume(ArrayVolume(np.zeros((2, 16, 16), np.complex64)))


def test_report_json_schema_and_round_trip(tmp_path) -> None:
    vol = tissue(5, size=256)
    fold = straight_fold(vol[3], width=16)
    vol[3] = fold.image
    vol[1] = 0
    report = detect_volume(ArrayVolume(vol))
    report.input = "stack.h5"
    data = report.to_dict()
    assert set(data) == {"version", "input", "shape", "defects", "sections"}
    assert data["version"] == 1 and data["input"] == "stack.h5" and data["shape"] == [5, 256, 256]
    assert data["defects"][0] == {"z": 1, "kind": "missing", "score": 1.0}
    fold_entry = data["defects"][1]
    assert set(fold_entry) == {"z", "kind", "score", "lines", "width_px", "band"} and fold_entry["kind"] == "fold"
    assert all(len(line) == 4 for line in fold_entry["lines"])
    assert [s["z"] for s in data["sections"]] == list(range(5))
    json.dumps(data)  # serialisable

    path = tmp_path / "report.json"
    report.save(path)
    loaded = DetectionReport.load(path)
    assert loaded.to_dict() == json.loads(path.read_text())
    assert loaded.defective_z() == [1, 3]
    rebuilt = loaded.mask(3, (256, 256)) == 2
    np.testing.assert_array_equal(rebuilt, report.mask(3, (256, 256)) == 2)  # the segmented band, saved
    assert iou(rebuilt, fold.band_mask) > 0.7
    half = loaded.mask(3, (128, 128))
    assert half.shape == (128, 128) and half.dtype == np.uint8 and (half == 2).any()


def test_loading_a_bad_report_is_an_input_error(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError):
        DetectionReport.load(bad)
    bad.write_text(json.dumps({"version": 7}))
    with pytest.raises(InputError):
        DetectionReport.load(bad)
    with pytest.raises(InputError):
        DetectionReport.load(tmp_path / "absent.json")


def test_a_wide_fold_across_a_corner_is_a_fold_and_a_torn_corner_is_not() -> None:
    vol = tissue(3, size=200)[:, :100, :]  # a small section, as the gala FIB-SEM stacks are
    band = np.zeros(vol.shape[1:], np.uint8)
    cv2.line(band, (-10, 60), (100, 120), 1, 24)  # a near-black band cutting off the bottom-left corner, the
    vol[1][band > 0] = (vol[1][band > 0] * 0.06).astype(vol.dtype)  # tissue still beneath it, as in a fold
    report = detect_volume(ArrayVolume(vol))
    assert [(d.z, d.kind) for d in report.defects] == [(1, "fold")]
    vol[1][band > 0] = 0  # a constant black band, no tissue beneath: lost or a fold, it is flagged either way
    assert [d.z for d in detect_volume(ArrayVolume(vol)).defects] == [1]
    torn = tissue(3, size=200, seed=2)[:, :100, :]
    cv2.fillPoly(torn[1], [np.array([(0, 40), (0, 99), (150, 99)])], 0)  # black up to the border: torn off
    assert all(d.kind != "fold" for d in detect_volume(ArrayVolume(torn)).defects)
