"""The data locator: root precedence (config > $PODM_DATA > project data/), one-line errors, Sun layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from podm_cli import paths
from podm_cli.data.locator import data_root, describe_root, find_sun_layout, project_data_dir, require
from podm_cli.errors import DataNotFoundError, PodmError

REPO = Path(__file__).resolve().parents[1]


def test_config_beats_env_beats_project(tmp_path, monkeypatch):
    configured, env = tmp_path / "configured", tmp_path / "env"
    monkeypatch.setenv("PODM_DATA", str(env))
    assert data_root(configured) == configured
    assert data_root(str(configured)) == configured
    assert data_root() == env
    assert describe_root()[1] == "$PODM_DATA"
    monkeypatch.delenv("PODM_DATA")
    assert data_root() == project_data_dir()
    monkeypatch.setenv("PODM_DATA", "   ")  # blank counts as unset
    assert data_root() == project_data_dir()
    assert data_root("") == project_data_dir()  # an empty config value counts as unset too


def test_project_dir_is_repo_data_in_a_checkout(monkeypatch):
    monkeypatch.delenv("PODM_DATA", raising=False)
    if paths._checkout_root() is None:
        pytest.skip("podm is installed outside a source checkout")
    assert paths._checkout_root() == REPO
    assert data_root() == REPO / "data"
    assert describe_root()[1] == "source checkout data/"


def test_wheel_install_uses_user_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("PODM_DATA", raising=False)
    monkeypatch.setattr(paths, "_checkout_root", lambda: None)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_root() == tmp_path / "xdg" / "podm"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_root() == tmp_path / "home" / ".local" / "share" / "podm"
    assert describe_root()[1] == "user data folder"


def test_paths_are_absolute_and_expanded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SOMEWHERE", str(tmp_path / "var"))
    assert data_root("rel/dir") == tmp_path / "rel" / "dir"
    assert data_root("~/d") == tmp_path / "home" / "d"
    assert data_root("$SOMEWHERE/d") == tmp_path / "var" / "d"


def test_require_returns_existing_path(tmp_path):
    (tmp_path / "levin" / "gt").mkdir(parents=True)
    (tmp_path / "levin" / "gt" / "im_1.png").write_bytes(b"x")
    assert require(tmp_path, "levin/gt/im_1.png", "Levin data", "levin") == tmp_path / "levin/gt/im_1.png"
    assert require(tmp_path, "levin/gt", "Levin data", "levin").is_dir()


def test_require_message_is_one_line_naming_the_fetch_command(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        require(tmp_path / "nowhere", "levin/gt/im_1.png", "Levin data", "levin")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("Levin data not found: ")
    assert str(tmp_path / "nowhere" / "levin" / "gt" / "im_1.png") in message
    assert "`podm data fetch levin`" in message
    assert "PODM_DATA" in message
    assert isinstance(err.value, (PodmError, FileNotFoundError))


def test_require_without_root_uses_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("PODM_DATA", str(tmp_path))
    with pytest.raises(DataNotFoundError, match="podm data fetch weights"):
        require(None, "weights/ircnn_gray_keras/net1.hdf5", "IRCNN weights", "weights")


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_sun_layout_detection(tmp_path):
    assert not find_sun_layout(tmp_path).complete  # no sun/ at all
    for i in range(1, 81):
        for j in range(1, 9):
            _touch(tmp_path / "sun" / "input80imgs8kernels" / f"{i}_{j}_blurred.png")
    layout = find_sun_layout(tmp_path)
    assert len(layout.blurred) == 640 and not layout.complete  # ground truth still missing
    for i in range(1, 81):
        _touch(tmp_path / "sun" / "somewhere" / "deeper" / f"img{i}_groundtruth_img.png")
    _touch(tmp_path / "sun" / "x" / "kernel3_groundtruth_kernel.png")
    _touch(tmp_path / "sun" / "x" / "1_1_blurred_result.png")  # not a Sun file name
    layout = find_sun_layout(tmp_path)
    assert layout.complete
    assert layout.blurred[(80, 8)].name == "80_8_blurred.png"
    assert set(layout.kernels) == {3}
    assert "640/640 blurred, 80/80 ground truth, 1/8 kernel" in layout.summary()


def test_model_paths_resolve_through_one_function(tmp_path, monkeypatch):
    """asset:NAME -> the package's assets; absolute as is; relative: working directory first, else data root."""
    from podm_cli.paths import asset_path, resolve_model_path

    monkeypatch.chdir(tmp_path)
    root = tmp_path / "root"
    assert resolve_model_path("asset:gmm_8x8_200.npz", root) == asset_path("gmm_8x8_200.npz")
    assert asset_path("gmm_8x8_200.npz").is_file()
    assert resolve_model_path("w/net.pth", root) == root / "w" / "net.pth"
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "net.pth").write_bytes(b"")
    assert resolve_model_path("w/net.pth", root) == Path("w/net.pth")
    assert resolve_model_path(str(tmp_path / "abs.npz"), root) == tmp_path / "abs.npz"
    assert resolve_model_path(None, root, default="weights/x") == root / "weights" / "x"
    assert resolve_model_path("null", root, default="asset:rtf_sigma1.npz").name == "rtf_sigma1.npz"
    with pytest.raises(ValueError):
        resolve_model_path(None, root)
