"""DeepLabV3+ (`algorithm=deeplabv3plus`, this image's extension) on GluonCV's dilated ResNetV1s, in GluonCV's
parts: its SegBaseModel backbone, DeepLabV3's ASPP and the aux FCN head on stage 3, plus the decoder of Chen et
al., "Encoder-Decoder with Atrous Separable Convolution" (ECCV 2018): the stride-4 features of stage 1 reduced to
48 channels by a 1x1 convolution, the ASPP output upsampled to their size and joined with them, two 3x3
convolutions of 256, the classifier, bilinear upsampling to the input. GluonCV ships DeepLabV3+ only on Xception-65.

Its parameter names follow GluonCV's conventions (head.aspp..., head.reduce..., head.block..., auxlayer...), so
its files are GluonCV parameter files like the other networks', and the PyTorch engine's mirror
(semseg.engines.torch.network) has the same paths. The head and the aux head learn at 10x the backbone's rate.
"""

from __future__ import annotations

from typing import Any

from mxnet.gluon import HybridBlock, nn

from semseg.engines.architecture import ASPP_RATES, DECODER_CHANNELS, HEAD_LR_MULT, LOW_LEVEL_CHANNELS
from semseg.engines.mxnet.gluoncv_import import ASPP, FCNHead, SegBaseModel


def _conv_bn_relu(cin: int, cout: int, kernel: int, norm_layer: Any, norm_kwargs: dict[str, Any] | None) -> list[Any]:
    return [
        nn.Conv2D(in_channels=cin, channels=cout, kernel_size=kernel, padding=kernel // 2, use_bias=False),
        norm_layer(in_channels=cout, **(norm_kwargs or {})),
        nn.Activation("relu"),
    ]


class _DeepLabV3PlusHead(HybridBlock):
    """ASPP on the stride-8 features, the decoder with the stride-4 features, the classifier."""

    def __init__(self, nclass: int, norm_layer: Any, norm_kwargs: dict[str, Any] | None, height: int, width: int):
        super().__init__()
        with self.name_scope():
            self.aspp = ASPP(2048, ASPP_RATES, norm_layer, norm_kwargs, height=height, width=width)
            self.reduce = nn.HybridSequential()
            self.reduce.add(*_conv_bn_relu(256, LOW_LEVEL_CHANNELS, 1, norm_layer, norm_kwargs))
            self.block = nn.HybridSequential()
            self.block.add(
                *_conv_bn_relu(DECODER_CHANNELS + LOW_LEVEL_CHANNELS, DECODER_CHANNELS, 3, norm_layer, norm_kwargs),
                *_conv_bn_relu(DECODER_CHANNELS, DECODER_CHANNELS, 3, norm_layer, norm_kwargs),
                nn.Dropout(0.1),
                nn.Conv2D(in_channels=DECODER_CHANNELS, channels=nclass, kernel_size=1),
            )

    def hybrid_forward(self, F: Any, x: Any, low: Any) -> Any:
        low = self.reduce(low)
        x = F.contrib.BilinearResize2D(self.aspp(x), low, mode="like")
        return self.block(F.concat(x, low, dim=1))


class DeepLabV3Plus(SegBaseModel):
    """(main, aux) scores at the input size; the constructor takes GluonCV's segmentation models' arguments."""

    def __init__(
        self,
        nclass: int,
        backbone: str = "resnet50",
        aux: bool = True,
        pretrained_base: bool = False,
        base_size: int = 520,
        crop_size: int = 480,
        **kwargs: Any,
    ) -> None:
        super().__init__(nclass, aux, backbone, base_size=base_size, crop_size=crop_size,
                         pretrained_base=pretrained_base, **kwargs)  # fmt: skip
        norm_layer = kwargs.get("norm_layer", nn.BatchNorm)
        norm_kwargs = kwargs.get("norm_kwargs")
        with self.name_scope():
            self.head = _DeepLabV3PlusHead(nclass, norm_layer, norm_kwargs, crop_size // 8, crop_size // 8)
            self.head.collect_params().setattr("lr_mult", HEAD_LR_MULT)
            if aux:
                self.auxlayer = FCNHead(1024, nclass, norm_layer=norm_layer, norm_kwargs=norm_kwargs)
                self.auxlayer.collect_params().setattr("lr_mult", HEAD_LR_MULT)

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c1 = self.layer1(x)
        c3 = self.layer3(self.layer2(c1))
        c4 = self.layer4(c3)
        outputs = [F.contrib.BilinearResize2D(self.head(c4, c1), **self._up_kwargs)]
        if self.aux:
            outputs.append(F.contrib.BilinearResize2D(self.auxlayer(c3), **self._up_kwargs))
        return tuple(outputs)
