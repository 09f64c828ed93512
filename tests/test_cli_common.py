"""Tests for rdc_keras.cli.common: the one-line error of every binary."""

import re

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


def test_main_wrapper_turns_os_errors_into_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("RDC_TRACEBACK", raising=False)

    def main(argv):
        (tmp_path / "missing" / "x").read_text()

    with pytest.raises(SystemExit) as exit_info:
        common.main_wrapper(main)(["rdc-x"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.endswith(f"error: {tmp_path / 'missing' / 'x'}: no such file or directory\n")


def test_main_wrapper_keeps_tracebacks_of_bugs():
    def main(argv):
        raise KeyError("internal")

    with pytest.raises(KeyError):
        common.main_wrapper(main)(["rdc-x"])


def test_os_error_line_names_both_paths_of_a_rename():
    error = OSError(18, "Invalid cross-device link", "/a", None, "/b")
    assert common.os_error_line(error) == "/a -> /b: invalid cross-device link"
    assert common.os_error_line(OSError("plain")) == "plain"
    assert common.os_error_line(OSError(5, "HDF5 error", "/w.h5")) == "/w.h5: HDF5 error"


@pytest.mark.parametrize(
    "kind, message",
    [
        ("ResourceExhaustedError", "/out/variables: No space left"),
        ("PermissionDeniedError", "/out/saved_model.pb; Permission denied"),
        ("DataLossError", "corrupted record at 12 in /data/mnist-train.tfrecord-00000-of-00001"),
    ],
)
def test_main_wrapper_turns_tensorflow_environment_errors_into_one_line(
    capsys, monkeypatch, kind, message
):
    import tensorflow as tf

    monkeypatch.delenv("RDC_TRACEBACK", raising=False)

    def main(argv):
        raise getattr(tf.errors, kind)(None, None, message)

    with pytest.raises(SystemExit) as exit_info:
        common.main_wrapper(main)(["rdc-x"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.endswith(f"error: {message}\n")


def test_main_wrapper_keeps_tracebacks_of_tensorflow_bugs():
    import tensorflow as tf

    def bug(argv):
        raise tf.errors.InvalidArgumentError(None, None, "Incompatible shapes")

    with pytest.raises(tf.errors.InvalidArgumentError):
        common.main_wrapper(bug)(["rdc-x"])


# ------------------------------------------------------------------------------------------------
# Every binary checks its output location before any work (each in its own process, in parallel).

_OUTPUT_CASES = {
    # program: (flags, text of the one-line error); ROOT/file is a regular file.
    "rdc-train": (["--dataset=digits", "--workdir={root}/file"], "exists and is not a directory"),
    "rdc-classifier": (["--workdir={root}/file/clf"], "file is not a directory"),
    "rdc-universal": (
        ["--base={root}/no_run", "--workdir={root}/file"],
        "--workdir={root}/file: exists and is not a directory",
    ),
    "rdc-experiment": (
        ["--preset=digits", "--workdir={root}/file"],
        "--workdir={root}/file: exists and is not a directory",
    ),
    "rdc-evaluate": (
        ["--run={root}/no_run", "--output={root}"],
        "--output={root}: is a directory, expected a file name",
    ),
    "rdc-export": (
        ["--run={root}/no_run", "--export_root={root}/file"],
        "--export_root={root}/file: exists and is not a directory",
    ),
}


def test_every_binary_refuses_a_bad_output_location_before_any_work(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "file").write_text("a regular file where a directory is needed")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    bin_dir = Path(sys.executable).parent
    processes = {
        program: subprocess.Popen(
            [str(bin_dir / program), *(f.format(root=tmp_path) for f in flags)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        for program, (flags, _) in _OUTPUT_CASES.items()
    }
    for program, process in processes.items():
        _, stderr = process.communicate(timeout=300)
        message = _OUTPUT_CASES[program][1].format(root=tmp_path)
        lines = stderr.strip().splitlines()
        assert process.returncode == 2, (program, stderr[-2000:])
        assert "Traceback" not in stderr, (program, stderr[-2000:])
        assert lines[-1].startswith(f"{program}: error: "), (program, lines[-1])
        assert message in lines[-1], (program, lines[-1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing was written


def test_main_wrapper_ends_quietly_when_the_reader_of_stdout_stops():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from rdc_keras.cli import common\n"
        "def main(argv):\n"
        "    for _ in range(10000):\n"
        "        print('x' * 100)\n"
        "sys.exit(common.main_wrapper(main)(['prog']))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    proc.stdout.readline()  # the program is writing; stop reading, as `head -1` does
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr


# ------------------------------------------------------------------------------------------------
# --helpshort lists each binary's own flags (defined at run time) with defaults and choices.

_TF_BANNER = re.compile(
    r"tensorflow/(core|tsl|compiler)/|oneDNN custom operations|cuda drivers|Unable to register "
    r"cu(DNN|FFT|BLAS)|TF-TRT|rebuild TensorFlow"
)

_HELP_CASES = {
    # program: lines of its --helpshort (a flag with its choices, a default)
    "rdc-train": ["--dataset: <", "--workdir: "],
    "rdc-universal": ["--base: A finished rdc-train run directory", "--workdir: "],
    "rdc-classifier": ["--dataset: <mnist|svhn_cropped|mnist_idx|digits>: Dataset."],
    "rdc-experiment": ["--list_format: <json|shell|slurm>", "(default: 'both')", "--model: "],
    "rdc-evaluate": ["--run: ", "--output: "],
    "rdc-export": ["--export_root: Root of the export tree."],
    "rdc-codec": ["--encoder: Exported encoder", "--input: "],
    "rdc-theory": ["--units: <bits|nats>: binary: units of C and of rates.", "(default: '0.8')"],
}


def test_every_binary_lists_its_own_flags_in_helpshort(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    # The user's environment: no TF_CPP_MIN_LOG_LEVEL (the binaries quiet TensorFlow themselves).
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    bin_dir = Path(sys.executable).parent
    processes = {
        program: subprocess.Popen(
            [str(bin_dir / program), "--helpshort"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        for program in _HELP_CASES
    }
    for program, process in processes.items():
        stdout, stderr = process.communicate(timeout=300)
        assert "Traceback" not in stderr, (program, stderr[-2000:])
        for expected in _HELP_CASES[program]:
            assert expected in stdout, (program, expected, stdout[-3000:])
        # Only the binary's own flags: none of TensorFlow's or absl's logging flags.
        assert "--log_dir" not in stdout and "--tt_check_filter" not in stdout, (program, stdout)
        # No TensorFlow C++ start-up banner (oneDNN, CUDA probing, CPU features, TF-TRT).
        banner = [line for line in stderr.splitlines() if _TF_BANNER.search(line)]
        assert not banner, (program, banner)


# ------------------------------------------------------------------------------------------------
# TensorFlow's Python logs: each line once, only warnings unless -v is given.


def test_export_is_quiet_by_default_and_logs_each_line_once_with_v(tmp_path, tiny_run):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    script = str(Path(sys.executable).parent / "rdc-export")
    runs = {
        "quiet": [script, f"--run={tiny_run}", f"--export_root={tmp_path / 'quiet'}"],
        "verbose": [script, f"--run={tiny_run}", f"--export_root={tmp_path / 'v'}", "-v", "0"],
    }
    processes = {
        name: subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for name, command in runs.items()
    }
    out = {name: process.communicate(timeout=300) for name, process in processes.items()}
    for name, process in processes.items():
        assert process.returncode == 0, (name, out[name][1][-3000:])
    stderr = out["quiet"][1]
    assert stderr.strip() == "", stderr  # no banner, no "Assets written to", no fingerprints
    verbose = out["verbose"][1].splitlines()
    written = [line for line in verbose if "Assets written to" in line]
    assert len(written) == 2, verbose  # the encoder's and the head's SavedModel, once each
    assert not any(line.startswith("INFO:tensorflow:") for line in verbose), verbose
    assert any(_TF_BANNER.search(line) for line in verbose)  # -v brings the banner back


def test_asks_for_logs_reads_absl_verbosity_spellings():
    from rdc_keras.cli import asks_for_logs

    for argv in (
        ["p", "-v", "1"],
        ["p", "-v=1"],
        ["p", "--verbosity=0"],
        ["p", "--verbosity", "1"],
    ):
        assert asks_for_logs(argv), argv
    for argv in (["p"], ["p", "--verbose=1"], ["p", "--", "-v"], ["p", "--workdir=-v"]):
        assert not asks_for_logs(argv), argv


_LOG_PROBE = """
import sys
import tensorflow as tf
from absl import app
from rdc_keras.cli import common

def main(argv):
    logger = tf.get_logger()
    logger.warning("mixed_float16 runs slowly on this CPU")
    logger.info("Assets written to: somewhere")
    logger.warning("5 out of the last 6 calls to f triggered tf.function retracing. Tracing")

app.run(common.main_wrapper(main), argv=sys.argv, flags_parser=common.parse_flags)
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_warnings_that_matter_show_once_and_chatter_only_with_v(verbose):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    argv = [sys.executable, "-c", _LOG_PROBE, *(["-v", "0"] if verbose else [])]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stderr.splitlines()
    assert sum("mixed_float16 runs slowly" in line for line in lines) == 1, lines
    assert any("Assets written" in line for line in lines) == verbose, lines
    assert any("retracing" in line for line in lines) == verbose, lines
