"""python -m benchmarks NAME [options]"""

import importlib
import sys

SUITES = {"overhead": "benchmarks.overhead", "parser": "benchmarks.parser", "vllm": "benchmarks.vllm_engine"}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in SUITES:
        print(f"usage: python -m benchmarks {{{','.join(SUITES)}}} [options]", file=sys.stderr)
        sys.exit(2)
    importlib.import_module(SUITES[sys.argv[1]]).main(sys.argv[2:])


if __name__ == "__main__":
    main()
