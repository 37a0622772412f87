"""The error tree: every class carries the exit code of design.md §3."""

import pytest

from vm_rebalance.errors import (
    ClusterConfigError,
    ClusterError,
    ClusterForbiddenError,
    ClusterUnreachableError,
    ConfigError,
    ConfirmationRequiredError,
    ExecutionIncompleteError,
    ExitCode,
    InfeasiblePlanError,
    RebalanceError,
    ResourceNotFoundError,
)


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        pytest.param(RebalanceError, 1, id="base"),
        pytest.param(ConfigError, 2, id="config"),
        pytest.param(ConfirmationRequiredError, 2, id="confirmation"),
        pytest.param(ClusterError, 3, id="cluster"),
        pytest.param(ClusterUnreachableError, 3, id="unreachable"),
        pytest.param(ClusterForbiddenError, 3, id="forbidden"),
        pytest.param(ResourceNotFoundError, 3, id="not-found"),
        pytest.param(ClusterConfigError, 3, id="cluster-config"),
        pytest.param(InfeasiblePlanError, 4, id="infeasible"),
        pytest.param(ExecutionIncompleteError, 5, id="incomplete"),
    ],
)
def test_exit_code_of_each_class(cls: type[RebalanceError], code: int) -> None:
    error = cls("boom")
    assert int(error.exit_code) == code
    assert isinstance(error, RebalanceError)
    assert str(error) == error.message == "boom"
    assert error.hint is None


def test_exit_code_values() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 5, 130]


def test_hint_and_status_are_kept() -> None:
    error = ClusterForbiddenError("no", hint="grant it", status=403)
    assert error.hint == "grant it"
    assert error.status == 403
    assert ClusterError("x").status is None


def test_infeasible_keeps_blocking_reasons_as_tuple() -> None:
    error = InfeasiblePlanError("cannot", blocking=["a", "b"], hint="h")
    assert error.blocking == ("a", "b")
    assert error.hint == "h"


@pytest.mark.parametrize(
    ("child", "parent"),
    [
        pytest.param(ConfirmationRequiredError, ConfigError, id="confirmation-is-config"),
        pytest.param(ClusterUnreachableError, ClusterError, id="unreachable-is-cluster"),
        pytest.param(ClusterForbiddenError, ClusterError, id="forbidden-is-cluster"),
        pytest.param(ResourceNotFoundError, ClusterError, id="notfound-is-cluster"),
        pytest.param(ClusterConfigError, ClusterError, id="clusterconfig-is-cluster"),
    ],
)
def test_hierarchy(child: type, parent: type) -> None:
    assert issubclass(child, parent)
