"""Build the bundled sample emrepair/data/sample.h5 from the NeuroProof FIB-SEM stack (CC BY, HHMI Janelia FlyEM).

The 10 nm isotropic stack is decimated to every 4th section (40 nm, like serial sections), and simulated defects
are put in: a blank (missing) section, a support-film fold, a torn section, and three folds of the kinds real
stacks carry (a thin line, a wide band along the border, a faint band; drawn by the independent fold family B,
``simulate.fold_b``). The clean stack is kept as ``truth`` so the demo can measure its repair.

    python scripts/make_sample.py ../shared/data/neuroproof_medulla_train1.h5 emrepair/data/sample.h5
"""

from __future__ import annotations

import sys

import h5py
import numpy as np

from emrepair.simulate import FoldParams, simulate_fold, simulate_missing
from emrepair.simulate.fold_b import FoldBParams, simulate_fold_b

DECIMATE = 4
SECTIONS = 24
DEFECTS = {6: "blank", 13: "fold", 19: "tear"}
SEED = 20261123
# the real-fold kinds, each in a section whose neighbours are clean; one fold per section, no contrast box
FOLDS_B = {3: ("thin", FoldBParams(kind_probs=(1, 0, 0), edge_prob=0.0)),
           10: ("faint", FoldBParams(kind_probs=(0, 0, 1), edge_prob=0.0, broken_prob=0.0)),
           16: ("wide-border", FoldBParams(kind_probs=(0, 1, 0), wide_width=(10.0, 30.0), edge_prob=1.0))}
SEED_B = 20261203


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
    rng_b = np.random.default_rng(SEED_B)
    for z, (_, params) in FOLDS_B.items():
        params = FoldBParams(**{**params.__dict__, "two_folds_prob": 0.0, "rect_prob": 0.0, "jpeg_prob": 0.0})
        raw[z] = simulate_fold_b(truth[z], rng_b, params).image
    simulated = {**{z: k for z, k in DEFECTS.items()}, **{z: k for z, (k, _) in FOLDS_B.items()}}
    voxel = [resolution[0] * DECIMATE, resolution[1], resolution[2]]
    with h5py.File(target, "w") as f:
        for name, data in (("raw", raw), ("truth", truth)):
            ds = f.create_dataset(name, data=data, chunks=(1, *data.shape[1:]), compression="gzip",
                                  compression_opts=9)
            ds.attrs["resolution"] = voxel
            ds.attrs["source"] = ("NeuroProof example training_sample1 grayscale (janelia-flyem/neuroproof_examples), "
                                  f"every {DECIMATE}th section")
            ds.attrs["license"] = "CC BY 4.0, HHMI Janelia FlyEM"
        order = sorted(simulated)
        f["raw"].attrs["defect_z"] = order
        f["raw"].attrs["defect_kind"] = ["missing" if simulated[z] in ("blank", "tear") else "fold" for z in order]
        f["raw"].attrs["defect_simulation"] = [simulated[z] for z in order]


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
