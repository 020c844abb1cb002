"""Modules of the dynamic family, with their attention branches.

Parameters are named, shaped and initialised as in the official code, so a state_dict ports directly:

    DynamicConv2d          kaijieshi7/Dynamic-convolution-Pytorch ``Dynamic_conv2d``: weight (K, Cout, Cin/g, k, k),
                           bias (K, Cout), attention.fc1 / attention.fc2 (1×1 Conv2d)
    ODConv2d               OSVAI/ODConv ``ODConv2d``: weight (kernel_num, Cout, Cin/g, k, k), attention.fc, .bn,
                           .channel_fc, .filter_fc, .spatial_fc, .kernel_fc (1×1 Conv2d)
    KernelWarehouseConv2d  OSVAI/KernelWarehouse ``KWConv2d`` with its own one-warehouse manager: attention.fc1,
                           .norm1, .fc2 (Linear, BatchNorm1d), bias (Cout,); the warehouse is ``warehouse``
                           (n, c_o, c_i, 1, 1), the official ``warehouse_manager.weights.<id>``

The attentions are computed here with torch (they are tiny: one vector per sample); the convolution
with the per-sample kernel is fastconv.run's.
"""
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

from .common import FastconvModule


def _kaiming_fan_out(module):
    """The official attention-branch initialisation: kaiming normal (fan_out, relu), biases 0, norms 1/0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


def _check_temperature(temperature):
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    return temperature


class _Geometry(FastconvModule):
    """stride/padding/dilation/groups as torch's Conv2d stores them."""

    def _geometry(self, in_planes, out_planes, kernel_size, stride, padding, dilation, groups, backend):
        if in_planes % groups or out_planes % groups:
            raise ValueError(f"groups={groups} must divide in_planes={in_planes} and out_planes={out_planes}")
        self.in_planes, self.out_planes, self.groups = in_planes, out_planes, groups
        self.kernel_size, self.stride, self.dilation = _pair(kernel_size), _pair(stride), _pair(dilation)
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        self.backend = backend

    def conv_params(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)


# ---------------------------------------------------------------------------------------------------
# Dynamic convolution (Chen et al. 2020)
# ---------------------------------------------------------------------------------------------------
class DynamicAttention(nn.Module):
    """softmax(fc2(ReLU(fc1(GAP x))) / temperature) over the K experts; hidden = int(Cin·ratio) + 1
    (K when Cin = 3, as the official code does for the RGB stem)."""

    def __init__(self, in_planes, ratio, K, temperature):
        super().__init__()
        hidden = int(in_planes * ratio) + 1 if in_planes != 3 else K
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(in_planes, hidden, 1, bias=False)
        self.fc2 = nn.Conv2d(hidden, K, 1, bias=True)
        self.temperature = _check_temperature(temperature)
        _kaiming_fan_out(self)

    def forward(self, x):
        z = self.fc2(F.relu(self.fc1(self.avgpool(x)))).flatten(1)
        return F.softmax(z / self.temperature, dim=1)


class DynamicConv2d(_Geometry):
    """Dynamic convolution: K expert kernels mixed per sample by a softmax attention ("dynamic").

    ``update_temperature()`` follows the official schedule (−3 per call down to 1);
    ``update_temperature(t)`` sets it.
    """
    kind = "dynamic"

    def __init__(self, in_planes, out_planes, kernel_size, ratio=0.25, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, K=4, temperature=34, init_weight=True, backend="auto"):
        super().__init__()
        self._geometry(in_planes, out_planes, kernel_size, stride, padding, dilation, groups, backend)
        self.K = K
        self.attention = DynamicAttention(in_planes, ratio, K, temperature)
        self.weight = nn.Parameter(torch.randn(K, out_planes, in_planes // groups, *self.kernel_size))
        self.bias = nn.Parameter(torch.zeros(K, out_planes)) if bias else None
        if init_weight:
            for i in range(K):
                nn.init.kaiming_uniform_(self.weight[i])

    def update_temperature(self, temperature=None):
        if temperature is None:
            temperature = self.attention.temperature - 3 if self.attention.temperature != 1 else 1
        self.attention.temperature = _check_temperature(temperature)

    def forward(self, x):
        return self.fastconv(x, self.weight, attention=self.attention(x), bias=self.bias, **self.conv_params())


# ---------------------------------------------------------------------------------------------------
# ODConv (Li, Zhou, Yao 2022)
# ---------------------------------------------------------------------------------------------------
class ODConvAttention(nn.Module):
    """GAP → fc → bn → ReLU, then four heads: sigmoid channel, filter and spatial attentions and a softmax
    over the kernels, each divided by the temperature first. A head the layer does not need is absent and
    its attention is None (= 1): filter for depthwise, spatial for 1×1, kernel for kernel_num = 1."""

    def __init__(self, in_planes, out_planes, kernel_size, groups=1, reduction=0.0625, kernel_num=4, min_channel=16):
        super().__init__()
        hidden = max(int(in_planes * reduction), min_channel)
        self.kernel_size, self.kernel_num, self.temperature = kernel_size, kernel_num, 1.0
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(in_planes, hidden, 1, bias=False)
        self.bn = nn.BatchNorm2d(hidden)
        self.relu = nn.ReLU(inplace=True)
        self.channel_fc = nn.Conv2d(hidden, in_planes, 1, bias=True)
        depthwise = in_planes == groups and in_planes == out_planes
        self.filter_fc = None if depthwise else nn.Conv2d(hidden, out_planes, 1, bias=True)
        self.spatial_fc = None if kernel_size == 1 else nn.Conv2d(hidden, kernel_size * kernel_size, 1, bias=True)
        self.kernel_fc = None if kernel_num == 1 else nn.Conv2d(hidden, kernel_num, 1, bias=True)
        _kaiming_fan_out(self)

    def update_temperature(self, temperature):
        self.temperature = _check_temperature(temperature)

    def forward(self, x):
        """(in_attention (B, Cin), out_attention (B, Cout), spatial_attention (B, k, k), kernel_attention (B, N))."""
        z = self.relu(self.bn(self.fc(self.avgpool(x))))
        head = lambda fc: None if fc is None else fc(z).flatten(1) / self.temperature
        channel, filt, spatial, kernel = map(head, (self.channel_fc, self.filter_fc, self.spatial_fc, self.kernel_fc))
        return (torch.sigmoid(channel),
                None if filt is None else torch.sigmoid(filt),
                None if spatial is None else torch.sigmoid(spatial).view(-1, self.kernel_size, self.kernel_size),
                None if kernel is None else F.softmax(kernel, dim=1))


class ODConv2d(_Geometry):
    """Omni-dimensional dynamic convolution ("odconv"); square kernels, no bias, as the official module."""
    kind = "odconv"

    def __init__(self, in_planes, out_planes, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 reduction=0.0625, kernel_num=4, backend="auto"):
        super().__init__()
        if not isinstance(kernel_size, int):
            raise TypeError(f"kernel_size must be an int (ODConv kernels are square), got {kernel_size!r}")
        self._geometry(in_planes, out_planes, kernel_size, stride, padding, dilation, groups, backend)
        self.kernel_num = kernel_num
        self.attention = ODConvAttention(in_planes, out_planes, kernel_size, groups, reduction, kernel_num)
        self.weight = nn.Parameter(torch.randn(kernel_num, out_planes, in_planes // groups, kernel_size, kernel_size))
        for i in range(kernel_num):
            nn.init.kaiming_normal_(self.weight[i], mode="fan_out", nonlinearity="relu")

    def update_temperature(self, temperature):
        self.attention.update_temperature(temperature)

    def forward(self, x):
        a_c, a_f, a_s, a_w = self.attention(x)
        return self.fastconv(x, self.weight, kernel_attention=a_w, spatial_attention=a_s, in_attention=a_c,
                             out_attention=a_f, **self.conv_params())


# ---------------------------------------------------------------------------------------------------
# KernelWarehouse (Li & Yao 2024), one layer owning its warehouse
# ---------------------------------------------------------------------------------------------------
class KernelWarehouseAttention(nn.Module):
    """GAP → fc1 → BatchNorm1d → ReLU → fc2, giving n + 1 logits per mixture (the last is the "zero
    cell"); contrasting normalisation z / (Σ|z| + 1e-3) per mixture; then (1 − τ)·α + τ·(fixed one-hot
    map); the zero cell is dropped: α (B, m, n)."""

    def __init__(self, in_planes, reduction, num_cells, num_mixtures, cell_num_ratio):
        super().__init__()
        hidden = max(int(in_planes * reduction), 16)
        self.num_cells, self.num_mixtures = num_cells, num_mixtures
        self.kw_planes_per_mixture = num_cells + 1
        self.avgpool = nn.AdaptiveAvgPool1d(1)
        self.fc1 = nn.Linear(in_planes, hidden, bias=False)
        self.norm1 = nn.BatchNorm1d(hidden)
        self.act1 = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, self.kw_planes_per_mixture * num_mixtures, bias=True)
        # not in the official state_dict (a plain tensor there): non-persistent, but moves with .to()
        self.register_buffer("temp_bias", self._one_hot_map(cell_num_ratio), persistent=False)
        self.temp_value = 0.0
        _kaiming_fan_out(self)

    def _one_hot_map(self, cell_num_ratio):
        """Mixture t starts as one cell (or as the zero cell), the official init_temperature with start 0."""
        per = self.kw_planes_per_mixture
        one_hot = torch.zeros(per * self.num_mixtures)
        start = 0
        for t in range(self.num_mixtures):
            if cell_num_ratio >= 1.0:
                one_hot[t * per + start] = 1
                start += int(cell_num_ratio)
            else:
                share = int(1.0 / cell_num_ratio)      # mixtures per cell
                if t % share == (t // share) % share:
                    one_hot[t * per + start] = 1
                    start += 1
                else:
                    one_hot[t * per + per - 1] = 1
        return one_hot

    def update_temperature(self, temp_value):
        self.temp_value = temp_value

    def forward(self, x):
        z = self.act1(self.norm1(self.fc1(self.avgpool(x.flatten(2)).squeeze(-1))))
        z = self.fc2(z).reshape(-1, self.kw_planes_per_mixture)
        z = z / (z.abs().sum(dim=1, keepdim=True) + 1e-3)
        z = (1.0 - self.temp_value) * z.reshape(-1, self.temp_bias.numel()) + self.temp_value * self.temp_bias
        return z.reshape(-1, self.num_mixtures, self.kw_planes_per_mixture)[:, :, :-1]


class KernelWarehouseConv2d(_Geometry):
    """A KernelWarehouse conv2d layer with its own warehouse ("kernel_warehouse"; no groups).

    Cells are c_o × c_i × 1×1 with c_o = max(int(Cout·cell_outplane_ratio), 1), c_i likewise; the kernel is
    m = k²·(Cout/c_o)·(Cin/c_i) mixtures of the n = max(int(m·cell_num_ratio), 1) cells.
    """
    kind = "kernel_warehouse"

    def __init__(self, in_planes, out_planes, kernel_size, stride=1, padding=0, dilation=1, bias=False,
                 reduction=0.0625, cell_num_ratio=1.0, cell_inplane_ratio=1.0, cell_outplane_ratio=1.0, backend="auto"):
        super().__init__()
        self._geometry(in_planes, out_planes, kernel_size, stride, padding, dilation, 1, backend)
        c_i = max(int(in_planes * cell_inplane_ratio), 1)
        c_o = max(int(out_planes * cell_outplane_ratio), 1)
        if in_planes % c_i or out_planes % c_o:
            raise ValueError(f"cells of {c_o}×{c_i} channels (cell_outplane_ratio={cell_outplane_ratio}, "
                             f"cell_inplane_ratio={cell_inplane_ratio}) must divide out_planes={out_planes} "
                             f"and in_planes={in_planes}")
        mixtures = self.kernel_size[0] * self.kernel_size[1] * (out_planes // c_o) * (in_planes // c_i)
        cells = max(int(mixtures * cell_num_ratio), 1)
        self.warehouse = nn.Parameter(torch.randn(cells, c_o, c_i, 1, 1))
        nn.init.kaiming_normal_(self.warehouse.view(-1, c_i, 1, 1), mode="fan_out", nonlinearity="relu")
        self.attention = KernelWarehouseAttention(in_planes, reduction, cells, mixtures, cell_num_ratio)
        self.bias = nn.Parameter(torch.zeros(out_planes)) if bias else None

    def update_temperature(self, temp_value):
        self.attention.update_temperature(temp_value)

    def forward(self, x):
        y = self.fastconv(x, self.warehouse.flatten(2), attention=self.attention(x), out_channels=self.out_planes,
                          kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                          dilation=self.dilation)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


MODULES = {"dynamic": DynamicConv2d, "odconv": ODConv2d, "kernel_warehouse": KernelWarehouseConv2d}
