"""``python -m colabmodels.demo``: see ``colabmodels.demo``."""

from .command import main

if __name__ == "__main__":
    raise SystemExit(main())
