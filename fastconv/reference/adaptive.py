"""References of the adaptive family (involution, lightweight, dynamic lightweight), and the official
forms used as benchmark baselines.

The references sum over the kernel taps one tap at a time, straight from the formulas: each tap is a
shifted (and strided) slice of the zero-padded input times that tap's weights. They are float64-friendly
and differentiable.

The baselines are the forms the official code computes with (d-li14/involution's naive involution,
fairseq's ``_forward_unfolded`` and ``_forward_expanded``), written here for batch-first tensors:
    involution_unfold            F.unfold of the input (B, C·K², Ho·Wo), times the kernels, summed over taps
    *_unfold                     the input padded and seen as (T, B, C, K) windows, contracted with the
                                 kernels by a batched matrix product
    *_expanded                   every kernel written into a band matrix (B·H, T, T), times the input
The benchmarks report their peak memory next to ours: the unfold of involution (B·C·K²·Ho·Wo elements)
and the band matrices are materialised; fairseq's 1-d unfold is a strided view that bmm reads in place.
"""
import torch
import torch.nn.functional as F


# --------------------------------------------------------------------------------------------------
# involution
# --------------------------------------------------------------------------------------------------

def involution(x, w, *, stride, padding, dilation):
    """y[b,c,i,j] = Σ_{u,v} w[b, c//(C/G), u, v, i, j]·x[b, c, i·s − p + u·d, j·s − p + v·d]."""
    B, C, _, _ = x.shape
    _, G, KH, KW, Ho, Wo = w.shape
    xp = F.pad(x, (padding[1], padding[1], padding[0], padding[0]))
    xg = xp.view(B, G, C // G, *xp.shape[2:])             # channel c = g·(C/G) + r
    y = x.new_zeros(B, G, C // G, Ho, Wo)
    for u in range(KH):
        for v in range(KW):
            top, left = u * dilation[0], v * dilation[1]
            tap = xg[..., top:top + stride[0] * (Ho - 1) + 1:stride[0],
                     left:left + stride[1] * (Wo - 1) + 1:stride[1]]
            y = y + w[:, :, None, u, v] * tap
    return y.reshape(B, C, Ho, Wo)


def involution_unfold(x, w, *, stride, padding, dilation):
    """The official naive form: unfold (B, C·K², Ho·Wo), multiply by the kernels, sum over the taps."""
    B, C, _, _ = x.shape
    _, G, KH, KW, Ho, Wo = w.shape
    cols = F.unfold(x, (KH, KW), dilation, padding, stride).view(B, G, C // G, KH * KW, Ho, Wo)
    return (w.view(B, G, 1, KH * KW, Ho, Wo) * cols).sum(dim=3).view(B, C, Ho, Wo)


# --------------------------------------------------------------------------------------------------
# lightweight and dynamic lightweight
# --------------------------------------------------------------------------------------------------

def _taps(w, weight_softmax):
    """w' = softmax over the tap axis (-2 of (B, H, K, T), -1 of (H, K)) when asked."""
    return w if not weight_softmax else torch.softmax(w, dim=-2 if w.dim() == 4 else -1)


def dynamic_lightweight(x, w, *, padding_l, weight_softmax):
    """y[b,c,t] = Σ_k w'[b, c//(C/H), k, t]·x[b, c, t + k − padding_l]; the softmax spans all K taps."""
    B, C, T = x.shape
    _, H, K, _ = w.shape
    w = _taps(w, weight_softmax)
    xp = F.pad(x, (padding_l, K - 1 - padding_l)).view(B, H, C // H, T + K - 1)
    y = x.new_zeros(B, H, C // H, T)
    for k in range(K):
        y = y + w[:, :, None, k, :] * xp[..., k:k + T]
    return y.reshape(B, C, T)


def lightweight(x, w, bias=None, *, padding_l, weight_softmax):
    """y[b,c,t] = bias[c] + Σ_k w'[c//(C/H), k]·x[b, c, t + k − padding_l]."""
    H, K = w.shape
    w = _taps(w, weight_softmax)
    y = dynamic_lightweight(x, w.view(1, H, K, 1).expand(x.shape[0], H, K, x.shape[2]), padding_l=padding_l,
                            weight_softmax=False)
    return y if bias is None else y + bias.view(1, -1, 1)


def _time_major(x):
    """(B, C, T) seen as fairseq's (T, B, C), without a copy."""
    return x.permute(2, 0, 1)


def _batch_first(y):
    """fairseq's (T, B, C) result seen as (B, C, T), without a copy."""
    return y.permute(1, 2, 0)


def _unfold(x, w_tbhk, padding_l):
    """fairseq's _forward_unfolded: windows (T·B·H, R, K) of the padded input, a bmm with the kernels."""
    T, B, C = x.shape
    K = w_tbhk.shape[-1]
    H = w_tbhk.shape[2]
    padded = F.pad(x, (0, 0, 0, 0, padding_l, K - 1 - padding_l)).contiguous()   # (T + K − 1, B, C)
    windows = padded.as_strided((T, B, C, K), (B * C, C, 1, B * C)).reshape(T * B * H, C // H, K)
    return torch.bmm(windows, w_tbhk.reshape(T * B * H, K, 1)).view(T, B, C)


def _expanded(x, w_tbhk, padding_l):
    """fairseq's _forward_expanded: each kernel written into a band matrix (B·H, T, T), one bmm."""
    T, B, C = x.shape
    K = w_tbhk.shape[-1]
    H = w_tbhk.shape[2]
    w = w_tbhk.reshape(T, B * H, K).transpose(0, 1)
    band = w.new_zeros(B * H, T, T + K - 1)
    band.as_strided((B * H, T, K), (T * (T + K - 1), T + K, 1)).copy_(w)     # band[., t, t + k] = w[., t, k]
    out = torch.bmm(band.narrow(2, padding_l, T), x.reshape(T, B * H, C // H).transpose(0, 1))
    return out.transpose(0, 1).contiguous().view(T, B, C)


def _lightweight_official(form, x, w, bias, padding_l, weight_softmax):
    T, B = x.shape[2], x.shape[0]
    H, K = w.shape
    w_tbhk = _taps(w, weight_softmax).view(1, 1, H, K).expand(T, B, H, K).contiguous()
    y = _batch_first(form(_time_major(x), w_tbhk, padding_l))
    return y if bias is None else y + bias.view(1, -1, 1)


def lightweight_unfold(x, w, bias=None, *, padding_l, weight_softmax):
    """fairseq LightweightConv1dTBC._forward_unfolded on batch-first tensors."""
    return _lightweight_official(_unfold, x, w, bias, padding_l, weight_softmax)


def lightweight_expanded(x, w, bias=None, *, padding_l, weight_softmax):
    """fairseq LightweightConv1dTBC._forward_expanded on batch-first tensors."""
    return _lightweight_official(_expanded, x, w, bias, padding_l, weight_softmax)


def _dynamic_official(form, x, w, padding_l, weight_softmax):
    # fairseq's kernels come out of its Linear as (T, B, H, K); ours are (B, H, K, T)
    w_tbhk = _taps(w, weight_softmax).permute(3, 0, 1, 2)
    return _batch_first(form(_time_major(x), w_tbhk, padding_l))


def dynamic_lightweight_unfold(x, w, *, padding_l, weight_softmax):
    """fairseq DynamicConv1dTBC._forward_unfolded on batch-first tensors."""
    return _dynamic_official(_unfold, x, w, padding_l, weight_softmax)


def dynamic_lightweight_expanded(x, w, *, padding_l, weight_softmax):
    """fairseq DynamicConv1dTBC._forward_expanded on batch-first tensors."""
    return _dynamic_official(_expanded, x, w, padding_l, weight_softmax)
