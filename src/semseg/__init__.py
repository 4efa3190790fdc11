"""SageMaker-compatible semantic segmentation training on MXNet/GluonCV."""

__version__ = "0.1.0"
