"""Run notes: warnings kept for the report and forwarded to the caller, the CUDA fallback among them."""

from __future__ import annotations

import warnings

import pytest
import torch

from emrepair.engine.notes import Notes, resolve_device_noting


def test_notes_keep_and_forward() -> None:
    seen: list[str] = []
    note = Notes(seen.append)
    note("first")
    note("second")
    assert list(note) == ["first", "second"] == seen
    silent = Notes()
    silent("kept")
    assert silent == ["kept"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the fallback happens only without CUDA")
def test_cuda_fallback_becomes_a_note() -> None:
    note = Notes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning that escapes instead of becoming a note fails the test
        device = resolve_device_noting("cuda", note)
    assert device.type == "cpu"
    assert len(note) == 1 and "cuda" in note[0].lower()
