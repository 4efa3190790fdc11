"""A GluonCV parameter file -> an ONNX graph of the inference network, built node by node with `onnx.helper` from
the parameter names (no framework: the MXNet CPU image has no PyTorch, and MXNet's own ONNX export bakes every
output size into the graph).

The graph (`model.onnx`) takes what the server decodes, uint8 RGB images [N, H, W, 3] of any size, and returns class
probabilities [N, C, H, W]: ImageNet normalisation first, the network of semseg.engines.torch.network (the same
parameter paths as GluonCV's, so the same names), bilinear resizing with aligned corners to the input's size, and
softmax over the classes. BatchNorm is folded into the convolution before it (float64 arithmetic, then float32).
Every size is read from the tensors at run time (Shape -> Resize's sizes), so no input size needs a re-export:
GluonCV's adaptive average pooling (PSPNet's bins 2, 3, 6) is two MatMuls with averaging matrices built from the
feature map's height and width (bin i covers floor(i*H/n) to ceil((i+1)*H/n), as MXNet's and PyTorch's do).
Node names equal their output's name, so quantization can leave nodes out by name (semseg.export.quantize).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from semseg.contract.config import Config
from semseg.engines.architecture import ASPP_RATES, BACKBONE_BLOCKS, BN_EPS, PSP_BINS, is_vit
from semseg.engines.normalization import MEAN, STD
from semseg.export import vit

INPUT = "image"
OUTPUT = "probabilities"
OPSET = 17
IR_VERSION = 8  # what ONNX Runtime and OpenVINO read (onnx's newest IR is newer than ONNX Runtime's)
CLASSIFIERS = ("head.block.4", "head.block.7", "head.block.1")  # the classifier's node: FCN/PSP/DeepLab, V3+, linear


class _Graph:
    """Nodes and initializers under construction; every method returns its output's name."""

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.arrays = arrays
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attributes: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attributes))
        return name

    def param(self, name: str) -> np.ndarray:
        if name not in self.arrays:
            raise ValueError(f"the parameter file has no {name}")
        return np.asarray(self.arrays[name], dtype=np.float64)

    def conv(
        self, x: str, conv: str, bn: str | None, *, stride: int = 1, pad: int = 0, dilation: int = 1, relu: bool = True
    ) -> str:
        """Convolution `conv` (+ BatchNorm `bn` folded in) (+ ReLU)."""
        weight = self.param(f"{conv}.weight")
        bias = self.param(f"{conv}.bias") if f"{conv}.bias" in self.arrays else np.zeros(weight.shape[0])
        if bn is not None:
            scale = self.param(f"{bn}.gamma") / np.sqrt(self.param(f"{bn}.running_var") + BN_EPS)
            weight = weight * scale[:, None, None, None]
            bias = (bias - self.param(f"{bn}.running_mean")) * scale + self.param(f"{bn}.beta")
        kernel = weight.shape[2]
        w = self.const(f"{conv}.w", weight.astype(np.float32))
        b = self.const(f"{conv}.b", bias.astype(np.float32))
        out = self.node(
            "Conv", [x, w, b], conv, kernel_shape=[kernel, kernel], strides=[stride, stride],
            pads=[pad] * 4, dilations=[dilation, dilation],
        )  # fmt: skip
        return self.node("Relu", [out], f"{conv}.relu") if relu else out

    def resize_like(self, x: str, like: str, name: str) -> str:
        """`x` bilinearly resized (aligned corners, GluonCV's BilinearResize2D) to the height and width of `like`."""
        batch_channels = self.node("Slice", [self.node("Shape", [x], f"{name}.xshape"), "i0", "i2"], f"{name}.nc")
        size = self.node("Slice", [self.node("Shape", [like], f"{name}.lshape"), "i2", "i4"], f"{name}.hw")
        sizes = self.node("Concat", [batch_channels, size], f"{name}.sizes", axis=0)
        return self.node(
            "Resize", [x, "", "", sizes], name, mode="linear", coordinate_transformation_mode="align_corners"
        )

    def adaptive_pool(self, x: str, bins: int, name: str) -> str:
        """MXNet's AdaptiveAvgPooling2D to bins x bins, for any input size."""
        if bins == 1:
            return self.node("GlobalAveragePool", [x], name)
        shape = self.node("Shape", [x], f"{name}.shape")
        rows = self._averaging(self.node("Slice", [shape, "i2", "i3"], f"{name}.h"), bins, f"{name}.rows")
        cols = self._averaging(self.node("Slice", [shape, "i3", "i4"], f"{name}.w"), bins, f"{name}.cols")
        cols_t = self.node("Transpose", [cols], f"{name}.cols_t", perm=[1, 0])
        pooled_w = self.node("MatMul", [x, cols_t], f"{name}.pool_w")  # [N, C, H, bins]
        return self.node("MatMul", [rows, pooled_w], name)  # [N, C, bins, bins]

    def _averaging(self, length: str, bins: int, name: str) -> str:
        """[bins, length] float: row i averages positions floor(i*L/n) to ceil((i+1)*L/n) - 1 (`length`: [1])."""
        index = self.const(f"{name}.i", np.arange(bins, dtype=np.int64).reshape(bins, 1))
        n = self.const(f"{name}.n", np.array(bins, dtype=np.int64))
        n_1 = self.const(f"{name}.n_1", np.array(bins - 1, dtype=np.int64))
        start = self.node("Div", [self.node("Mul", [index, length], f"{name}.il"), n], f"{name}.start")
        upper = self.node("Mul", [self.node("Add", [index, "one"], f"{name}.i1"), length], f"{name}.i1l")
        end = self.node("Div", [self.node("Add", [upper, n_1], f"{name}.ceil"), n], f"{name}.end")
        positions = self.node("Range", ["zero", self.node("Squeeze", [length], f"{name}.len"), "one"], f"{name}.p")
        ge = self.node("GreaterOrEqual", [positions, start], f"{name}.ge")
        inside = self.node("And", [ge, self.node("Less", [positions, end], f"{name}.lt")], f"{name}.in")
        mask = self.node("Cast", [inside], f"{name}.mask", to=TensorProto.FLOAT)
        count = self.node("ReduceSum", [mask, "i1"], f"{name}.count", keepdims=1)
        return self.node("Div", [mask, count], name)


def _backbone(g: _Graph, x: str, backbone: str) -> tuple[str, str]:
    """Dilated ResNetV1s (GluonCV's resnet50_v1s/resnet101_v1s at output stride 8): (stage 1, stage 4) features."""
    x = g.conv(x, "conv1.0", "conv1.1", stride=2, pad=1)
    x = g.conv(x, "conv1.3", "conv1.4", pad=1)
    x = g.conv(x, "conv1.6", "bn1", pad=1)
    x = g.node("MaxPool", [x], "maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    stages = ((1, 1), (2, 1), (1, 2), (1, 4))  # (stride, dilation) of layer1..layer4
    c1 = x
    for number, ((stride, dilation), blocks) in enumerate(zip(stages, BACKBONE_BLOCKS[backbone], strict=True), 1):
        for block in range(blocks):
            name = f"layer{number}.{block}"
            first = block == 0
            rate = (1 if dilation in (1, 2) else 2) if first else dilation
            out = g.conv(x, f"{name}.conv1", f"{name}.bn1")
            out = g.conv(out, f"{name}.conv2", f"{name}.bn2", stride=stride if first else 1, pad=rate, dilation=rate)
            out = g.conv(out, f"{name}.conv3", f"{name}.bn3", relu=False)
            residual = x
            if first and f"{name}.downsample.0.weight" in g.arrays:
                residual = g.conv(x, f"{name}.downsample.0", f"{name}.downsample.1", stride=stride, relu=False)
            x = g.node("Relu", [g.node("Add", [out, residual], f"{name}.add")], f"{name}.out")
        if number == 1:
            c1 = x
    return c1, x


def _aspp(g: _Graph, x: str) -> str:
    branches = [g.conv(x, "head.aspp.concurent.0.0", "head.aspp.concurent.0.1")]
    for i, rate in enumerate(ASPP_RATES, 1):
        prefix = f"head.aspp.concurent.{i}"
        branches.append(g.conv(x, f"{prefix}.0", f"{prefix}.1", pad=rate, dilation=rate))
    pooled = g.node("GlobalAveragePool", [x], "head.aspp.concurent.4.gap.0")
    pooled = g.conv(pooled, "head.aspp.concurent.4.gap.1", "head.aspp.concurent.4.gap.2")
    branches.append(g.resize_like(pooled, x, "head.aspp.concurent.4.up"))
    joined = g.node("Concat", branches, "head.aspp.concat", axis=1)
    return g.conv(joined, "head.aspp.project.0", "head.aspp.project.1")


def _head(g: _Graph, algorithm: str, c1: str, c4: str) -> str:
    """The head's class scores at the feature map's size."""
    if algorithm == "fcn":
        x = g.conv(c4, "head.block.0", "head.block.1", pad=1)
    elif algorithm == "psp":
        feats = [c4]
        for i, bins in enumerate(PSP_BINS, 1):
            pooled = g.adaptive_pool(c4, bins, f"head.psp.pool{i}")
            pooled = g.conv(pooled, f"head.psp.conv{i}.0", f"head.psp.conv{i}.1")
            feats.append(g.resize_like(pooled, c4, f"head.psp.up{i}"))
        x = g.conv(g.node("Concat", feats, "head.psp.concat", axis=1), "head.block.0", "head.block.1", pad=1)
    elif algorithm == "deeplab":
        x = g.conv(_aspp(g, c4), "head.block.0", "head.block.1", pad=1)
    elif algorithm == "deeplabv3plus":
        low = g.conv(c1, "head.reduce.0", "head.reduce.1")
        up = g.resize_like(_aspp(g, c4), low, "head.aspp.up")
        x = g.conv(g.node("Concat", [up, low], "head.decoder.concat", axis=1), "head.block.0", "head.block.1", pad=1)
        x = g.conv(x, "head.block.3", "head.block.4", pad=1)
        return g.conv(x, "head.block.7", None, relu=False)
    else:
        raise ValueError(f"unknown algorithm {algorithm!r}")
    return g.conv(x, "head.block.4", None, relu=False)


def _vit(g: _Graph, x: str, config: Config) -> str:
    """DINOv2 (semseg.export.vit) and its head, scored at the input's size."""
    vit.constants(g)
    padded, before = vit.padding(g, x)
    feats = vit.features(g, padded, config.backbone)
    if config.algorithm == "linear":
        head = vit.linear_head(g, feats)
    else:
        head = _head(g, config.algorithm, feats, feats)
    return vit.crop(g, vit.upsample(g, head, padded), x, before)


def build(config: Config, arrays: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """The inference graph of `config`'s network with the GluonCV parameters `arrays` (Gluon name -> array);
    ValueError naming a parameter the file lacks. The aux head's parameters are not used."""
    g = _Graph(arrays)
    for name, value in {
        "i0": [0], "i1": [1], "i2": [2], "i3": [3], "i4": [4], "zero": np.array(0), "one": np.array(1),
    }.items():  # fmt: skip
        g.const(name, np.asarray(value, dtype=np.int64))
    pixels = g.node("Cast", [INPUT], "pixels", to=TensorProto.FLOAT)
    mean = g.const("mean255", (np.array(MEAN) * 255).astype(np.float32))
    inverse = g.const("inv_std255", (1 / (np.array(STD) * 255)).astype(np.float32))
    normalised = g.node("Mul", [g.node("Sub", [pixels, mean], "centred"), inverse], "normalised")
    x = g.node("Transpose", [normalised], "nchw", perm=[0, 3, 1, 2])
    if is_vit(config.backbone):
        scores = _vit(g, x, config)
    else:
        c1, c4 = _backbone(g, x, config.backbone)
        scores = g.resize_like(_head(g, config.algorithm, c1, c4), x, "scores")
    g.node("Softmax", [scores], OUTPUT, axis=1)
    inputs = {name for node in g.nodes for name in node.input}
    graph = helper.make_graph(
        g.nodes,
        f"semseg-{config.algorithm}-{config.backbone}",
        [helper.make_tensor_value_info(INPUT, TensorProto.UINT8, ["batch", "height", "width", 3])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", config.num_classes, "height", "width"])],
        [tensor for tensor in g.initializers if tensor.name in inputs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    model.producer_name = "semseg"
    return model
