import re
from pathlib import Path

from setuptools import find_packages, setup

# The one place the version is written is tap_autopilot/__init__.py; read, not imported
# (importing the package at build time would need its dependencies installed).
VERSION = re.search(
    r'^__version__ = "([^"]+)"$',
    Path(__file__).with_name("tap_autopilot").joinpath("__init__.py").read_text(encoding="utf-8"),
    re.M,
).group(1)

setup(
    name="tap-autopilot",
    version=VERSION,
    description="Singer tap for the Autopilot API: contacts, lists, smart segments and their memberships",
    author="tap-autopilot contributors",
    license="Apache-2.0",
    classifiers=[
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
    ],
    python_requires=">=3.11",
    py_modules=[],
    install_requires=[
        "singer-python>=6.8,<7",
        "requests>=2.32,<3",
        "urllib3>=2.3,<3",  # HTTPResponse.read1 (client.py reads bodies by deadline)
        "backoff>=2.2,<3",
        "orjson>=3.10,<4",
        "anyascii>=0.3,<1",
    ],
    extras_require={
        # make venv installs these at the exact versions in constraints.txt
        "test": ["pytest>=8", "jsonschema"],
        "dev": ["pytest>=8", "jsonschema", "ruff>=0.17,<0.18", "mypy>=2.4,<3", "types-requests"],
    },
    entry_points={
        "console_scripts": ["tap-autopilot=tap_autopilot.cli:main"],
    },
    packages=find_packages(exclude=["tests", "tests.*"]) + ["tap_autopilot.schemas"],
    package_data={"tap_autopilot": ["schemas/*.json"]},
    include_package_data=True,
)
