"""The torch oracles: one plain, obviously-correct PyTorch function per kind, grouped by family.

They are what the tests compare every kernel with (in float64) and what ``backend="torch"`` runs.
Kernels never import them. Each function takes torch tensors and the plan's ``ref_params``.
"""
