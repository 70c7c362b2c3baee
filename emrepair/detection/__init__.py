"""Defect detection: missing sections and support-film folds, streamed section by section."""

from emrepair.detect.config import DetectConfig
from emrepair.detect.report import KIND_LABELS, Defect, DetectionReport
from emrepair.detect.volume import detect_volume

__all__ = ["KIND_LABELS", "Defect", "DetectConfig", "DetectionReport", "detect_volume"]
