"""Build the bundled sample emrepair/data/sample.h5 from the NeuroProof FIB-SEM stack (CC BY, HHMI Janelia FlyEM).

The 10 nm isotropic stack is decimated to every 4th section (40 nm, like serial sections), and simulated defects
are put in: a blank (missing) section, a support-film fold, and a torn section. The clean stack is kept as
``truth`` so the demo can measure its repair.

    python scripts/make_sample.py ../shared/data/neuroproof_medulla_train1.h5 emrepair/data/sample.h5
"""

from __future__ import annotations

import sys

import h5py
import numpy as np

from emrepair.simulate import FoldParams, simulate_fold, simulate_missing

DECIMATE = 4
SECTIONS = 24
DEFECTS = {6: "blank", 13: "fold", 19: "tear"}
SEED = 20261123


def main(source: str, target: str) -> None:
    """Write the sample file."""
    with h5py.File(source, "r") as f:
        truth = f["raw"][0: SECTIONS * DECIMATE: DECIMATE]
        resolution = np.asarray(f["raw"].attrs["resolution"], dtype=float)
    rng = np.random.default_rng(SEED)
    raw = truth.copy()
    for z, kind in DEFECTS.items():
        if kind == "fold":
            # 10 nm pixels: the 5-50 px bands of 4 nm data become 2-20 px.
            raw[z] = simulate_fold(truth[z], rng, FoldParams(line_width=(9, 14), contrast_box_prob=0.0)).image
        else:
            raw[z] = simulate_missing(truth[z], kind, rng)
    voxel = [resolution[0] * DECIMATE, resolution[1], resolution[2]]
    with h5py.File(target, "w") as f:
        for name, data in (("raw", raw), ("truth", truth)):
            ds = f.create_dataset(name, data=data, chunks=(1, *data.shape[1:]), compression="gzip",
                                  compression_opts=9)
            ds.attrs["resolution"] = voxel
            ds.attrs["source"] = ("NeuroProof example training_sample1 grayscale (janelia-flyem/neuroproof_examples), "
                                  f"every {DECIMATE}th section")
            ds.attrs["license"] = "CC BY 4.0, HHMI Janelia FlyEM"
        f["raw"].attrs["defect_z"] = list(DEFECTS)
        f["raw"].attrs["defect_kind"] = ["missing" if k != "fold" else "fold" for k in DEFECTS.values()]
        f["raw"].attrs["defect_simulation"] = [DEFECTS[z] for z in DEFECTS]


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
