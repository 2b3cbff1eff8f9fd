package train

// Base is a loaded base model: the checkpoint's weights (float32, Hugging Face names) with an
// SFT adapter merged in, its config and tokenizer. In-process generation (the demo's and the
// evaluation's local generator) loads models through it, exactly as training does.
type Base = baseModel

// LoadBase loads modelDir (config.json + safetensors, checked), the tokenizer (default
// <modelDir>/tokenizer.json; checked against vocab_size) and merges sftAdapter (a PEFT
// directory, optional) into the weights.
func LoadBase(modelDir, tokenizerPath, sftAdapter string) (*Base, error) {
	return loadBase(Config{ModelDir: modelDir, Tokenizer: tokenizerPath, SFTAdapter: sftAdapter})
}

// Digest is the hex SHA-256 of the files that determine the base's weights (model files and
// the SFT adapter): an identity for caches.
func (b *Base) Digest() (string, error) { return filesDigest(b.Files) }
