"""The report and the leaderboard opened in a real headless Chromium (Debian's `chromium`, driven by Playwright) as a
person would: screenshots at desktop and laptop widths, then the DOM: every section, every picture decoded, the
charts' marks against the metrics tables, no request to anything but the file itself, no console error.

Without chromium this test FAILS, it never skips: `make test` installs it first (tests/install_chromium.sh)."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from chexbench_schema import CHEXPERT_LABELS
from PIL import Image
from report_world import POSITIVE, build_run, run_args

CHROMIUM = Path(os.environ.get("CHEXBENCH_CHROMIUM", "/usr/bin/chromium"))
SECTIONS = (
    "headline",
    "published",
    "stages",
    "pathology",
    "samples",
    "privacy",
    "classification",
    "embedding",
    "provenance",
)
VIEWPORTS = {"desktop": (1440, 900), "laptop": (1280, 800)}


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} not found: the report's browser test needs Debian's chromium; install it with "
            "tools/report/tests/install_chromium.sh (make report-browser), or set CHEXBENCH_CHROMIUM",
            pytrace=False,
        )
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        except Error as exc:
            pytest.fail(f"chromium at {CHROMIUM} cannot be launched: {str(exc).splitlines()[0]}", pytrace=False)
        yield browser
        browser.close()


class Visit:
    """One page opened at one viewport, with every request and console error it caused."""

    def __init__(self, browser, path: Path, viewport: tuple[int, int]):
        self.context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        self.page = self.context.new_page()
        self.requests, self.blocked, self.errors = [], [], []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.route("**/*", self._only_the_file)
        self.url = path.resolve().as_uri()
        self.page.goto(self.url, wait_until="load")

    def _only_the_file(self, route):
        if route.request.url == self.url:
            route.continue_()
        else:  # nothing else may be fetched: record it and refuse
            self.blocked.append(route.request.url)
            route.abort()

    def assert_offline_and_clean(self):
        assert self.requests == [self.url] and self.blocked == []
        assert self.errors == []

    def images(self) -> list[list]:
        return self.page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt])")

    def count(self, selector: str) -> int:
        return self.page.locator(selector).count()

    def close(self):
        self.context.close()


def _screenshot(visit: Visit, folder: Path, name: str, width: int) -> Path:
    path = folder / f"{name}.png"
    visit.page.screenshot(path=path, full_page=True)
    with Image.open(path) as shot:
        assert shot.width == width and shot.height > 900
    return path


def _expected_series(metrics: pd.DataFrame, metric: str, extractor: str) -> pd.DataFrame:
    """One stage's per-label rows with a value, in the charts' order (CheXpert label order)."""
    rows = metrics[(metrics["metric"] == metric) & (metrics["extractor"] == extractor) & (metrics["subset"] != "all")]
    rows = rows[rows["value"].notna()]
    return rows.sort_values("subset", key=lambda s: s.map(CHEXPERT_LABELS.index))


def test_full_report_in_chromium(browser, results, report_cli, tmp_path):
    run = build_run(results, model="sana")  # a registry model: its published values are on the page
    assert report_cli(*run_args(results, "sana")).exit_code == 0
    page_file = run.dir / "report" / "report.html"
    prompts = pd.read_parquet(run.prompts)
    positives = {label: int((prompts[label] == 1).sum()) for label in POSITIVE}
    expected_images = (
        sum(2 * min(4, n) for n in positives.values())  # sample grid: synthetic and real per label
        + 2 * 3  # privacy: 3 flagged pairs, synthetic and training image
        + 1  # classify's ROC figure
        + 2 * 8  # outliers: the 8 farthest synthetic images and their nearest real ones
    )
    for name, (width, height) in VIEWPORTS.items():
        visit = Visit(browser, page_file, (width, height))
        _screenshot(visit, tmp_path, f"report-{name}", width)
        for section in SECTIONS:
            assert visit.page.locator(f"section#{section}").is_visible(), section
        assert visit.page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scrolling
        ids = visit.page.evaluate("Array.from(document.querySelectorAll('[id]')).map(e => e.id)")
        assert len(ids) == len(set(ids))  # several inline SVGs, one page: their references must not collide
        images = visit.images()
        assert len(images) == expected_images
        assert all(complete and natural > 0 for complete, natural, _ in images), images
        if name == "desktop":
            _assert_chart_marks(visit, run)
            published = visit.page.locator('table.published[data-table="fidelity"] tr[data-subset="all"]')
            fid = published.filter(has_text="FID (RadDino)").first.inner_text()
            assert "54.225" in fid and "in the run's CI" in fid  # the run's FID 50 [45, 55] holds Sana's 54.225
        visit.assert_offline_and_clean()
        visit.close()


def _assert_chart_marks(visit: Visit, run) -> None:
    """Bars, whiskers and points of the page's charts against the metrics and embeddings tables."""
    fidelity, align = run.metrics["fidelity"], run.metrics["align"]
    charts = {
        "fidelity: FID (raddino)": _expected_series(fidelity, "FID", "raddino"),
        "fidelity: FD_DINOv2 (FID on dinov2)": _expected_series(fidelity, "FID", "dinov2"),
        "fidelity: KID (raddino)": _expected_series(fidelity, "KID", "raddino"),
        "fidelity: CMMD (clip)": _expected_series(fidelity, "CMMD", "clip"),
        "fidelity: vendi (raddino) (◇ real set (the ceiling))": _expected_series(fidelity, "vendi", "raddino"),
        "align: alignment (biovil-t)": _expected_series(align, "alignment", "biovil-t"),
    }
    figures = visit.page.locator("section#pathology figure")
    assert figures.count() == 8  # the six above, C_T (its note: no label has a value) and classify's AUROC per class
    for i in range(figures.count()):
        caption = figures.nth(i).locator("figcaption").inner_text()
        if caption not in charts:
            continue
        expected = charts[caption]
        chart = figures.nth(i).get_attribute("data-chart")
        assert visit.count(f'[id^="{chart}-bar-"]') == len(expected), caption
        assert visit.count(f'[id^="{chart}-ci-"]') == int(expected["ci_low"].notna().sum()), caption
        if "vendi" in caption:  # the real set's Vendi beside each bar
            assert visit.count(f'[id^="{chart}-ref-"]') == len(_expected_series(fidelity, "vendi_real", "raddino"))
        # the bars' drawn lengths are proportional to the values (the axis starts at 0)
        widths = visit.page.evaluate(
            f"Array.from(document.querySelectorAll('[id^=\"{chart}-bar-\"] path')).map(p => p.getBBox().width)"
        )
        values = expected["value"].to_numpy()
        assert np.allclose(np.array(widths) / max(widths), values / values.max(), rtol=0.02), caption
    # the embedding map: one mark per real and per synthetic embedding
    n_real, n_synth = len(run.embeddings["real"][0]), len(run.embeddings["synthetic"][0])
    assert (visit.count("#map-0-real use"), visit.count("#map-0-synthetic use")) == (n_real, n_synth)
    # classify: one chart per setting, one bar per class with an AUROC
    classify = run.metrics["classify"]
    per_class = classify[classify["metric"].str.startswith("auc_") & (classify["metric"] != "auc_macro")]
    for k, setting in enumerate(("all_original", "all_synthetic")):
        rows = per_class[(per_class["subset"] == f"{setting}/seed0") & per_class["value"].notna()]
        assert visit.count(f'[id^="auroc-{k}-bar-"]') == len(rows)


def test_partial_and_failed_runs_in_chromium(browser, results, report_cli, tmp_path):
    reason = "the process ended before the run finished (killed?)"
    run = build_run(results, stages=("generate", "embed", "fidelity", "privacy"), failed={"privacy": reason})
    assert report_cli(*run_args(results)).exit_code == 0
    visit = Visit(browser, run.dir / "report" / "report.html", VIEWPORTS["laptop"])
    _screenshot(visit, tmp_path, "partial-laptop", VIEWPORTS["laptop"][0])
    visit.assert_offline_and_clean()
    for section in SECTIONS:
        assert visit.page.locator(f"section#{section}").is_visible(), section
    assert all(complete and natural > 0 for complete, natural, _ in visit.images())
    privacy = visit.page.locator("section#privacy .stage-state")
    assert privacy.locator(".badge.failed").is_visible() and reason in privacy.inner_text()
    assert reason in visit.page.locator('#headline tbody[data-stage="privacy"]').inner_text()
    for section, stage in (("classification", "classify"), ("headline", "align")):
        badge = visit.page.locator(f'section#{section} [data-stage="{stage}"] .badge')
        assert badge.inner_text() == "not run"
    assert visit.count("section#pathology figure") == 6  # fidelity's only
    visit.close()


def test_leaderboard_of_two_seeds_in_chromium(browser, results, report_cli, tmp_path):
    build_run(results, run_id="seed1", seed=1, fid=(50.0, 45.0, 55.0))
    build_run(results, run_id="seed2", seed=2, fid=(53.0, 49.0, 58.0))  # overlaps seed1: tied
    build_run(results, model="other", seed=3, fid=(90.0, 85.0, 95.0))  # apart: ranked 3rd
    out = tmp_path / "board"
    result = report_cli("leaderboard", "--results", results, "--out", out)
    assert result.exit_code == 0, result.output
    visit = Visit(browser, out / "leaderboard.html", VIEWPORTS["desktop"])
    _screenshot(visit, tmp_path, "leaderboard-desktop", VIEWPORTS["desktop"][0])
    visit.assert_offline_and_clean()
    table = visit.page.locator('table[data-table="overall"]')
    header = table.locator("thead th").all_inner_texts()
    rows = [
        [c.strip() for c in r]
        for r in table.locator("tbody tr").evaluate_all(
            "rows => rows.map(r => Array.from(r.cells).map(c => c.innerText))"
        )
    ]
    by_run = {(r[header.index("Model")], r[header.index("Run ID")]): r for r in rows}
    assert set(by_run) == {("m", "seed1"), ("m", "seed2"), ("other", "r")}
    fid = header.index("FID (RadDino)")
    assert by_run["m", "seed1"][fid] == "50 [45, 55]" and by_run["m", "seed2"][fid] == "53 [49, 58]"
    rank = header.index("Rank")
    assert [by_run[k][rank].split()[0] for k in (("m", "seed1"), ("m", "seed2"), ("other", "r"))] == ["1", "1", "3"]
    assert "tied with best" in by_run["m", "seed2"][rank] and "best" in by_run["m", "seed1"][rank]
    assert [by_run[k][header.index("Seed")] for k in (("m", "seed1"), ("m", "seed2"))] == ["1", "2"]
    # sorting: a click sorts by the column, a second click reverses it
    table.locator("thead th", has_text="FID (RadDino)").click()
    first = table.locator(f"tbody tr td:nth-child({fid + 1})").all_inner_texts()
    table.locator("thead th", has_text="FID (RadDino)").click()
    second = table.locator(f"tbody tr td:nth-child({fid + 1})").all_inner_texts()
    assert [t.split()[0] for t in first] == ["50", "53", "90"] and second == first[::-1]
    assert "No run here is of a model CheXGenBench published values for" in visit.page.inner_text("section#published")
    assert visit.errors == []
    visit.close()
