"""``python -m colabmodels``: the ``colabmodels`` command (see ``colabmodels.cli``)."""

from colabmodels.cli import main

raise SystemExit(main())
