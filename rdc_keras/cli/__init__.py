"""absl-flag command-line binaries (see setup.cfg console_scripts)."""
