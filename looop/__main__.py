"""The ``looop`` entry point (also ``python -m looop``).

``looop status`` is the probe that scripts, prompts and service checks run in
loops, and it should answer in tens of milliseconds: loading click alone costs
more than the whole answer. So a plain ``looop status [--json]`` is answered
here, by the same ``status.print_report`` the click command calls; anything
else (including ``looop status --help``) goes to the full CLI in
``looop.cli``.
"""

from __future__ import annotations

import sys


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["status"] and set(args[1:]) <= {"--json"}:
        from looop.paths import resolve
        from looop.pulse.status import print_report

        sys.exit(print_report(resolve(), as_json="--json" in args))
    from looop.cli import cli

    cli(prog_name="looop")


if __name__ == "__main__":
    main()
