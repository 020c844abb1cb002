"""One module per family of kinds; each exports ``SPECS``, the list of its kinds (see fastconv.kinds)."""
