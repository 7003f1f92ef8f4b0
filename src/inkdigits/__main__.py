import sys

from .cli import main

if __name__ == "__main__":  # not when a spawned server worker imports it
    sys.exit(main())
