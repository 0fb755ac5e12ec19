"""The `python -m minibert` command line.

    python -m minibert info        versions, device, mode and data location (what lesson 00 checks)
"""

from __future__ import annotations

import argparse


def _info(args) -> int:
    from minibert.runtime import environment_report, setup

    for key, value in environment_report().items():
        print(f"{key + ':':<14}{value}")
    setup(seed=0)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="minibert", description="BERT built piece by piece.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, device, mode and data location").set_defaults(run=_info)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
