"""Tests for rdc_keras.cli.common: the one-line error of every binary."""

import pytest

from rdc_keras.cli import common


def test_meaningful_line_is_the_first_line_of_a_plain_error():
    assert common.meaningful_line("--workdir=x: not a directory\nmore detail") == (
        "--workdir=x: not a directory"
    )
    assert common.meaningful_line("") == "failed"


def test_meaningful_line_of_an_error_raised_inside_a_tf_function_is_the_error_itself():
    message = (
        "in user code:\n\n"
        '    File "/x/rdc.py", line 385, in train_step  *\n'
        "        self._generator_update(images, labels, seeds, True)\n\n"
        "    ValueError: No gradients provided for any variable: (['dense/kernel:0'],).\n"
    )
    assert common.meaningful_line(message) == (
        "ValueError: No gradients provided for any variable: (['dense/kernel:0'],)."
    )


def test_fail_prints_one_line_and_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        common.fail("in user code:\n\n  frame\n  ValueError: bad\n", program="rdc-train")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "rdc-train: error: ValueError: bad\n"
