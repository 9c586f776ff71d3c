//! Importing TransformerLens-named safetensors checkpoints.
