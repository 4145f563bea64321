//! The gRPC API (`grpc_addr`) through tonic's generated client, over the real model: what the
//! Python grpcio test (server/clients) does not reach — a model chosen by `x-model` metadata,
//! `Predict` over a classifier head, and an unknown model's status.

mod common;

use common::*;
use gg_server::{HeadSpec, ServeConfig};

#[allow(clippy::all, dead_code)]
mod pb {
    tonic::include_proto!("tei.v1");
}

fn with<T>(mut request: tonic::Request<T>, key: &'static str, value: &str) -> tonic::Request<T> {
    request.metadata_mut().insert(key, value.parse().unwrap());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_by_metadata_and_predict() {
    use gemma_graph::{LinearHead, Model, ModelOptions, Precision, SentenceTransformersHead};
    // A classifier head (3 classes), loaded with both models.
    let labels = ["bread", "cats", "markets"];
    let weight: Vec<f32> = (0..3 * 768)
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.1)
        .collect();
    let header = serde_json::json!({
        "__metadata__": {"labels": serde_json::to_string(&labels).unwrap()},
        "weight": {"dtype": "F32", "shape": [3, 768], "data_offsets": [0, weight.len() * 4]},
    })
    .to_string();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.extend(weight.iter().flat_map(|x| x.to_le_bytes()));
    let file = std::env::temp_dir().join(format!("gg-grpc-head-{}.safetensors", std::process::id()));
    std::fs::write(&file, bytes).unwrap();
    let head = LinearHead {
        name: "topic".into(),
        bias: None,
        softmax: false,
        ..LinearHead::classifier(&file)
    };
    let load = |precision| {
        let options = ModelOptions {
            precision,
            ..ModelOptions::default()
        };
        std::sync::Arc::new(
            Model::load_heads(
                gemma_graph::default_model_path(),
                &options,
                &[&SentenceTransformersHead, &head],
            )
            .unwrap(),
        )
    };
    let (fast, exact) = (load(Precision::Fast), load(Precision::Exact));
    let config = ServeConfig {
        grpc_addr: Some("127.0.0.1:0".parse().unwrap()),
        heads: vec![HeadSpec {
            name: "topic".into(),
            file: file.clone(),
            softmax: false,
        }],
        ..ServeConfig::default()
    };
    let server = gg_server::Server::bind_models(
        vec![
            ("fast".into(), std::sync::Arc::clone(&fast)),
            ("exact".into(), std::sync::Arc::clone(&exact)),
        ],
        config,
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let (http, grpc) = (server.local_addr().unwrap(), server.grpc_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    for _ in 0..600 {
        if get(http, "/health").await.status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let text = "How do I bake bread?";
    let mut embed = pb::embed_client::EmbedClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let request = || {
        tonic::Request::new(pb::EmbedRequest {
            inputs: text.into(),
            normalize: true,
            ..Default::default()
        })
    };
    let library = |m: &Model| m.embed(&[text], &Default::default()).unwrap();
    let got = embed.embed(request()).await.unwrap().into_inner().embeddings;
    assert_eq!(got, library(&fast).vector(0), "no x-model: the first model");
    let got = embed
        .embed(with(request(), "x-model", "exact"))
        .await
        .unwrap()
        .into_inner()
        .embeddings;
    assert_eq!(got, library(&exact).vector(0), "x-model: exact");
    let e = embed.embed(with(request(), "x-model", "nope")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert!(e.message().contains("fast, exact"), "{}", e.message());
    // Predict: the head's logits (raw scores), best first, with their labels.
    let mut predict = pb::predict_client::PredictClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let r = predict
        .predict(with(
            tonic::Request::new(pb::PredictRequest {
                inputs: text.into(),
                raw_scores: true,
                ..Default::default()
            }),
            "x-model",
            "exact",
        ))
        .await
        .unwrap()
        .into_inner();
    let logits = library(&exact).head(1, 0).to_vec();
    let mut want: Vec<(f32, &str)> = logits.iter().copied().zip(labels).collect();
    want.sort_by(|a, b| b.0.total_cmp(&a.0));
    let got: Vec<(f32, &str)> = r.predictions.iter().map(|p| (p.score, p.label.as_str())).collect();
    assert_eq!(got, want);
    assert!(r.metadata.unwrap().compute_tokens > 2);
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
