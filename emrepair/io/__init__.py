"""Volume IO: lazy section-wise readers and atomic writers for HDF5, Zarr, OME-Zarr and TIFF."""

from emrepair.io.base import ArrayVolume, Volume, VolumeInfo

__all__ = ["ArrayVolume", "Volume", "VolumeInfo"]
