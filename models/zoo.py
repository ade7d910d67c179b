"""Imports every model family so their `@register` lines run. One line per family."""
