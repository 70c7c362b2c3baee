"""The licence terms weights inherit from their training data, for ``emrepair models``, ``info`` and provenance.

The shipped weights are trained on public stacks (see ``../shared/data/README.md`` and the model cards in
``weights/``): two of them (ISBI 2012, VNC) are non-commercial, one share-alike, so weights trained on them are for
non-commercial research use.
"""

from __future__ import annotations

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
