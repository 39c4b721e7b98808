//! Gold labels of `predict --evaluate` matched to an adapter's classes: by name, by number, or by
//! the labels the training task's source gave the same classes; and what an error says otherwise.

/// The index of `label` among `names`: exact text, else equal numbers ("1" and "1.0").
fn label_index(names: &[String], label: &str) -> Option<usize> {
    names.iter().position(|n| n == label).or_else(|| {
        let value = label.parse::<f64>().ok()?;
        names
            .iter()
            .position(|n| n.parse::<f64>().ok() == Some(value))
    })
}

/// The class of a gold label: one of the adapter's names, else one of the labels the training
/// task's source gave the same classes (`source`, in head order: mr's `0` and `1`).
pub(super) fn gold_index(names: &[String], source: &[String], label: &str) -> Option<usize> {
    label_index(names, label).or_else(|| label_index(source, label))
}

/// What the error adds for a label neither the names nor the source labels know: the source
/// labels when recorded, else how the adapter's classes are numbered, so a file of indices can
/// be rewritten.
pub(super) fn label_hint(names: &[String], source: &[String], label: &str) -> String {
    if !source.is_empty() && source != names {
        return format!(
            " nor one of its task's source labels ({})",
            source.join(", ")
        );
    }
    if label.parse::<f64>().is_err() {
        return String::new();
    }
    let order: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{i} → {n}"))
        .collect();
    format!(
        "; the adapter records no numbering of its classes: if the file numbers them in the \
         adapter's order, rewrite its labels as {}",
        order.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_match_by_text_then_by_number() {
        let names = ["0".to_string(), "1".to_string()];
        assert_eq!(label_index(&names, "1"), Some(1));
        assert_eq!(label_index(&names, "1.0"), Some(1));
        assert_eq!(label_index(&names, "2"), None);
        let words = ["neg".to_string(), "pos".to_string()];
        assert_eq!(label_index(&words, "pos"), Some(1));
        assert_eq!(label_index(&words, "Pos"), None);
    }

    #[test]
    fn source_labels_are_accepted_and_a_missing_mapping_says_how_to_map() {
        let names = ["negative".to_string(), "positive".to_string()];
        let source = ["0".to_string(), "1".to_string()];
        assert_eq!(gold_index(&names, &source, "positive"), Some(1));
        assert_eq!(gold_index(&names, &source, "0"), Some(0));
        assert_eq!(gold_index(&names, &source, "1.0"), Some(1));
        assert_eq!(gold_index(&names, &[], "1"), None);
        assert_eq!(
            label_hint(&names, &source, "2"),
            " nor one of its task's source labels (0, 1)"
        );
        assert_eq!(
            label_hint(&names, &[], "1"),
            "; the adapter records no numbering of its classes: if the file numbers them in the \
             adapter's order, rewrite its labels as 0 → negative, 1 → positive"
        );
        assert_eq!(label_hint(&names, &names, "meh"), "");
    }
}
