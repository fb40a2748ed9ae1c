"""ImageNet-1k's published facts: the class table and the normalisation statistics.

:func:`class_names` and :func:`wordnet_ids` read ``imagenet_classes.tsv`` (shipped with the
package): one row per class, in class-index order, with the WordNet id of the synset and its
first lemma as the human-readable name. :data:`IMAGENET_MEAN` and :data:`IMAGENET_STD` are the
per-channel statistics every ImageNet model normalises with. Both the datasets (WordNet-id
folders, the transforms' defaults) and :mod:`mini_iformer.imagenet` (the evaluation
preprocessing) use them; this module imports nothing of the package.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "NUM_CLASSES",
    "class_names",
    "wordnet_ids",
    "parse_class_table",
]

#: Per-channel (R, G, B) mean of the ImageNet training images, on the [0, 1] scale.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
#: Per-channel (R, G, B) standard deviation of the ImageNet training images, on the [0, 1] scale.
IMAGENET_STD = (0.229, 0.224, 0.225)
#: The number of ImageNet-1k classes.
NUM_CLASSES = 1000

_TABLE_FILE = "imagenet_classes.tsv"
_WNID = re.compile(r"n\d{8}")


def parse_class_table(text: str, source: str = _TABLE_FILE) -> tuple[list[str], list[str]]:
    """Parse the text of the class table into ``(wordnet_ids, names)``, both in index order.

    Lines starting with ``#`` and blank lines are skipped. Raises ``ValueError`` naming
    ``source`` and the line number when a row is malformed, when the indices are not
    0, 1, ..., 999 in order, or when a WordNet id repeats.
    """
    wnids: list[str] = []
    names: list[str] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        where = f"{source}, line {lineno}"
        if len(fields) != 3:
            raise ValueError(f"{where}: expected 3 tab-separated fields, got {len(fields)}")
        index, wnid, name = (field.strip() for field in fields)
        if index != str(len(names)):
            raise ValueError(f"{where}: expected class index {len(names)}, got {index!r}")
        if not _WNID.fullmatch(wnid):
            raise ValueError(f"{where}: {wnid!r} is not a WordNet id (n followed by 8 digits)")
        if not name:
            raise ValueError(f"{where}: empty class name")
        wnids.append(wnid)
        names.append(name)
    if len(names) != NUM_CLASSES:
        raise ValueError(f"{source}: expected {NUM_CLASSES} classes, found {len(names)}")
    if len(set(wnids)) != len(wnids):
        raise ValueError(f"{source}: a WordNet id appears more than once")
    return wnids, names


@functools.lru_cache(maxsize=1)
def _class_table() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The packaged class table, read and checked once."""
    try:
        text = resources.files("mini_iformer").joinpath(_TABLE_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"cannot read the ImageNet class table {_TABLE_FILE!r} from the mini_iformer "
            f"package ({exc}); reinstall mini-iformer"
        ) from None
    try:
        wnids, names = parse_class_table(text)
    except ValueError as exc:
        raise ValueError(
            f"the ImageNet class table is damaged: {exc}; reinstall mini-iformer"
        ) from None
    return tuple(wnids), tuple(names)


def class_names() -> list[str]:
    """The 1000 ImageNet-1k class names in class-index order (first WordNet lemma of each)."""
    return list(_class_table()[1])


def wordnet_ids() -> list[str]:
    """The 1000 ImageNet-1k WordNet ids (``n########``) in class-index order."""
    return list(_class_table()[0])
