package tokenizer

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// Llama3Pattern is the Llama 3 pre-tokenizer split regex (the Split step of its tokenizer.json).
// It needs a backtracking engine for `(?!\S)`: Go's regexp has no lookahead, regexp2 has, and
// its .NET semantics for \s, \p{L}, \p{N} and (?i:) agree with Oniguruma's, which Hugging Face
// uses. Train uses it; a loaded tokenizer.json uses its own pattern.
const Llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// gpt2Pattern is the regex of Hugging Face's ByteLevel pre-tokenizer when use_regex is true.
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

// splitBehavior is SplitDelimiterBehavior from tokenizers/src/tokenizer/normalizer.rs.
type splitBehavior string

const (
	behaviorRemoved            splitBehavior = "Removed"
	behaviorIsolated           splitBehavior = "Isolated"
	behaviorMergedWithPrevious splitBehavior = "MergedWithPrevious"
	behaviorMergedWithNext     splitBehavior = "MergedWithNext"
	behaviorContiguous         splitBehavior = "Contiguous"
)

// preStep is one pre-tokenizer of a (possibly Sequence) pre_tokenizer: it turns each piece
// into zero or more pieces. Pieces are never empty.
type preStep interface {
	apply(dst []string, piece string) []string
}

// splitStep is Hugging Face's Split pre-tokenizer.
type splitStep struct {
	re       *regexp2.Regexp // nil when literal is used
	literal  string
	behavior splitBehavior
	invert   bool
}

// byteLevelStep is Hugging Face's ByteLevel pre-tokenizer: optional prefix space, optional GPT-2
// split, then every byte spelled in the byte-level alphabet. It is what makes the tokenizer
// byte-level, so it must come last (see parsePreTokenizer).
type byteLevelStep struct {
	addPrefixSpace bool
	re             *regexp2.Regexp // nil unless use_regex
}

// segment is a piece of text and whether it matched the split pattern.
type segment struct {
	start, end int // byte offsets
	match      bool
}

// regexMatches returns the byte ranges of re's successive matches in s. regexp2 matches runes,
// so offsets are mapped back to bytes; each invalid UTF-8 byte is one U+FFFD rune of width one,
// which keeps arbitrary Go strings round-tripping byte for byte.
func regexMatches(re *regexp2.Regexp, s string) [][2]int {
	runes := make([]rune, 0, len(s))
	offs := make([]int, 0, len(s)+1)
	for i, r := range s {
		runes = append(runes, r)
		offs = append(offs, i)
	}
	offs = append(offs, len(s))
	var out [][2]int
	m, err := re.FindRunesMatch(runes)
	for err == nil && m != nil {
		out = append(out, [2]int{offs[m.Index], offs[m.Index+m.Length]})
		m, err = re.FindNextMatch(m)
	}
	if err != nil { // only a MatchTimeout, which we never set
		panic(fmt.Sprintf("tokenizer: regex %q: %v", re.String(), err))
	}
	return out
}

// segments covers s with alternating non-matching and matching ranges, like Pattern::find_matches
// for a regex or a literal in tokenizers/src/tokenizer/pattern.rs.
func (st *splitStep) segments(s string) []segment {
	var ms [][2]int
	if st.re != nil {
		ms = regexMatches(st.re, s)
	} else if st.literal != "" {
		for i := 0; i <= len(s)-len(st.literal); {
			j := strings.Index(s[i:], st.literal)
			if j < 0 {
				break
			}
			ms = append(ms, [2]int{i + j, i + j + len(st.literal)})
			i += j + len(st.literal)
		}
	}
	segs := make([]segment, 0, 2*len(ms)+1)
	prev := 0
	for _, m := range ms {
		if prev != m[0] {
			segs = append(segs, segment{prev, m[0], false})
		}
		segs = append(segs, segment{m[0], m[1], true})
		prev = m[1]
	}
	if prev != len(s) {
		segs = append(segs, segment{prev, len(s), false})
	}
	if st.invert {
		for i := range segs {
			segs[i].match = !segs[i].match
		}
	}
	return segs
}

func (st *splitStep) apply(dst []string, piece string) []string {
	segs := st.segments(piece)
	// Fold matches into their neighbours as NormalizedString::split does; the flag kept per
	// range says whether it is dropped.
	type part struct {
		start, end int
		remove     bool
	}
	var parts []part
	switch st.behavior {
	case behaviorIsolated:
		for _, s := range segs {
			parts = append(parts, part{s.start, s.end, false})
		}
	case behaviorRemoved:
		for _, s := range segs {
			parts = append(parts, part{s.start, s.end, s.match})
		}
	case behaviorContiguous:
		prevMatch := false
		for _, s := range segs {
			if s.match == prevMatch && len(parts) > 0 {
				parts[len(parts)-1].end = s.end
			} else {
				parts = append(parts, part{s.start, s.end, false})
			}
			prevMatch = s.match
		}
	case behaviorMergedWithPrevious:
		prevMatch := false
		for _, s := range segs {
			if s.match && !prevMatch && len(parts) > 0 {
				parts[len(parts)-1].end = s.end
			} else {
				parts = append(parts, part{s.start, s.end, false})
			}
			prevMatch = s.match
		}
	case behaviorMergedWithNext:
		prevMatch := false
		for i := len(segs) - 1; i >= 0; i-- {
			s := segs[i]
			if s.match && !prevMatch && len(parts) > 0 {
				parts[len(parts)-1].start = s.start
			} else {
				parts = append(parts, part{s.start, s.end, false})
			}
			prevMatch = s.match
		}
		for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
			parts[i], parts[j] = parts[j], parts[i]
		}
	}
	for _, p := range parts {
		if !p.remove && p.end > p.start {
			dst = append(dst, piece[p.start:p.end])
		}
	}
	return dst
}

func (st *byteLevelStep) apply(dst []string, piece string) []string {
	if st.addPrefixSpace && !strings.HasPrefix(piece, " ") {
		piece = " " + piece
	}
	if st.re == nil {
		return append(dst, bytesToTokenString(piece))
	}
	prev := 0
	for _, m := range regexMatches(st.re, piece) {
		if prev < m[0] {
			dst = append(dst, bytesToTokenString(piece[prev:m[0]]))
		}
		if m[1] > m[0] {
			dst = append(dst, bytesToTokenString(piece[m[0]:m[1]]))
		}
		prev = m[1]
	}
	if prev < len(piece) {
		dst = append(dst, bytesToTokenString(piece[prev:]))
	}
	return dst
}

// preTokenize runs the steps over text and returns the words BPE sees.
func preTokenize(steps []preStep, text string) []string {
	if text == "" {
		return nil
	}
	pieces := []string{text}
	for _, st := range steps {
		next := make([]string, 0, len(pieces)+len(pieces)/2)
		for _, p := range pieces {
			next = st.apply(next, p)
		}
		pieces = next
	}
	return pieces
}

// compilePattern compiles a tokenizer.json regex with regexp2's default (.NET) syntax, the
// closest to Oniguruma's.
func compilePattern(pattern string) (*regexp2.Regexp, error) {
	if !utf8.ValidString(pattern) {
		return nil, fmt.Errorf("pattern is not valid UTF-8")
	}
	re, err := regexp2.Compile(pattern, regexp2.None)
	if err != nil {
		return nil, fmt.Errorf("compile pattern %q: %w", pattern, err)
	}
	return re, nil
}

func mustCompile(pattern string) *regexp2.Regexp {
	re, err := compilePattern(pattern)
	if err != nil {
		panic(err)
	}
	return re
}
