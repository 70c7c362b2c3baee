"""An output created without --overwrite never replaces what appeared at its path while it was written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emrepair.errors import OutputError
from emrepair.io import ArrayVolume, create_output


@pytest.mark.parametrize("name", ["out.h5", "out.tif", "out.zarr", "out_folder"])
def test_a_path_taken_meanwhile_is_not_replaced(tmp_path: Path, name: str) -> None:
    like = ArrayVolume(np.zeros((3, 16, 16), np.uint8)).info
    final = tmp_path / name
    writer = create_output(final, like=like)
    writer.write_section(0, np.full((16, 16), 7, np.uint8))
    if name.endswith((".h5", ".tif")):
        final.write_bytes(b"someone else's file")
    else:
        final.mkdir()
        (final / "thesis.txt").write_text("mine")
    with pytest.raises(OutputError, match="appeared while this run wrote it"):
        writer.commit()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # this run's copy is gone too
    if final.is_dir():
        assert (final / "thesis.txt").read_text() == "mine"
    else:
        assert final.read_bytes() == b"someone else's file"


def test_without_a_rival_the_output_lands(tmp_path: Path) -> None:
    like = ArrayVolume(np.zeros((2, 8, 8), np.uint8)).info
    for name in ("a.h5", "a.tif", "a.zarr", "a_folder"):
        with create_output(tmp_path / name, like=like) as writer:
            writer.write_section(1, np.ones((8, 8), np.uint8))
        assert (tmp_path / name).exists()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and name in p.name]
