"""What every fastconv module shares: the backend choice and the call of fastconv.run."""
import torch

from ..api import run


class FastconvModule(torch.nn.Module):
    """Mixin: ``self.kind`` and ``self.backend`` ("auto", "numba", "triton" or "torch")."""
    kind = None
    backend = "auto"

    def needs_graph(self, *tensors) -> bool:
        return torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in (*tensors, *self.parameters()))

    def fastconv(self, *tensors, **kwargs):
        """fastconv.run(self.kind, ...) with this module's backend (the reference when grads are needed)."""
        backend = self.backend
        if backend == "auto" and self.needs_graph(*[t for t in tensors if isinstance(t, torch.Tensor)]):
            backend = "torch"
        return run(self.kind, *tensors, backend=backend, **kwargs)
