"""The SageMaker job as data, with no framework: paths and config files, hyperparameters, errors, file names and
atomic writes, the managed metric lines, stop signals, the hosts of resourceconfig.json, and model folders."""
