//! A study made ready to run, the same for `pets search` and `pets worker`: everything the user
//! typed is checked before the data loads and before any store is touched (a refused command
//! leaves no study behind that the corrected one would clash with); then the task is prepared and
//! the rungs, the baselines fitted to the budget and the report context are derived from it.

use super::fidelity::{schedule, Rung};
use super::plan::StudyPlan;
use super::report::ReportContext;
use super::sampler::check_feasible;
use super::study::{fit_to_budget, settings_fingerprint, Protocol, SearchSettings, DETERMINISM};
use super::{sampler_by_name, Budget, SearchSpace};
use crate::backbone::config::{BackboneShape, BertConfig};
use crate::run::{PreparedTask, RunSettings};
use crate::spec::Design;

pub struct PreparedStudy {
    pub space: SearchSpace,
    pub task: PreparedTask,
    pub shape: BackboneShape,
    /// Trainable parameters a design may have (the budget as a count).
    pub budget_params: usize,
    pub rungs: Vec<Rung>,
    /// Presets fitted to the budget, by name (presets that cannot fit are left out).
    pub baselines: Vec<(String, Design)>,
    pub steps_per_epoch: usize,
    /// The settings stored with the study: every process working on it must share them.
    pub protocol: serde_json::Value,
    pub report: ReportContext,
}

impl PreparedStudy {
    pub fn prepare(
        s: &SearchSettings,
        run: &RunSettings,
        cache: &crate::assets::Cache,
    ) -> crate::Result<PreparedStudy> {
        let space = SearchSpace::from_file(&s.space)?;
        let budget: Budget = s.budget.parse()?;
        sampler_by_name(&s.sampler, s.seed, s.population)?;
        let presets = s
            .baselines
            .iter()
            .map(|name| {
                let path = s.presets_dir.join(format!("{name}.ron"));
                Ok((name.clone(), Design::from_file(&path)?))
            })
            .collect::<crate::Result<Vec<_>>>()?;
        let task = PreparedTask::prepare(run, cache)?;
        let shape = BertConfig::from_file(&task.model_dir.join("config.json"))?.shape();
        let budget_params = budget.limit(shape.backbone_params());
        check_feasible(&space, shape, budget_params)?;
        let steps_per_epoch = task.train.len().div_ceil(run.train.batch_size);
        let full_steps = run.train.epochs * steps_per_epoch;
        let rungs = schedule(full_steps, s.initial, s.eta, s.rungs);
        let mut baselines = Vec::new();
        for (name, preset) in presets {
            match fit_to_budget(&preset, &shape, budget_params) {
                Some(design) => baselines.push((name, design)),
                None => eprintln!(
                    "baseline {name}: no width fits the budget of {budget_params} parameters; skipped"
                ),
            }
        }
        let mut protocol = serde_json::to_value(Protocol::of(run)).unwrap_or_default();
        protocol["search"] = settings_fingerprint(s);
        let rung_text: Vec<String> = rungs
            .iter()
            .map(|r| format!("{}×{} steps", r.candidates, r.steps))
            .collect();
        let report = ReportContext {
            study: s.study.clone(),
            model: run.model.clone(),
            task: task.dataset.name.clone(),
            budget_params,
            backbone_params: shape.backbone_params(),
            command: s.command.clone(),
            sampler: s.sampler.clone(),
            notes: vec![
                format!(
                    "Protocol: {} train / {} dev, max length {}, batch {}, full fidelity {} epochs ({} steps); rungs {}.",
                    task.train.len(),
                    task.dev.len(),
                    run.max_len,
                    run.train.batch_size,
                    run.train.epochs,
                    full_steps,
                    rung_text.join(" → ")
                ),
                DETERMINISM.to_string(),
            ],
        };
        Ok(PreparedStudy {
            space,
            task,
            shape,
            budget_params,
            rungs,
            baselines,
            steps_per_epoch,
            protocol,
            report,
        })
    }

    /// The study's planner: what runs next, decided from its trials alone.
    pub fn plan(&self, s: &SearchSettings, run: &RunSettings) -> StudyPlan<'_> {
        StudyPlan {
            space: &self.space,
            shape: self.shape,
            budget_params: self.budget_params,
            rungs: self.rungs.clone(),
            baselines: self.baselines.clone(),
            sampler: s.sampler.clone(),
            search_seed: s.seed,
            population: s.population,
            train_seed: run.train.seed,
        }
    }
}
