"""Guards of the test suite itself (tests/conftest.py)."""
from types import SimpleNamespace

import pytest

from conftest import pytest_collection_modifyitems


def test_a_test_asking_for_the_benchmark_fixture_is_refused_at_collection():
    def test_uses_fixture(benchmark):  # would shadow the `benchmark` package inside the test
        pass

    def test_uses_alias(bench, tmp_path):
        pass

    ok = SimpleNamespace(obj=test_uses_alias, nodeid="tests/perf/test_x.py::test_uses_alias")
    pytest_collection_modifyitems(None, [ok])  # `bench` is the way to ask for it
    bad = SimpleNamespace(obj=test_uses_fixture, nodeid="tests/perf/test_x.py::test_uses_fixture")
    with pytest.raises(pytest.UsageError, match=r"test_uses_fixture: request pytest-benchmark's fixture as `bench`"):
        pytest_collection_modifyitems(None, [ok, bad])


@pytest.mark.filterwarnings("ignore:Benchmark fixture was not used")
def test_bench_is_pytest_benchmarks_fixture(bench):
    assert type(bench).__name__ == "BenchmarkFixture"  # not called: the default run times nothing
