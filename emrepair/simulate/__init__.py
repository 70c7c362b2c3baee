"""Defect synthesis: missing sections and support-film folds with their ground truth (numpy/OpenCV only)."""

from emrepair.simulate.fold import FoldParams, FoldResult, simulate_fold
from emrepair.simulate.missing import MISSING_KINDS, simulate_missing, tear_mask

__all__ = ["MISSING_KINDS", "FoldParams", "FoldResult", "simulate_fold", "simulate_missing", "tear_mask"]
