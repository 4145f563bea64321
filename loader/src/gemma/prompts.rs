//! What EmbeddingGemma was trained with beyond its weights: the task prompts (its
//! sentence-transformers config) and the Matryoshka sizes its vectors keep their meaning at.

/// The task prompts, by sentence-transformers name.
pub const PROMPTS: &[(&str, &str)] = &[
    ("query", "task: search result | query: "),
    ("document", "title: none | text: "),
    ("BitextMining", "task: search result | query: "),
    ("Clustering", "task: clustering | query: "),
    ("Classification", "task: classification | query: "),
    ("InstructionRetrieval", "task: code retrieval | query: "),
    ("MultilabelClassification", "task: classification | query: "),
    ("PairClassification", "task: sentence similarity | query: "),
    ("Reranking", "task: search result | query: "),
    ("Retrieval", "task: search result | query: "),
    ("Retrieval-query", "task: search result | query: "),
    ("Retrieval-document", "title: none | text: "),
    ("STS", "task: sentence similarity | query: "),
    ("Summarization", "task: summarization | query: "),
];

/// The output sizes EmbeddingGemma is trained for (a prefix of the vector, re-normalized).
pub const MATRYOSHKA_DIMS: &[usize] = &[768, 512, 256, 128];
