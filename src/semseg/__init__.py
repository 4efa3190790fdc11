"""SageMaker-compatible semantic segmentation: GluonCV's networks trained on MXNet or PyTorch (semseg.engines),
served by the engine or from ONNX exports (semseg.serving)."""

__version__ = "1.0.0"
