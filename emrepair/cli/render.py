"""Rich rendering of results on stdout: tables for info, models, detection, fix and upsample-z summaries.

No text is read as markup (paths may hold brackets); styles come from ``styled``. Notes go to stderr."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from emrepair.cli.console import note, result as show, styled


def render_info(summary: dict[str, Any]) -> None:
    """Print a volume summary as a two-column table."""
    table = Table(title=summary.get("path") or "volume", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key in ("format", "dataset", "shape", "dtype", "chunks", "voxel_size", "compression"):
        value = summary.get(key)
        if key == "voxel_size":
            value = "unknown" if value is None else " x ".join(f"{v:g}" for v in value) + " nm (z, y, x)"
        elif isinstance(value, list):
            value = " x ".join(str(v) for v in value)
        table.add_row(key, "-" if value is None else str(value))
    if summary.get("levels"):
        from emrepair.cli.info_levels import describe_level

        table.add_row("levels", "\n".join(describe_level(level) for level in summary["levels"]))
        if all(not u for u in summary["levels"][0].get("units") or [None]) and summary.get("voxel_size"):
            table.add_row("", "the metadata gives no unit; voxel_size reads the scale as nm")
    for key in ("license", "source"):
        if key in summary:
            table.add_row(key, summary[key])
    provenance = summary.get("emrepair")
    if provenance:
        table.add_row("made by", f"emrepair {provenance.get('emrepair_version', '?')} "
                                 f"{provenance.get('command', '')} from {provenance.get('input', '?')}")
        for key, label in (("synthesized_sections", "synthesized"), ("fold_repaired_sections", "fold-repaired"),
                           ("interpolated_sections", "interpolated"), ("repaired_sections", "repaired")):
            value = provenance.get(key)
            if value:  # a list of z, or (upsample-z's interpolated sections) a description of them
                table.add_row(label, value if isinstance(value, str) else _ranges(value))
        if provenance.get("model"):
            table.add_row("model", str(provenance["model"]))
        if summary.get("weights_licence"):
            table.add_row("weights licence", str(summary["weights_licence"]))
    show(table)


def _ranges(values: list[int]) -> str:
    """Compact text for a sorted list of ints: [1, 2, 3, 7] -> '1-3, 7'."""
    parts: list[str] = []
    for v in sorted(values):
        if parts and parts[-1][1] == v - 1:
            parts[-1] = (parts[-1][0], v)
        else:
            parts.append((v, v))  # type: ignore[arg-type]
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in parts)


def render_models(rows: list[dict[str, Any]]) -> None:
    """Print the model registry as a table."""
    table = Table(title="emrepair models")
    for col in ("name", "repairs", "weights", "trained on", "licence", "vs flow", "description"):
        table.add_column(col)
    uses = {"interpolation": "--model", "fold": "--fold-model", "volume": "upsample-z"}
    for row in rows:
        weights = "none needed" if not row["learned"] else ("yes" if row["weights"] else styled(("missing", "yellow")))
        name = styled(row["name"], (" (default)", "green")) if row.get("default") else row["name"]
        use = uses.get(row.get("kind", "interpolation"), row.get("kind", ""))
        if row.get("grid"):  # a grid model also repairs missing sections of FIB-SEM-like stacks
            use += ", --model (FIB-SEM)"
        licence = (row.get("licence") or "-").split(" (training data")[0]  # the full terms are in --json
        standing = row.get("standing") or "-"
        table.add_row(name, use, weights, row.get("trained_on") or "-",
                      styled((licence, "yellow")) if licence.startswith("non-commercial") else licence,
                      styled((standing, "yellow")) if row.get("beats_flow") is False else standing,
                      row.get("description") or "")
    show(table)


def render_detection(report: Any) -> None:
    """Print the defects a detection found (or a line saying there are none), then its marks (staining
    precipitates, regional contrast changes), which fix leaves alone unless told otherwise."""
    shape = _dims(report.shape)
    marks = list(getattr(report, "marks", []))
    if not report.defects:
        show(styled(("no defects found", "green"), f" in {shape} sections of {report.input}"))
    else:
        show(_defect_table(f"{len(report.defects)} defective section(s) in {report.input} ({shape})",
                           report.defects))
    if marks:
        show(_defect_table(f"{len(marks)} mark(s): fix corrects contrast regions, and synthesizes precipitates only "
                           "with --repair-precipitates", marks))


def _defect_table(title: str, defects: list[Any]) -> Table:
    table = Table(title=title)
    for col in ("z", "kind", "score", "detail"):
        table.add_column(col, justify="right" if col in ("z", "score") else "left")
    for d in defects:
        detail = ""
        if d.kind == "fold":
            detail = f"{len(d.lines or [])} line(s), width {d.width_px:.0f} px" if d.width_px else ""
        elif d.fraction is not None:
            what = "lost" if d.kind == "partial" else "covered"
            detail = f"{100 * d.fraction:.0f} % of the section {what}"
        table.add_row(str(d.z), d.kind, f"{d.score:.2f}", detail)
    return table


def render_fix(result: Any) -> None:
    """Print what a fix run did, or the plan of a dry run."""
    if render_already_complete(result):
        return
    shape = _dims(result.shape)
    title = "plan (dry run, nothing written)" if result.dry_run else f"repaired {result.input} -> {result.output}"
    table = Table(title=title)
    for col in ("sections", "from", "t", "kind"):
        table.add_column(col)
    for run in result.runs:
        d = run.to_dict()
        source = f"{run.left}, {run.right}" if not run.one_sided else f"copy of {run.left if run.right is None else run.right}"
        span = str(run.first) if run.first == run.last else f"{run.first}-{run.last}"
        table.add_row(span, source, ", ".join(f"{t:.2f}" for t in d["t"]), ", ".join(sorted(set(d["kinds"]))))
    if result.runs:
        show(table)
    else:
        show(styled(("nothing to repair", "green"), ": no defective sections"))
    mib = result.memory_estimate_bytes / 2**20
    show(
        f"volume {shape}; model {result.model} on {result.device}; {len(result.synthesized)} section(s) "
        f"synthesized; {result.tiles_per_section} tile(s) per section; ~{mib:.0f} MiB per batch"
        + ("" if result.dry_run else f"; {result.seconds:.1f} s"),
    )


def render_upsample(result: Any) -> None:
    """Print the plan of an upsample-z run (dry run) or what it did."""

    def voxel(size: tuple[float, float, float] | None) -> str:
        return "unknown" if size is None else " x ".join(f"{v:g}" for v in size) + " nm"

    if render_already_complete(result):
        return
    if not result.dry_run and not result.complete:
        return
    head = "plan (dry run, nothing written)" if result.dry_run else f"upsampled {result.input} -> {result.output}"
    show(styled((head, "bold")))
    repaired = result.repaired_input
    regional = list(getattr(result, "region_repaired_input", []))
    lines = [
        result.factor.describe(),
        (f"shape {_dims(result.input_shape)} -> {_dims(result.output_shape)}; "
         f"voxel size {voxel(result.input_voxel_size)} -> {voxel(result.output_voxel_size)} (z, y, x)"),
        f"{result.interpolated_count} section(s) interpolated; "
        + (f"{len(repaired)} repaired first (input z {', '.join(map(str, repaired))})" if repaired
           else "nothing repaired")
        + (f" (z {', '.join(map(str, regional))}: only the lost region)" if regional else ""),
        (f"model {result.model}" + (f" (repairs by {result.repair_model})" if result.repair_model else "")
         + f" on {result.device}; {result.tiles_per_section} tile(s) per section; "
         f"~{result.memory_estimate_bytes / 2**20:.0f} MiB per batch, ~{result.host_memory_bytes / 2**20:.0f} MiB "
         "host memory per pair" + ("" if result.dry_run else f"; {result.seconds:.1f} s")),
    ]
    estimate = getattr(result, "estimated_seconds", None)
    if result.dry_run and estimate is not None:
        from emrepair.cli.progress import format_duration

        lines.append(f"estimated time ~{format_duration(estimate)} on {result.device} (one tile timed; "
                     "excludes repairs and I/O)")
    for line in lines:
        show(line)


def render_already_complete(result: Any) -> bool:
    """Say that --continue / --part found the output already finished by the same run; True when it did."""
    if getattr(result, "already_complete", False):
        note(f"{result.output} is already complete (written by this same run); nothing to do")
        return True
    return False


def render_share_left(result: Any) -> None:
    """Say what a share of a blockwise run (fix, upsample-z) left to the others, when it was not the last."""
    if not result.complete:
        note(f"share done; {result.blocks_left} block(s) left to other shares, the last one to "
             f"finish writes {result.output}")


def render_interrupted() -> None:
    """Say that an interrupted blockwise run keeps its finished sections, and how to go on."""
    from emrepair.runstate import CONTINUE_HINT

    from emrepair.cli.console import err_console

    err_console.print(styled(("interrupted", "red"), f": finished sections are kept; {CONTINUE_HINT} to go on"))


def _dims(shape: tuple[int, ...]) -> str:
    return " x ".join(str(s) for s in shape)
