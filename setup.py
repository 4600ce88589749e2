"""Maps the top-level ``finetune/`` and ``evaluation/`` folders to ``efe_langchain.finetune`` and
``efe_langchain.evaluation`` so an installed package puts no generic top-level names in
site-packages. Everything else lives in pyproject.toml."""

from setuptools import find_packages, setup

MAPPED = {"finetune": "efe_langchain.finetune", "evaluation": "efe_langchain.evaluation"}

packages = find_packages(include=["efe_langchain", "efe_langchain.*"])
package_dir = {"efe_langchain": "efe_langchain"}
for folder, name in MAPPED.items():
    package_dir[name] = folder
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(where=folder)]

setup(packages=packages, package_dir=package_dir)
