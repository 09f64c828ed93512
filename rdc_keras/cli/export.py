"""rdc-export: SavedModels of an encoder and its heads for TF Serving (and the `.rdc` codec).

Example (a phase-1 run and a phase-2 run whose heads share its encoder):

    rdc-export --run=runs/mnist10k-c0.015 --run=runs/mnist10k-universal \
        --export_root=saved_models --name=mnist10k

writes saved_models/mnist10k/{encoder,heads/<head>}/<version>/, models.config and
manifest.json, printing one line per model and the manifest summary as JSON. Exporting again
adds the next version number.
"""

from __future__ import annotations

import json

import tensorflow as tf  # noqa: F401  (import before app.run: see cli/common.py)
from absl import app, flags

from rdc_keras import data
from rdc_keras.cli.common import main_wrapper, parse_flags

__all__ = ["run"]

FLAGS = flags.FLAGS


def _define_flags() -> None:
    flags.DEFINE_multi_string("run", [], "Training run directory (repeatable); exports its heads.")
    flags.DEFINE_string(
        "encoder_dir", None, "Encoder directory (<run>/encoder), if not from --run."
    )
    flags.DEFINE_multi_string("head_dir", [], "Head directory <run>/heads/<head> (repeatable).")
    flags.DEFINE_string("export_root", "saved_models", "Root of the export tree.")
    flags.DEFINE_string("name", None, "Export name (default: the first run directory's name).")
    flags.DEFINE_string(
        "prior_dataset", None, "Dataset of the entropy-coding prior (default: the encoder run's)."
    )
    flags.DEFINE_string("data_dir", None, "Data directory of --prior_dataset.")
    flags.DEFINE_enum("prior_split", "train", list(data.SPLITS), "Split the prior is counted on.")
    flags.DEFINE_integer("seed", 0, "Base dither seed of the prior estimate (image i: seed + i).")
    flags.DEFINE_string(
        "serving_base_path", None, "Where TF Serving sees the export root (e.g. /models)."
    )
    flags.DEFINE_boolean(
        "fold_batch_norm", True, "Fold each head's BatchNorm into its preceding layer (faster)."
    )
    flags.DEFINE_integer("verbose", 1, "0: only the JSON summary; 1: one line per model.")


def main(argv: list[str]) -> None:
    from rdc_keras import export, remote

    remote.check_output_dir(FLAGS.export_root, "--export_root")
    if not FLAGS.run and not FLAGS.head_dir:
        raise ValueError("give --run (repeatable) or --encoder_dir with --head_dir")
    manifest = export.export_run(
        FLAGS.run or None,
        FLAGS.export_root,
        FLAGS.name,
        encoder_dir=FLAGS.encoder_dir,
        head_dirs=FLAGS.head_dir or None,
        prior_dataset=FLAGS.prior_dataset,
        data_dir=FLAGS.data_dir,
        prior_split=FLAGS.prior_split,
        seed=FLAGS.seed,
        serving_base_path=FLAGS.serving_base_path,
        fold_batch_norm=FLAGS.fold_batch_norm,
        verbose=FLAGS.verbose,
    )
    summary = {
        "export": f"{FLAGS.export_root}/{manifest['export_name']}",
        "version": manifest["version"],
        "encoder_fingerprint": manifest["encoder_fingerprint"],
        "num_levels": manifest["num_levels"],
        "latent_dim": manifest["latent_dim"],
        "rate_bits": manifest["rate_bits"],
        "prior_bits_per_image": manifest["prior"]["train_bits_per_image"],
        "heads": sorted(manifest["heads"]),
    }
    print(json.dumps(summary, sort_keys=True), flush=True)


def run() -> None:
    """Console-script entry point."""
    _define_flags()
    app.run(main_wrapper(main), flags_parser=parse_flags)


if __name__ == "__main__":
    run()
