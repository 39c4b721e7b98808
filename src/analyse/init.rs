//! Initialisation sweep (Houlsby et al., 2019, Fig. 6): the same design retrained with every
//! module weight drawn from N(0, std²) for a range of stds, a few seeds each. The runs are the
//! unified-view study's (`science::runner`: `pets train` children, resumable), one entry per std.

use super::subject::InitOptions;
use super::AnalyseError;
use crate::assets::Cache;
use crate::run::RunMetrics;
use crate::science::plan::Entry;
use crate::science::report::collect;
use crate::science::runner::{jobs, run_all, ChildRuns, RunSummary, RunnerOptions};
use crate::science::stats::Spread;
use crate::science::unified::RunsOutcome;
use crate::spec::{Design, Init, Module};

/// One point of the sweep: a std (or the design's own init) and the seeds that finished.
#[derive(Debug, Clone)]
pub struct InitPoint {
    /// `None`: the design as written (its own `init`, which the sweep does not cover).
    pub std: Option<f64>,
    /// The design as written uses exactly this std on every module.
    pub own: bool,
    /// (seed, best-epoch dev accuracy) of each finished run.
    pub runs: Vec<(u64, f64)>,
    pub spread: Option<Spread>,
}

/// Everything the report needs.
#[derive(Debug, Clone)]
pub struct InitSweep {
    /// The design as written.
    pub design: Design,
    pub model: String,
    pub task: String,
    pub epochs: usize,
    pub seeds: Vec<u64>,
    pub max_steps: Option<usize>,
    pub points: Vec<InitPoint>,
    /// Devices the runs were measured on (from their metrics).
    pub devices: Vec<String>,
}

/// `design` with every module's weights starting N(0, std²), renamed after the std.
pub fn with_init_std(design: &Design, std: f64) -> Design {
    let mut d = design.clone();
    for m in &mut d.modules {
        m.init = Init::Normal(std as f32);
    }
    d.name = format!("{}-std{std:e}", design.name);
    d
}

/// The std every module of the design as written uses, if they share one `Normal` init.
fn own_std(design: &Design) -> Option<f32> {
    let mut inits = design.modules.iter().map(|m| m.init);
    match inits.next()? {
        Init::Normal(s) if inits.all(|i| i == Init::Normal(s)) => Some(s),
        _ => None,
    }
}

/// What `Init::Normal(std)` sets in one module, and what the module starts from as written.
pub fn sweep_effect(module: &Module) -> String {
    let method = module.method();
    format!(
        "{}; as written: {}",
        method.sweep_words(),
        method.init_words(module.init)
    )
}

/// The runs of the sweep: one entry per std (plus the design as written when its init is not
/// one of them), each with `seeds` seeds.
fn entries(args: &InitOptions, design: &Design) -> Result<Vec<(Option<f64>, Entry)>, AnalyseError> {
    if args.stds.is_empty() {
        return Err(AnalyseError::NoStds);
    }
    if let Some(&value) = args.stds.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(AnalyseError::BadStd { value });
    }
    if args.seeds == 0 {
        return Err(AnalyseError::NoSeeds);
    }
    // Smoke runs cut by --max-steps live in folders of their own: a full sweep must not reuse
    // them (with one epoch their metrics would otherwise look finished).
    let steps = args
        .max_steps
        .map_or(String::new(), |s| format!("-steps{s}"));
    let entry = |design: Design, label: String| Entry {
        section: "init".into(),
        task: args.task.task.clone(),
        columns: args.task.columns(),
        label: format!("{label}{steps}"),
        preset: design.name.clone(),
        budget: None,
        design,
        epochs: args.epochs,
        seeds: (0..args.seeds).collect(),
    };
    let mut out: Vec<(Option<f64>, Entry)> = args
        .stds
        .iter()
        .map(|&std| {
            let d = with_init_std(design, std);
            (Some(std), entry(d.clone(), d.name))
        })
        .collect();
    let covered = own_std(design).is_some_and(|s| args.stds.iter().any(|&x| x as f32 == s));
    if !covered {
        out.push((
            None,
            entry(design.clone(), format!("{}-own-init", design.name)),
        ));
    }
    Ok(out)
}

/// Trains what is missing of the sweep (unless `report_only`), then writes the report.
pub fn run_sweep(
    args: &InitOptions,
    cache: &Cache,
    threads: Option<usize>,
) -> crate::Result<RunsOutcome> {
    let design = Design::from_file(&args.design)?;
    let planned = entries(args, &design)?;
    // Fails early (before any child starts) on an unknown model or task.
    cache.model_dir(&args.model)?;
    crate::data::load_task(
        &args.task.source(),
        cache,
        &crate::data::SplitOptions::default(),
    )?;
    let list: Vec<Entry> = planned.iter().map(|(_, e)| e.clone()).collect();
    let child = ChildRuns::prepare(&args.model, &list, args.max_steps, cache)?;
    let mut summary = RunSummary::default();
    if !args.report_only {
        let options = RunnerOptions::children(
            &args.model,
            &args.runs,
            args.jobs,
            threads,
            args.device,
            args.max_steps,
        )?;
        summary = run_all(&jobs(&list, &args.runs, &child), &options);
    }
    let rows = collect(&list, &args.runs, &child);
    let own = own_std(&design);
    let mut devices: Vec<String> = rows
        .iter()
        .flat_map(|r| r.runs.iter().map(|m| m.device.clone()))
        .collect();
    devices.sort();
    devices.dedup();
    let points = planned
        .iter()
        .zip(&rows)
        .map(|((std, _), row)| InitPoint {
            std: *std,
            own: std.is_some_and(|s| own == Some(s as f32)),
            runs: row
                .runs
                .iter()
                .map(|m: &RunMetrics| (m.seed, m.accuracy))
                .collect(),
            spread: row.spread.clone(),
        })
        .collect();
    let sweep = InitSweep {
        model: args.model.clone(),
        task: args.task.task.clone(),
        epochs: args.epochs,
        seeds: (0..args.seeds).collect(),
        max_steps: args.max_steps,
        points,
        devices,
        design,
    };
    let report = sweep.write(&args.reports, &args.command)?;
    Ok(RunsOutcome {
        trained: summary.trained,
        reused: summary.reused,
        failed: summary.failed,
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyse::subject::TaskOptions;
    use crate::spec::shipped_preset;
    use std::path::PathBuf;

    fn args(stds: &[f64]) -> InitOptions {
        InitOptions {
            design: PathBuf::from("d.ron"),
            task: TaskOptions {
                task: "mr".into(),
                text_column: None,
                label_column: None,
            },
            model: "minilm-l6".into(),
            stds: stds.to_vec(),
            seeds: 2,
            epochs: 1,
            jobs: 1,
            device: crate::device::DeviceKind::Cpu,
            max_steps: None,
            runs: PathBuf::from("runs"),
            reports: PathBuf::from("reports"),
            report_only: false,
            command: "pets analyse init".into(),
        }
    }

    #[test]
    fn every_module_gets_the_std_and_the_own_init_is_added_only_when_not_swept() {
        let mam = shipped_preset("mam");
        let planned = entries(&args(&[1e-3, 1e-1]), &mam).expect("entries");
        let labels: Vec<&str> = planned.iter().map(|(_, e)| e.label.as_str()).collect();
        assert_eq!(labels, ["mam-std1e-3", "mam-std1e-1", "mam-own-init"]);
        let (_, first) = &planned[0];
        assert!(first
            .design
            .modules
            .iter()
            .all(|m| m.init == Init::Normal(1e-3)));
        assert_eq!(first.seeds, vec![0, 1]);
        assert_eq!(planned[2].1.design, mam);

        // Houlsby's own init is N(0, 1e-3²): the 1e-3 point is it, no extra entry.
        let houlsby = shipped_preset("houlsby");
        assert_eq!(own_std(&houlsby), Some(1e-3));
        assert_eq!(
            entries(&args(&[1e-3, 1e-1]), &houlsby).expect("ok").len(),
            2
        );
        let mut smoke = args(&[1e-2]);
        smoke.max_steps = Some(5);
        assert_eq!(
            entries(&smoke, &houlsby).expect("ok")[0].1.label,
            "houlsby-std1e-2-steps5"
        );
    }

    #[test]
    fn unusable_stds_and_seeds_are_refused() {
        let d = shipped_preset("lora");
        for (stds, want) in [(vec![], "at least one"), (vec![1e-3, 0.0], " 0 is not")] {
            let err = entries(&args(&stds), &d).expect_err("refused");
            assert!(err.to_string().contains(want), "{err}");
        }
        let mut none = args(&[1e-3]);
        none.seeds = 0;
        assert!(matches!(entries(&none, &d), Err(AnalyseError::NoSeeds)));
        assert!(sweep_effect(&d.modules[0]).contains("A and B ~ N(0, std²)"));
    }
}
