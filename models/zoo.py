"""Imports every model family so their `@register` lines run. One line per family."""
import models.psp  # noqa: F401
import models.cpsp  # noqa: F401
