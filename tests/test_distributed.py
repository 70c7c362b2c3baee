"""Worker processes (multiprocessing, and daisy when installed) give output bit-identical to one process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import read_all, textured_stack, write_zarr

from emrepair.distributed.blocks import plan_blocks, slabs_of
from emrepair.distributed.daisy_executor import daisy_available
from emrepair.distributed.plan import plan_runs
from emrepair.pipelines.fix import FixOptions, run_fix


def test_blocks_are_chunk_aligned_and_never_split_a_run() -> None:
    runs = plan_runs({3: "missing", 4: "missing", 9: "fold"}, 12)
    blocks = plan_blocks(runs, 12, 4)
    assert [(b.start, b.stop) for b in blocks] == [(0, 8), (8, 12)]
    assert [r.sections for r in blocks[0].runs] == [[3, 4]] and blocks[1].synthesized == 1
    assert slabs_of(blocks[0], 4) == [(0, 4), (4, 8)]
    assert [(b.start, b.stop) for b in plan_blocks([], 5, 2)] == [(0, 2), (2, 4), (4, 5)]


@pytest.mark.parametrize("executor", ["process"] + (["daisy"] if daisy_available() else []))
def test_two_workers_equal_one_process(tmp_path: Path, executor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # daisy writes ./daisy_logs
    src = write_zarr(tmp_path / "in.zarr", textured_stack(10, 48), chunks=(1, 48, 48))
    one, two = tmp_path / "one.zarr", tmp_path / "two.zarr"
    masks = tmp_path / "masks.zarr"
    options = dict(model="flow", sections=[2, 5, 6], device="cpu")
    run_fix(src, str(one), FixOptions(**options))
    result = run_fix(src, str(two), FixOptions(**options, workers=2, executor=executor, masks_path=str(masks)))
    assert result.complete and result.blocks_total == 9
    np.testing.assert_array_equal(read_all(one), read_all(two))
    labels = read_all(masks)
    assert labels[5].min() == 1 and labels[4].max() == 0
