//! Trainable tensors of a compiled design: seeded initialisation and the named store of vars.

use candle_core::{Device, Result, Tensor, Var};
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

/// How one tensor starts.
#[derive(Debug, Clone, Copy)]
pub enum Fill {
    Zeros,
    Const(f32),
    /// U(-b, b)
    Uniform(f32),
    /// N(0, std²)
    Normal(f32),
    /// N(mean, std²)
    NormalAround(f32, f32),
}

/// The named trainable vars of a design (and its head). Names are stable: they key saved tensors.
pub struct ParamStore {
    seed: u64,
    device: Device,
    vars: BTreeMap<String, Var>,
}

impl ParamStore {
    pub fn new(seed: u64, device: &Device) -> Self {
        ParamStore {
            seed,
            device: device.clone(),
            vars: BTreeMap::new(),
        }
    }

    /// Creates a var. Each tensor's random stream depends only on the seed and its name, so
    /// adding a module never changes another module's initial values.
    pub fn var(&mut self, name: &str, shape: &[usize], fill: Fill) -> Result<Tensor> {
        let count: usize = shape.iter().product();
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed ^ fnv1a(name));
        let values: Vec<f32> = match fill {
            Fill::Zeros => vec![0.0; count],
            Fill::Const(c) => vec![c; count],
            Fill::Uniform(b) => (0..count).map(|_| rng.random_range(-b..=b)).collect(),
            Fill::Normal(std) => (0..count)
                .map(|_| std * standard_normal(&mut rng))
                .collect(),
            Fill::NormalAround(mean, std) => (0..count)
                .map(|_| mean + std * standard_normal(&mut rng))
                .collect(),
        };
        let var = Var::from_tensor(&Tensor::from_vec(values, shape, &self.device)?)?;
        let tensor = var.as_tensor().clone();
        self.vars.insert(name.to_string(), var);
        Ok(tensor)
    }

    /// Registers an existing var (an unfrozen backbone tensor) under its name.
    pub fn adopt(&mut self, name: &str, var: Var) {
        self.vars.insert(name.to_string(), var);
    }

    pub fn vars(&self) -> Vec<Var> {
        self.vars.values().cloned().collect()
    }

    pub fn named(&self) -> &BTreeMap<String, Var> {
        &self.vars
    }

    pub fn count(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
    }

    /// Copies values saved earlier (by name) into the vars; every var must be present.
    pub fn load(
        &self,
        tensors: &std::collections::HashMap<String, Tensor>,
    ) -> std::result::Result<(), String> {
        for (name, var) in &self.vars {
            let t = tensors
                .get(name)
                .ok_or_else(|| format!("missing tensor {name}"))?;
            if t.dims() != var.dims() {
                return Err(format!(
                    "tensor {name}: shape {:?}, expected {:?}",
                    t.dims(),
                    var.dims()
                ));
            }
            var.set(&t.to_device(var.device()).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        let map: std::collections::HashMap<String, Tensor> = self
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        candle_core::safetensors::save(&map, path)
    }
}

fn standard_normal(rng: &mut impl Rng) -> f32 {
    // Box–Muller: rand 0.9 alone has no normal distribution.
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_and_name_give_same_values() -> Result<()> {
        let mut a = ParamStore::new(3, &Device::Cpu);
        let mut b = ParamStore::new(3, &Device::Cpu);
        b.var("other", &[4], Fill::Normal(1.0))?;
        let x: Vec<f32> = a.var("w", &[8], Fill::Uniform(0.5))?.to_vec1()?;
        let y: Vec<f32> = b.var("w", &[8], Fill::Uniform(0.5))?.to_vec1()?;
        assert_eq!(x, y);
        assert!(x.iter().all(|v| v.abs() <= 0.5));
        assert_eq!(b.count(), 12);
        Ok(())
    }

    #[test]
    fn normal_fill_has_the_requested_spread() -> Result<()> {
        let mut s = ParamStore::new(0, &Device::Cpu);
        let v: Vec<f32> = s.var("n", &[20000], Fill::Normal(0.1))?.to_vec1()?;
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32;
        assert!(mean.abs() < 0.005, "{mean}");
        assert!((var.sqrt() - 0.1).abs() < 0.005, "{}", var.sqrt());
        Ok(())
    }
}
