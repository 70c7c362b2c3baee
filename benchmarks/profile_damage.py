"""CPU time of the damage part of detect_volume (cProfile, cumulative seconds per function) on four real stacks
with ``DamageConfig()``: the lost-region measure, the section statistics and the precipitate / contrast search.

    nice -n 5 python benchmarks/profile_damage.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from pathlib import Path

from emrepair.detection import detect_volume
from emrepair.detection.damage_config import DamageConfig
from emrepair.io import open_volume

STACKS = ("isbi2012_train.h5", "vnc_stack1.h5", "sbem_cdeep3m_train_v2.h5", "neuroproof_medulla_train1.h5")
FUNCTIONS = ("measure_lost", "_stripe_lines", "_line_tests", "_noisy_lines", "_sharp_lines", "_cell_sums", "_products", "section_stats",
             "find_contrast_region", "candidates", "find_precipitates", "_damage")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    args = parser.parse_args()
    profile = cProfile.Profile()
    start = time.process_time()
    for name in STACKS:
        with open_volume(args.data / name) as vol:
            profile.enable()
            detect_volume(vol, damage=DamageConfig())
            profile.disable()
    total = time.process_time() - start
    found = {key[2]: value[3] for key, value in pstats.Stats(profile).stats.items()
             if key[2] in FUNCTIONS and "emrepair/detection" in key[0]}
    for name in FUNCTIONS:
        print(f"{name:22s} {found.get(name, 0.0):7.3f} s")
    damage = found.get("measure_lost", 0.0) + found.get("section_stats", 0.0) + found.get("_damage", 0.0)
    print(f"damage part (measure_lost + section_stats + _damage) {damage:.3f} s; whole run CPU {total:.1f} s (profiled)")


if __name__ == "__main__":
    main()
