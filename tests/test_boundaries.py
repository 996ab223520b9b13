"""Boundary handling on ``valid`` data per method: ``operator.boundary=auto`` applies each method's own rule
(``configs/operator/valid.yaml``'s ``per_method``), an explicit rule forces it for every method, unset
adjust settings fall back to the method's, and ``podm eval`` rows record the rule each method ran with."""

from __future__ import annotations

from dataclasses import asdict
from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize_config_dir

from podm_cli.apps import app_overrides, config_dir
from podm_cli.apps.common import boundary_settings, method_boundary
from podm_cli.apps.evaluate import record_boundaries
from podm_cli.apps.methods import build_method
from podm_cli.apps.schema import register_schemas
from podm_cli.errors import PodmError
from podm_cli.metrics import psnr
from podm_cli.physics import Blur, add_gaussian_noise

F64 = torch.float64


def _operator(*overrides: str):
    register_schemas()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("eval", overrides=app_overrides("eval", list(overrides)), return_hydra_config=False).operator


def _handling(name: str, *overrides: str) -> dict:
    method = build_method(name, None, boundary=boundary_settings(_operator(*overrides)))
    return asdict(method.boundary_handling)


def test_auto_is_the_default_and_applies_each_methods_rule():
    op = _operator()
    assert op.boundary.value == "auto"
    assert _handling("tv") == {"mode": "circular", "boundary": "adjust", "taper_iterations": 3,
                               "start": "edgetaper", "adjust_after": 2}
    assert _handling("ircnn")["boundary"] == "adjust" and _handling("ircnn")["adjust_after"] == 10
    assert _handling("rpodm")["boundary"] == "adjust" and _handling("rpodm")["adjust_after"] == 0  # as trained
    assert _handling("rpodm_edgetaper")["boundary"] == "edgetaper"
    assert _handling("rtf")["boundary"] == "liu"  # not listed: Liu-Jia (its CG solves cannot adjust)
    # csf's variants share csf's rule (a YAML anchor)
    assert _handling("csf_5x5") == _handling("csf")


def test_an_explicit_rule_holds_for_every_method():
    for name in ("tv", "ircnn", "rpodm"):
        assert _handling(name, "operator.boundary=liu") == {
            "mode": "circular", "boundary": "liu", "taper_iterations": 3, "start": "edgetaper", "adjust_after": 0}
    # an explicit adjust does not inherit a method's adjust_after: only what the operator group says
    assert _handling("ircnn", "operator.boundary=adjust")["adjust_after"] == 0
    assert _handling("ircnn", "operator.boundary=adjust", "operator.adjust_after=4")["adjust_after"] == 4


def test_auto_settings_are_overridable_per_key_and_per_method():
    assert _handling("tv", "operator.adjust_after=5")["adjust_after"] == 5  # operator value wins over own
    assert _handling("tv", "operator.adjust_start=liu")["start"] == "liu"
    assert _handling("tv", "operator.per_method.tv.boundary=replicate")["boundary"] == "replicate"
    assert _handling("hl", "operator.edgetaper_iterations=5")["taper_iterations"] == 5
    # FDN keeps what it was trained with, whatever the group says
    assert _handling("fdn", "operator.boundary=liu")["boundary"] == _handling("fdn")["boundary"]


@pytest.mark.parametrize("override,message", [
    ("operator.per_method.tv.bogus=1", "operator.per_method.tv: unknown key 'bogus'"),
    ("operator.per_method.tv.boundary=auto", "operator.per_method.tv.boundary: unknown rule 'auto'"),
    ("operator.per_method.tv.boundary=wrap", "operator.per_method.tv.boundary: unknown rule 'wrap'"),
])
def test_bad_per_method_entry_is_one_line(override, message):
    with pytest.raises(PodmError, match=message):
        boundary_settings(_operator("+" + override if "bogus" in override else override))


def test_method_boundary_without_per_method_table():
    """A plain settings dict (no ``per_method``) works; ``auto`` then means liu."""
    assert method_boundary({"boundary": "auto"}, "tv")["boundary"] == "liu"
    assert method_boundary({"boundary": "edgetaper", "adjust_after": None}, "tv") == {
        "boundary": "edgetaper", "taper_iterations": 3, "start": "edgetaper", "adjust_after": 0}


def test_default_rule_changes_the_restoration_for_the_better():
    """TV on a valid blur: its default (adjust) beats the Liu-Jia extension on a fixed synthetic image."""
    n = 64
    yy, xx = torch.meshgrid(torch.arange(n, dtype=F64), torch.arange(n, dtype=F64), indexing="ij")
    x = 0.2 + 0.6 * ((xx - 20) ** 2 + (yy - 22) ** 2 < 144) + 0.3 * ((xx > 36) & (yy > 10) & (yy < 30)) \
        + 0.2 * (xx / n)  # a ramp: the border is not periodic
    x = x[None, None]
    k = torch.zeros(9, 9, dtype=F64)
    k[4, :] = 1.0
    k[3:6, 4] += 0.5
    k /= k.sum()
    y = add_gaussian_noise(Blur(k, mode="valid")(x), 0.01, seed=7)
    truth = x[..., 4:-4, 4:-4]
    scores = {}
    for rule in ("auto", "liu"):
        tv = build_method("tv", None, boundary=boundary_settings(_operator(f"operator.boundary={rule}")))
        scores[rule] = float(psnr(tv(y, k, 0.01, mode="valid"), truth))
    assert scores["auto"] > scores["liu"] + 1.0, scores


def test_eval_rows_record_the_rule_each_method_ran_with():
    op = boundary_settings(_operator())
    methods = {name: build_method(name, None, boundary=op) for name in ("tv", "rpodm_edgetaper")}
    outcome = SimpleNamespace(
        protocols={"levin_valid_whole": {"mode": "valid"}, "levin": {"mode": "circular"}},
        rows=[{"method": "tv", "dataset": "levin_valid_whole"},
              {"method": "rpodm_edgetaper", "dataset": "levin_valid_whole"},
              {"method": "tv", "dataset": "levin"}])
    notices = record_boundaries(outcome, methods)
    assert [r["boundary"] for r in outcome.rows] == [
        "adjust (start edgetaper, after 2 stages)", "edgetaper (3 iterations)", "-"]
    assert notices == ["boundary on valid data: rpodm_edgetaper edgetaper (3 iterations); "
                       "tv adjust (start edgetaper, after 2 stages)"]
