"""The adaptive family: convolutions whose kernel is computed from the input itself.

involution            (Li et al. 2021, d-li14/involution)   a K×K kernel per output pixel, shared by the
                      C/G channels of a group, the inverse of a convolution's sharing.
lightweight           (Wu et al. 2019, fairseq LightConv)   a depthwise 1-d convolution whose C channels
                      share H kernels (head h serves channels h·C/H .. (h+1)·C/H − 1), optionally
                      softmax-normalised over the taps.
dynamic_lightweight   (Wu et al. 2019, fairseq DynamicConv) the same with a kernel per time step (and per
                      sample), predicted from the input by a linear layer.

The kernels ``w`` are inputs here, not learned parameters: the nn modules (fastconv/nn/adaptive.py) compute
them. Layouts are batch-first, x (B, C, H, W) and x (B, C, T); fairseq's modules take (T, B, C).
"""
from __future__ import annotations

from ..kernels._index import conv_out_size
from ..spec import (BENCH_BATCH, Layer, Plan, Spec, check_rank, cost_dict, int_tuple, is_int, non_negative,
                    numel, positive)

INVOLUTION_X = "(B, C, H, W)"
INVOLUTION_W = "(B, G, K, K, Ho, Wo)"


def involution_plan(shapes, p, itemsize=4):
    """Checks of run("involution", x, w, stride, padding, dilation)."""
    batch, channels, *size = check_rank("x", shapes.get("x"), 4, INVOLUTION_X)
    w_batch, groups, *kernel_and_out = check_rank("w", shapes.get("w"), 6, INVOLUTION_W)
    kernel, w_out = tuple(kernel_and_out[:2]), tuple(kernel_and_out[2:])
    if w_batch != batch:
        raise ValueError(f"w.shape[0] must be the batch size B = {batch} (one kernel map per sample; "
                         f"w is {INVOLUTION_W}), got {w_batch}")
    positive("w.shape[1] (kernel groups G)", (groups,))
    if channels % groups:
        raise ValueError(f"the kernel groups G = w.shape[1] = {groups} must divide the channels "
                         f"C = x.shape[1] = {channels}")
    positive("w kernel size", kernel)
    stride = positive("stride", int_tuple("stride", p["stride"], 2))
    dilation = positive("dilation", int_tuple("dilation", p["dilation"], 2))
    if p["padding"] is None:
        padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    else:
        padding = non_negative("padding", int_tuple("padding", p["padding"], 2))
    for axis, (i, k, d, pd) in enumerate(zip(size, kernel, dilation, padding)):
        if i + 2 * pd < d * (k - 1) + 1:
            raise ValueError(f"kernel size {kernel} (dilation {dilation}) is larger than the padded input "
                             f"{tuple(s + 2 * q for s, q in zip(size, padding))} on spatial axis {axis}")
    out_size = tuple(conv_out_size(i, k, s, pd, pd, d)
                     for i, k, s, pd, d in zip(size, kernel, stride, padding, dilation))
    if w_out != out_size:
        raise ValueError(f"w.shape[4:] must be the output size (Ho, Wo) = {out_size} that x {tuple(size)} "
                         f"gives with kernel {kernel}, stride {stride}, padding {padding}, dilation "
                         f"{dilation}; got {w_out} (a kernel map computed at another resolution?)")
    out_shape = (batch, channels, *out_size)
    macs = batch * channels * numel(out_size) * numel(kernel)
    cost = cost_dict(macs, 0, [shapes["x"], shapes["w"], out_shape], itemsize,
                     dense_macs=macs * channels)
    params = dict(stride=stride, padding=padding, dilation=dilation)
    return Plan(out_shape, params, params, cost)


def _padding_l(value, kernel):
    if value is None:
        return kernel // 2
    if not is_int(value):
        raise TypeError(f"padding_l must be an int or None (K//2), got {value!r}")
    if not 0 <= value <= kernel - 1:
        raise ValueError(f"padding_l must be in [0, K − 1] = [0, {kernel - 1}] (K//2 centres the kernel, "
                         f"K − 1 makes it causal), got {value}")
    return int(value)


def _weight_softmax(value):
    if not isinstance(value, bool):
        raise TypeError(f"weight_softmax must be True or False, got {value!r}")
    return value


def _heads(heads, channels, axis):
    positive(f"w.shape[{axis}] (heads H)", (heads,))
    if channels % heads:
        raise ValueError(f"the heads H = {heads} must divide the channels C = x.shape[1] = {channels}")


def lightweight_plan(shapes, p, itemsize=4):
    """Checks of run("lightweight", x, w, padding_l, weight_softmax, bias)."""
    batch, channels, length = check_rank("x", shapes.get("x"), 3, "(B, C, T)")
    heads, kernel = check_rank("w", shapes.get("w"), 2, "(H, K)")
    _heads(heads, channels, 0)
    positive("w.shape[1] (kernel size K)", (kernel,))
    bias = shapes.get("bias")
    if bias is not None and tuple(bias) != (channels,):
        raise ValueError(f"bias must have shape ({channels},) (one value per channel), got {tuple(bias)}")
    params = dict(padding_l=_padding_l(p["padding_l"], kernel), weight_softmax=_weight_softmax(p["weight_softmax"]))
    out_shape = (batch, channels, length)
    cost = cost_dict(batch * channels * length * kernel, heads * kernel + (channels if bias else 0),
                     [shapes["x"], shapes["w"], bias, out_shape], itemsize)
    return Plan(out_shape, params, params, cost)


def dynamic_lightweight_plan(shapes, p, itemsize=4):
    """Checks of run("dynamic_lightweight", x, w, padding_l, weight_softmax)."""
    batch, channels, length = check_rank("x", shapes.get("x"), 3, "(B, C, T)")
    w_batch, heads, kernel, w_length = check_rank("w", shapes.get("w"), 4, "(B, H, K, T)")
    if (w_batch, w_length) != (batch, length):
        raise ValueError(f"w must be (B, H, K, T) with B = {batch} and T = {length} from x (a kernel per "
                         f"sample and time step), got {tuple(shapes['w'])}")
    _heads(heads, channels, 1)
    positive("w.shape[2] (kernel size K)", (kernel,))
    params = dict(padding_l=_padding_l(p["padding_l"], kernel), weight_softmax=_weight_softmax(p["weight_softmax"]))
    out_shape = (batch, channels, length)
    cost = cost_dict(batch * channels * length * kernel, 0, [shapes["x"], shapes["w"], out_shape], itemsize)
    return Plan(out_shape, params, params, cost)


SPECS = [
    Spec(name="involution", family="adaptive",
         summary="involution: a K×K kernel per output pixel, shared by the channels of a group (RedNet)",
         formula=("y[b,c,i,j] = Σ_{u,v<K} w[b, c//(C/G), u, v, i, j]·x[b, c, i·s − p + u·d, j·s − p + v·d]"
                  "   (zero outside the input)"),
         inputs=("x", "w"), tensor_params=(), params=dict(stride=1, padding=None, dilation=1),
         plan=involution_plan, reference="adaptive:involution", cpu="involution.cpu:involution",
         gpu="involution.gpu:involution", source="d-li14/involution (involution_naive.py)",
         layout=f"x {INVOLUTION_X}, w {INVOLUTION_W}"),
    Spec(name="lightweight", family="adaptive",
         summary="lightweight convolution: depthwise 1-d, H kernels shared by C/H channels each (LightConv)",
         formula=("y[b,c,t] = bias[c] + Σ_{k<K} w'[c//(C/H), k]·x[b, c, t + k − padding_l]"
                  "   (w' = softmax_k(w) if weight_softmax; zero outside [0, T))"),
         inputs=("x", "w"), tensor_params=("bias",), params=dict(padding_l=None, weight_softmax=False),
         plan=lightweight_plan, reference="adaptive:lightweight", cpu="lightweight.cpu:lightweight",
         gpu="lightweight.gpu:lightweight", source="fairseq LightweightConv1dTBC (lightweight_convolution.py)",
         layout="x (B, C, T), w (H, K), bias (C,)"),
    Spec(name="dynamic_lightweight", family="adaptive",
         summary="dynamic lightweight convolution: a lightweight kernel per sample and time step (DynamicConv)",
         formula=("y[b,c,t] = Σ_{k<K} w'[b, c//(C/H), k, t]·x[b, c, t + k − padding_l]"
                  "   (w' = softmax over all K taps if weight_softmax; zero outside [0, T))"),
         inputs=("x", "w"), tensor_params=(), params=dict(padding_l=None, weight_softmax=False),
         plan=dynamic_lightweight_plan, reference="adaptive:dynamic_lightweight",
         cpu="lightweight.cpu:dynamic_lightweight", gpu="lightweight.gpu:dynamic_lightweight",
         source="fairseq DynamicConv1dTBC (dynamic_convolution.py)", layout="x (B, C, T), w (B, H, K, T)"),
]


B = BENCH_BATCH
REDNET = "7×7, 128 channels in 8 groups of 16 (RedNet-50 stage 2)"
TRANSFORMER = "C = 512, H = 8, softmax-normalised (lightweight-conv transformer layer)"


def fairseq_form(T, K):
    """The baseline: the faster of fairseq's two forms on these shapes, as measured on a 2-core CPU.
    fairseq's modules default to the band matrices (DynamicConv up to T = 512 only), which is the slower
    form here except at T = 512, K = 31."""
    return "expanded" if (T, K) == (512, 31) else "unfold"


BENCHMARKS = [
    Layer("involution", f"stride 2, 56×56 → 28×28, {REDNET}, first block",
          {"x": (B, 128, 56, 56), "w": (B, 8, 7, 7, 28, 28)}, {"stride": 2},
          baseline="adaptive:involution_unfold"),
    Layer("involution", f"28×28, {REDNET}", {"x": (B, 128, 28, 28), "w": (B, 8, 7, 7, 28, 28)},
          baseline="adaptive:involution_unfold"),
    *[Layer("lightweight", f"T = {T}, K = {K}, {TRANSFORMER}", {"x": (B, 512, T), "w": (8, K)},
            {"weight_softmax": True}, baseline=f"adaptive:lightweight_{fairseq_form(T, K)}")
      for T in (512, 2048) for K in (3, 7, 15, 31)],
    *[Layer("dynamic_lightweight", f"T = {T}, K = {K}, {TRANSFORMER}",
            {"x": (B, 512, T), "w": (B, 8, K, T)}, {"weight_softmax": True},
            baseline=f"adaptive:dynamic_lightweight_{fairseq_form(T, K)}")
      for T in (512, 2048) for K in (3, 7, 15, 31)],
]
