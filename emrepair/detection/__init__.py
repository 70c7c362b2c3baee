"""Defect detection: missing sections and support-film folds, streamed section by section."""

from emrepair.detection.config import DetectConfig
from emrepair.detection.damage_config import DamageConfig
from emrepair.detection.report import KIND_LABELS, Defect, DetectionReport
from emrepair.detection.volume import detect_volume

__all__ = ["KIND_LABELS", "DamageConfig", "Defect", "DetectConfig", "DetectionReport", "detect_volume"]
