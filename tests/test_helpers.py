"""output_shape, cost and receptive_field against the textbook examples."""
import pytest

import fastconv


def test_output_shape_of_a_strided_padded_conv():
    assert fastconv.output_shape("conv2d", (8, 3, 32, 32), (16, 3, 3, 3), stride=2, padding=1) == (8, 16, 16, 16)
    assert fastconv.output_shape("conv1d", (1, 4, 10), (2, 4, 3), padding="same") == (1, 2, 10)
    assert fastconv.output_shape("conv3d", (1, 2, 5, 6, 7), (3, 2, 3, 3, 3)) == (1, 3, 3, 4, 5)


def test_cost_5x5_convolution_on_28x28x192():
    # 32 filters 5×5 on 28×28×192 with "same" padding
    assert fastconv.cost("conv2d", (1, 192, 28, 28), (32, 192, 5, 5), padding=2)["macs"] == 120_422_400


def test_cost_with_a_1x1_bottleneck_first():
    bottleneck = fastconv.cost("pointwise", (1, 192, 28, 28), (16, 192))["macs"]
    conv = fastconv.cost("conv2d", (1, 16, 28, 28), (32, 16, 5, 5), padding=2)["macs"]
    assert (bottleneck, conv) == (2_408_448, 10_035_200)


def test_cost_dense_vs_depthwise_then_pointwise():
    # 128 filters 3×3×3 on 7×7×3 (valid) vs a depthwise 3×3 then a pointwise 3 -> 128
    dense = fastconv.cost("conv2d", (1, 3, 7, 7), (128, 3, 3, 3))
    depthwise = fastconv.cost("depthwise", (1, 3, 7, 7), (3, 1, 3, 3))
    pointwise = fastconv.cost("pointwise", (1, 3, 5, 5), (128, 3, 1, 1))
    assert dense["macs"] == 86_400
    assert (depthwise["macs"], pointwise["macs"]) == (675, 9_600)
    assert depthwise["macs"] + pointwise["macs"] == 10_275
    # the depthwise cost names the dense convolution it replaces (3 -> 3 channels here)
    assert depthwise["dense_macs"] == 3 * 25 * 27


def test_cost_fields():
    c = fastconv.cost("conv2d", (2, 4, 8, 8), (6, 2, 3, 3), bias=(6,), groups=2, dtype="float64")
    assert c["flops"] == 2 * c["macs"] == 2 * 2 * 6 * 36 * 2 * 9
    assert c["params"] == 6 * 2 * 9 + 6
    assert c["bytes"] == 8 * (2 * 4 * 64 + 6 * 2 * 9 + 6 + 2 * 6 * 36)


@pytest.mark.parametrize("size, kernel, stride, padding, output_padding, expected", [
    (2, 3, 1, 0, 0, 4),     # 2×2 -> 4×4
    (3, 3, 2, 1, 1, 6),     # 3×3 -> 6×6
])
def test_transposed_output_sizes(size, kernel, stride, padding, output_padding, expected):
    shape = fastconv.output_shape("conv_transpose2d", (1, 1, size, size), (1, 1, kernel, kernel),
                                  stride=stride, padding=padding, output_padding=output_padding)
    assert shape == (1, 1, expected, expected)


def test_receptive_field():
    assert fastconv.receptive_field([(3, 1), (3, 2), (3, 1)]) == 1 + 2 + 2 + 2 * 2
    assert fastconv.receptive_field([(3, 1)] * 3) == 7                 # three 3×3 see 7×7
    assert fastconv.receptive_field([(3, 1, 2), (3, 1, 4)]) == 1 + 4 + 8  # dilated stack
    assert fastconv.receptive_field([(7, 2), (3, 2), (3, 1)]) == 7 + 2 * 2 + 2 * 4


@pytest.mark.parametrize("layers, error", [([(3,)], TypeError), ([(3, 0)], ValueError), ([3], TypeError)])
def test_receptive_field_rejects_bad_layers(layers, error):
    with pytest.raises(error, match=r"layers\[0\]"):
        fastconv.receptive_field(layers)
