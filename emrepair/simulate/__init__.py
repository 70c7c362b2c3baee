"""Defect synthesis: missing sections and support-film folds with their ground truth (numpy/OpenCV only)."""

from emrepair.simulate.fold import FoldParams, FoldResult, simulate_fold
from emrepair.simulate.missing import (MISSING_KINDS, PARTIAL_FILLS, PARTIAL_SHAPES, partial_mask, simulate_missing,
                                       simulate_partial, tear_mask)

__all__ = ["MISSING_KINDS", "PARTIAL_FILLS", "PARTIAL_SHAPES", "FoldParams", "FoldResult", "partial_mask",
           "simulate_fold", "simulate_missing", "simulate_partial", "tear_mask"]
