"""The static table of every kind: one line per family, read top to bottom."""
from .families import standard
from .families import adaptive

SPECS = {spec.name: spec for spec in [
    *standard.SPECS,
    *adaptive.SPECS,
]}
