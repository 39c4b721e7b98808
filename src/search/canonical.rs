//! The canonical hash of a design: what it trains, whatever its modules are called, so a study
//! recognises duplicates.

use crate::spec::{BackbonePart, Design, Layers};
use sha2::{Digest, Sha256};

/// A stable hex SHA-256 of what a design trains: module and design names removed, compositions,
/// prefix insertion and layer sets written one way, modules and unfrozen parts in a stable order.
/// Duplicates share it whatever they are called. (`All` and an explicit full range differ: the
/// hash knows no layer count.)
pub fn canonical(design: &Design) -> String {
    let mut modules: Vec<String> = design
        .modules
        .iter()
        .map(|m| {
            let mut m = m.clone();
            m.name = None;
            m.composition = Some(m.effective_composition());
            m.layers = match &m.layers {
                Layers::All => Layers::All,
                Layers::Range(a, b) => Layers::List((*a..=*b).collect()),
                Layers::List(v) => Layers::List(sorted(v)),
                Layers::AllExcept(v) if v.is_empty() => Layers::All,
                Layers::AllExcept(v) => Layers::AllExcept(sorted(v)),
            };
            crate::spec::ron_options()
                .to_string(&m)
                .unwrap_or_else(|_| format!("{m:?}"))
        })
        .collect();
    modules.sort();
    let mut unfreeze = design.unfreeze.clone();
    if unfreeze.contains(&BackbonePart::All) {
        unfreeze = vec![BackbonePart::All];
    }
    unfreeze.sort_by_key(|p| *p as u8);
    unfreeze.dedup();
    let text = format!(
        "modules {modules:?} unfreeze {unfreeze:?} learning_rate {:?}",
        design.learning_rate
    );
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sorted(v: &[usize]) -> Vec<usize> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Composition;

    const MAM: &str = r#"Design(name: "mam", modules: [
        Module(name: Some("prefix"), form: Prefix(l: 8), site: AttentionHeads, layers: Range(0, 2)),
        Module(name: Some("ffn"), form: Bottleneck(r: 16, activation: Relu), site: Ffn,
               composition: Some(Scaled(4.0))),
    ], unfreeze: [LayerNorms, Biases])"#;

    fn mam() -> Design {
        Design::from_ron(MAM, "mam").unwrap()
    }

    #[test]
    fn ignores_names_order_and_equivalent_spellings() {
        let a = mam();
        let mut b = mam();
        b.name = "other".into();
        b.modules.reverse();
        b.modules[0].name = None;
        b.modules[1].name = Some("p".into());
        b.modules[1].layers = Layers::List(vec![2, 1, 0, 1]);
        b.modules[1].composition = Some(Composition::Gated);
        b.unfreeze = vec![
            BackbonePart::Biases,
            BackbonePart::LayerNorms,
            BackbonePart::Biases,
        ];
        let h = canonical(&a);
        assert_eq!(h.len(), 64);
        assert!(h.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(canonical(&b), h);
        // Default composition equals the explicit one: Add for a bottleneck.
        let mut c = mam();
        c.modules[1].composition = None;
        let mut d = mam();
        d.modules[1].composition = Some(Composition::Add);
        assert_eq!(canonical(&c), canonical(&d));
    }

    /// The hash a stored study holds for the lora preset (studies/pets.sqlite of reports/mam/,
    /// written before forms became method configs): stores stay resumable across that change.
    #[test]
    fn is_stable_across_the_move_of_forms_into_method_configs() {
        let lora = crate::spec::shipped_preset("lora");
        assert_eq!(
            canonical(&lora),
            "e3d1b0311266204eec8c59c779e44fd98fc6f66a6cea370904d73615900aa256"
        );
    }

    #[test]
    fn changes_with_what_is_trained() {
        let h = canonical(&mam());
        let mut wider = mam();
        wider.modules[1].form = wider.modules[1].form.method().with_width(17);
        let mut scaled = mam();
        scaled.modules[1].composition = Some(Composition::Scaled(2.0));
        let mut layers = mam();
        layers.modules[0].layers = Layers::Range(0, 3);
        let mut frozen = mam();
        frozen.unfreeze.clear();
        let mut lr = mam();
        lr.learning_rate = Some(1e-3);
        for (what, d) in [
            ("width", wider),
            ("composition", scaled),
            ("layers", layers),
            ("unfreeze", frozen),
            ("learning rate", lr),
        ] {
            assert_ne!(canonical(&d), h, "{what}");
        }
    }
}
