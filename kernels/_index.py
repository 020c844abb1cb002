"""Index arithmetic shared by every kernel and by the API's shape checks.

Pure Python integers only: no Numba, no Triton, so that ``fastconv.output_shape`` and the validation
that runs before a kernel never import a compiler.

One spatial axis, with input size ``I``, kernel size ``k``, stride ``s``, dilation ``d`` and zero
padding ``p_lo`` before / ``p_hi`` after the input:

    convolution      o = floor((I + p_lo + p_hi - d·(k-1) - 1) / s) + 1
                     tap k of output o reads input  i = o·s - p_lo + k·d      (zero when i ∉ [0, I))
    transposed       o = (I - 1)·s - p_lo - p_hi + d·(k-1) + output_padding + 1
                     output o gathers input i = (o + p_lo - k·d) / s  when that is a whole number in [0, I)
"""


def conv_out_size(size, kernel, stride, pad_lo, pad_hi, dilation):
    """Output length of one axis of a convolution (the torch rule, floor division)."""
    span = dilation * (kernel - 1) + 1          # extent of the dilated kernel
    return (size + pad_lo + pad_hi - span) // stride + 1


def conv_transpose_out_size(size, kernel, stride, pad_lo, pad_hi, dilation, output_padding):
    """Output length of one axis of a transposed convolution (the torch rule)."""
    return (size - 1) * stride - pad_lo - pad_hi + dilation * (kernel - 1) + output_padding + 1


def same_padding(kernel, dilation):
    """(pad_lo, pad_hi) that keep the length at stride 1; an odd total puts the extra zero after, as torch."""
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2


def receptive_field(layers):
    """Receptive field of a stack of layers, each ``(kernel, stride)`` or ``(kernel, stride, dilation)``.

    r = 1 + Σ_l d_l·(k_l - 1)·Π_{i<l} s_i : each layer widens the field by its dilated kernel extent
    minus one, measured in input pixels, i.e. scaled by the product of the strides before it.
    """
    field, jump = 1, 1
    for layer in layers:
        kernel, stride, dilation = (tuple(layer) + (1,))[:3]
        field += dilation * (kernel - 1) * jump
        jump *= stride
    return field


def valid_outputs(in_size, out_size, stride, offset):
    """The outputs o in [lo, hi) whose tap reads a real input: 0 <= o·stride + offset < in_size.

    A kernel loops over [lo, hi) only, so padding costs nothing and needs no test inside the loop.
    (``offset`` = tap·dilation − pad_lo; Python's // floors, which makes the bounds exact for negatives.)
    """
    lo = max(0, -(offset // stride))
    hi = min(out_size, (in_size - 1 - offset) // stride + 1)
    return lo, max(lo, hi)


def transposed_source(out_index, tap, stride, pad, dilation, in_size):
    """Gather form of a transposed convolution: the input i that output o reads through tap k, or -1.

    o = i·s − p + k·d  ⇔  i = (o + p − k·d) / s, which must be a whole number inside [0, in_size).
    """
    shifted = out_index + pad - tap * dilation
    if shifted < 0 or shifted % stride:
        return -1
    source = shifted // stride
    return source if source < in_size else -1


def as_3d(a, nd):
    """View a (B, C, *spatial) array with nd spatial axes as one with 3 (leading axes of size 1).

    The kernels are written once, for 3 spatial axes; 1-d and 2-d calls are views of them.
    """
    return a.reshape(tuple(a.shape[:2]) + (1,) * (3 - nd) + tuple(a.shape[2:]))


def pad3(values, nd, fill):
    """A per-axis tuple of nd spatial axes (stride, padding, ...) as 3 axes, size-1 axes get ``fill``."""
    return (fill,) * (3 - nd) + tuple(values)
