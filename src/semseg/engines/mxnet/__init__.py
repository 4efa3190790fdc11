"""The MXNet engine (`SEMSEG_ENGINE=mxnet`, the default): GluonCV's networks trained with Gluon, on every GPU of
the host or the CPU, and across hosts with MXNet's parameter server. Importing this package loads no MXNet."""
