package tokenizer

import (
	"bytes"
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// minPairFrequency stops training when the most frequent pair occurs less often: merging a pair
// seen once only memorizes the corpus.
const minPairFrequency = 2

// Train learns a byte-level BPE tokenizer of the Llama 3 layout from corpus. vocabSize counts
// everything: the 256 byte tokens (ids 0..255, in the order of their byte-level characters, as
// Hugging Face's trainer numbers its alphabet), the learned merges (ids from 256, most frequent
// pair first), and specials (appended as special added tokens). Training stops early when no
// pair occurs twice, so VocabSize may come out smaller. Words are the Llama 3 pre-tokenizer's
// pieces, with the specials cut out of the text first; ties between equally frequent pairs go to
// the smaller (left id, right id), so the result depends only on the inputs.
//
// Options change what is learned, never how the result encodes: the output is a standard
// Llama 3 tokenizer.json either way.
func Train(corpus []string, vocabSize int, specials []string, opts ...TrainOption) (*Tokenizer, error) {
	var o trainOptions
	for _, opt := range opts {
		opt(&o)
	}
	spaceRune := string(byteToRune[' ']) // Ġ (the table is filled by init, after package vars)
	if floor := 256 + len(specials); vocabSize < floor {
		return nil, fmt.Errorf("train tokenizer: vocab size %d is below 256 bytes + %d specials", vocabSize, len(specials))
	}
	added := make([]AddedToken, len(specials))
	cut := make([]*AddedToken, len(specials))
	for i, s := range specials {
		if s == "" {
			return nil, errors.New("train tokenizer: empty special token")
		}
		if slices.Contains(specials[:i], s) {
			return nil, fmt.Errorf("train tokenizer: special token %q listed twice", s)
		}
		added[i] = AddedToken{Content: s, Special: true}
		cut[i] = &added[i]
	}
	pre := []preStep{
		&splitStep{re: mustCompile(Llama3Pattern), behavior: behaviorIsolated},
		&byteLevelStep{},
	}

	// Count the words.
	matcher := newAddedMatcher(cut)
	wordFreq := map[string]int{}
	for _, doc := range corpus {
		for _, sp := range matcher.split(doc, true) {
			if sp.id < 0 {
				for _, w := range preTokenize(pre, doc[sp.start:sp.end]) {
					if o.separateSpaces && len(w) > len(spaceRune) && strings.HasPrefix(w, spaceRune) {
						// Learned apart, the space never merges into the word.
						wordFreq[spaceRune]++
						w = w[len(spaceRune):]
					}
					wordFreq[w]++
				}
			}
		}
	}

	// The alphabet: one token per byte.
	vocab := make(map[string]int, vocabSize)
	tokens := make([]string, 0, vocabSize)
	for _, b := range byteOrder {
		vocab[string(byteToRune[b])] = len(tokens)
		tokens = append(tokens, string(byteToRune[b]))
	}

	st := newPairStats(wordFreq, vocab)
	var merges [][2]string
	for len(tokens)+len(specials) < vocabSize {
		pair, count, ok := st.best()
		if !ok || count < minPairFrequency {
			break
		}
		a, b := int(pair>>32), int(uint32(pair))
		s := tokens[a] + tokens[b]
		// Two merges can spell the same token ("ab c" and "a bc"); like Hugging Face's trainer,
		// the second reuses the id and only adds a merge.
		id, seen := vocab[s]
		if !seen {
			id = len(tokens)
			vocab[s] = id
			tokens = append(tokens, s)
		}
		merges = append(merges, [2]string{tokens[a], tokens[b]})
		st.merge(pair, id)
	}

	model := bpeModel{
		vocab:     vocab,
		idToToken: make(map[int]string, len(tokens)),
		merges:    make(map[uint64]mergeRule, len(merges)),
		mergeList: merges,
		unkID:     -1,
	}
	for id, s := range tokens {
		model.idToToken[id] = s
	}
	for rank, m := range merges {
		model.merges[mergeKey(vocab[m[0]], vocab[m[1]])] = mergeRule{rank: rank, newID: vocab[m[0]+m[1]]}
	}
	t, err := newTokenizer(model, pre, added, nil)
	if err != nil {
		return nil, fmt.Errorf("train tokenizer: %w", err)
	}
	t.rawNormalizer, t.rawPost = jsonNull, jsonNull
	t.rawPre, t.rawDecoder = llama3PreTokenizerJSON(Llama3Pattern), byteLevelDecoderJSON
	return t, nil
}

// TrainOption changes what Train learns.
type TrainOption func(*trainOptions)

type trainOptions struct{ separateSpaces bool }

// SeparateSpaces makes Train learn no token that starts with a space: the Llama 3
// pre-tokenizer keeps a word's leading space ("␣kombu"), and a tokenizer trained without this
// option spells the word one way after a space and another after punctuation ("kombu" in
// `"name":"kombu"`). With it a word is the same tokens everywhere, the space a token of its
// own. Sequences get longer; a tiny model copying words from a prompt into JSON (the demo's)
// no longer has to learn the two spellings of every word.
func SeparateSpaces() TrainOption { return func(o *trainOptions) { o.separateSpaces = true } }

// trainWord is a distinct pre-tokenized word as current symbol ids, with its corpus frequency.
type trainWord struct {
	ids  []int
	freq int
}

// pairStats tracks adjacent-pair frequencies over the words and which words hold each pair.
type pairStats struct {
	words  []trainWord
	counts map[uint64]int
	where  map[uint64]map[int]struct{}
	queue  pairQueue
}

func newPairStats(wordFreq map[string]int, alphabet map[string]int) *pairStats {
	keys := make([]string, 0, len(wordFreq))
	for w := range wordFreq {
		keys = append(keys, w)
	}
	slices.Sort(keys)
	st := &pairStats{counts: map[uint64]int{}, where: map[uint64]map[int]struct{}{}}
	for wi, w := range keys {
		var ids []int
		for _, r := range w {
			ids = append(ids, alphabet[string(r)])
		}
		st.words = append(st.words, trainWord{ids: ids, freq: wordFreq[w]})
		st.addPairsWith(wi, -1, nil)
	}
	for p, c := range st.counts {
		st.queue = append(st.queue, pairCount{p, c})
	}
	heap.Init(&st.queue)
	return st
}

// best pops the most frequent pair. Counts only fall between pushes, so an entry whose count
// is out of date is re-queued with the current one (the lazy heap of Hugging Face's trainer).
func (st *pairStats) best() (uint64, int, bool) {
	for st.queue.Len() > 0 {
		top := heap.Pop(&st.queue).(pairCount)
		cur := st.counts[top.pair]
		if cur == top.count {
			return top.pair, cur, true
		}
		if cur > 0 {
			heap.Push(&st.queue, pairCount{top.pair, cur})
		}
	}
	return 0, 0, false
}

// merge replaces every occurrence of pair by newID, left to right, and updates the counts.
func (st *pairStats) merge(pair uint64, newID int) {
	a, b := int(pair>>32), int(uint32(pair))
	fresh := map[uint64]bool{}
	holders := make([]int, 0, len(st.where[pair]))
	for wi := range st.where[pair] {
		holders = append(holders, wi)
	}
	slices.Sort(holders)
	for _, wi := range holders {
		w := &st.words[wi]
		for i := 0; i+1 < len(w.ids); i++ {
			st.counts[mergeKey(w.ids[i], w.ids[i+1])] -= w.freq
		}
		out := w.ids[:0]
		for i := 0; i < len(w.ids); i++ {
			if i+1 < len(w.ids) && w.ids[i] == a && w.ids[i+1] == b {
				out = append(out, newID)
				i++
				continue
			}
			out = append(out, w.ids[i])
		}
		w.ids = out
		st.addPairsWith(wi, newID, fresh)
	}
	delete(st.where, pair)
	// Queue the pairs that grew, in a fixed order.
	grown := make([]uint64, 0, len(fresh))
	for p := range fresh {
		grown = append(grown, p)
	}
	slices.Sort(grown)
	for _, p := range grown {
		if c := st.counts[p]; c > 0 {
			heap.Push(&st.queue, pairCount{p, c})
		}
	}
}

// addPairsWith counts word wi's pairs and records those that contain newID in fresh.
func (st *pairStats) addPairsWith(wi, newID int, fresh map[uint64]bool) {
	w := st.words[wi]
	for i := 0; i+1 < len(w.ids); i++ {
		p := mergeKey(w.ids[i], w.ids[i+1])
		st.counts[p] += w.freq
		if st.where[p] == nil {
			st.where[p] = map[int]struct{}{}
		}
		st.where[p][wi] = struct{}{}
		if w.ids[i] == newID || w.ids[i+1] == newID {
			fresh[p] = true
		}
	}
}

// pairCount is a queued pair; the queue pops the highest count, then the smallest pair.
type pairCount struct {
	pair  uint64
	count int
}

type pairQueue []pairCount

func (q pairQueue) Len() int { return len(q) }
func (q pairQueue) Less(i, j int) bool {
	if q[i].count != q[j].count {
		return q[i].count > q[j].count
	}
	return q[i].pair < q[j].pair
}
func (q pairQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *pairQueue) Push(x any)   { *q = append(*q, x.(pairCount)) }
func (q *pairQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// TrainFromFiles trains on text files: a .jsonl, .ndjson or .json file contributes every string
// value of its JSON values (a DPO row's prompt, chosen and rejected; a chat's message contents),
// any other file its whole text.
func TrainFromFiles(paths []string, vocabSize int, specials []string, opts ...TrainOption) (*Tokenizer, error) {
	var corpus []string
	for _, p := range paths {
		docs, err := readCorpusFile(p)
		if err != nil {
			return nil, fmt.Errorf("train tokenizer: %w", err)
		}
		for _, d := range docs {
			if d != "" {
				corpus = append(corpus, d)
			}
		}
	}
	if len(corpus) == 0 {
		return nil, fmt.Errorf("train tokenizer: no text in %s: give files with the text to learn from (.jsonl/.json: string values)", strings.Join(paths, ", "))
	}
	return Train(corpus, vocabSize, specials, opts...)
}

func readCorpusFile(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jsonl", ".ndjson", ".json":
	default:
		return []string{string(data)}, nil
	}
	var docs []string
	dec := json.NewDecoder(bytes.NewReader(data))
	for n := 1; ; n++ {
		var v any
		if err := dec.Decode(&v); err == io.EOF {
			return docs, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: JSON value %d: %w", path, n, err)
		}
		docs = appendStrings(docs, v)
	}
}

// appendStrings collects the string values of a decoded JSON value, object keys in sorted order.
func appendStrings(dst []string, v any) []string {
	switch v := v.(type) {
	case string:
		if v != "" {
			dst = append(dst, v)
		}
	case []any:
		for _, e := range v {
			dst = appendStrings(dst, e)
		}
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			dst = appendStrings(dst, v[k])
		}
	}
	return dst
}
