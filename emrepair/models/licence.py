"""The licence terms weights inherit from their training data, for ``emrepair models``, ``info`` and provenance.

The shipped weights are trained on public stacks (see ``../shared/data/README.md`` and the model cards in
``weights/``): two of them (ISBI 2012, VNC) are non-commercial, one share-alike, so weights trained on them are for
non-commercial research use. A checkpoint that ``emrepair train`` makes records, in its meta
(``weights_licence``), the terms it inherits: those of its ``--init`` weights and of its training data
(``inherited_terms``); ``checkpoint_terms`` and ``model_terms`` read them back for ``models``, ``info`` and the
provenance of outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# (what a training file's name starts with, short name, its terms, non-commercial, share-alike)
DATA_TERMS: tuple[tuple[str, str, str, bool, bool], ...] = (
    ("isbi2012", "ISBI 2012", "non-commercial use", True, False),
    ("vnc_stack", "VNC", "CC BY-NC-SA 3.0", True, True),
    ("sbem_cdeep3m", "CDeep3M", "non-commercial research use (UC Regents)", True, False),
    ("neuroproof", "NeuroProof", "CC BY (HHMI Janelia FlyEM)", False, False),
)

NON_COMMERCIAL = "non-commercial research use"


def data_terms(trained_on: Any) -> str | None:
    """The terms weights trained on ``trained_on`` (a string or list of training file names) inherit, e.g.
    ``"non-commercial research use, share-alike (ISBI 2012: non-commercial use; VNC: CC BY-NC-SA 3.0; ...)"``;
    None when no training file is one whose terms are known (a lab's own stack)."""
    if not trained_on:
        return None
    text = " ".join(map(str, trained_on)) if isinstance(trained_on, (list, tuple)) else str(trained_on)
    words = text.lower().replace(",", " ").replace("(", " ").split()
    found = [entry for entry in DATA_TERMS if any(word.startswith(entry[0]) for word in words)]
    if not found:
        return None
    sources = "; ".join(f"{short}: {terms}" for _, short, terms, _, _ in found)
    if any(entry[3] for entry in found):
        share_alike = ", share-alike" if any(entry[4] for entry in found) else ""
        return f"{NON_COMMERCIAL}{share_alike} (training data {sources})"
    return f"attribution required (training data {sources})"


def shipped_weights_terms(*sha256s: str | None) -> str | None:
    """The terms of the shipped weights with these SHA-256s (the model and the fold model of a run), joined;
    None when none of them are shipped weights (a checkpoint of the user's own, or no weights)."""
    from emrepair.models.pins import PINNED
    from emrepair.models.registry import REGISTRY

    by_hash = {digest: name for name, digest in PINNED.items()}
    terms: list[str] = []
    for digest in sha256s:
        name = by_hash.get(digest or "")
        if name is None or name not in REGISTRY:
            continue
        value = data_terms(REGISTRY[name].trained_on())
        if value and f"{name}: {value}" not in terms:
            terms.append(f"{name}: {value}")
    return "; ".join(terms) or None


def inherited_terms(init: str | None, trained_on: list[str]) -> str:
    """The terms a checkpoint trained on the files ``trained_on``, starting from the weights ``init`` (a model
    name, a checkpoint path, or None for random initialisation), inherits: "non-commercial research use (...)"
    when the init weights or the data carry non-commercial terms, else "the terms of its training data (...)";
    the parentheses name where each term comes from (a user's own stack: the terms of that data)."""
    parts: list[str] = []
    if init:
        parts.append(f"--init {Path(init).name if Path(init).suffix else init}: "
                     f"{model_terms(init) or 'no known terms (weights of your own)'}")
    data = data_terms(trained_on)
    names = ", ".join(trained_on) or "none"
    parts.append(f"training data: {data}" if data else
                 f"training data {names}: the terms of that data (not known to emrepair)")
    head = NON_COMMERCIAL if any("non-commercial" in part for part in parts) else "the terms of its training data"
    if any("share-alike" in part or "-SA" in part for part in parts):
        head += ", share-alike"
    return f"{head} ({'; '.join(parts)})"


def checkpoint_terms(path: str | Path) -> str | None:
    """The terms of the weights in the checkpoint file ``path``: as its meta records them (``weights_licence``,
    written by ``emrepair train``), else those of the shipped weights with its SHA-256, else those of the data
    its meta names (``trained_on``); None when nothing is known or the file is not a readable checkpoint."""
    from emrepair.errors import InputError
    from emrepair.models.checkpoint import file_sha256, read_checkpoint

    try:
        meta = read_checkpoint(path).get("meta") or {}
        digest = file_sha256(Path(path))
    except (InputError, OSError):
        return None
    if meta.get("weights_licence"):
        return str(meta["weights_licence"])
    shipped = shipped_weights_terms(digest)
    if shipped:
        return shipped.split(": ", 1)[1]
    return data_terms(meta.get("trained_on"))


def model_terms(name_or_path: str) -> str | None:
    """The terms of the weights a ``--model``/``--init`` value names: a checkpoint file's (``checkpoint_terms``)
    or a registered model's default weights (their recorded terms, else those of their training data)."""
    from emrepair.models.registry import REGISTRY

    path = Path(str(name_or_path)).expanduser()
    if path.suffix and path.is_file():
        return checkpoint_terms(path)
    spec = REGISTRY.get(str(name_or_path))
    if spec is None:
        return None
    weights = spec.weights_path()
    recorded = checkpoint_terms(weights) if weights is not None else None
    return recorded or data_terms(spec.trained_on())


def run_weights_terms(*models: tuple[str | None, str | None]) -> str | None:
    """The terms of the weights a run used, for its provenance: each (``--model`` value, weights SHA-256) as
    shipped weights (by hash) or, for a checkpoint of one's own, as ``model_terms`` reads it; joined, None when
    nothing is known."""
    terms: list[str] = []
    for requested, digest in models:
        value = shipped_weights_terms(digest)
        if value is None and requested and digest:
            found = model_terms(requested)
            value = f"{Path(requested).name}: {found}" if found else None
        if value and value not in terms:
            terms.append(value)
    return "; ".join(terms) or None
