//! `index.html` in a real browser: headless Chromium (Debian's `chromium`) renders the page of a
//! small real study (`pets search` end to end on a tiny encoder) and of the committed main-job
//! study; the tests count the drawn points (one per complete trial) and the front's marks
//! against the store, hover a point with the mouse and read its tooltip, click it for its
//! `pets export` command, check that the page fetched nothing, and save a screenshot.
//!
//! Without a browser the browser tests print "skipped"; under `CI` they fail instead.

mod browser;
mod tiny_study;

use browser::Browser;
use pets::report::group;
use pets::search::report::ReportContext;
use pets::search::report::{design_in_words, front, hypervolume_history, write_reports};
use pets::search::store::{TrialId, TrialKind, TrialRow};
use pets::search::TrialState;
use pets::spec::Design;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One generation of 4 candidates with 2 promoted (6 search trials), a LoRA baseline, and the
/// best front design and the baseline confirmed on a second seed: 9 trials, every kind.
const PROTOCOL: &[&str] = &[
    "--trials",
    "6",
    "--initial",
    "4",
    "--population",
    "2",
    "--eta",
    "2",
    "--rungs",
    "2",
    "--epochs",
    "1",
    "--batch-size",
    "16",
    "--baselines",
    "lora",
    "--confirm-top",
    "1",
    "--confirm-seeds",
    "2",
];

/// The browser, or `None` with a message (a failure under `CI`, which must run these tests).
fn chromium_or_skip(test: &str) -> Option<PathBuf> {
    match browser::chromium() {
        Some(path) => Some(path),
        None if std::env::var_os("CI").is_some() => panic!(
            "{test}: no chromium on PATH, and CI requires it (.ci/run installs Debian's chromium)"
        ),
        None => {
            eprintln!("{test}: skipped: no chromium on PATH (apt-get install chromium, or set PETS_CHROMIUM)");
            None
        }
    }
}

fn file_url(path: &Path) -> String {
    let absolute = std::fs::canonicalize(path).expect("the page exists");
    format!("file://{}", absolute.display())
}

/// Numbers from a script's array value, sorted.
fn numbers(value: &Value) -> Vec<usize> {
    let mut out: Vec<usize> = value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_u64().expect("a number") as usize)
        .collect();
    out.sort_unstable();
    out
}

/// Trial numbers of the marks matching `selector` in the page.
fn marks(page: &mut Browser, selector: &str) -> Vec<usize> {
    let script = format!(
        "[...document.querySelectorAll('{selector}')].map(e => Number(e.getAttribute('data-trial')))"
    );
    numbers(&page.eval(&script).expect("marks"))
}

/// Opens the page and waits for its script to have drawn everything; no request but the page's.
fn render(page: &mut Browser, path: &Path) {
    page.call("Network.enable", json!({}))
        .expect("Network.enable");
    let url = file_url(path);
    page.open(&url).expect("open the page");
    page.wait_for(
        "document.body.getAttribute('data-ready') === '1'",
        Duration::from_secs(20),
    )
    .expect("the page's script ran to its end");
    let fetched: Vec<String> = page
        .events
        .iter()
        .filter(|e| e["method"] == "Network.requestWillBeSent")
        .map(|e| {
            e["params"]["request"]["url"]
                .as_str()
                .unwrap_or("?")
                .to_string()
        })
        .collect();
    assert_eq!(fetched, [url], "the page fetched something besides itself");
}

/// A point that nothing covers at its centre, front members first: its trial number and the
/// centre in viewport coordinates (scrolled into view).
fn uncovered_point(page: &mut Browser) -> (usize, f64, f64) {
    let script = "(() => { const all = [...document.querySelectorAll('#scatter .point.member'), \
         ...document.querySelectorAll('#scatter .point')]; \
         for (const p of all) { p.scrollIntoView({block: 'center'}); const b = p.getBoundingClientRect(); \
         const x = b.left + b.width / 2, y = b.top + b.height / 2; \
         if (document.elementFromPoint(x, y) === p) return [Number(p.getAttribute('data-trial')), x, y]; } \
         return null; })()";
    let found = page.eval(script).expect("find a point");
    let v = found.as_array().expect("a point nothing covers");
    (
        v[0].as_u64().unwrap() as usize,
        v[1].as_f64().unwrap(),
        v[2].as_f64().unwrap(),
    )
}

/// Hovers the point at (x, y) and returns the tooltip's text.
fn tooltip(page: &mut Browser, x: f64, y: f64) -> String {
    page.hover(x, y).expect("hover");
    page.wait_for(
        "!document.getElementById('tooltip').hidden",
        Duration::from_secs(5),
    )
    .expect("the tooltip shows on hover");
    let text = page
        .eval("document.getElementById('tooltip').innerText")
        .unwrap();
    text.as_str().unwrap_or_default().to_string()
}

fn is_png(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| b.len() > 1000 && b.starts_with(b"\x89PNG\r\n\x1a\n"))
}

#[test]
fn a_small_study_renders_in_chromium() {
    let Some(binary) = chromium_or_skip("a_small_study_renders_in_chromium") else {
        return;
    };
    let started = Instant::now();
    let dir = tiny_study::scratch("html");
    let out = tiny_study::tiny_command(&dir, PROTOCOL).output().unwrap();
    assert!(out.status.success(), "{}", tiny_study::finished(&out));
    let searched = started.elapsed();
    let rows = tiny_study::trials(&dir);
    let complete: Vec<&TrialRow> = rows
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .collect();
    let kinds = |k: TrialKind| complete.iter().filter(|t| t.kind == k).count();
    assert_eq!(
        (
            kinds(TrialKind::Search),
            kinds(TrialKind::Baseline),
            kinds(TrialKind::Confirm)
        ),
        (6, 1, 2)
    );
    let members: Vec<usize> = front(&rows).members.iter().map(|t| t.number).collect();
    assert!(!members.is_empty());

    let mut page = Browser::launch(&binary, 1280, 1100).expect("start chromium");
    let html = dir.join("reports/tiny/index.html");
    render(&mut page, &html);
    let all: Vec<usize> = complete.iter().map(|t| t.number).collect();
    assert_eq!(
        marks(&mut page, "#scatter .point"),
        all,
        "one point per complete trial, on test"
    );
    assert_eq!(marks(&mut page, "#scatter .front-mark"), members);
    let baselines: Vec<usize> = complete
        .iter()
        .filter(|t| t.kind == TrialKind::Baseline)
        .map(|t| t.number)
        .collect();
    assert_eq!(marks(&mut page, "#scatter .point.kind-baseline"), baselines);
    assert_eq!(
        page.eval("document.querySelectorAll('#scatter .budget-line').length")
            .unwrap(),
        1
    );

    // A front member under the mouse: its tooltip says what the store says of it.
    let (n, x, y) = uncovered_point(&mut page);
    let t = rows.iter().find(|t| t.number == n).unwrap();
    let text = tooltip(&mut page, x, y);
    let metrics = t.metrics.as_ref().unwrap();
    for expected in [
        format!("trial {n}"),
        design_in_words(&t.design),
        format!("{} trainable parameters", group(t.params.unwrap())),
        format!("dev accuracy {:.4}", t.accuracy.unwrap()),
        format!(
            "test accuracy {:.4}",
            metrics["test_accuracy"].as_f64().unwrap()
        ),
        format!("{} steps", t.fidelity),
        "complete".into(),
    ] {
        assert!(
            text.contains(&expected),
            "tooltip {text:?} lacks {expected:?}"
        );
    }
    let shot = dir.join("index.png");
    page.screenshot(&shot).expect("screenshot");
    assert!(is_png(&shot));
    page.hover(2.0, 2.0).unwrap();
    page.wait_for(
        "document.getElementById('tooltip').hidden",
        Duration::from_secs(5),
    )
    .expect("the tooltip goes when the mouse leaves");

    // Clicking selects it: the command exports this trial from this store.
    page.click(x, y).unwrap();
    let command = page
        .eval("document.getElementById('export').textContent")
        .unwrap();
    let storage = dir.join("study.sqlite");
    assert_eq!(
        command,
        format!(
            "pets export --study tiny --storage {} --trial {n} --out adapters/tiny-trial-{n}",
            storage.display()
        )
    );

    // On dev the same points, and the confirmed table with one verdict against the baseline.
    page.eval("document.getElementById('metric-dev').click()")
        .unwrap();
    assert_eq!(
        marks(&mut page, "#scatter .point"),
        all,
        "one point per complete trial, on dev"
    );
    assert_eq!(marks(&mut page, "#scatter .front-mark"), members);
    let confirmed = page
        .eval("document.querySelectorAll('#confirmed tbody tr').length")
        .unwrap();
    assert_eq!(confirmed, 2, "the best front design and the baseline");
    let verdict = page
        .eval("document.querySelector('#verdicts tbody tr').children[4].textContent")
        .unwrap();
    assert!(
        ["beats", "ties", "loses"].contains(&verdict.as_str().unwrap()),
        "{verdict}"
    );
    // One dot per change of the hypervolume, at the budget the page was written with.
    let budget = page
        .eval("JSON.parse(document.getElementById('pets-data').textContent).budget")
        .unwrap();
    let history = hypervolume_history(&rows, budget.as_u64().unwrap() as usize);
    let drawn = page
        .eval("document.querySelectorAll('#hypervolume .hv-point').length")
        .unwrap();
    assert!(!history.is_empty());
    assert_eq!(drawn, history.len());
    if let Some(keep) = std::env::var_os("PETS_HTML_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    eprintln!(
        "html report test: search {:.1} s, browser {:.1} s; index.html {} bytes",
        searched.as_secs_f64(),
        (started.elapsed() - searched).as_secs_f64(),
        std::fs::metadata(&html).unwrap().len()
    );
    drop(page);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Trials of reports/mam/trials.csv, by state.
fn csv_numbers(path: &Path, keep: impl Fn(&csv::StringRecord) -> bool) -> Vec<usize> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let mut out: Vec<usize> = reader
        .records()
        .map(|r| r.unwrap())
        .filter(|r| keep(r))
        .map(|r| r[0].parse().unwrap())
        .collect();
    out.sort_unstable();
    out
}

/// The committed main-job page agrees with its CSV files; `PETS_WRITE_SCREENSHOTS=1` saves its
/// screenshot as reports/mam/index.png (otherwise it goes to a temporary folder).
#[test]
fn the_main_job_report_renders_in_chromium() {
    let reports = Path::new("reports/mam");
    let Some(binary) = chromium_or_skip("the_main_job_report_renders_in_chromium") else {
        return;
    };
    let trials_csv = reports.join("trials.csv");
    let complete = csv_numbers(&trials_csv, |r| &r[3] == "complete");
    let mut reader = csv::Reader::from_path(reports.join("pareto.csv")).unwrap();
    let trial_column = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "trial")
        .expect("a trial column");
    let mut front: Vec<usize> = reader
        .records()
        .map(|r| r.unwrap()[trial_column].parse().unwrap())
        .collect();
    front.sort_unstable();

    let mut page = Browser::launch(&binary, 1280, 1700).expect("start chromium");
    render(&mut page, &reports.join("index.html"));
    assert_eq!(marks(&mut page, "#scatter .point"), complete);
    assert_eq!(marks(&mut page, "#scatter .front-mark"), front);
    let (n, x, y) = uncovered_point(&mut page);
    assert!(front.contains(&n), "members are looked for first");
    let text = tooltip(&mut page, x, y);
    assert!(
        text.contains(&format!("trial {n} · search, on the front")),
        "{text}"
    );
    let shot = if std::env::var_os("PETS_WRITE_SCREENSHOTS").is_some() {
        reports.join("index.png")
    } else {
        std::env::temp_dir().join(format!("pets-mam-index-{}.png", std::process::id()))
    };
    page.screenshot(&shot).expect("screenshot");
    assert!(is_png(&shot));
}

/// A page of 500 complete trials with two-module designs: its size, for the README.
#[test]
fn a_page_of_500_trials_stays_small() {
    let design = |r: usize| {
        Design::from_ron(
            &format!(
                "Design(name: \"d{r}\", modules: [Module(form: Prefix(l: {}), site: AttentionHeads), \
                 Module(form: Bottleneck(r: {r}, activation: Relu), site: Ffn, composition: Some(Scaled(4.0)))])",
                1 + r % 30
            ),
            "t",
        )
        .unwrap()
    };
    let trials: Vec<TrialRow> = (0..500)
        .map(|n| TrialRow {
            id: TrialId(n as i64 + 1),
            number: n,
            kind: if n < 5 {
                TrialKind::Baseline
            } else {
                TrialKind::Search
            },
            label: (n < 5).then(|| "lora".to_string()),
            design: design(n % 200 + 1),
            canonical: format!("{n:064x}"),
            state: TrialState::Complete,
            accuracy: Some(0.7 + (n % 97) as f64 / 1000.0),
            params: Some(10_000 + 173 * n),
            percent: Some(0.04 + n as f64 / 1e4),
            fidelity: if n % 3 == 0 { 214 } else { 107 },
            seed: 0,
            rung: usize::from(n % 3 == 0),
            parent: None,
            started: 1.0e9 + n as f64,
            finished: Some(1.0e9 + n as f64 + 40.0),
            seconds: Some(40.123_456 + n as f64),
            error: None,
            metrics: Some(json!({ "test_accuracy": 0.7 + (n % 89) as f64 / 1000.0 })),
            owner: None,
            attempts: 1,
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("pets-html-500-{}", std::process::id()));
    let ctx = ReportContext {
        study: "big".into(),
        model: "minilm-l6".into(),
        task: "mr".into(),
        budget_params: 112_826,
        backbone_params: 22_565_376,
        command: "pets search --trials 500".into(),
        sampler: "nsga2".into(),
        notes: vec![],
        export_args: vec![],
    };
    write_reports(&dir, &ctx, &trials).unwrap();
    let size = std::fs::metadata(dir.join("index.html")).unwrap().len();
    eprintln!("index.html of 500 trials: {size} bytes");
    assert!(size < 400_000, "{size} bytes");
    let _ = std::fs::remove_dir_all(&dir);
}
