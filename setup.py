"""Build step only (the project is described in pyproject.toml).

The shipped run configs and queries stay in `lightning_configs/` and `queries/` in the
repository; a wheel carries a copy as package data under `forgetlab/_shipped/`, so an installed
`forgetlab` finds them (forgetlab/shipped.py) without a second copy in git.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = (("lightning_configs", "*.yaml"), ("queries", "*.sql"))


class BuildWithShippedFiles(build_py):
    def run(self) -> None:
        super().run()
        root = Path(__file__).resolve().parent
        for folder, pattern in SHIPPED:
            target = Path(self.build_lib) / "forgetlab" / "_shipped" / folder
            self.mkpath(str(target))
            for source in sorted((root / folder).glob(pattern)):
                self.copy_file(str(source), str(target / source.name))


setup(cmdclass={"build_py": BuildWithShippedFiles})
