"""The PyTorch engine (`SEMSEG_ENGINE=torch`): GluonCV's networks and MXNet's update rules in PyTorch, for the
GPUs MXNet 1.9.1 has no code for (compute capability 9.0+). Nothing in this package imports MXNet except
`artifacts_io`, which converts weights to and from GluonCV parameter files.
"""
