"""Build hook: the demo notebooks (``notebooks/NN_*.ipynb``) ship inside the package, as
``colabmodels/demo/notebooks/``, so ``colabmodels demo`` runs them from an installed wheel.

Everything else about the package is declared in pyproject.toml. A source checkout (and an
editable install) finds the notebooks in ``notebooks/`` instead (colabmodels/demo/runner.py).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildPyWithNotebooks(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "colabmodels" / "demo" / "notebooks"
        target.mkdir(parents=True, exist_ok=True)
        for notebook in sorted((HERE / "notebooks").glob("[0-9][0-9]_*.ipynb")):
            shutil.copyfile(notebook, target / notebook.name)


setup(cmdclass={"build_py": BuildPyWithNotebooks})
