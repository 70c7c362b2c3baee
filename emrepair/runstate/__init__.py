"""State that lets a long run stop and go on: done markers, run fingerprints, shares of work, in-place backups."""

from emrepair.runstate.fingerprint import run_fingerprint
from emrepair.runstate.parts import parse_part, share_of
from emrepair.runstate.progress import ProgressDir, progress_dir_for

__all__ = ["ProgressDir", "parse_part", "progress_dir_for", "run_fingerprint", "share_of"]
