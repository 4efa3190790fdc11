"""The PyTorch engine (`SEMSEG_ENGINE=torch`): GluonCV's networks and MXNet's update rules in PyTorch, for the
GPUs MXNet 1.9.1 has no code for (compute capability 9.0+). Nothing in this package imports MXNet: GluonCV files
are read and written through the MXNet engine's own functions (`files`, loaded lazily), the one bridge, one way.
"""
