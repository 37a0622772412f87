"""Errors the tool expects and knows how to explain.

* RebalanceError [1]
  * ConfigError [2]                bad flags, unknown VM or node, malformed snapshot or plan file
    * ConfirmationRequiredError    a change was asked for with no terminal and no --yes
  * ClusterError [3]               the cluster could not be read or changed
    * ClusterUnreachableError      no route to the API server, TLS failure, timeout
    * ClusterForbiddenError        401 / 403: names the verb and resource that is missing
    * ResourceNotFoundError        an object the operation needs is gone
    * ClusterConfigError           no kubeconfig, no such context
  * InfeasiblePlanError [4]        validation or constraints forbid the operation
  * ExecutionIncompleteError [5]   some moves failed, were skipped or not attempted

`str(error)` is shown to users verbatim; `hint` says what to do next. Messages never
contain the kubeconfig path, tokens or certificates. Anything that is not a
RebalanceError is a bug.
"""

from collections.abc import Sequence
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of the command contract (design.md §3)."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    CLUSTER = 3
    INFEASIBLE = 4
    INCOMPLETE = 5
    INTERRUPTED = 130


class RebalanceError(Exception):
    """Base of every error the tool raises on purpose."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    @property
    def message(self) -> str:
        """The one-line message shown to the user."""
        return str(self)


class ConfigError(RebalanceError):
    """Bad usage or input: flags, names, files."""

    exit_code = ExitCode.USAGE


class ConfirmationRequiredError(ConfigError):
    """A change needs approval but there is no terminal to ask and no --yes."""


class ClusterError(RebalanceError):
    """The cluster could not be read or changed."""

    exit_code = ExitCode.CLUSTER

    def __init__(self, message: str, *, hint: str | None = None, status: int | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class ClusterUnreachableError(ClusterError):
    """The API server could not be reached (network, TLS, timeout)."""


class ClusterForbiddenError(ClusterError):
    """The API server refused the credentials or the verb on a resource."""


class ResourceNotFoundError(ClusterError):
    """An object the operation needs does not exist (any more)."""


class ClusterConfigError(ClusterError):
    """No usable kubeconfig / context / in-cluster configuration."""


class InfeasiblePlanError(RebalanceError):
    """Validation or hard constraints forbid the operation."""

    exit_code = ExitCode.INFEASIBLE

    def __init__(self, message: str, *, blocking: Sequence[str] = (), hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.blocking = tuple(blocking)


class ExecutionIncompleteError(RebalanceError):
    """Execution stopped with failed, skipped or not-attempted moves."""

    exit_code = ExitCode.INCOMPLETE
