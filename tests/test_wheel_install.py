"""The wheel carries its configs: `podm eval --cfg job` works from /tmp in a fresh venv with the wheel."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> Path:
    """Build the wheel and install it (without dependencies) into a fresh venv.

    The dependencies are made visible through a plain path entry to this environment's site-packages: a
    path entry (unlike a site dir) does not process .pth files, so the editable checkout stays invisible
    and the test really imports the installed wheel.
    """
    tmp = tmp_path_factory.mktemp("wheel")
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
                  str(tmp / "dist"), str(REPO)])
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp / "dist").glob("podm_cli-*.whl"))
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    (Path(purelib) / "zz_podm_test_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    installed = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", str(wheel)])
    if installed.returncode != 0:  # pip < 22.3 has no --python: install into the target's purelib
        installed = _run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", purelib, str(wheel)])
    assert installed.returncode == 0, installed.stderr[-2000:]
    return env_dir


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PODM_DATA")}
    return env


def test_wheel_contains_configs_and_resolves_them(wheel_venv, tmp_path):
    python = wheel_venv / "bin" / "python"
    where = _run([str(python), "-c", "import podm_cli, podm_cli.apps as a; print(podm_cli.__file__); print(a.config_dir())"],
                 cwd=tmp_path, env=_clean_env())
    assert where.returncode == 0, where.stderr
    module_file, config_dir = where.stdout.split()
    assert str(wheel_venv) in module_file, "imported the checkout, not the wheel"
    assert config_dir.startswith(str(wheel_venv)) and config_dir.endswith("podm_cli/configs")


def test_wheel_podm_eval_cfg_job_from_tmp(wheel_venv, tmp_path):
    podm = wheel_venv / "bin" / "podm"
    proc = _run([str(podm), "eval", "--cfg", "job"], cwd=tmp_path, env=_clean_env())
    assert proc.returncode == 0, proc.stderr
    assert "datasets:" in proc.stdout
    helped = _run([str(podm), "--help"], cwd=tmp_path, env=_clean_env())
    assert helped.returncode == 0 and "converge" in helped.stdout
