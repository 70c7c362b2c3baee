"""`emrepair detect`: find missing sections and folds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from emrepair.cli.errors import handle_errors
from emrepair.cli.lost_options import (ContrastChangeOpt, MinLostOpt, MissingFractionOpt, NoDamageOpt, NoiseAutocorrOpt,
                                       PrecipitateDarkOpt, damage_config, detect_config)
from emrepair.cli.options import DatasetOpt, JsonOpt, LevelOpt, NoProgressOpt, SkipUnreadableOpt, is_stdout


@handle_errors
def detect(
    path: Annotated[str, typer.Argument(metavar="PATH", help="Volume to inspect.")],
    dataset: DatasetOpt = None,
    level: LevelOpt = None,
    skip_unreadable: SkipUnreadableOpt = False,
    report: Annotated[Optional[Path], typer.Option("--report", help="Write the JSON report here ('-': on stdout, instead of the table).")] = None,
    masks: Annotated[Optional[str], typer.Option("--masks", help="Write a uint8 label volume (1 missing, 2 fold, 3 lost region of a partly lost section, 4 staining precipitate, 5 regional contrast change).")] = None,
    preview: Annotated[Optional[Path], typer.Option("--preview", help="Write one PNG per defective section here.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --masks output.")] = False,
    as_json: JsonOpt = False,
    no_progress: NoProgressOpt = False,
    min_lost_fraction: MinLostOpt = None,
    missing_fraction: MissingFractionOpt = None,
    noise_autocorr: NoiseAutocorrOpt = None,
    no_damage: NoDamageOpt = False,
    precipitate_dark: PrecipitateDarkOpt = None,
    contrast_min_change: ContrastChangeOpt = None,
) -> None:
    """Find missing sections, support-film folds, lost regions, staining precipitates and contrast changes; print a
    table, optionally write a report, masks and previews."""
    import json

    from emrepair.api import detect as detect_volume_at
    from emrepair.cli.console import echo_json, progress_bar
    from emrepair.cli.options import check_output_free
    from emrepair.cli.render import render_detection
    from emrepair.detection import DetectConfig

    config = detect_config(min_lost_fraction, missing_fraction, noise_autocorr)
    damage = damage_config(no_damage, precipitate_dark, contrast_min_change)
    from emrepair.io.output_guard import guard_outputs, target

    to_stdout = is_stdout(report)
    guard_outputs([path], [target("--masks", masks, may_exist=True)], overwrite=False)  # the input before "exists"
    check_output_free(masks, overwrite)
    with progress_bar("detect", enabled=not no_progress) as progress:
        result = detect_volume_at(path, dataset=dataset, level=level, skip_unreadable=skip_unreadable,
                                  report=None if to_stdout else report, masks=masks, preview=preview,
                                  config=config or DetectConfig(), overwrite=overwrite, progress=progress,
                                  damage=damage)
    if as_json or to_stdout:
        echo_json(json.dumps(result.to_dict(), indent=2))
    else:
        render_detection(result)
