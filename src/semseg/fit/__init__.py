"""Engine-neutral job steps, with no framework: fit over epochs with early stopping, metrics, checkpoints, resume,
the best-weights and artifact rules, learning-rate schedules and sliding-window prediction. Every promise the
README makes about a job's life is implemented here once and used by both engines."""
