"""``python -m colabmodels``: the ``colabmodels`` command (see :mod:`colabmodels.cli`)."""

from colabmodels.cli import main

raise SystemExit(main())
