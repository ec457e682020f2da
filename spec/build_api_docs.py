"""Build the API reference of the Python client (`kefu.client`) from its docstrings, with pdoc: HTML in build/api/.

::

    .venv/bin/pip install -e '.[docs]'
    .venv/bin/python spec/build_api_docs.py [--output build/api]

The reference covers what `kefu.client` exports (its ``__all__``) and the two modules whose docstrings define part of
the API: `kefu.client.options` (the kefu:// URL form) and `kefu.client.errors` (the error tree). The client's other
submodules are its internals and are left out. tests/client/test_api_docs.py builds it and checks it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PUBLIC_MODULES = ("kefu.client", "kefu.client.options", "kefu.client.errors")
"""The modules the reference documents."""

INTERNAL = r"!kefu\.client\.(?!options$|errors$).*"
"""pdoc's exclusion pattern for every other submodule of kefu.client."""


def build(output: Path) -> list[Path]:
    """Render the reference into `output`; the HTML pages written."""
    import pdoc  # noqa: PLC0415 - the docs extra, needed only here
    import pdoc.render  # noqa: PLC0415

    pdoc.render.configure(
        docformat="restructuredtext", show_source=False, search=True, footer_text="kefu.client API reference"
    )
    pdoc.pdoc(*PUBLIC_MODULES, INTERNAL, output_directory=output)
    return sorted(output.rglob("*.html"))


def main(argv: list[str] | None = None) -> int:
    """Build into --output (default build/api) and list the pages."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("build/api"))
    args = parser.parse_args(argv)
    for page in build(args.output):
        print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
