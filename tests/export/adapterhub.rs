//! AdapterHub files: config schema, key names and shapes, and the refusals.

use super::*;

fn adapters_files(
    f: &Fixture,
    design: &Design,
    out: &str,
) -> (serde_json::Value, std::collections::HashMap<String, Tensor>) {
    let model = perturbed(f, design);
    let out = f.dir.join(out);
    let manifest = export_to(f, &model, &out, ExportFormat::Adapters, false).unwrap();
    assert_eq!(manifest.layout, Layout::Adapters);
    let tensors =
        candle_core::safetensors::load(out.join("adapter.safetensors"), &Device::Cpu).unwrap();
    assert!(out.join("head.safetensors").exists());
    let err = error_of(load(f, &out));
    assert!(err.contains("AdapterHub format"), "{err}");
    (json(&out.join("adapter_config.json")), tensors)
}

#[test]
fn bottlenecks_lora_and_prefix_export_under_adapters_names() {
    let f = fixture("adapterhub");
    let (config, tensors) = adapters_files(&f, &preset("pfeiffer"), "pfeiffer");
    assert_eq!(config["version"], "adapters.1.3.0");
    assert_eq!(config["name"], "pfeiffer");
    let bn = &config["config"];
    assert_eq!(bn.get("architecture"), None);
    assert_eq!(bn["output_adapter"], true);
    assert_eq!(bn["mh_adapter"], false);
    assert_eq!(bn["is_parallel"], false);
    assert_eq!(bn["original_ln_before"], false);
    assert_eq!(bn["original_ln_after"], true);
    assert_eq!(bn["residual_before_ln"], true);
    assert_eq!(bn["reduction_factor"], 2); // 48 / 24
    assert_eq!(tensors.len(), 2 * 4);
    let key = "encoder.layer.1.output.adapters.pfeiffer.adapter_down.0.weight";
    assert_eq!(tensors[key].dims(), [24, 48]);

    // LoRA on q and v plus a parallel bottleneck of width 11 (not 48/integer), scale 4.
    let trial = design(
        r#"Design(name: "mam-33badb47", modules: [
        Module(name: Some("attn.q"), form: Lora(r: 5, alpha: 10.0), site: Projection(Query)),
        Module(name: Some("attn.v"), form: Lora(r: 5, alpha: 10.0), site: Projection(Value)),
        Module(name: Some("ffn"), form: Bottleneck(r: 11, activation: Relu), site: Ffn,
               insertion: Parallel, composition: Some(Scaled(4.0))),
    ])"#,
    );
    let (config, tensors) = adapters_files(&f, &trial, "trial");
    assert_eq!(config["name"], "mam_33badb47");
    let parts = &config["config"];
    assert_eq!(parts["architecture"], "union");
    let lora = &parts["configs"][0];
    assert_eq!(lora["architecture"], "lora");
    assert_eq!(lora["attn_matrices"], serde_json::json!(["q", "v"]));
    assert_eq!(
        (lora["r"].clone(), lora["alpha"].clone()),
        (5.into(), 10.0.into())
    );
    let bn = &parts["configs"][1];
    assert_eq!(bn["is_parallel"], true);
    assert_eq!(bn["scaling"], 4.0);
    let rf = bn["reduction_factor"].as_f64().unwrap();
    assert_eq!((48.0 / rf).floor(), 11.0);
    let a = "encoder.layer.0.attention.self.value.loras.mam_33badb47.lora_A";
    assert_eq!(tensors[a].dims(), [5, 48]);
    assert_eq!(tensors.len(), 2 * (2 * 2 + 4));

    // mam: a flat prefix beside the scaled parallel adapter.
    let (config, tensors) = adapters_files(&f, &preset("mam"), "mam");
    let prefix = &config["config"]["configs"][0];
    assert_eq!(prefix["architecture"], "prefix_tuning");
    assert_eq!(prefix["flat"], true);
    let control = "prefix_tuning.prefix_tunings.mam.self_prefix.control_trans";
    assert_eq!(tensors[control].dims(), [8 * 2 * 2 * 48]);
}

#[test]
fn designs_without_an_exact_adapterhub_equivalent_are_refused() {
    let f = fixture("adapterhub-refuse");
    let cases = [
        (preset("houlsby"), "it trains backbone parts [LayerNorms]"),
        (
            preset("unipelt"),
            "module ffn: its gate is per token; AdapterHub's `use_gating` averages",
        ),
        (
            design(
                r#"Design(name: "h", modules: [Module(name: Some("heads"),
                form: Bottleneck(r: 8, activation: Relu), site: AttentionHeads)])"#,
            ),
            "module heads: a per-head bottleneck",
        ),
        (
            design(
                r#"Design(name: "g", modules: [Module(name: Some("q"), form: Lora(r: 2, alpha: 2.0),
                site: Projection(Query), composition: Some(Gated))])"#,
            ),
            "module q: its composition Gated",
        ),
        (preset("ia3"), "module k: IA³ is not mapped to AdapterHub"),
    ];
    for (design, expected) in cases {
        let model = perturbed(&f, &design);
        let out = f.dir.join("refused");
        let err = error_of(export_to(&f, &model, &out, ExportFormat::Adapters, false));
        assert!(
            err.contains("cannot be exported in AdapterHub format") && err.contains(expected),
            "{err}"
        );
        assert!(!out.exists());
    }
}
