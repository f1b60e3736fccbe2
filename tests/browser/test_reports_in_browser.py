"""Open the three report pages made from real tiny-model runs in chromium and check what a person sees."""
import json
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "mmhallu_eval.cli"]
XSS = '<script>alert("xss")</script><img src=x onerror="alert(1)">'


def fmt(v):
    return f"{v:.4f}" if abs(v) < 10 else f"{v:.2f}"


@pytest.fixture(scope="module")
def runs(tiny_llava, tiny_idefics3, pope_fixture, finer_fixture, tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-runs")
    out = {}
    for name, model in (("llava", tiny_llava), ("idefics3", tiny_idefics3)):
        run = root / name
        proc = subprocess.run(
            [*CLI, "run", "--model", str(model), "--tasks", "pope,finer_comprecap", "--out", str(run), "--no-progress",
             "--max-new-tokens", "6", "--task-arg", f"pope.data={pope_fixture}", "--task-arg", f"pope.images={pope_fixture / 'images'}",
             "--task-arg", f"finer_comprecap.data={finer_fixture}", "--task-arg", f"finer_comprecap.images={finer_fixture / 'images'}"],
            capture_output=True, text=True,
        )
        assert proc.returncode == 0, proc.stderr
        out[name] = run
    # plant an XSS payload as a model answer, as a hostile model output would be
    samples = out["idefics3"] / "pope" / "samples.jsonl"
    rows = [json.loads(l) for l in samples.read_text().splitlines()]
    rows[0]["response"] = XSS
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def test_run_report_shows_result_json_numbers(runs, page, artifacts):
    run = runs["llava"]
    assert subprocess.run([*CLI, "report", str(run)], capture_output=True).returncode == 0
    page.goto((run / "report.html").as_uri())
    result = json.loads((run / "pope/result.json").read_text())
    for metric in ("f1", "accuracy"):
        shown = page.locator(f'section[data-task="pope"] .card .value[data-metric="{metric}"]').inner_text()
        assert shown == fmt(result["metrics"][metric])
    rows = page.locator('section[data-task="pope"] tr.sample')
    assert rows.count() == result["n"]
    page.locator('section[data-task="pope"] select.group-filter').select_option("random")
    visible = [r for r in rows.all() if r.is_visible()]
    assert len(visible) == result["groups"]["random"]["n"]
    page.locator('section[data-task="pope"] input.wrong-only').check()
    wrong = sum(1 for r in rows.all() if r.is_visible())
    assert wrong == result["groups"]["random"]["n"] - result["groups"]["random"]["tp"] - result["groups"]["random"]["tn"]
    assert page.locator('section[data-task="pope"] img.thumb').count() > 0
    page.screenshot(path=str(artifacts / "run_report.png"), full_page=False)


def test_xss_payload_renders_as_text(runs, page, artifacts):
    run = runs["idefics3"]
    assert subprocess.run([*CLI, "report", str(run)], capture_output=True).returncode == 0
    page.goto((run / "report.html").as_uri())
    page.wait_for_timeout(300)
    assert page.dialogs == []
    assert page.locator("pre.response", has_text='<script>alert("xss")</script>').count() == 1
    assert page.locator("script", has_text="alert(").count() == 0
    page.screenshot(path=str(artifacts / "run_report_xss.png"))


def test_compare_page_matches_compare_json(runs, page, artifacts, tmp_path):
    proc = subprocess.run([*CLI, "compare", str(runs["llava"]), str(runs["idefics3"]), "--out", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "compare.json").read_text())
    page.goto((tmp_path / "compare.html").as_uri())
    row = page.locator('section[data-task="pope"] table.compare tr.metric-row[data-metric="accuracy"]').first
    entry = data["tasks"]["pope"]["metrics"]["accuracy"]
    assert row.locator("td.base").inner_text() == fmt(entry["base"])
    assert row.locator("td.tuned").inner_text() == fmt(entry["tuned"])
    assert page.locator("svg.chart").count() >= 2
    assert page.dialogs == []
    page.screenshot(path=str(artifacts / "compare.png"), full_page=True)


def test_compare_page_leads_with_the_scorecard(runs, page, tmp_path):
    """The scorecard comes first and shows compare.json's rows (POPE per split too); flipped samples start collapsed;
    the CLI prints the same rows."""
    proc = subprocess.run([*CLI, "compare", str(runs["llava"]), str(runs["idefics3"]), "--out", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "compare.json").read_text())
    page.goto((tmp_path / "compare.html").as_uri())
    assert page.locator("h2").first.inner_text() == "Scorecard"
    rows = page.locator("table.scorecard tr.score-row")
    assert rows.count() == len(data["scorecard"]) > 0
    assert any(r["group"] == "adversarial" for r in data["scorecard"] if r["task"] == "pope")
    for i, r in enumerate(data["scorecard"]):
        row = rows.nth(i)
        assert row.get_attribute("data-metric") == r["metric"] and row.get_attribute("data-task") == r["task"]
        assert row.locator("td.base").inner_text() == fmt(r["base"]) and row.locator("td.tuned").inner_text() == fmt(r["tuned"])
        assert row.locator("td.delta").inner_text() == fmt(r["delta"])
        assert r["verdict"] in row.locator("td.verdict").inner_text()
        assert r["metric"] in proc.stdout.splitlines()[i + 1] and r["verdict"] in proc.stdout.splitlines()[i + 1]
    flips = page.locator("section[data-task] details.flips-fixed, section[data-task] details.flips-broken")
    assert all(flips.nth(i).get_attribute("open") is None for i in range(flips.count()))


def test_leaderboard_sorts(runs, page, artifacts, tmp_path):
    out = tmp_path / "board.html"
    proc = subprocess.run([*CLI, "leaderboard", str(runs["llava"]), str(runs["idefics3"]), "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.with_suffix(".csv").exists() and "|" in out.with_suffix(".md").read_text()
    page.goto(out.as_uri())
    headers = page.locator("#board thead th")
    col = next(i for i in range(headers.count()) if "question_accuracy" in headers.nth(i).inner_text())
    values = lambda: [page.locator("#board tbody tr").nth(i).locator("td").nth(col).get_attribute("data-value") for i in range(2)]
    headers.nth(col).click()
    first = [float(v) for v in values()]
    assert first == sorted(first)
    headers.nth(col).click()
    second = [float(v) for v in values()]
    assert second == sorted(second, reverse=True) and first != second
    assert page.locator("#board tbody a").first.get_attribute("href").endswith("report.html")
    page.screenshot(path=str(artifacts / "leaderboard.png"), full_page=True)
