"""`emrepair info` and `emrepair models`: what is in a volume, and what can repair it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from emrepair.cli.errors import handle_errors
from emrepair.cli.options import DatasetOpt, JsonOpt, LevelOpt, SkipUnreadableOpt


@handle_errors
def info(
    path: Annotated[str, typer.Argument(metavar="PATH", help="Volume: .h5[/dataset], .zarr, .ome.zarr, .tif, or a folder of sections; or a .pt checkpoint.")],
    dataset: DatasetOpt = None,
    level: LevelOpt = None,
    skip_unreadable: SkipUnreadableOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Show format, shape, dtype, chunks and voxel size of a volume, its levels and labels, its licence, and which
    sections emrepair made; or, for a checkpoint (.pt), its model, training data and licence terms."""
    from emrepair.cli.render import render_info
    from emrepair.io import open_volume

    if Path(path).suffix.lower() in (".pt", ".pth") and Path(path).is_file():
        _checkpoint_info(path, as_json)
        return
    with open_volume(path, dataset=dataset, level=level, skip_unreadable=skip_unreadable) as vol:
        summary = vol.info.to_dict()
        attrs = vol.info.attrs
    if summary["format"] == "ome-zarr":
        from emrepair.cli.info_levels import ome_labels_summary, ome_levels_summary

        summary["levels"] = ome_levels_summary(summary["path"])
        summary["labels"] = ome_labels_summary(summary["path"])
    for key in ("license", "source"):
        if key in attrs:
            summary[key] = str(attrs[key])
    provenance = attrs.get("emrepair")
    if isinstance(provenance, str):
        try:
            provenance = json.loads(provenance)
        except ValueError:
            provenance = None
    if isinstance(provenance, dict):
        summary["emrepair"] = provenance
        summary["weights_licence"] = weights_licence_of(provenance)
    if as_json:
        from emrepair.cli.console import echo_json

        echo_json(json.dumps(summary, indent=2))
    else:
        render_info(summary)
        if summary.get("labels"):
            from emrepair.cli.console import result
            from emrepair.cli.info_levels import describe_labels

            result(describe_labels(summary["labels"]))

@handle_errors
def models(
    as_json: JsonOpt = False,
) -> None:
    """List the repair models, whether trained weights are present, and what they were trained on."""
    from emrepair.cli.render import render_models
    from emrepair.models import list_models
    from emrepair.models.licence import model_terms
    from emrepair.pipelines.model_choice import GRID_MODEL, default_model_name
    from emrepair.pipelines.repairers import DEFAULT_FOLD_MODEL

    defaults = {default_model_name(), DEFAULT_FOLD_MODEL, GRID_MODEL}  # GRID_MODEL: FIB-SEM-like stacks
    rows = [
        {"name": s.name, "kind": s.kind, "grid": hasattr(s.cls, "fill_grid"), "learned": s.learned,
         "weights": s.has_weights(),
         "default": s.name in defaults and s.has_weights(),
         "trained_on": s.trained_on(), "licence": model_terms(s.name) if s.has_weights() else None,
         "beats_flow": s.beats_flow, "standing": s.standing or None, "description": s.description}
        for s in list_models(kind=None)
    ]
    if as_json:
        from emrepair.cli.console import echo_json

        echo_json(json.dumps(rows, indent=2))
    else:
        render_models(rows)


def _checkpoint_info(path: str, as_json: bool) -> None:
    """``info`` of a checkpoint file: its model, what it was trained on and from, and the licence terms it
    inherits (``emrepair.models.licence.checkpoint_terms``)."""
    from emrepair.cli.console import echo_json, result
    from emrepair.models.checkpoint import read_checkpoint
    from emrepair.models.licence import checkpoint_terms

    payload = read_checkpoint(path)
    meta = payload.get("meta") or {}
    summary = {"path": str(path), "format": "checkpoint", "model": payload.get("model"),
               "trained_on": meta.get("trained_on"), "init": (meta.get("config") or {}).get("init"),
               "steps": meta.get("steps"), "weights_licence": checkpoint_terms(path)}
    if as_json:
        echo_json(json.dumps(summary, indent=2, default=str))
        return
    for key, value in summary.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        result(f"{key.replace('_', ' ')}: {'-' if shown is None else shown}")


def weights_licence_of(provenance: dict) -> str | None:
    """The licence terms of the weights an emrepair output was made with: as its provenance records them, or
    (outputs from before they were recorded) from the shipped weights' SHA-256s; None for weights of one's own."""
    from emrepair.models.licence import shipped_weights_terms

    if provenance.get("weights_licence"):
        return str(provenance["weights_licence"])
    return shipped_weights_terms(provenance.get("weights_sha256"), provenance.get("fold_weights_sha256"))
