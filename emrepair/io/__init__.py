"""Volume IO: lazy section-wise readers and atomic writers for HDF5, Zarr, OME-Zarr and TIFF."""

from emrepair.io.base import ArrayVolume, Volume, VolumeInfo
from emrepair.io.create import create_output
from emrepair.io.open import open_volume
from emrepair.io.writers.base import VolumeWriter

__all__ = ["ArrayVolume", "Volume", "VolumeInfo", "VolumeWriter", "create_output", "open_volume"]
