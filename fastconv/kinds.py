"""The static table of every kind: one line per family, read top to bottom."""
from .families import factorized, standard

SPECS = {spec.name: spec for spec in [
    *standard.SPECS,
    *factorized.SPECS,
]}
