"""Tests for rdc_keras.trainers.callbacks: the epoch log, its terminal progress bar, durations.

A tiny Keras regression is fitted for a few steps; stdout is captured (pytest's capture is not a
terminal, so the bar is switched on explicitly or by a stdout that says it is one).
"""

import io
import json
import re

import numpy as np
import pytest

from rdc_keras.tfkeras import keras
from rdc_keras.trainers.callbacks import EpochLog, format_duration


def _fit(callback, epochs=2, steps=6):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).normal(size=(steps * 4, 3)).astype("float32")
    model.fit(x, x[:, :1], batch_size=4, epochs=epochs, verbose=0, callbacks=[callback])


@pytest.mark.parametrize(
    "seconds, text",
    [(0, "0 s"), (42.4, "42 s"), (59.6, "1 min 00 s"), (185, "3 min 05 s"), (7620, "2 h 07 min")],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_progress_bar_on_a_terminal_redraws_in_place_and_ends_in_the_epoch_line(
    tmp_path, monkeypatch, capsys
):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    callback = EpochLog(tmp_path / "metrics.jsonl", 2, verbose=1)
    callback._REDRAW_SECONDS = 0.0  # draw at every step
    assert callback.progress
    _fit(callback)
    text = terminal.getvalue()
    frames = re.findall(r"\r(epoch \d/2 \[[=.]{20}\] \d/6 [\d.]+ steps/s ETA \d+ s)\x1b\[K", text)
    assert len(frames) == 12, text  # every step of both epochs
    assert frames[5].startswith("epoch 1/2 [" + "=" * 20 + "] 6/6")
    assert frames[6].startswith("epoch 2/2 [===....") and "1/6" in frames[6]
    lines = text.split("\n")
    # Each epoch ends by clearing the bar and printing the plain epoch line.
    assert lines[0].endswith("\r\x1b[Kepoch 1/2 loss=" + lines[0].split("epoch 1/2 loss=")[1])
    assert re.fullmatch(r"epoch 2/2 loss=\S+ \(\d+\.\d s\)", lines[1].split("\r\x1b[K")[-1])
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "metrics.jsonl").open()]
    assert epochs == [1, 2]


def test_logs_and_pipes_get_epoch_lines_only(tmp_path, capsys):
    callback = EpochLog(tmp_path / "metrics.jsonl", 2, verbose=1)
    assert not callback.progress  # captured stdout is not a terminal
    _fit(callback)
    out = capsys.readouterr().out
    assert "\r" not in out and "ETA" not in out
    assert [line.split()[1] for line in out.splitlines()] == ["1/2", "2/2"]


def test_quiet_run_prints_nothing_even_on_a_terminal(tmp_path, capsys):
    callback = EpochLog(tmp_path / "metrics.jsonl", 2, verbose=0, progress=None)
    assert not callback.progress
    _fit(callback)
    assert capsys.readouterr().out == ""
