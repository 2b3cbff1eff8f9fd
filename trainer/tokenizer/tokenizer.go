// Package tokenizer is a byte-level BPE tokenizer that reads and writes Hugging Face
// tokenizer.json files (the Llama 3 layout) and produces exactly the ids the Hugging Face
// tokenizers library does: added tokens are cut out first, the rest is pre-tokenized (Split by
// regex, then ByteLevel), and every word is merged by merge rank and mapped to vocab ids.
//
// Encode applies no post-processor: Llama 3's tokenizer.json would prepend <|begin_of_text|>
// when Hugging Face is called with add_special_tokens=True; callers prepend BOS() themselves,
// so Encode equals Hugging Face's encode(text, add_special_tokens=False).
//
// Train learns a small tokenizer of the same layout for tests and demos, and Save writes a
// tokenizer.json that Hugging Face tokenizers and transformers load.
package tokenizer

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// AddedToken is an entry of tokenizer.json's added_tokens, with Hugging Face's field meanings.
type AddedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"` // only matched when not inside a word
	LStrip     bool   `json:"lstrip"`      // swallows the whitespace on its left
	RStrip     bool   `json:"rstrip"`      // swallows the whitespace on its right
	Normalized bool   `json:"normalized"`  // matched against normalized text (no normalizer here)
	Special    bool   `json:"special"`     // a control token: not split out unless allowed
}

// Tokenizer encodes text to token ids and back. It is immutable after construction and safe for
// concurrent use.
type Tokenizer struct {
	model bpeModel
	pre   []preStep
	// added in the order of the file; addedByID and addedIDs index it.
	added     []AddedToken
	addedByID map[int]*AddedToken
	addedIDs  map[string]int
	// rawMatch holds the added tokens matched before normalization (normalized=false), normMatch
	// the others; Hugging Face runs two passes in that order.
	rawMatch, normMatch *addedMatcher
	vocabSize           int

	// Components kept verbatim so Save writes back what Parse read.
	rawPre, rawPost, rawDecoder, rawNormalizer json.RawMessage
}

// Encode returns the token ids of text. With allowSpecial, special added tokens that occur in
// the text (<|im_start|>, <|eot_id|>, …) become their ids, as Hugging Face does by default;
// without it they are tokenized as plain text, as with split_special_tokens=True, which is what
// untrusted text such as model outputs should get. Non-special added tokens are always cut out.
func (t *Tokenizer) Encode(text string, allowSpecial bool) []int {
	var ids []int
	t.eachPiece(text, allowSpecial, func(piece string, addedID int) {
		if addedID >= 0 {
			ids = append(ids, addedID)
			return
		}
		for _, w := range preTokenize(t.pre, piece) {
			ids = t.model.tokenize(ids, w)
		}
	})
	if ids == nil {
		ids = []int{}
	}
	return ids
}

// eachPiece cuts text into added-token matches (addedID ≥ 0) and plain pieces (addedID -1),
// in order: the normalized=false tokens first, then the normalized ones within what is left
// (AddedVocabulary::extract_and_normalize).
func (t *Tokenizer) eachPiece(text string, allowSpecial bool, f func(piece string, addedID int)) {
	for _, p := range t.rawMatch.split(text, allowSpecial) {
		if p.id >= 0 {
			f(text[p.start:p.end], p.id)
			continue
		}
		sub := text[p.start:p.end]
		for _, q := range t.normMatch.split(sub, allowSpecial) {
			f(sub[q.start:q.end], q.id)
		}
	}
}

// Decode returns the text of ids, special tokens included (Hugging Face's
// decode(ids, skip_special_tokens=False)). Bytes that do not form valid UTF-8 — a character
// cut between tokens — become U+FFFD; unknown ids are skipped.
func (t *Tokenizer) Decode(ids []int) string { return lossyUTF8(t.decodeBytes(ids, false)) }

// DecodeSkipSpecial is Decode without special tokens (skip_special_tokens=True).
func (t *Tokenizer) DecodeSkipSpecial(ids []int) string {
	return lossyUTF8(t.decodeBytes(ids, true))
}

// DecodeBytes returns the raw bytes of ids, special tokens included, for streaming output
// where a character may span two calls.
func (t *Tokenizer) DecodeBytes(ids []int) []byte { return t.decodeBytes(ids, false) }

func (t *Tokenizer) decodeBytes(ids []int, skipSpecial bool) []byte {
	out := make([]byte, 0, 4*len(ids))
	for _, id := range ids {
		tok, ok := t.Token(id)
		if !ok {
			continue
		}
		if skipSpecial && t.IsSpecial(id) {
			continue
		}
		out = appendTokenBytes(out, tok)
	}
	return out
}

// TokenID returns the id of a token as spelled in the vocabulary: an added token's content, or a
// model token in the byte-level alphabet ("Ġthe" for " the").
func (t *Tokenizer) TokenID(s string) (int, bool) {
	if id, ok := t.addedIDs[s]; ok {
		return id, true
	}
	id, ok := t.model.vocab[s]
	return id, ok
}

// Token returns the vocabulary spelling of id.
func (t *Tokenizer) Token(id int) (string, bool) {
	if a, ok := t.addedByID[id]; ok {
		return a.Content, true
	}
	s, ok := t.model.idToToken[id]
	return s, ok
}

// IsSpecial reports whether id is a special added token.
func (t *Tokenizer) IsSpecial(id int) bool {
	a, ok := t.addedByID[id]
	return ok && a.Special
}

// VocabSize is the largest id plus one, added tokens included: the embedding rows a model needs.
func (t *Tokenizer) VocabSize() int { return t.vocabSize }

// AddedTokens returns the added tokens in file order.
func (t *Tokenizer) AddedTokens() []AddedToken { return slices.Clone(t.added) }

// NumMerges is the length of the merges list.
func (t *Tokenizer) NumMerges() int { return len(t.model.mergeList) }

// Well-known spellings of the sequence delimiters, most specific first.
var (
	bosNames = []string{"<|begin_of_text|>", "<|startoftext|>", "<s>", "<bos>"}
	eosNames = []string{"<|end_of_text|>", "<|endoftext|>", "</s>", "<eos>"}
)

// BOS returns the begin-of-sequence token id (<|begin_of_text|> for Llama 3), if there is one.
func (t *Tokenizer) BOS() (int, bool) { return t.firstSpecial(bosNames) }

// EOS returns the end-of-text token id (<|end_of_text|> for Llama 3), if there is one. Chat
// turns end with <|eot_id|> or <|im_end|>: look those up with TokenID.
func (t *Tokenizer) EOS() (int, bool) { return t.firstSpecial(eosNames) }

func (t *Tokenizer) firstSpecial(names []string) (int, bool) {
	for _, n := range names {
		if id, ok := t.addedIDs[n]; ok {
			return id, true
		}
	}
	return 0, false
}

// addedMatcher finds added tokens in text: leftmost-longest matching, then the single_word,
// lstrip and rstrip rules, as AddedVocabulary::find_matches does with its Aho-Corasick automaton.
type addedMatcher struct {
	byFirst map[byte][]*AddedToken // candidates by first byte, longest first
}

// span is a range of text and the added token id it is, or -1.
type span struct {
	start, end int
	id         int
}

func newAddedMatcher(tokens []*AddedToken) *addedMatcher {
	m := &addedMatcher{byFirst: map[byte][]*AddedToken{}}
	for _, tk := range tokens {
		m.byFirst[tk.Content[0]] = append(m.byFirst[tk.Content[0]], tk)
	}
	for _, c := range m.byFirst {
		slices.SortStableFunc(c, func(a, b *AddedToken) int { return len(b.Content) - len(a.Content) })
	}
	return m
}

// longestAt returns the longest token starting at text[i:], or nil.
func (m *addedMatcher) longestAt(text string, i int) *AddedToken {
	for _, tk := range m.byFirst[text[i]] {
		if strings.HasPrefix(text[i:], tk.Content) {
			return tk
		}
	}
	return nil
}

// split covers text with plain spans and added-token spans. Empty text yields one empty plain
// span, which the caller drops.
func (m *addedMatcher) split(text string, allowSpecial bool) []span {
	if len(m.byFirst) == 0 || text == "" {
		return []span{{0, len(text), -1}}
	}
	var out []span
	last := 0 // end of the previous emitted span
	for i := 0; i < len(text); {
		tk := m.longestAt(text, i)
		if tk == nil {
			i++
			continue
		}
		start, stop := i, i+len(tk.Content)
		i = stop // the automaton resumes after the match whether or not it is kept
		if tk.Special && !allowSpecial {
			continue
		}
		if tk.SingleWord {
			startOK := start == 0 || !endsWithWord(text[:start])
			stopOK := stop == len(text) || !startsWithWord(text[stop:])
			if !startOK || !stopOK {
				continue
			}
		}
		if start < last {
			continue // inside whitespace an rstrip token already swallowed
		}
		if tk.LStrip {
			start = max(len(strings.TrimRightFunc(text[:start], unicode.IsSpace)), last)
		}
		if tk.RStrip {
			stop = len(text) - len(strings.TrimLeftFunc(text[stop:], unicode.IsSpace))
		}
		if last < start {
			out = append(out, span{last, start, -1})
		}
		out = append(out, span{start, stop, tk.ID})
		last = stop
	}
	if last != len(text) {
		out = append(out, span{last, len(text), -1})
	}
	return out
}

// isWordRune is Rust regex's Unicode \w: Alphabetic, marks, decimal digits, connector
// punctuation and joiners.
func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.Is(unicode.Nl, r) || unicode.Is(unicode.Other_Alphabetic, r) ||
		unicode.IsMark(r) || unicode.Is(unicode.Nd, r) || unicode.Is(unicode.Pc, r) ||
		r == '\u200C' || r == '\u200D'
}

func endsWithWord(s string) bool {
	r, n := utf8.DecodeLastRuneInString(s)
	return n > 0 && isWordRune(r)
}

func startsWithWord(s string) bool {
	for _, r := range s {
		return isWordRune(r)
	}
	return false
}

// newTokenizer indexes a model and its added tokens. Added token ids are assigned with Hugging
// Face's rule (AddedVocabulary::add_tokens): a token already in the vocab keeps that id, others
// get consecutive ids from the model's vocab size. want, when non-nil, are the ids the file
// declares; a disagreement is an error rather than Hugging Face's warning, since it would shift
// every id a model was trained on.
func newTokenizer(model bpeModel, pre []preStep, added []AddedToken, want []int) (*Tokenizer, error) {
	model.prepare()
	t := &Tokenizer{
		model:     model,
		pre:       pre,
		addedByID: map[int]*AddedToken{},
		addedIDs:  map[string]int{},
	}
	maxAdded := -1
	for i, a := range added {
		if a.Content == "" {
			return nil, fmt.Errorf("added token %d has empty content", i)
		}
		if _, dup := t.addedIDs[a.Content]; dup {
			return nil, fmt.Errorf("added token %q listed twice", a.Content)
		}
		id, ok := model.vocab[a.Content]
		if !ok {
			switch n := len(model.vocab); {
			case maxAdded < 0:
				id = n
			case maxAdded >= n || n == 0:
				id = maxAdded + 1
			default:
				id = n
			}
		}
		if want != nil && want[i] != id {
			return nil, fmt.Errorf("added token %q has id %d but Hugging Face would assign %d "+
				"(added tokens not in the vocab must follow it consecutively)", a.Content, want[i], id)
		}
		if prev, clash := t.addedByID[id]; clash {
			return nil, fmt.Errorf("added tokens %q and %q both get id %d", prev.Content, a.Content, id)
		}
		a.ID = id
		maxAdded = max(maxAdded, id)
		t.added = append(t.added, a)
	}
	var raw, norm []*AddedToken
	for i := range t.added {
		a := &t.added[i]
		t.addedByID[a.ID] = a
		t.addedIDs[a.Content] = a.ID
		if a.Normalized {
			norm = append(norm, a)
		} else {
			raw = append(raw, a)
		}
	}
	t.rawMatch, t.normMatch = newAddedMatcher(raw), newAddedMatcher(norm)
	for id := range model.idToToken {
		t.vocabSize = max(t.vocabSize, id+1)
	}
	t.vocabSize = max(t.vocabSize, maxAdded+1)
	return t, nil
}
