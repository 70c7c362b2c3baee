"""Defect detection: missing sections and support-film folds, streamed section by section."""

from emrepair.detect.config import DetectConfig
from emrepair.detect.damage_config import DamageConfig
from emrepair.detect.report import KIND_LABELS, Defect, DetectionReport
from emrepair.detect.volume import detect_volume

__all__ = ["KIND_LABELS", "DamageConfig", "Defect", "DetectConfig", "DetectionReport", "detect_volume"]
