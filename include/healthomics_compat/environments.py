"""One virtualenv per package set: the deployment's packages first, then the wheel the way its users install it.

Installs are reused: the deployment's packages while the set's files and the test tools are
unchanged, the wheel while its contents are (a rebuilt wheel of the same code is not reinstalled).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from healthomics_compat.sets import REPO, TEST_TOOLS, PackageSet

# MWAA stops a requirements install after this long (USER_REQUIREMENTS_MAX_INSTALL_TIME).
MWAA_INSTALL_LIMIT_SECONDS = 9 * 60
PYTHON = shutil.which("python3.11") or sys.executable
# uv of the development virtualenv, which this module runs in.
UV = str(Path(sys.executable).with_name("uv"))


class InstallError(RuntimeError):
    """A step of an install failed; the message names it and the log holds pip's output."""


def build_wheel(out_dir: Path) -> Path:
    """The runtime wheel, built from this checkout into ``out_dir`` (emptied first)."""
    shutil.rmtree(out_dir, ignore_errors=True)
    command = [UV, "build", "--wheel", "--out-dir", str(out_dir), str(REPO)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    (wheel,) = out_dir.glob("healthomics_airflow-*.whl")
    return wheel


def wheel_digest(wheel: Path) -> str:
    """A digest of the wheel's files (not of the zip, whose timestamps change with every build)."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(wheel) as archive:
        for name in sorted(archive.namelist()):
            digest.update(name.encode() + b"\0" + archive.read(name))
    return digest.hexdigest()


@dataclass
class Environment:
    """The virtualenv of one package set under ``workdir/<set name>``."""

    package_set: PackageSet
    workdir: Path

    @property
    def root(self) -> Path:
        return self.workdir / self.package_set.name

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def log(self) -> Path:
        return self.root / "install.log"

    def prepare(self, wheel: Path) -> float | None:
        """Install what changed; the seconds the user's install of the wheel took (None when reused)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._image()
        return self._wheel(wheel)

    # -- the deployment's own packages -------------------------------------------------

    def _image_key(self) -> str:
        parts = [PYTHON, *self.package_set.image, *TEST_TOOLS]
        parts += [path.read_text() for path in self.package_set.image_constraints]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()

    def _image(self) -> None:
        stamp = self.root / "image.stamp"
        key = self._image_key()
        if self.python.exists() and stamp.exists() and stamp.read_text() == key:
            return
        shutil.rmtree(self.venv, ignore_errors=True)
        (self.root / "wheel.stamp").unlink(missing_ok=True)
        self.log.write_text("")
        self._run("create the virtualenv", [PYTHON, "-m", "venv", str(self.venv)])
        constraints = [arg for path in self.package_set.image_constraints for arg in ("-c", str(path))]
        self._uv("install the deployment's packages", *constraints, *self.package_set.image)
        # The test tools at whatever versions the deployment's constraints allow.
        self._uv("install the test tools", "-c", str(self.package_set.constraints), *TEST_TOOLS)
        self._uv("install the development code", "--no-deps", "-e", str(REPO / "include"))
        stamp.write_text(key)

    def _uv(self, step: str, *args: str) -> None:
        self._run(step, [UV, "pip", "install", "--python", str(self.python), "--compile-bytecode", *args])

    # -- the wheel, as a user installs it -------------------------------------------------

    def _wheel(self, wheel: Path) -> float | None:
        stamp = self.root / "wheel.stamp"
        digest = wheel_digest(wheel)
        if stamp.exists() and stamp.read_text() == digest:
            return None
        pip = [str(self.python), "-m", "pip", "--disable-pip-version-check"]
        self._run("remove the previous wheel", [*pip, "uninstall", "--yes", "healthomics-airflow"])
        # A user's requirements.txt names the Airflow constraints itself; the deployment adds its own.
        requirements = self.root / "requirements.txt"
        requirements.write_text(f"--constraint {self.package_set.constraints}\n{wheel}\n")
        enforced = ["--constraint", str(self.package_set.enforced)] if self.package_set.enforced else []
        started = time.monotonic()
        self._run(
            "install the wheel with pip",
            [*pip, "install", *enforced, "-r", str(requirements)],
            timeout=MWAA_INSTALL_LIMIT_SECONDS,
        )
        seconds = time.monotonic() - started
        stamp.write_text(digest)
        return seconds

    def _run(self, step: str, command: list[str], timeout: float | None = None) -> None:
        with self.log.open("a") as log:
            log.write(f"$ {' '.join(command)}\n")
            log.flush()
            try:
                result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False)
            except subprocess.TimeoutExpired as error:
                raise InstallError(f"{step}: not done after {timeout:.0f} s (see {self.log})") from error
        if result.returncode != 0:
            raise InstallError(f"{step}: exit status {result.returncode} (see {self.log})")
