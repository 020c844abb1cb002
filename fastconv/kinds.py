"""The static table of every kind: one line per family, read top to bottom."""
from .families import adaptive, deformable, dynamic, standard

SPECS = {spec.name: spec for spec in [
    *standard.SPECS,
    *deformable.SPECS,
    *adaptive.SPECS,
    *dynamic.SPECS,
]}
