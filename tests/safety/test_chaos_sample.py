"""A small sample of benchmarks/chaos.py in the suite: two kill -9 points (each followed by the resume a
user runs) and a short soak with random faults — zero violations of the campaign's invariants."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
CHAOS = Path(__file__).resolve().parents[2] / "benchmarks" / "chaos.py"


def chaos() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chaos_benchmark", CHAOS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["chaos_benchmark"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("seed", [11, 12])
def test_kill_9_at_a_random_point_then_resume(seed: int) -> None:
    problems, _delay = chaos().kill_trial(seed, 2.5)
    assert problems == []


def test_a_short_soak_with_random_faults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    result = chaos().soak(12, seed=5, log=False)
    assert result.migrations >= 12 and result.problems == []
