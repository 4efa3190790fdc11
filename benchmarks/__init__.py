"""Benchmarks (`make bench`): each measures ours against a reference in the same run and reports ratios."""

import importlib.util

if importlib.util.find_spec("mxnet") is not None:  # absent where only torch is installed
    import semseg.engines.mxnet.gluoncv_import  # noqa: F401  # GluonCV refuses to import beside torch 2 otherwise
