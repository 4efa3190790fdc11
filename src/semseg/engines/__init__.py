"""The two engines, side by side with the same shape (network, loop, state, optim, devices, files, predict,
loader, job, and their exchange across devices and hosts): `mxnet` (MXNet/GluonCV, the default) and `torch`
(PyTorch, for the GPUs MXNet 1.9.1 has no code for). An engine provides the math only; `semseg.fit` drives it.
Every module that imports MXNet or GluonCV is in `mxnet/`, every module that imports PyTorch in `torch/`."""
