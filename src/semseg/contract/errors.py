"""The two kinds of failure a job can end with, as the managed algorithm names them.

ClientError: the input is wrong (hyperparameters, channels, data). The message says what to change.
AlgorithmError: our fault, or the machine's. The CLI adds the traceback.
Both are plain one-argument exceptions so they survive pickling across data-loader worker processes.
"""

from __future__ import annotations


class JobError(Exception):
    """Base of the errors that end a job with a failure file."""

    kind = "JobError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ClientError(JobError):
    """Bad input: the user must change a hyperparameter, a channel or a file."""

    kind = "ClientError"


class AlgorithmError(JobError):
    """An internal fault: not caused by the user's input."""

    kind = "AlgorithmError"


class Stopped(Exception):
    """The job was asked to stop (SIGTERM from StopTrainingJob or a spot interruption, SIGINT) and did,
    after saving its checkpoint and artifacts. Not a failure: no failure file."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum


class ExitAtOnce(Exception):
    """A job ended by `cause` on one host of several, where the framework's teardown would hang (freeing MXNet's
    kvstore waits for every other host's worker): the CLI reports `cause` as usual, then ends the process without
    that teardown. Raised by the engine, decided by the CLI: no module flag."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause
