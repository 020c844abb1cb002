"""The static table of every kind: one line per family, read top to bottom."""
from .families import adaptive, deformable, dynamic, factorized, standard

SPECS = {spec.name: spec for spec in [
    *standard.SPECS,
    *factorized.SPECS,
    *dynamic.SPECS,
    *deformable.SPECS,
    *adaptive.SPECS,
]}
