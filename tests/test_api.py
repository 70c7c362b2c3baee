"""The Python API on arrays: emrepair.detection, fix, upsample_z and train return arrays and leave the input alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import read_all, smooth_stack, write_h5

import emrepair
from emrepair.errors import UsageError
from emrepair.pipelines.upsample.plan import INTERPOLATED_LABEL


def damaged(depth: int = 6, lost: int = 3) -> np.ndarray:
    stack = smooth_stack(depth, 48)
    stack[lost] = 0
    return stack


def test_detect_on_an_array_returns_the_report_and_masks() -> None:
    stack = damaged()
    before = stack.copy()
    found = emrepair.detect(stack)
    assert found.report.defective_z() == [3]
    assert found.masks.shape == stack.shape and found.masks.dtype == np.uint8
    assert found.masks[3].min() == 1 and found.masks[[0, 1, 2, 4, 5]].max() == 0
    np.testing.assert_array_equal(stack, before)


def test_fix_on_an_array_matches_fix_on_a_file(tmp_path: Path) -> None:
    stack = damaged()
    before = stack.copy()
    fixed = emrepair.fix(stack, model="linear", fold_model="none", device="cpu")
    np.testing.assert_array_equal(stack, before)
    assert fixed.report["synthesized"] == [3] and fixed.report["input"] is None
    assert fixed.array.dtype == stack.dtype and fixed.array.shape == stack.shape
    np.testing.assert_array_equal(fixed.masks > 0, fixed.array != stack)  # every changed pixel is in the masks
    assert fixed.provenance["synthesized_sections"] == [3]
    src = write_h5(tmp_path / "in.h5", stack)
    result = emrepair.fix(src, str(tmp_path / "out.h5"), model="linear", fold_model="none", device="cpu",
                          masks_path=str(tmp_path / "masks.h5"))
    assert result.synthesized == [3]
    np.testing.assert_array_equal(read_all(tmp_path / "out.h5"), fixed.array)
    np.testing.assert_array_equal(read_all(tmp_path / "masks.h5"), fixed.masks)


def test_upsample_z_on_an_array_keeps_the_originals() -> None:
    stack = smooth_stack(3, 32)
    up = emrepair.upsample_z(stack, factor=2, model="linear", repair=False, device="cpu")
    assert up.array.shape == (5, 32, 32)
    np.testing.assert_array_equal(up.array[::2], stack)
    assert up.masks[1].min() == INTERPOLATED_LABEL and up.masks[::2].max() == 0
    assert up.report["factor"] == 2


def test_train_on_an_array_writes_the_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "mine.pt"
    result = emrepair.train(smooth_stack(10, 48), out, model="flowunet", steps=2, batch_size=2, patch_size=32,
                            device="cpu", detect=False)
    assert result.steps == 2 and out.is_file()
    from emrepair.models import load_model

    model, _ = load_model(str(out))
    assert model.name == "flowunet"


@pytest.mark.parametrize("call, match", [
    (lambda: emrepair.detect(np.zeros((4, 4))), "expected a \\(z, y, x\\) array"),
    (lambda: emrepair.fix(damaged(), "out.h5", model="linear"), "output goes with a path input"),
    (lambda: emrepair.fix(damaged(), model="linear", masks_path="m.h5"), "masks_path"),
    (lambda: emrepair.fix(damaged(), modle="linear"), "unknown setting\\(s\\) modle"),
    (lambda: emrepair.detect(damaged(), report="r.json"), "report"),
])
def test_bad_api_calls_are_one_line_usage_errors(call: object, match: str) -> None:
    with pytest.raises(UsageError, match=match) as info:
        call()
    assert "\n" not in str(info.value)
