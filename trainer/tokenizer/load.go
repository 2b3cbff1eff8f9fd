package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrUnsupported marks a tokenizer.json this package cannot reproduce exactly (a WordPiece or
// Unigram model, a SentencePiece-style BPE with byte_fallback, a normalizer, ...).
var ErrUnsupported = errors.New("unsupported tokenizer")

// FileName is the tokenizer file of a Hugging Face model directory.
const FileName = "tokenizer.json"

// LoadDir loads dir/tokenizer.json.
func LoadDir(dir string) (*Tokenizer, error) { return Load(filepath.Join(dir, FileName)) }

// Load reads a Hugging Face tokenizer.json.
func Load(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer %s: %w", path, err)
	}
	return t, nil
}

// fileJSON is the top level of tokenizer.json. Components are kept raw and parsed by type.
type fileJSON struct {
	Version       string          `json:"version"`
	AddedTokens   []AddedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         json.RawMessage `json:"model"`
}

// modelJSON is a BPE model section (tokenizers/src/models/bpe/serialization.rs).
type modelJSON struct {
	Type                    string            `json:"type"`
	Dropout                 *float64          `json:"dropout"`
	UnkToken                *string           `json:"unk_token"`
	ContinuingSubwordPrefix *string           `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string           `json:"end_of_word_suffix"`
	FuseUnk                 bool              `json:"fuse_unk"`
	ByteFallback            bool              `json:"byte_fallback"`
	IgnoreMerges            bool              `json:"ignore_merges"`
	Vocab                   map[string]int    `json:"vocab"`
	Merges                  []json.RawMessage `json:"merges"`
}

// componentJSON holds the fields of the pre-tokenizers and decoders we understand.
type componentJSON struct {
	Type          string            `json:"type"`
	PreTokenizers []json.RawMessage `json:"pretokenizers"` // Sequence
	Pattern       *struct {
		Regex  *string `json:"Regex"`
		String *string `json:"String"`
	} `json:"pattern"` // Split
	Behavior       splitBehavior `json:"behavior"`         // Split
	Invert         bool          `json:"invert"`           // Split
	AddPrefixSpace bool          `json:"add_prefix_space"` // ByteLevel
	UseRegex       *bool         `json:"use_regex"`        // ByteLevel; absent means true
}

func isNull(raw json.RawMessage) bool {
	s := bytes.TrimSpace(raw)
	return len(s) == 0 || string(s) == "null"
}

// Parse reads the contents of a Hugging Face tokenizer.json.
func Parse(data []byte) (*Tokenizer, error) {
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("parse tokenizer.json: %w", err)
	}
	if isNull(f.Model) {
		return nil, errors.New("tokenizer.json has no model")
	}
	model, err := parseModel(f.Model)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if !isNull(f.Normalizer) {
		var c componentJSON
		_ = json.Unmarshal(f.Normalizer, &c)
		return nil, fmt.Errorf("%w: normalizer %q (only a null normalizer, as in Llama 3, is supported)", ErrUnsupported, c.Type)
	}
	pre, err := parsePreTokenizer(f.PreTokenizer)
	if err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %w", err)
	}
	var dec componentJSON
	if !isNull(f.Decoder) {
		if err := json.Unmarshal(f.Decoder, &dec); err != nil {
			return nil, fmt.Errorf("decoder: %w", err)
		}
	}
	if dec.Type != "ByteLevel" {
		return nil, fmt.Errorf("%w: decoder %q (want ByteLevel)", ErrUnsupported, dec.Type)
	}
	want := make([]int, len(f.AddedTokens))
	for i, a := range f.AddedTokens {
		want[i] = a.ID
	}
	t, err := newTokenizer(model, pre, f.AddedTokens, want)
	if err != nil {
		return nil, err
	}
	t.rawNormalizer, t.rawPre, t.rawPost, t.rawDecoder = f.Normalizer, f.PreTokenizer, f.PostProcessor, f.Decoder
	return t, nil
}

func parseModel(raw json.RawMessage) (bpeModel, error) {
	var typ struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &typ); err != nil {
		return bpeModel{}, err
	}
	if typ.Type != "BPE" && typ.Type != "" {
		return bpeModel{}, fmt.Errorf("%w: model type %q (only BPE)", ErrUnsupported, typ.Type)
	}
	var mj modelJSON
	if err := json.Unmarshal(raw, &mj); err != nil {
		return bpeModel{}, err
	}
	switch {
	case mj.Type == "" && mj.Merges == nil:
		return bpeModel{}, fmt.Errorf("%w: model without a type or merges (only BPE)", ErrUnsupported)
	case mj.ByteFallback:
		return bpeModel{}, fmt.Errorf("%w: BPE with byte_fallback (a SentencePiece-style tokenizer such as Llama 2's); only byte-level BPE (Llama 3) is supported", ErrUnsupported)
	case mj.Dropout != nil && *mj.Dropout != 0:
		return bpeModel{}, fmt.Errorf("%w: BPE dropout %g makes encoding random", ErrUnsupported, *mj.Dropout)
	case mj.ContinuingSubwordPrefix != nil && *mj.ContinuingSubwordPrefix != "",
		mj.EndOfWordSuffix != nil && *mj.EndOfWordSuffix != "":
		return bpeModel{}, fmt.Errorf("%w: continuing_subword_prefix / end_of_word_suffix", ErrUnsupported)
	case len(mj.Vocab) == 0:
		return bpeModel{}, errors.New("empty vocab")
	}
	m := bpeModel{
		vocab:        mj.Vocab,
		idToToken:    make(map[int]string, len(mj.Vocab)),
		merges:       make(map[uint64]mergeRule, len(mj.Merges)),
		mergeList:    make([][2]string, 0, len(mj.Merges)),
		ignoreMerges: mj.IgnoreMerges,
		unkID:        -1,
		fuseUnk:      mj.FuseUnk,
	}
	for tok, id := range mj.Vocab {
		if id < 0 {
			return bpeModel{}, fmt.Errorf("vocab token %q has negative id %d", tok, id)
		}
		if prev, dup := m.idToToken[id]; dup {
			return bpeModel{}, fmt.Errorf("vocab tokens %q and %q share id %d", prev, tok, id)
		}
		m.idToToken[id] = tok
	}
	if mj.UnkToken != nil {
		id, ok := mj.Vocab[*mj.UnkToken]
		if !ok {
			return bpeModel{}, fmt.Errorf("unk_token %q is not in the vocab", *mj.UnkToken)
		}
		m.unkID, m.unkToken = id, *mj.UnkToken
	}
	for rank, raw := range mj.Merges {
		a, b, err := parseMerge(raw)
		if err != nil {
			return bpeModel{}, fmt.Errorf("merge %d: %w", rank, err)
		}
		ia, okA := mj.Vocab[a]
		ib, okB := mj.Vocab[b]
		inew, okNew := mj.Vocab[a+b]
		switch {
		case !okA:
			return bpeModel{}, fmt.Errorf("merge %d (%q %q): %q is not in the vocab", rank, a, b, a)
		case !okB:
			return bpeModel{}, fmt.Errorf("merge %d (%q %q): %q is not in the vocab", rank, a, b, b)
		case !okNew:
			return bpeModel{}, fmt.Errorf("merge %d (%q %q): %q is not in the vocab", rank, a, b, a+b)
		}
		// A repeated pair takes its last rank, as the HashMap Hugging Face builds does.
		m.merges[mergeKey(ia, ib)] = mergeRule{rank: rank, newID: inew}
		m.mergeList = append(m.mergeList, [2]string{a, b})
	}
	return m, nil
}

// parseMerge reads one merge in either format: "a b" (tokenizers < 0.20) or ["a", "b"].
func parseMerge(raw json.RawMessage) (string, string, error) {
	var pair []string
	if err := json.Unmarshal(raw, &pair); err == nil {
		if len(pair) != 2 {
			return "", "", fmt.Errorf("want 2 parts, got %d", len(pair))
		}
		return pair[0], pair[1], nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", "", fmt.Errorf("want \"a b\" or [\"a\", \"b\"], got %s", raw)
	}
	parts := strings.Split(s, " ")
	if len(parts) != 2 {
		return "", "", fmt.Errorf("%q: want two space-separated parts", s)
	}
	return parts[0], parts[1], nil
}

// parsePreTokenizer turns a pre_tokenizer section into steps; it must contain a ByteLevel step,
// since decoding assumes byte-level tokens.
func parsePreTokenizer(raw json.RawMessage) ([]preStep, error) {
	if isNull(raw) {
		return nil, fmt.Errorf("%w: no pre_tokenizer (want ByteLevel, e.g. Llama 3's Sequence[Split, ByteLevel])", ErrUnsupported)
	}
	steps, err := appendPreSteps(nil, raw)
	if err != nil {
		return nil, err
	}
	for _, st := range steps {
		if _, ok := st.(*byteLevelStep); ok {
			return steps, nil
		}
	}
	return nil, fmt.Errorf("%w: pre_tokenizer has no ByteLevel step; only byte-level BPE is supported", ErrUnsupported)
}

func appendPreSteps(steps []preStep, raw json.RawMessage) ([]preStep, error) {
	var c componentJSON
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	switch c.Type {
	case "Sequence":
		for _, sub := range c.PreTokenizers {
			var err error
			if steps, err = appendPreSteps(steps, sub); err != nil {
				return nil, err
			}
		}
		return steps, nil
	case "Split":
		st := &splitStep{behavior: c.Behavior, invert: c.Invert}
		switch c.Behavior {
		case behaviorRemoved, behaviorIsolated, behaviorMergedWithPrevious, behaviorMergedWithNext, behaviorContiguous:
		default:
			return nil, fmt.Errorf("Split: unknown behavior %q", c.Behavior)
		}
		switch {
		case c.Pattern == nil:
			return nil, errors.New("Split: no pattern")
		case c.Pattern.Regex != nil:
			re, err := compilePattern(*c.Pattern.Regex)
			if err != nil {
				return nil, fmt.Errorf("Split: %w", err)
			}
			st.re = re
		case c.Pattern.String != nil:
			st.literal = *c.Pattern.String
		default:
			return nil, errors.New("Split: pattern has neither Regex nor String")
		}
		return append(steps, st), nil
	case "ByteLevel":
		st := &byteLevelStep{addPrefixSpace: c.AddPrefixSpace}
		if c.UseRegex == nil || *c.UseRegex {
			st.re = mustCompile(gpt2Pattern)
		}
		return append(steps, st), nil
	default:
		return nil, fmt.Errorf("%w: pre-tokenizer %q (supported: Sequence, Split, ByteLevel)", ErrUnsupported, c.Type)
	}
}
