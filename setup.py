"""Maps the top-level templates/ and migrations/ folders into the package (metadata: setup.cfg)."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["registry", "registry.*"])
    + ["registry._templates", "registry._migrations"],
    package_dir={"registry._templates": "templates", "registry._migrations": "migrations"},
)
