"""The package sets `make compat` installs the wheel into: Amazon MWAA's images and the development pins.

An MWAA image is ``pip install -c mwaa_essential_constraints.txt -c airflow_constraints.txt``
of its required packages (``bootstrap/02-airflow/001-install-required-pip-packages.sh`` in
``aws/amazon-mwaa-docker-images``); a user's ``requirements.txt`` is then installed with
``safe-pip-install -r requirements.txt``, i.e. ``pip3 install --constraint
mwaa_essential_constraints.txt -r requirements.txt``, killed after 9 minutes
(``python/mwaa/utils/user_requirements.py``). The constraint files in ``sets/mwaa-<version>/``
are the image's ``etc/`` files at the commit below, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

MWAA_IMAGES_COMMIT = "9d2bebb5c7858e27a1c6afb20b7827840217e3a0"

# The image's REQUIRED_PACKAGES, without pycurl (a C build against libcurl headers this machine
# lacks; nothing of the package touches it).
MWAA_IMAGE_PACKAGES = (
    "apache-airflow-providers-amazon[aiobotocore]",
    "apache-airflow[celery,statsd]=={airflow}",
    "apache-airflow-core[gunicorn]=={airflow}",
    "apache-airflow-providers-postgres",
    "apache-airflow-providers-fab",
    "celery[sqs]",
    "boto3-stubs[logs]",
    "boto3-stubs[sqs]",
    "psycopg2",
    "watchtower",
    "fluent-logger",
    "virtualenv",
    "apache-airflow-providers-standard",
)

# What the tests need besides the wheel (at versions the set's constraints allow); the
# development code (include/) is installed without dependencies: the tests import none of them.
TEST_TOOLS = ("pytest", "pytest-timeout", "hypothesis", "import-linter")


@dataclass(frozen=True)
class PackageSet:
    """One deployment's packages.

    :param name: the set's short name (``make compat SETS=...``).
    :param title: what the table calls it.
    :param image: what the deployment already has installed (pip requirement specifiers).
    :param constraints: the Airflow constraints file a user's requirements.txt names.
    :param enforced: constraints the deployment applies to every install and lets nobody
        override (MWAA's essential constraints), if any.
    """

    name: str
    title: str
    image: tuple[str, ...]
    constraints: Path
    enforced: Path | None = None

    @property
    def image_constraints(self) -> tuple[Path, ...]:
        return (self.constraints,) if self.enforced is None else (self.enforced, self.constraints)


def _mwaa(version: str) -> PackageSet:
    folder = HERE / "sets" / f"mwaa-{version}"
    return PackageSet(
        name=f"mwaa-{version}",
        title=f"Amazon MWAA {version}",
        image=tuple(package.format(airflow=version) for package in MWAA_IMAGE_PACKAGES),
        constraints=folder / "airflow_constraints.txt",
        enforced=folder / "mwaa_essential_constraints.txt",
    )


def _development() -> PackageSet:
    requirements = (REPO / "requirements.txt").read_text().splitlines()
    image = tuple(line.split("#")[0].strip() for line in requirements if line.split("#")[0].strip())
    return PackageSet(
        name="development",
        title="development (newest tested)",
        image=image,
        constraints=REPO / "constraints.txt",
    )


SETS: dict[str, PackageSet] = {s.name: s for s in (_mwaa("3.3.1"), _mwaa("3.2.1"), _development())}
# The set CI runs on every submission besides the development setup: MWAA's newest.
NEWEST_MWAA = "mwaa-3.3.1"
