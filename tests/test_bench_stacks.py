"""bench/bench_stacks.py: the per-stack records from rotated runs (no benchmark is run)."""

import sys

import pytest

from bench import bench_stacks


def _record(name, value, unit="images/s"):
    return {"name": name, "value": value, "unit": unit}


def test_records_are_medians_over_rounds_against_the_first_stack():
    runs = {
        "train_step": {
            "tf2.14-py3.11": [[_record("a", 10.0), _record("only_old", 1.0)], [_record("a", 14.0)]],
            "tf2.17-py3.12": [[_record("a", 9.0)], [_record("a", 13.0), _record("b", None)]],
        }
    }
    (record,) = bench_stacks.build_records(runs, ["tf2.14-py3.11", "tf2.17-py3.12"], "cmd")
    assert record["name"] == "stack[a]@tf2.17-py3.12"
    assert record["value"] == 11.0 and record["baseline"] == 12.0
    assert record["ratio"] == pytest.approx(11.0 / 12.0)
    assert "baseline: tf2.14-py3.11; train_step" in record["unit"]


def test_stack_name_of_this_interpreter():
    name = bench_stacks.stack_name(sys.executable)
    assert name.endswith(f"-py{sys.version_info[0]}.{sys.version_info[1]}")
    assert name.startswith("tf2.")


def test_an_interpreter_that_does_not_run_is_one_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="does not run"):
        bench_stacks.stack_name(str(tmp_path / "no-python"))
