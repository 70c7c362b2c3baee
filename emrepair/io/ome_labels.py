"""What the values of emrepair's label volumes mean, as OME-NGFF ``image-label`` metadata (colours and properties)
and as the ``labels`` group that lists the label images inside an OME-Zarr image.

The tables name the values each command writes: ``detect --masks`` (``DETECT_LABELS``), ``fix --masks``
(``FIX_LABELS``) and ``upsample-z --masks`` (``UPSAMPLE_LABELS``). Their values are those of
``emrepair.detection.KIND_LABELS`` and ``emrepair.pipelines.upsample.INTERPOLATED_LABEL`` (io sits below both, so
the numbers are restated here; tests/test_ome_labels.py checks that they agree).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

# The name of the label image that fix and upsample-z put inside an .ome.zarr output (``labels/<name>``).
EMBEDDED_LABELS_NAME = "synthetic"


class LabelValue(NamedTuple):
    """One label value: a short class name (what napari shows), a sentence, and an RGBA display colour."""

    name: str
    description: str
    rgba: tuple[int, int, int, int]


_CLEAR = (0, 0, 0, 0)
_RED, _ORANGE, _MAGENTA, _CYAN = (230, 25, 25, 200), (255, 160, 0, 200), (200, 0, 200, 200), (0, 180, 255, 160)
_GREEN, _BLUE = (40, 200, 60, 200), (60, 80, 255, 200)

DETECT_LABELS: dict[int, LabelValue] = {
    0: LabelValue("good", "no defect found", _CLEAR),
    1: LabelValue("missing", "missing section (the whole section)", _RED),
    2: LabelValue("fold band", "pixels in the band of a support-film fold", _ORANGE),
    3: LabelValue("partial", "region lost from a partly missing section", _MAGENTA),
    4: LabelValue("precipitate", "staining precipitate", _GREEN),
    5: LabelValue("contrast", "region of changed contrast", _BLUE),
}

FIX_LABELS: dict[int, LabelValue] = {
    0: LabelValue("original", "pixel of the input, unchanged", _CLEAR),
    1: LabelValue("missing", "synthetic: the whole missing section was synthesized", _RED),
    2: LabelValue("fold band", "synthetic: pixel of a fold band that was synthesized", _ORANGE),
    3: LabelValue("partial", "synthetic: pixel of a lost region (or its seam) that was synthesized", _MAGENTA),
    4: LabelValue("precipitate", "synthetic: pixel of a staining precipitate that was synthesized", _GREEN),
    5: LabelValue("contrast", "synthetic: pixel of a region of changed contrast that was synthesized", _BLUE),
}

UPSAMPLE_LABELS: dict[int, LabelValue] = {
    0: LabelValue("original", "pixel of an input section, unchanged", _CLEAR),
    1: LabelValue("missing", "synthetic: a missing input section, synthesized whole", _RED),
    2: LabelValue("fold band", "synthetic: pixel of a folded input section that was repaired", _ORANGE),
    3: LabelValue("partial", "synthetic: pixel of a lost region (or its seam) of an input section, synthesized",
                  _MAGENTA),
    9: LabelValue("synthetic", "synthetic: a section interpolated between two input sections", _CYAN),
}


def label_table(values: Mapping[int, Any] | None) -> dict[int, LabelValue]:
    """``values`` as LabelValues (entries may be LabelValue, (name, description, rgba) lists from JSON, or plain
    names, which get a grey colour); ``DETECT_LABELS`` when None."""
    if values is None:
        return dict(DETECT_LABELS)
    table: dict[int, LabelValue] = {}
    for key, entry in values.items():
        if isinstance(entry, str):
            entry = LabelValue(entry, entry, (128, 128, 128, 200) if int(key) else _CLEAR)
        name, description, rgba = entry
        table[int(key)] = LabelValue(str(name), str(description), tuple(int(c) for c in rgba))  # type: ignore[arg-type]
    return table


def image_label_block(values: Mapping[int, Any] | None, source_image: str | None = None) -> dict[str, Any]:
    """The NGFF 0.5 ``image-label`` object: ``colors`` (label-value -> RGBA 0-255) and ``properties`` naming each
    value (``class`` and ``description``; both lists hold the same values, as the spec asks), and ``source.image``
    (the image the labels belong to, relative to the label image: "../../" inside an image's ``labels/``)."""
    table = label_table(values)
    block: dict[str, Any] = {
        "colors": [{"label-value": v, "rgba": list(entry.rgba)} for v, entry in sorted(table.items())],
        "properties": [{"label-value": v, "class": entry.name, "description": entry.description}
                       for v, entry in sorted(table.items())],
    }
    if source_image is not None:
        block["source"] = {"image": source_image}
    return block


def labels_group_attrs(names: list[str], version: str) -> dict[str, Any]:
    """Attributes of an image's ``labels`` group (NGFF 0.5): ``{"ome": {"version", "labels": [names]}}``."""
    return {"ome": {"version": version, "labels": list(names)}}
