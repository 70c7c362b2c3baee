"""open_volume on every real stack in ../shared/data gives the README's shape and resolution, and reads sections."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from emrepair.io import open_volume

# file -> (shape (z, y, x), resolution (z, y, x) in nm or None when the README says unknown)
README_TABLE: dict[str, tuple[tuple[int, int, int], tuple[float, float, float] | None]] = {
    "isbi2012_train.h5": ((30, 512, 512), (50.0, 4.0, 4.0)),
    "vnc_stack1.h5": ((20, 1024, 1024), (50.0, 4.6, 4.6)),
    "neuroproof_medulla_train1.h5": ((250, 250, 250), (10.0, 10.0, 10.0)),
    "neuroproof_medulla_train2.h5": ((250, 250, 250), (10.0, 10.0, 10.0)),
    "gala_fib_example.h5": ((50, 200, 100), None),
    "gala_fib_train.h5": ((50, 100, 200), None),
    "gala_fib_test.h5": ((50, 100, 200), None),
    "sbem_cdeep3m_train_v1.h5": ((20, 1024, 1024), (40.0, 5.9, 5.9)),
    "sbem_cdeep3m_train_v2.h5": ((20, 1024, 1024), (40.0, 5.9, 5.9)),
    "sbem_cdeep3m_val_v2.h5": ((10, 1024, 1024), (40.0, 5.9, 5.9)),
    "cremi_train_crop.h5": ((32, 320, 320), (40.0, 4.0, 4.0)),
}


@pytest.mark.parametrize("name", sorted(README_TABLE))
def test_shared_stack_info_and_sections(shared_data: Path, name: str) -> None:
    path = shared_data / name
    if not path.is_file():
        pytest.skip(f"{name} not present")
    shape, resolution = README_TABLE[name]
    with open_volume(path) as vol:
        info = vol.info
        assert info.format == "hdf5" and info.dataset == "raw"
        assert vol.shape == shape and vol.dtype == np.uint8
        if resolution is None:
            assert info.voxel_size is None
        else:
            assert info.voxel_size is not None
            assert all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(info.voxel_size, resolution))
        assert info.to_dict()["shape"] == list(shape)
        mid = vol.read_section(shape[0] // 2)
        assert mid.shape == shape[1:] and mid.dtype == np.uint8 and mid.std() > 0
        corner = vol.read_region(slice(0, 2), slice(0, 8), slice(0, 8))
        assert np.array_equal(corner[1], vol.read_section(1)[:8, :8])


def test_every_shared_file_is_listed(shared_data: Path) -> None:
    on_disk = {p.name for p in shared_data.glob("*.h5")}
    assert on_disk <= set(README_TABLE), f"unlisted stacks: {on_disk - set(README_TABLE)}"
