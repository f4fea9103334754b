"""The HTML report: one offline page with every layer's numbers, the verdict and the plots."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from collections.abc import Callable
from html import escape
from pathlib import Path

import pytest
from conftest import SAMPLE_MODELS

from satcli.cli import main
from satcli.core.results import CheckpointResult
from satcli.core.spectral import LayerScore
from satcli.core.verdict import decide
from satcli.render.html import NO_PLOTS, html_report

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
BUDGET = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def classes_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sensible.pt2 then narrow.pt2 on the digits test split with class spectra: a two-checkpoint store."""
    store = tmp_path_factory.mktemp("html") / "run.h5"
    models = [str(SAMPLE_MODELS / "sensible.pt2"), str(SAMPLE_MODELS / "narrow.pt2")]
    args = ["analyze", *models, "--data", "digits", "--split", "test", "--classes", "--store", str(store), "-q"]
    with contextlib.redirect_stdout(open(os.devnull, "w")), contextlib.suppress(SystemExit):
        main([*args, "--no-sort"])
    assert store.exists()
    return store


def _jsonl(run_cli: Callable, store: Path) -> list[dict]:
    report = run_cli("report", store, "-f", "jsonl")
    assert report.code == 0, report.stderr
    return [json.loads(line) for line in report.stdout.splitlines()]


def _text(page: str) -> str:
    """The page's visible text (tags and the style sheet dropped), whitespace collapsed."""
    page = re.sub(r"<style>.*?</style>|<svg.*?</svg>", " ", page, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


def test_report_html_has_every_layer_value_and_the_verdict(run_cli: Callable, classes_store: Path, tmp_path: Path):
    output = tmp_path / "report.html"
    report = run_cli("report", classes_store, "-f", "html", "-o", output)
    assert report.code == 0, report.stderr
    assert report.stdout == ""
    page = output.read_text(encoding="utf-8")
    text = _text(page)
    for document in _jsonl(run_cli, classes_store):
        for layer in document["layers"]:
            row = re.search(rf"<tr[^>]*><td class=\"n\">\d+</td><td>{re.escape(layer['name'])}</td>.*?</tr>", page)
            assert row is not None, layer["name"]
            cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(0))
            assert cells[5] == str(layer["k"])
            assert cells[6].endswith(f"{layer['saturation'] * 100:.1f}%")
            assert cells[7] == f"{layer['classes']['between_share'] * 100:.1f}%"
            assert f"{layer['classes']['nc1']:.4g}" in cells
        assert f"{document['model']} (export)" in text
        assert document["verdict"] in text
        average = document["average_saturation"]
        assert f"{average * 100:.1f}% over" in text
    assert "rule" in text and "between" in text
    # Offline: no script, no linked style sheet or font, nothing fetched over the network.
    assert "<script" not in page and '<link rel="stylesheet"' not in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert page.count("<svg") == 2  # the heatmap of both checkpoints and the last checkpoint's bars
    assert 'href="docs/method.md#2-the-verdict"' in page


def test_report_html_goes_to_stdout_without_o(run_cli: Callable, classes_store: Path):
    report = run_cli("report", classes_store, "-f", "html")
    assert report.code == 0, report.stderr
    assert report.stdout.startswith("<!DOCTYPE html>")


def test_analyze_html_has_the_weight_spectra(run_cli: Callable, tmp_path: Path):
    output = tmp_path / "analyze.html"
    model = SAMPLE_MODELS / "sensible.pt2"
    run = run_cli(
        "analyze", model, "--data", "digits", "--no-store", "--weight-spectra", "-f", "jsonl", "--html", output
    )
    assert run.code == 0, run.stderr
    document = json.loads(run.stdout)
    page = output.read_text(encoding="utf-8")
    assert page.count("<svg") == 2  # the bars and the weight spectra
    for layer in document["layers"]:
        alpha = layer["weights"]["alpha"]
        row = re.search(rf"<td>{re.escape(layer['name'])}</td>.*?</tr>", page).group(0)  # type: ignore[union-attr]
        assert f'<td class="n">{layer["weights"]["stable_rank"]:.1f}</td>' in row
        assert (f">{alpha:.2f}<" if alpha is not None else ">n/a<") in row


def test_html_without_matplotlib_says_so(classes_store: Path, monkeypatch: pytest.MonkeyPatch):
    from satcli.core.verdict import ThresholdOverrides
    from satcli.store.rescore import rescore_refs

    results = [result for _, result in rescore_refs([str(classes_store)], ThresholdOverrides())]
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails as when it is not installed
    page = html_report(results)
    assert escape(NO_PLOTS) in page and "<svg" not in page
    assert all(layer.name in page for result in results for layer in result.layers)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-f", "parquet"], "give a file with -o FILE"),
        (["-f", "json", "-o", "x.json"], "-o writes html or parquet"),
        (["-f", "html", "-o", "missing/r.html"], "does not exist"),
    ],
)
def test_report_refuses_an_output_it_cannot_write(run_cli: Callable, classes_store: Path, args: list, message: str):
    report = run_cli("report", classes_store, *args)
    assert report.code == 2
    assert message in report.stderr and len(report.stderr.strip().splitlines()) == 1
    assert report.stdout == ""


def _synthetic(checkpoints: int, layers: int) -> list[CheckpointResult]:
    """`checkpoints` results of `layers` layers each, with class spectra, as a long training run would store."""
    results = []
    for c in range(checkpoints):
        scores = []
        for i in range(layers):
            width = 64 + i
            k = 1 + (i * 7 + c) % width
            classes = {"num_classes": 10, "between_share": (i % 10) / 10 + 0.01, "nc1": 1.0 + i / 3}
            classes |= {"rank_between": 9, "outliers": i % 4, "class_mean_cosine": -0.1, "notes": []}
            scores.append(
                LayerScore(f"blocks.{i}.mlp.fc", "Linear", width, 1000, k, k / width, extras={"classes": classes})
            )
        verdict = decide(scores, num_inputs=1000)
        options = {"step": c, "num_inputs": 1000}
        results.append(
            CheckpointResult(
                f"run/ckpt-{c:03d}.pt", "ab" * 32, "export", "digits", tuple(scores), verdict, options, "run.h5"
            )
        )
    return results


def test_a_long_run_fits_the_size_budget():
    page = html_report(_synthetic(20, 100))
    assert len(page.encode("utf-8")) < BUDGET
    assert page.count("<svg") == 2
    assert page.count('<tr><td class="n">') + page.count("<tr class=") >= 2000


def _browser_or_skip() -> None:
    """Skip without chromium, chromedriver or selenium; with SATCLI_REQUIRE_EXTRAS (CI) fail instead."""
    import importlib.util

    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if importlib.util.find_spec("selenium") is None:
        missing.append("selenium")
    if missing:
        reason = f"the browser test needs {', '.join(missing)} (apt-get install chromium chromium-driver)"
        if os.environ.get("SATCLI_REQUIRE_EXTRAS"):
            pytest.fail(reason)
        pytest.skip(reason)


def test_the_page_renders_in_a_headless_browser(run_cli: Callable, classes_store: Path, tmp_path: Path):
    _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    output = tmp_path / "report.html"
    assert run_cli("report", classes_store, "-f", "html", "-o", output).code == 0
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
    flags += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
    flags += [f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1300,2400"]
    for flag in flags:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        driver.get(output.as_uri())
        # Every checkpoint's table is in the DOM; open the closed ones so their text is rendered too.
        driver.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
        text = driver.find_element(By.TAG_NAME, "body").text
        rows = driver.execute_script(
            "return [...document.querySelectorAll('tbody tr')].map(r => [...r.cells].map(c => c.innerText.trim()))"
        )
        severe = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        driver.save_screenshot(str(tmp_path / "report.png"))
    finally:
        driver.quit()
    assert severe == []
    for document in _jsonl(run_cli, classes_store):
        for layer in document["layers"]:
            assert layer["name"] in text
            assert [layer["name"], str(layer["k"])] in [[row[1], row[5]] for row in rows if len(row) > 5]
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_how_to_read_links_name_headings_of_the_method_page() -> None:
    """Every docs/method.md#anchor the page links to is a heading of that page (MkDocs' slug rule)."""
    from markdown.extensions.toc import slugify

    from satcli.render.html import _how_to_read

    method = (Path(__file__).resolve().parents[2] / "docs" / "method.md").read_text(encoding="utf-8")
    slugs = {
        slugify(line.lstrip("#").strip().replace("`", ""), "-") for line in method.splitlines() if line.startswith("#")
    }
    anchors = re.findall(r'href="docs/method\.md#([^"]+)"', _how_to_read())
    assert anchors and set(anchors) <= slugs, set(anchors) - slugs
