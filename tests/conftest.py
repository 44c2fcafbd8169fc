"""The suite's tiers and its parallel run (`make test-fast`, `make test`; markers in pyproject.toml).

- Every test under tests/e2e is marked `e2e` here, by directory, so a new end-to-end test joins the
  slow tier without remembering a decorator.
- `--dist loadgroup` (what the Makefile passes to pytest-xdist) is this suite's own scheduling,
  `SharedPipelineScheduling`: one file's tests run on one worker, so a module-scoped fixture
  (a trained model, a served Bento) is built once, and the tests/e2e files that use the
  session-scoped `pipeline_run` (a whole tiny pipeline and the service over it) run on one worker
  together, so that pipeline is built once. xdist's own loadgroup reads `xdist_group` marks, but
  with pytest 9.2 it silently stops grouping (pytest-xdist issue #1386).
- Before any test module or nested conftest is imported, this conftest (in the controller of an
  xdist run, or a serial run) brings dbt's manifest up to date, as `vidrec` commands do:
  orchestration/assets/transform.py refuses a stale one rather than parse while being imported
  (orchestration/dbt_manifest.py). It happens when this file loads, not in `pytest_configure`:
  pytest imports the conftests of the paths it is given (tests/e2e/conftest.py for
  `pytest tests/e2e/...`) before any configure hook runs.
- Each worker gives its math libraries its share of the cores (`_share_the_cores`) and tells
  pyspark it is not running pyspark's own doctests (`_tell_pyspark_this_is_not_its_doctest_run`).
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import pytest

from orchestration.dbt_manifest import manifest_is_stale, parse_dbt_project

TESTS_DIR = Path(__file__).resolve().parent
E2E_DIR = TESTS_DIR / "e2e"
# The session fixture of tests/e2e/conftest.py that a worker builds once for every test using it.
SHARED_PIPELINE_FIXTURE = "pipeline_run"
SLOW_MARKS = ("pytest.mark.e2e", "pytest.mark.trains", "pytest.mark.spark")


def _bring_the_dbt_manifest_up_to_date() -> None:
    if "PYTEST_XDIST_WORKER" not in os.environ and manifest_is_stale():
        parse_dbt_project()


_bring_the_dbt_manifest_up_to_date()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(E2E_DIR):
            item.add_marker(pytest.mark.e2e)


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        _share_the_cores(config.workerinput["workercount"])
        _tell_pyspark_this_is_not_its_doctest_run()


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: unknown when xdist is not loaded
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedPipelineScheduling(LoadFileScheduling):
        """Work units are test files, except that the tests/e2e files using `pipeline_run` are one
        unit; the units of slow-marked files are handed out first, so no long one starts last."""

        def _split_scope(self, nodeid: str) -> str:
            path = super()._split_scope(nodeid)
            return SHARED_PIPELINE_FIXTURE if path in shared_pipeline_files else path

        def schedule(self) -> None:
            first = self.collection is None
            super().schedule()  # the first call also hands each worker its first units
            if first:
                for scope in [scope for scope in reversed(self.workqueue) if scope in slow_scopes]:
                    self.workqueue.move_to_end(scope, last=False)
                if SHARED_PIPELINE_FIXTURE in self.workqueue:
                    self.workqueue.move_to_end(SHARED_PIPELINE_FIXTURE, last=False)

    root = config.rootpath
    shared_pipeline_files = {_relative(path, root) for path in _files_using_the_shared_pipeline()}
    slow_scopes = {SHARED_PIPELINE_FIXTURE} | {
        _relative(path, root) for path in TESTS_DIR.rglob("test_*.py")
        if path.is_relative_to(E2E_DIR) or any(mark in path.read_text() for mark in SLOW_MARKS)
    }
    return SharedPipelineScheduling(config, log)


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _files_using_the_shared_pipeline() -> list[Path]:
    """tests/e2e's test files with a test or fixture that takes `pipeline_run` or a fixture of
    tests/e2e/conftest.py built on it (`service_url`, `serving`, ...)."""
    conftest_fixtures = _parameters_by_function(E2E_DIR / "conftest.py")
    shared = {SHARED_PIPELINE_FIXTURE}
    while grown := {name for name, parameters in conftest_fixtures.items() if parameters & shared} - shared:
        shared |= grown
    return [path for path in sorted(E2E_DIR.glob("test_*.py"))
            if any(parameters & shared for parameters in _parameters_by_function(path).values())]


def _parameters_by_function(path: Path) -> dict[str, set[str]]:
    return {node.name: {argument.arg for argument in node.args.args}
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.FunctionDef)}


def _share_the_cores(workers: int) -> None:
    """OpenMP, MKL and OpenBLAS threads for this worker and the processes it starts: the cores
    divided among the workers (1 each with 2 workers on 2 cores). Left at their default, every
    worker's torch, faiss and numpy start a thread per core, and the oversubscribed, spinning
    OpenMP pools made a small training run ~15x slower than in a serial run. Variables the
    caller set are kept."""
    threads = str(max(1, len(os.sched_getaffinity(0)) // workers))
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, threads)


def _tell_pyspark_this_is_not_its_doctest_run() -> None:
    """pyspark 4's `pyspark.sql.connect`, which great_expectations imports whenever pyspark is
    installed (the `distributed` extra), takes a process whose `__main__` has no file, no spec and
    no `sys.ps1` for a run of its own doctests, and without googleapis-common-protos calls
    `sys.exit(0)` on import. An xdist worker's `__main__` has neither file nor spec, so the worker
    exited while collecting. `sys.ps1` (the interactive prompt) says it is not a doctest run; the
    import then raises the ImportError great_expectations expects, as in a serial run."""
    if not hasattr(sys, "ps1"):
        sys.ps1 = ">>> "


