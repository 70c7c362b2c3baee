"""State that lets a long run stop and go on: done markers, run fingerprints, shares of work, in-place backups."""

from emrepair.runstate.fingerprint import run_fingerprint
from emrepair.runstate.parts import parse_part, share_of
from emrepair.runstate.progress import ProgressDir, RunDisplaced, progress_dir_for
from emrepair.runstate.rejoin import (CONTINUE_HINT, SHAREABLE_FORMATS, check_rejoin, check_share_targets,
                                      commit_when_complete, reopen_partial)

__all__ = ["CONTINUE_HINT", "SHAREABLE_FORMATS", "ProgressDir", "RunDisplaced", "check_rejoin", "check_share_targets",
           "commit_when_complete", "parse_part", "progress_dir_for", "reopen_partial", "run_fingerprint", "share_of"]
