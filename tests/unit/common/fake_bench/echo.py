"""Echo benchmark: prints its arguments (stands in for a vecraft.bench module in tests).

More text that `vecraft bench --help` does not show.
"""

from __future__ import annotations


def main(argv: list[str]) -> int:
    print("echo", *argv)
    return 7 if "--fail" in argv else 0
