//! PEFT files: key names, shapes, config fields and patterns.

use super::*;

#[test]
fn peft_files_use_peft_names_and_shapes() {
    let f = fixture("peft");
    let model = perturbed(&f, &preset("lora"));
    let out = f.dir.join("peft");
    let manifest = export_to(&f, &model, &out, ExportFormat::Peft, false).unwrap();
    assert_eq!(manifest.layout, Layout::Peft);
    let config: serde_json::Value = json(&out.join("adapter_config.json"));
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["r"], 12);
    assert_eq!(config["lora_alpha"], 24.0);
    assert_eq!(
        config["target_modules"],
        serde_json::json!(["query", "value"])
    );
    assert_eq!(config["bias"], "none");
    assert_eq!(config["fan_in_fan_out"], false);
    assert_eq!(config["lora_dropout"], 0.0);
    let base = std::fs::canonicalize(&f.model).unwrap();
    assert_eq!(
        config["base_model_name_or_path"],
        base.display().to_string()
    );
    let tensors =
        candle_core::safetensors::load(out.join("adapter_model.safetensors"), &Device::Cpu)
            .unwrap();
    assert_eq!(tensors.len(), 2 * 2 * 2);
    for layer in 0..2 {
        for proj in ["query", "value"] {
            let key = |part: &str| {
                format!(
                    "base_model.model.encoder.layer.{layer}.attention.self.{proj}.{part}.weight"
                )
            };
            assert_eq!(tensors[&key("lora_A")].dims(), [12, 48]);
            assert_eq!(tensors[&key("lora_B")].dims(), [48, 12]);
            let ours = model.store.named()[&format!("{}.layer{layer}.lora_B.weight", &proj[..1])]
                .as_tensor()
                .clone();
            let diff = (ours - &tensors[&key("lora_B")])
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap();
            assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
        }
    }
    let head = candle_core::safetensors::load(out.join("head.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(head["head.weight"].dims(), [2, 48]);
    let err = error_of(load(&f, &out));
    assert!(err.contains("PEFT format"), "{err}");

    // Different ranks and a scaled FFN-output LoRA: patterns and full module paths.
    let mixed = design(
        r#"Design(name: "m", modules: [
        Module(name: Some("q"), form: Lora(r: 4, alpha: 8.0), site: Projection(Query)),
        Module(name: Some("o"), form: Lora(r: 2, alpha: 2.0), site: Projection(FfnOut),
               composition: Some(Scaled(3.0)), layers: List([1])),
    ])"#,
    );
    let model = perturbed(&f, &mixed);
    let out = f.dir.join("peft-mixed");
    export_to(&f, &model, &out, ExportFormat::Peft, false).unwrap();
    let config: serde_json::Value = json(&out.join("adapter_config.json"));
    assert_eq!(config["r"], 4);
    assert_eq!(config["lora_alpha"], 8.0);
    let targets = serde_json::json!([
        "encoder.layer.0.attention.self.query",
        "encoder.layer.1.attention.self.query",
        "encoder.layer.1.output.dense"
    ]);
    assert_eq!(config["target_modules"], targets);
    assert_eq!(
        config["rank_pattern"],
        serde_json::json!({"layer.1.output.dense": 2})
    );
    assert_eq!(
        config["alpha_pattern"],
        serde_json::json!({"layer.1.output.dense": 6.0})
    );
}
