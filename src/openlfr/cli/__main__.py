"""``python -m openlfr.cli``."""

from openlfr.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
