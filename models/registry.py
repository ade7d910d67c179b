"""Name → model builder, and the one registry shape every named thing in avel uses.

Models, checkpoint loaders, trainer families, preset collections and CLI commands are each
one static table `name → "module:attribute"`, written out in one place per kind and
resolved with importlib on first use. Nothing registers itself on import, so a table reads
as the complete list, importing a table costs nothing, and a family whose optional
dependency is missing fails only when asked for. (`extractors/catalog.py` has the
same shape; `extractors` may not import `models`.)

An entry may bind keyword arguments, `("module:attribute", {"flag": "cpsp"})`, for the
variants one builder makes; the lookup then returns `functools.partial(attribute, **kw)`.
"""

from __future__ import annotations

import functools
import pkgutil
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch.nn as nn

Entry = str | tuple[str, Mapping[str, Any]]


class LazyTable(Mapping[str, Any]):
    """A read-only mapping from names to objects that are imported when first looked up."""

    def __init__(self, kind: str, entries: Mapping[str, Entry]) -> None:
        self.kind = kind
        self._entries = dict(entries)

    def __getitem__(self, name: str) -> Any:
        if name not in self._entries:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        entry = self._entries[name]
        target, bound = (entry, None) if isinstance(entry, str) else entry
        obj = pkgutil.resolve_name(target)
        return functools.partial(obj, **bound) if bound else obj

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def names(self) -> list[str]:
        return sorted(self._entries)


_CPSP_VARIANTS: dict[str, Entry] = {
    f"{flag}-{setting}-{dataset}": ("models.cpsp:build_cpsp",
                                    {"flag": flag, "setting": setting, "dataset": dataset})
    for flag in ("psp", "cpsp", "sspsp") for setting in ("fully", "weakly")
    for dataset in ("ave", "vggsound")
}

#: `avel train --model` / `Preset.arch` name → builder(**kwargs) -> nn.Module
MODELS = LazyTable("model", {
    "psp-fully": "models.psp:psp_fully",
    "psp-weakly": "models.psp:psp_weakly",
    **_CPSP_VARIANTS,
    "psp_avvp": "models.cpsp_avvp:build_psp_avvp",
    "cpsp_avvp": "models.cpsp_avvp:build_cpsp_avvp",
    "han": "models.han:build_han",
    "av_att": "models.baselines.av_att:av_att",
    "av_att_weak": "models.baselines.av_att:av_att_weak",
    "avel": "models.baselines.avel:avel",
    "avsdn": "models.baselines.avsdn:avsdn",
    "cmbs": "models.baselines.cmbs:cmbs",
    "cmm": "models.baselines.cmm:cmm",
    "cmran": "models.baselines.cmran:cmran",
    "dmrn": "models.baselines.dmrn:dmrn",
})


def build(name: str, **kwargs: Any) -> nn.Module:
    return MODELS[name](**kwargs)


def names() -> list[str]:
    return MODELS.names()
