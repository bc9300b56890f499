"""MkDocs hook: serve the benchmark plots (`benchmarks/results/*.png`) at `assets/results/` in the site.

The plots are written by `python -m benchmarks NAME` and tracked where they are; the pages link
`assets/results/NAME.png`, and this hook adds each file to the build from its place in the repository,
so nothing is copied into `docs/` and a plot that goes missing fails `mkdocs build --strict`.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

RESULTS = "benchmarks/results"
SERVED_AT = "assets/results"


def on_files(files, config):
    root = Path(config["config_file_path"]).parent
    for png in sorted((root / RESULTS).glob("*.png")):
        files.append(File.generated(config, f"{SERVED_AT}/{png.name}", abs_src_path=str(png)))
    return files
