// Package schemas holds the plain row and configuration types that every stage of
// recipe-DPO exchanges: the Recipe a model writes, the Parquet rows of the data-preparation
// job (Prompt, Variant, PreferencePair, DPOExample, DeadLetter), the run Manifest, and the
// persona configuration. It imports neither Beam nor GoMLX, so the pipelines, the trainer
// and the evaluation job can all share it.
//
// Parquet column names are the snake_case names in the `parquet` tags; they are a data
// contract (see ../shared/DESIGN.md) and stay stable once landed.
package schemas
