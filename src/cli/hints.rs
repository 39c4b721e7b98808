//! Library errors in the command line's words: an error about a setting names the flag that sets
//! it (`--rungs 65: expected 1 to 8`), where the library names the setting itself (`rungs 65`).

use pets::analyse::AnalyseError;
use pets::bench::BenchError;
use pets::export::ExportError;
use pets::search::SearchError;
use std::error::Error;

/// Prints the error and its causes on stderr, naming flags where the library names settings.
pub fn print(err: &anyhow::Error) {
    eprintln!("error: {}", describe(err.as_ref()));
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {}", describe(cause));
    }
}

/// One error of a chain in the command line's words.
fn describe(err: &(dyn Error + 'static)) -> String {
    flagged(err).unwrap_or_else(|| err.to_string())
}

/// The flag of a setting named by its field (`max_steps` is `--max-steps`).
fn flag(setting: &str) -> String {
    format!("--{}", setting.replace('_', "-"))
}

fn flagged(err: &(dyn Error + 'static)) -> Option<String> {
    if let Some(e) = err.downcast_ref::<pets::Error>() {
        return match e {
            pets::Error::Search(e) => search(e),
            pets::Error::Export(e) => export(e),
            pets::Error::Analyse(e) => analyse(e),
            pets::Error::Bench(e) => bench(e),
            _ => None,
        };
    }
    // Errors the command line got straight from a module, not through `pets::Error`.
    if let Some(e) = err.downcast_ref::<SearchError>() {
        return search(e);
    }
    if let Some(e) = err.downcast_ref::<ExportError>() {
        return export(e);
    }
    err.downcast_ref::<AnalyseError>().and_then(analyse)
}

fn search(e: &SearchError) -> Option<String> {
    Some(match e {
        SearchError::Budget { input } => {
            format!("--budget {input}: expected a percentage like 0.5% or a count like 120k")
        }
        SearchError::Setting {
            setting,
            value,
            expected,
        } => format!("{} {value}: {expected}", flag(setting)),
        SearchError::TooManyRungs {
            rungs,
            eta,
            divisor,
            full_steps,
        } => format!(
            "--rungs {rungs}: with --eta {eta} the cheapest rung would train 1/{divisor} of the \
             {full_steps} full-fidelity steps, less than one; use fewer rungs, a smaller --eta or \
             more steps"
        ),
        _ => return None,
    })
}

fn export(e: &ExportError) -> Option<String> {
    Some(match e {
        ExportError::PeftFolder { path } => format!(
            "{path} is in PEFT format, for Python's peft; export with the default --format pets \
             to predict with pets"
        ),
        ExportError::UnfrozenBackbone { design, parts } => format!(
            "design {design} cannot be exported in PEFT format: it trains backbone parts {parts} \
             (unfreeze), which a LoRA adapter file cannot carry; use --format pets or --merge"
        ),
        ExportError::OutputExists { out } => {
            format!("{out} exists and is not empty; pass --force to replace it")
        }
        ExportError::MergeAndPeft { format } => {
            let flag = if *format == "AdapterHub" {
                "adapters"
            } else {
                "peft"
            };
            format!(
                "--merge writes a full model, --format {flag} only the adapter's tensors: pick one"
            )
        }
        ExportError::NoTrialTensors {
            study,
            trial,
            folder,
        } => format!(
            "trial {trial} of study {study} kept no trained tensors ({folder}); use --retrain"
        ),
        _ => return None,
    })
}

fn analyse(e: &AnalyseError) -> Option<String> {
    Some(match e {
        AnalyseError::LabelMismatch {
            analysed,
            task,
            trained,
            found,
        } => format!(
            "{analysed} was trained on classes {trained:?}, but task {task} has classes {found:?}: \
             pass the task it was trained on (with --text-column/--label-column for a data file)"
        ),
        AnalyseError::BadStd { value } => format!(
            "--stds: {value} is not a usable initial standard deviation (it must be finite and > 0)"
        ),
        AnalyseError::NoStds => "--stds: give at least one standard deviation".into(),
        AnalyseError::NoSeeds => "--seeds must be at least 1".into(),
    })
}

fn bench(e: &BenchError) -> Option<String> {
    match e {
        BenchError::Spawn {
            python,
            script,
            source,
        } => Some(format!(
            "cannot start the reference `{python} {script}`: {source}. Run scripts/bench-setup.sh, \
             or pass --python with an interpreter that has torch"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(err: impl Into<pets::Error>) -> String {
        let err: anyhow::Error = err.into().into();
        describe(err.as_ref())
    }

    #[test]
    fn settings_are_named_by_their_flags() {
        let setting = SearchError::Setting {
            setting: "max_steps",
            value: "0".into(),
            expected: "expected at least 1".into(),
        };
        assert_eq!(setting.to_string(), "max_steps 0: expected at least 1");
        assert_eq!(text(setting), "--max-steps 0: expected at least 1");
        let budget = SearchError::Budget {
            input: "half".into(),
        };
        assert!(text(budget).starts_with("--budget half: expected"));
        let exists = ExportError::OutputExists { out: "x".into() };
        assert_eq!(
            text(exists),
            "x exists and is not empty; pass --force to replace it"
        );
    }

    #[test]
    fn other_errors_keep_the_library_text() {
        let exhausted = SearchError::Exhausted {
            space: "s".into(),
            attempts: 3,
        };
        let library = exhausted.to_string();
        assert_eq!(text(exhausted), library);
    }
}
