"""Label arrays the original training code reads, built from the manifest.

Everything here is a pure function of manifest rows (in manifest order), so the same
labels come out whether a researcher trains with avel or exports to the authors' code.
Layouts follow the original files exactly:

- AVE `right_labels.h5` [N,10,C+1]: per-second one-hot, background last (column 28).
- AVE `mil_labels.h5` [N,C+1]: video-level one-hot of the row's category; the background
  column stays 0 (true for all 4,143 rows of the shipped file).
- AVE `labels_closs.h5` [N,10]: per-second 0/1 event indicator.
- AVE `prob_label.h5` [N,C+1]: the segment one-hots averaged over the 10 seconds.
- AVE `labels_noisy.h5` [n,C+1]: background only (the PSP weakly extra videos).
- LLP weak labels [N,25] (multi-hot, official class order) and dense per-second GT [N,25,10].
- VGGSound-AVEL [N,10,C+1] from the class id and the per-second avc 0/1 label, background
  last; weak train labels [N,C].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipeline.core.errors import InputError

SEGMENTS = 10

# Class order of the released AVE arrays: the order in which categories first appear in
# Annotations.txt (same as STANDARD_AVE_DATASET in the PSP repo's dataloader.py).
AVE_CATEGORIES: tuple[str, ...] = (
    "Church bell", "Male speech, man speaking", "Bark", "Fixed-wing aircraft, airplane",
    "Race car, auto racing", "Female speech, woman speaking", "Helicopter", "Violin, fiddle",
    "Flute", "Ukulele", "Frying (food)", "Truck", "Shofar", "Motorcycle", "Acoustic guitar",
    "Train horn", "Clock", "Banjo", "Goat", "Baby cry, infant cry", "Bus", "Chainsaw", "Cat",
    "Horse", "Toilet flush", "Rodents, rats, mice", "Accordion", "Mandolin",
)

# Official AVVP class order (dataloader.py `categories`), not alphabetical.
LLP_CATEGORIES: tuple[str, ...] = (
    "Speech", "Car", "Cheering", "Dog", "Cat", "Frying_(food)", "Basketball_bounce",
    "Fire_alarm", "Chainsaw", "Cello", "Banjo", "Singing", "Chicken_rooster", "Violin_fiddle",
    "Vacuum_cleaner", "Baby_laughter", "Accordion", "Lawn_mower", "Motorcycle", "Helicopter",
    "Acoustic_guitar", "Telephone_bell_ringing", "Baby_cry_infant_cry", "Blender", "Clapping",
)

VGGSOUND_AVEL_CLASSES = 141


def _class_index(classes: Sequence[str], name: str, row: int, field: str = "category") -> int:
    try:
        return list(classes).index(name)
    except ValueError:
        raise InputError(f"manifest row {row}: {name!r} is not one of the {len(classes)} "
                         f"classes", field=field) from None


# --------------------------------------------------------------------------- AVE

def ave_classes(manifest: pd.DataFrame) -> list[str]:
    """The AVE foreground classes: the official 28 when every category is one of them,
    otherwise (synthetic or custom sets) the categories in order of first appearance,
    which is how the official order arises from Annotations.txt."""
    seen = list(dict.fromkeys(manifest["category"]))
    if set(seen) <= set(AVE_CATEGORIES):
        return list(AVE_CATEGORIES)
    return seen


def ave_event_indicator(manifest: pd.DataFrame) -> np.ndarray:
    """[N,10] float32: 1 on seconds event_start..event_end-1 (`labels_closs.h5`).

    A row whose end is not after its start (VWi2ENBuTbw, 0&0) marks no second, as in the
    shipped file."""
    out = np.zeros((len(manifest), SEGMENTS), dtype=np.float32)
    for i, (start, end) in enumerate(zip(manifest["event_start"], manifest["event_end"])):
        out[i, int(start):int(end)] = 1.0
    return out


def ave_segment_labels(manifest: pd.DataFrame, classes: Sequence[str] | None = None) -> np.ndarray:
    """[N,10,C+1] float32 one-hot per second (`right_labels.h5`); background is column C."""
    classes = list(classes) if classes is not None else ave_classes(manifest)
    n_fg = len(classes)
    indicator = ave_event_indicator(manifest)
    out = np.zeros((len(manifest), SEGMENTS, n_fg + 1), dtype=np.float32)
    for i, category in enumerate(manifest["category"]):
        c = _class_index(classes, category, i)
        out[i, :, c] = indicator[i]
        out[i, :, n_fg] = 1.0 - indicator[i]
    return out


def ave_mil_labels(manifest: pd.DataFrame, classes: Sequence[str] | None = None) -> np.ndarray:
    """[N,C+1] float32 video-level one-hot of each row's category (`mil_labels.h5`).

    Taken from the category, not from the seconds: the 0&0 row still carries its class,
    and the background column is never set (both as in the shipped file)."""
    classes = list(classes) if classes is not None else ave_classes(manifest)
    out = np.zeros((len(manifest), len(classes) + 1), dtype=np.float32)
    for i, category in enumerate(manifest["category"]):
        out[i, _class_index(classes, category, i)] = 1.0
    return out


def ave_prob_labels(manifest: pd.DataFrame, classes: Sequence[str] | None = None) -> np.ndarray:
    """[N,C+1] float32 `prob_label.h5`: the per-second one-hots averaged over time, so a
    3-second event gives 0.3 on its class and 0.7 on background. The shipped file is not
    available to compare; this reading agrees with `labels_noisy.h5` (all-background
    rows are exactly [0,…,0,1]) and with the PSP code calling it a normalised label."""
    return ave_segment_labels(manifest, classes).mean(axis=1, dtype=np.float64).astype(np.float32)


def ave_background_labels(n: int, n_classes: int = len(AVE_CATEGORIES)) -> np.ndarray:
    """[n,C+1] float32 with only the background column set: `labels_noisy.h5`, the labels
    (and prob labels) of the 178 background-only videos the PSP weakly setting adds."""
    out = np.zeros((n, n_classes + 1), dtype=np.float32)
    out[:, n_classes] = 1.0
    return out


def ave_split_orders(manifest: pd.DataFrame) -> dict[str, np.ndarray]:
    """Row indices per split (`{train,val,test}_order.h5`, int64), ascending by the
    manifest's `row` column (the Annotations row). The shipped files list rows in an
    unsorted order of their own; the manifest keeps no such order, so these are sorted."""
    rows = manifest["row"].to_numpy(dtype=np.int64) if "row" in manifest else np.arange(len(manifest))
    out = {}
    for split in ("train", "val", "test"):
        out[split] = np.sort(rows[(manifest["split"] == split).to_numpy()])
    return out


# --------------------------------------------------------------------------- LLP

def llp_weak_labels(manifest: pd.DataFrame) -> np.ndarray:
    """[N,25] float32 multi-hot of each clip's `labels` in the official AVVP order
    (`ids_to_multinomial` in the AVVP dataloader)."""
    out = np.zeros((len(manifest), len(LLP_CATEGORIES)), dtype=np.float32)
    for i, labels in enumerate(manifest["labels"]):
        for name in labels:
            out[i, _class_index(LLP_CATEGORIES, name, i, field="event_labels")] = 1.0
    return out


def llp_segment_labels(manifest: pd.DataFrame, modality: str) -> np.ndarray:
    """[N,25,10] float32 dense GT from `audio_events`/`visual_events`, class × second,
    set on int(onset):int(offset) as the AVVP evaluation does (offset ≤ onset marks
    nothing; clips without events are all zero)."""
    column = f"{modality}_events"
    out = np.zeros((len(manifest), len(LLP_CATEGORIES), SEGMENTS), dtype=np.float32)
    if column not in manifest:
        return out
    for i, events in enumerate(manifest[column]):
        for event in events if events is not None else ():
            c = _class_index(LLP_CATEGORIES, event["label"], i, field="event_labels")
            out[i, c, int(event["onset"]):int(event["offset"])] = 1.0
    return out


# --------------------------------------------------------------------------- VGGSound-AVEL

def avc_from_manifest(manifest: pd.DataFrame) -> np.ndarray:
    """[N,10] per-second audio-visual-correspondence 0/1 labels from the manifest's `avc`
    column; the meta CSV does not carry them, so they come from an import."""
    if "avc" not in manifest:
        raise InputError("the manifest has no per-second 'avc' column; VGGSound-AVEL avc labels "
                         "come from the released label zips (`avel import --format vggsound-avel`)",
                         field="avc")
    return np.stack([np.asarray(v, dtype=np.float32).reshape(SEGMENTS) for v in manifest["avc"]])


def vggsound_avel_labels(class_ids: Sequence[int] | np.ndarray, avc: np.ndarray,
                         n_classes: int = VGGSOUND_AVEL_CLASSES) -> np.ndarray:
    """[N,10,C+1] float32 as `_obtain_avel_label` builds it: column class_id = avc,
    last column = 1 - avc. `avc` is [N,10] (or [N,1,10], as stored in the zips)."""
    avc = np.asarray(avc, dtype=np.float32).reshape(len(class_ids), SEGMENTS)
    out = np.zeros((len(class_ids), SEGMENTS, n_classes + 1), dtype=np.float32)
    for i, c in enumerate(class_ids):
        if not 0 <= int(c) < n_classes:
            raise InputError(f"row {i}: class id {int(c)} is outside 0..{n_classes - 1}",
                             field="class_id")
        out[i, :, int(c)] = avc[i]
        out[i, :, n_classes] = 1.0 - avc[i]
    return out


def vggsound_avel_weak_labels(class_ids: Sequence[int] | np.ndarray,
                              n_classes: int = VGGSOUND_AVEL_CLASSES) -> np.ndarray:
    """[N,C] float32 one-hot of the class (`_obtain_category_label`, squeezed from [1,C])."""
    out = np.zeros((len(class_ids), n_classes), dtype=np.float32)
    for i, c in enumerate(class_ids):
        out[i, int(c)] = 1.0
    return out
