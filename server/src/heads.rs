//! The classifier heads a model was loaded with (`serve --head`), as `/predict` reads them:
//! each one's name, labels, kind, and where its outputs sit among the model's extra outputs.

use gemma_graph::Model;

use crate::config::HeadSpec;

/// A loaded classifier head: where its outputs sit among the model's extra outputs.
#[derive(Clone, Debug)]
pub struct Head {
    pub name: String,
    pub labels: Vec<String>,
    pub softmax: bool,
    /// Offset of its outputs in `Done::extra` (heads one after another).
    pub offset: usize,
}

/// The heads of `model` (after its embedding head), checked against `specs` and labelled.
pub fn heads(model: &Model, specs: &[HeadSpec]) -> Result<Vec<Head>, String> {
    let loaded = &model.heads()[1..];
    if loaded.len() != specs.len() {
        return Err(format!(
            "loaded with {} extra heads, configured with {}",
            loaded.len(),
            specs.len()
        ));
    }
    let mut offset = 0;
    let mut out = Vec::with_capacity(specs.len());
    for (info, spec) in loaded.iter().zip(specs) {
        if info.per_token {
            return Err(format!(
                "head {:?} gives a row per token; /predict needs one per text",
                spec.name
            ));
        }
        let labels = model
            .user_weights()
            .class_labels(&spec.file.display().to_string(), info.dim)
            .map_err(|e| e.to_string())?;
        out.push(Head {
            name: spec.name.clone(),
            labels,
            softmax: spec.softmax,
            offset,
        });
        offset += info.dim;
    }
    Ok(out)
}
