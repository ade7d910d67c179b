"""Name → model builder, so `avel train --model NAME` finds every model without the CLI
importing each family by hand. Families register themselves when `models.zoo` imports them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn as nn

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} registered twice")
        _BUILDERS[name] = builder
        return builder
    return wrap


def build(name: str, **kwargs: Any) -> nn.Module:
    import models.zoo  # noqa: F401  (registers every family)
    if name not in _BUILDERS:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(sorted(_BUILDERS))}")
    return _BUILDERS[name](**kwargs)


def names() -> list[str]:
    import models.zoo  # noqa: F401
    return sorted(_BUILDERS)
