from setuptools import find_packages, setup

setup(
    name="tap-autopilot",
    version="1.1.0",
    description="Singer tap for the Autopilot API: contacts, lists, smart segments and their memberships",
    author="tap-autopilot contributors",
    license="Apache-2.0",
    classifiers=["Programming Language :: Python :: 3 :: Only"],
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
        "console_scripts": ["tap-autopilot=tap_autopilot:main"],
    },
    packages=find_packages(exclude=["tests", "tests.*"]) + ["tap_autopilot.schemas"],
    package_data={"tap_autopilot": ["schemas/*.json"]},
    include_package_data=True,
)
