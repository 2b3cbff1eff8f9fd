package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// The components Train writes, in Hugging Face's serialization (Llama 3's, minus its
// TemplateProcessing post-processor: Encode callers add BOS themselves).
var (
	jsonNull             = json.RawMessage("null")
	byteLevelDecoderJSON = json.RawMessage(`{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true}`)
)

// llama3PreTokenizerJSON is Llama 3's pre_tokenizer with the given split pattern.
func llama3PreTokenizerJSON(pattern string) json.RawMessage {
	return json.RawMessage(`{"type":"Sequence","pretokenizers":[` +
		`{"type":"Split","pattern":{"Regex":` + jsonString(pattern) + `},"behavior":"Isolated","invert":false},` +
		`{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]}`)
}

// jsonString encodes s as a JSON string without HTML escaping, as serde_json does.
func jsonString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

type saveFile struct {
	Version       string          `json:"version"`
	Truncation    json.RawMessage `json:"truncation"`
	Padding       json.RawMessage `json:"padding"`
	AddedTokens   []AddedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         saveModel       `json:"model"`
}

type saveModel struct {
	Type                    string          `json:"type"`
	Dropout                 json.RawMessage `json:"dropout"`
	UnkToken                *string         `json:"unk_token"`
	ContinuingSubwordPrefix json.RawMessage `json:"continuing_subword_prefix"`
	EndOfWordSuffix         json.RawMessage `json:"end_of_word_suffix"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
	Vocab                   json.RawMessage `json:"vocab"`
	Merges                  any             `json:"merges"`
}

// orNull returns raw, or JSON null when raw is empty.
func orNull(raw json.RawMessage) json.RawMessage {
	if isNull(raw) {
		return jsonNull
	}
	return raw
}

// MarshalJSON renders the tokenizer as a Hugging Face tokenizer.json (version "1.0"): vocab in
// id order, merges as "a b" strings (the format every tokenizers release reads), added tokens
// with their flags. Components read by Parse are written back unchanged.
func (t *Tokenizer) MarshalJSON() ([]byte, error) {
	ids := make([]int, 0, len(t.model.idToToken))
	for id := range t.model.idToToken {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var vocab bytes.Buffer
	vocab.WriteByte('{')
	for i, id := range ids {
		if i > 0 {
			vocab.WriteByte(',')
		}
		vocab.WriteString(jsonString(t.model.idToToken[id]))
		vocab.WriteByte(':')
		vocab.WriteString(strconv.Itoa(id))
	}
	vocab.WriteByte('}')

	// "a b" cannot carry a part that contains a space; fall back to pairs if one does.
	var merges any
	legacy := make([]string, len(t.model.mergeList))
	for i, m := range t.model.mergeList {
		if strings.Contains(m[0], " ") || strings.Contains(m[1], " ") {
			legacy = nil
			break
		}
		legacy[i] = m[0] + " " + m[1]
	}
	if legacy != nil {
		merges = legacy
	} else {
		merges = t.model.mergeList
	}

	f := saveFile{
		Version:       "1.0",
		Truncation:    jsonNull,
		Padding:       jsonNull,
		AddedTokens:   t.added,
		Normalizer:    orNull(t.rawNormalizer),
		PreTokenizer:  orNull(t.rawPre),
		PostProcessor: orNull(t.rawPost),
		Decoder:       orNull(t.rawDecoder),
		Model: saveModel{
			Type:                    "BPE",
			Dropout:                 jsonNull,
			ContinuingSubwordPrefix: jsonNull,
			EndOfWordSuffix:         jsonNull,
			FuseUnk:                 t.model.fuseUnk,
			IgnoreMerges:            t.model.ignoreMerges,
			Vocab:                   vocab.Bytes(),
			Merges:                  merges,
		},
	}
	if f.AddedTokens == nil {
		f.AddedTokens = []AddedToken{}
	}
	if t.model.unkID >= 0 {
		f.Model.UnkToken = &t.model.unkToken
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// SavePath is the file [Tokenizer.Save] writes for path: path itself, or tokenizer.json
// inside it when path is a directory.
func SavePath(path string) string {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return filepath.Join(path, FileName)
	}
	return path
}

// Save writes the tokenizer.json to path (a directory gets tokenizer.json inside it), through a
// temporary file and a rename so a reader never sees half a file.
func (t *Tokenizer) Save(path string) error {
	path = SavePath(path)
	data, err := t.MarshalJSON()
	if err != nil {
		return fmt.Errorf("save tokenizer: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save tokenizer: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".tokenizer-*.json")
	if err != nil {
		return fmt.Errorf("save tokenizer: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("save tokenizer %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save tokenizer %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("save tokenizer %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save tokenizer %s: %w", path, err)
	}
	return nil
}
