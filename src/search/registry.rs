//! The sampler registry: the samplers pets has, by name, as a search setting parses them, and
//! a fresh sampler of each kind.

use super::error::SearchError;
use super::sampler::{Nsga2Sampler, RandomSampler, Sampler};

/// The samplers pets has: the registry a sampler setting is parsed against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SamplerKind {
    /// Uniform draws from the space: the baseline.
    Random,
    /// NSGA-II over accuracy and trainable parameters (the default).
    #[default]
    Nsga2,
}

impl SamplerKind {
    /// Every sampler, in the order errors list them.
    pub const ALL: [SamplerKind; 2] = [SamplerKind::Random, SamplerKind::Nsga2];

    /// The sampler's name (as [`Sampler::name`] gives it and studies store it).
    pub fn name(self) -> &'static str {
        match self {
            SamplerKind::Random => "random",
            SamplerKind::Nsga2 => "nsga2",
        }
    }

    /// A fresh sampler of this kind; `population` is NSGA-II's (random ignores it).
    pub fn build(self, seed: u64, population: usize) -> Box<dyn Sampler + Send> {
        match self {
            SamplerKind::Random => Box::new(RandomSampler::new(seed)),
            SamplerKind::Nsga2 => Box::new(Nsga2Sampler::new(seed, population)),
        }
    }
}

impl std::str::FromStr for SamplerKind {
    type Err = SearchError;

    /// A sampler's name, in any case; NSGA-II also as `nsga-ii` or `nsgaii`.
    fn from_str(name: &str) -> Result<SamplerKind, SearchError> {
        match name.to_ascii_lowercase().as_str() {
            "random" => Ok(SamplerKind::Random),
            "nsga2" | "nsga-ii" | "nsgaii" => Ok(SamplerKind::Nsga2),
            _ => Err(SearchError::UnknownSampler {
                name: name.to_string(),
                known: SAMPLERS,
            }),
        }
    }
}

impl std::fmt::Display for SamplerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The names of [`SamplerKind::ALL`], as errors list them.
pub const SAMPLERS: &str = "random, nsga2";

/// The sampler of this name (see [`SamplerKind`]'s `from_str`).
pub fn sampler_by_name(
    name: &str,
    seed: u64,
    population: usize,
) -> Result<Box<dyn Sampler + Send>, SearchError> {
    Ok(name.parse::<SamplerKind>()?.build(seed, population))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_listed_and_builds_its_sampler() {
        let names: Vec<&str> = SamplerKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.join(", "), SAMPLERS);
        for kind in SamplerKind::ALL {
            assert_eq!(kind.build(1, 8).name(), kind.name());
            assert_eq!(kind.to_string().parse::<SamplerKind>().ok(), Some(kind));
        }
    }
}
