"""How both engines feed images to the networks: uint8 RGB batches, normalised on the device with ImageNet's mean
and standard deviation (per channel, of pixel values scaled to 0..1), as GluonCV's pretrained backbones expect."""

from __future__ import annotations

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
