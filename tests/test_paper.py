"""Published numbers beside ours: the paper's (synthetic protocols) and Kruse et al. 2017's (levin_real, sun)."""

from __future__ import annotations

from podm_cli.evaluation.paper import PUBLISHED_SOURCE, paper_numbers, published_numbers
from podm_cli.evaluation.report import markdown_table, table_cells, table_legend


def _row(method: str, dataset: str, psnr: float) -> dict:
    paper_psnr, paper_ssim = paper_numbers(method, dataset)
    return {"method": method, "dataset": dataset, "psnr": psnr, "ssim": 0.9, "paper_psnr": paper_psnr,
            "paper_ssim": paper_ssim, "published": published_numbers(method, dataset)}


def test_published_numbers_are_kruse_table_1():
    expected = {"fdn": 35.09, "fdn_greedy": 34.98, "epll": 34.75, "csf_5x5": 34.06, "rtf": 33.97, "csf": 33.48}
    for method, value in expected.items():
        entry = published_numbers(method, "levin_real")
        assert entry["psnr"] == value and entry["source"] == PUBLISHED_SOURCE == "Kruse et al. 2017"
    assert "1.5/255" in published_numbers("fdn", "levin_real")["what"]
    assert "0.5/255" in published_numbers("rtf", "levin_real")["what"]
    sun = {"fdn": 32.67, "fdn_greedy": 32.62, "epll": 32.46, "csf_5x5": 32.21, "rtf": 32.49}
    assert {m: published_numbers(m, "sun")["psnr"] for m in sun} == sun
    # no published number for methods Kruse et al. did not run, nor for other images / renamed variants
    for method, protocol in [("hl", "levin_real"), ("rpodm", "levin_real"), ("rtf", "sun_substitute"),
                             ("rtf", "levin_real[sigma=0.01]"), ("rtf", "levin_valid_whole")]:
        assert published_numbers(method, protocol) is None


def test_levin_real_has_no_paper_column_but_synthetic_protocols_keep_it():
    assert paper_numbers("rtf", "levin_real") == (None, None)  # the paper's table is synthetic
    assert paper_numbers("rtf", "levin_valid_whole") == (33.26, 0.94)
    assert paper_numbers("rtf", "sun") == (32.45, 0.89)


def test_table_prints_published_row_labelled_with_its_source():
    rows = [_row("hl", "levin_real", 33.67), _row("rtf", "levin_real", 34.04),
            _row("rtf", "levin_valid_whole", 31.0)]
    methods, body = table_cells(rows)
    assert methods == ["hl", "rtf"]
    labels = [label for label, _ in body]
    assert labels == ["PSNR levin_real", "PSNR levin_real published: Kruse et al. 2017", "SSIM levin_real",
                      "PSNR levin_valid_whole", "SSIM levin_valid_whole"]
    assert body[0][1] == ["33.67", "34.04"] and body[1][1] == ["-", "33.97"]
    assert body[3][1] == ["-", "31.00 (paper 33.26)"]
    legend = table_legend(rows)
    assert any("Kruse, Rother & Schmidt" in line and "RTF, input sigma 0.5/255" in line for line in legend)
    assert any("Levin et al." in line and "33.82" in line for line in legend)
    md = markdown_table(rows)
    assert "| PSNR levin_real published: Kruse et al. 2017 | - | 33.97 |" in md and "paper = Liu et al. 2018" in md

