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

#[test]
fn ia3_designs_export_as_peft_ia3() {
    let f = fixture("peft-ia3");
    let model = perturbed(&f, &preset("ia3"));
    let out = f.dir.join("peft");
    let manifest = export_to(&f, &model, &out, ExportFormat::Peft, false).unwrap();
    assert_eq!(manifest.layout, Layout::Peft);
    let config: serde_json::Value = json(&out.join("adapter_config.json"));
    assert_eq!(config["peft_type"], "IA3");
    let layer = |l: usize, m: &str| format!("encoder.layer.{l}.{m}");
    let mut targets = Vec::new();
    for l in 0..2 {
        for m in ["attention.self.key", "attention.self.value", "output.dense"] {
            targets.push(layer(l, m));
        }
    }
    assert_eq!(config["target_modules"], serde_json::json!(targets));
    let ffn = [layer(0, "output.dense"), layer(1, "output.dense")];
    assert_eq!(config["feedforward_modules"], serde_json::json!(ffn));
    let tensors =
        candle_core::safetensors::load(out.join("adapter_model.safetensors"), &Device::Cpu)
            .unwrap();
    assert_eq!(tensors.len(), 6);
    let key = |m: &str| format!("base_model.model.{}.ia3_l", layer(1, m));
    assert_eq!(tensors[&key("attention.self.key")].dims(), [48, 1]);
    let d_ffn = model.encoder.shape().ffn;
    assert_eq!(tensors[&key("output.dense")].dims(), [1, d_ffn]);
    let ours = model.store.named()["ffn.layer1.ia3_l"].as_tensor().clone();
    let theirs = tensors[&key("output.dense")].flatten_all().unwrap();
    let diff = (ours - theirs).unwrap().abs().unwrap().max_all().unwrap();
    assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);

    // Two vectors on one Linear (the FFN output and its input are both output.dense's).
    let twice = design(
        r#"Design(name: "t", modules: [
        Module(name: Some("act"), form: Ia3, site: FfnActivation, insertion: Sequential),
        Module(name: Some("out"), form: Ia3, site: Ffn, insertion: Sequential),
    ])"#,
    );
    let model = perturbed(&f, &twice);
    let err = error_of(export_to(
        &f,
        &model,
        &f.dir.join("t"),
        ExportFormat::Peft,
        false,
    ));
    assert!(
        err.contains("module out: another IA³ vector already rescales"),
        "{err}"
    );
    // IA³ next to LoRA is no single PEFT adapter.
    let mixed = design(
        r#"Design(name: "x", modules: [
        Module(name: Some("k"), form: Ia3, site: Projection(Key), insertion: Sequential),
        Module(name: Some("q"), form: Lora(r: 2, alpha: 2.0), site: Projection(Query)),
    ])"#,
    );
    let model = perturbed(&f, &mixed);
    let err = error_of(export_to(
        &f,
        &model,
        &f.dir.join("x"),
        ExportFormat::Peft,
        false,
    ));
    assert!(err.contains("module k: it is a ia3 module"), "{err}");
}
