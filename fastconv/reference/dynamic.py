"""References of the dynamic family, and the official batch-folded baselines.

The references follow the issue's definitions sample by sample: build the sample's kernel from the
formula, then run F.conv2d on that one sample. They are slow and obvious, and work in float64.

The ``*_batch_folded`` functions are what the official implementations run (and what users would
otherwise run): the batch is folded into the channels, x.view(1, B·Cin, H, W), with the B per-sample
kernels stacked as (B·Cout, Cin/g, kh, kw) and groups = B·g, so one grouped conv2d computes every sample.
They are the benchmark baselines.
"""
import torch
import torch.nn.functional as F


def _scale(a, shape):
    """An optional attention, broadcast to ``shape``; None means 1."""
    return 1.0 if a is None else a.reshape(shape)


# ---------------------------------------------------------------------------------------------------
# Per-sample kernels, exactly as the formulas read
# ---------------------------------------------------------------------------------------------------
def dynamic_kernels(w, attention, bias=None):
    """W[b] = Σ_k a[b,k]·w[k] (B, Cout, Cin/g, kh, kw) and bias[b] = Σ_k a[b,k]·bias[k] (B, Cout)."""
    weights = torch.einsum("bk,koihw->boihw", attention, w)
    return weights, None if bias is None else attention @ bias


def odconv_kernels(w, kernel_attention, spatial_attention, batch):
    """W[b] = Σ_n a_w[b,n]·(a_s[b] ⊙ w[n]) (B, Cout, Cin/g, kh, kw); a missing attention is 1."""
    kh, kw = w.shape[3:]
    a_w = w.new_ones(batch, w.shape[0]) if kernel_attention is None else kernel_attention
    return torch.einsum("bn,noihw->boihw", a_w, w) * _scale(spatial_attention, (batch, 1, 1, kh, kw))


def warehouse_kernels(cells, attention, out_channels, kernel_size):
    """W[b, go·c_o + a, gi·c_i + e, u, v] = Σ_j alpha[b, t, j]·cells[j, a, e], t = (s·Go + go)·Gi + gi."""
    n, c_o, c_i = cells.shape
    kh, kw = kernel_size
    batch, mixtures, _ = attention.shape
    go_count = out_channels // c_o
    gi_count = mixtures // (kh * kw * go_count)
    weights = cells.new_zeros(batch, out_channels, gi_count * c_i, kh, kw)
    for u in range(kh):
        for v in range(kw):
            s = u * kw + v
            for go in range(go_count):
                for gi in range(gi_count):
                    t = (s * go_count + go) * gi_count + gi
                    weights[:, go * c_o:(go + 1) * c_o, gi * c_i:(gi + 1) * c_i, u, v] = \
                        torch.einsum("bj,jae->bae", attention[:, t], cells)
    return weights


# ---------------------------------------------------------------------------------------------------
# The oracles: one conv2d per sample with that sample's kernel
# ---------------------------------------------------------------------------------------------------
def _per_sample(x, weights, biases, stride, padding, dilation, groups):
    return torch.cat([F.conv2d(x[b:b + 1], weights[b], None if biases is None else biases[b],
                               stride, padding, dilation, groups) for b in range(x.shape[0])])


def dynamic(x, w, attention, bias=None, *, stride, padding, dilation, groups):
    weights, biases = dynamic_kernels(w, attention, bias)
    return _per_sample(x, weights, biases, stride, padding, dilation, groups)


def odconv(x, w, kernel_attention=None, spatial_attention=None, in_attention=None, out_attention=None, *,
           stride, padding, dilation, groups):
    """The definition as written: scale x by a_c, convolve with Σ_n a_w·(a_s ⊙ w[n]), scale by a_f."""
    x = x * _scale(in_attention, (x.shape[0], -1, 1, 1))
    weights = odconv_kernels(w, kernel_attention, spatial_attention, x.shape[0])
    y = _per_sample(x, weights, None, stride, padding, dilation, groups)
    return y * _scale(out_attention, (x.shape[0], -1, 1, 1))


def kernel_warehouse(x, cells, attention, *, out_channels, kernel_size, stride, padding, dilation):
    weights = warehouse_kernels(cells, attention, out_channels, kernel_size)
    return _per_sample(x, weights, None, stride, padding, dilation, 1)


# ---------------------------------------------------------------------------------------------------
# Baselines: the official batch-folded grouped convolution
# ---------------------------------------------------------------------------------------------------
def _batch_folded(x, weights, biases, stride, padding, dilation, groups):
    """x (B, Cin, H, W) as (1, B·Cin, H, W), kernels (B, Cout, ...) as (B·Cout, ...), groups = B·groups."""
    batch, cin, height, width = x.shape
    cout = weights.shape[1]
    y = F.conv2d(x.reshape(1, batch * cin, height, width), weights.reshape(batch * cout, *weights.shape[2:]),
                 None if biases is None else biases.reshape(-1), stride, padding, dilation, groups * batch)
    return y.view(batch, cout, *y.shape[2:])


def dynamic_batch_folded(x, w, attention, bias=None, *, stride, padding, dilation, groups):
    """Dynamic_conv2d.forward: torch.mm(attention, w.view(K, -1)) then one grouped conv2d."""
    experts = w.shape[0]
    weights = torch.mm(attention, w.reshape(experts, -1)).view(x.shape[0], *w.shape[1:])
    biases = None if bias is None else torch.mm(attention, bias)
    return _batch_folded(x, weights, biases, stride, padding, dilation, groups)


def odconv_batch_folded(x, w, kernel_attention=None, spatial_attention=None, in_attention=None,
                        out_attention=None, *, stride, padding, dilation, groups):
    """ODConv2d._forward_impl_common: x·a_c, Σ_n a_s·a_w·w[n], grouped conv2d, output·a_f."""
    batch = x.shape[0]
    kh, kw = w.shape[3:]
    x = x * _scale(in_attention, (batch, -1, 1, 1))
    a_w = _scale(kernel_attention, (batch, -1, 1, 1, 1, 1))
    a_s = _scale(spatial_attention, (batch, 1, 1, 1, kh, kw))
    weights = torch.sum(a_s * a_w * w.unsqueeze(0), dim=1).expand(batch, *w.shape[1:])
    y = _batch_folded(x, weights, None, stride, padding, dilation, groups)
    return y * _scale(out_attention, (batch, -1, 1, 1))


def kernel_warehouse_batch_folded(x, cells, attention, *, out_channels, kernel_size, stride, padding, dilation):
    """KWconvNd.forward: one mm of every mixture with the flattened cells, a permute, a grouped conv2d."""
    n, c_o, c_i = cells.shape
    batch, cin = x.shape[:2]
    kh, kw = kernel_size
    go_count, gi_count = out_channels // c_o, cin // c_i
    mixed = torch.mm(attention.reshape(-1, n), cells.reshape(n, -1))
    weights = mixed.reshape(batch, kh * kw, go_count, gi_count, c_o, c_i).permute(0, 2, 4, 3, 5, 1)
    weights = weights.reshape(batch, out_channels, cin, kh, kw)
    return _batch_folded(x, weights, None, stride, padding, dilation, 1)
