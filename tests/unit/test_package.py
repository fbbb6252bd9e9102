"""labnet as a package: installed (not editable) into a fresh virtualenv, it is a `labnet`
command with every task and the labs it ships."""

from __future__ import annotations

import shutil
import subprocess
import venv

from tests.conftest import ROOT

SOURCES = ("labnet", "topologies", "challenges", "pyproject.toml", "README.md")


def test_pip_install_gives_a_labnet_command(tmp_path):
    src = tmp_path / "src"  # a copy: the build leaves nothing in the checkout
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    install = subprocess.run([*pip, "install", "-q", str(src)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-2000:]
    labnet = str(env_dir / "bin" / "labnet")
    for argv, cwd, expect in (
        ([labnet, "--help"], ROOT, "Usage: labnet"),
        ([labnet, "--list"], tmp_path, "verify"),
        ([labnet, "validate", "topologies/flannel-vxlan.yaml"], ROOT, "valid (2 nodes"),
        ([labnet, "validate", "flannel-vxlan"], tmp_path, "valid (2 nodes"),  # a shipped lab
        ([labnet, "challenge", "list"], tmp_path, "after-the-reboot"),  # and its challenges
        ([labnet, "up", "--help"], ROOT, "Build a lab from a topology file"),
        ([labnet, "--help", "up"], ROOT, "Build a lab from a topology file"),
    ):
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, (argv, proc.stderr)
        assert expect in proc.stdout, (argv, proc.stdout)
    # the installed copy is what ran, not the checkout
    where = subprocess.run(
        [str(env_dir / "bin" / "python"), "-c", "import labnet; print(labnet.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert str(env_dir) in where.stdout and str(ROOT) not in where.stdout
