//! `GET /openapi.json`: the HTTP API described from the routes' own request and response types
//! (utoipa's derives on them and the `#[utoipa::path]` on each handler), so it cannot drift
//! from what the handlers parse.

use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "gemma-graph",
        description = "EmbeddingGemma embeddings: OpenAI's, TEI's and Ollama's APIs (docs/server.md)."
    ),
    paths(
        crate::openai::embeddings,
        crate::openai::models,
        crate::tei::embed,
        crate::tei::tokenize,
        crate::tei::info,
        crate::tei_text::decode,
        crate::tei_text::similarity,
        crate::predict::predict,
        crate::embed_all::embed_all,
        crate::ollama::embed,
        crate::ollama::embeddings,
        crate::status::health,
        crate::status::metrics_text,
        openapi_json,
    )
)]
pub struct ApiDoc;

#[utoipa::path(get, path = "/openapi.json", tag = "server", responses((status = 200, description = "this document")))]
pub async fn openapi_json() -> Response {
    Json(ApiDoc::openapi()).into_response()
}
