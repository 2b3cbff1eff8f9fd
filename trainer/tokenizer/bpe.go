package tokenizer

import (
	"container/heap"
	"slices"
	"sync"
	"sync/atomic"
)

// Why not tiktoken-go's CoreBPE: tiktoken merges the adjacent parts whose *concatenation* has
// the lowest rank in a bytes→rank table. That equals Hugging Face's BPE only when every token's
// rank orders it exactly like its merge and every reachable concatenation is a legal merge — true
// for Llama 3 (its tokenizer.json was converted from tiktoken ranks) but not for a merges list in
// general. With merges "a b", "b c", "a bc", Hugging Face encodes "abc" as [ab, c] because
// (ab, c) is not a merge, while tiktoken would join "abc" because that token exists. Our own
// trained tokenizers also reuse a token id when two merges spell the same string, so ids are not
// ranks. tiktoken-go's splitter additionally drops the text between regex matches (Split
// "Isolated" keeps it) and knows no lstrip/rstrip/single_word. So the merge loop below follows
// tokenizers/src/models/bpe/word.rs (Word::merge_all) instead, over vocab ids and pair ranks,
// and regexp2 (the regex engine tiktoken-go uses) does the lookahead-bearing Llama 3 split.

// mergeKey packs an ordered pair of token ids.
func mergeKey(a, b int) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// mergeRule is what merging a pair yields: its rank (position in merges) and the new token id.
type mergeRule struct {
	rank  int
	newID int
}

// bpeModel is Hugging Face's BPE model (models/bpe/model.rs) restricted to what byte-level
// tokenizers use: no dropout, no continuing_subword_prefix / end_of_word_suffix.
type bpeModel struct {
	vocab        map[string]int // byte-level token string → id
	idToToken    map[int]string
	merges       map[uint64]mergeRule
	mergeList    [][2]string // in rank order, for Save
	ignoreMerges bool        // a word that is itself a vocab entry is emitted whole (Llama 3)
	unkID        int         // -1 when the model has no unk_token
	unkToken     string
	fuseUnk      bool

	charIDs []int32    // vocab id of each byte-level character (index: rune), -1 if absent
	cache   *wordCache // merged words; nil until prepare
}

// maxRune is one past the largest byte-level character (U+0143).
const maxRune = 256 + 68

// prepare builds the lookup tables tokenize uses. Call it once the vocab is final.
func (m *bpeModel) prepare() {
	m.charIDs = make([]int32, maxRune)
	for r := range m.charIDs {
		m.charIDs[r] = -1
		if id, ok := m.vocab[string(rune(r))]; ok {
			m.charIDs[r] = int32(id)
		}
	}
	m.cache = &wordCache{}
}

// wordCache remembers the ids of short words, most of a text's words being repeats. It stops
// growing at maxCachedWords so a long-running process cannot grow it without bound.
type wordCache struct {
	m sync.Map // string → []int
	n atomic.Int64
}

const (
	maxCachedWords   = 1 << 17
	maxCachedWordLen = 64 // bytes
)

func (c *wordCache) get(w string) ([]int, bool) {
	v, ok := c.m.Load(w)
	if !ok {
		return nil, false
	}
	return v.([]int), true
}

func (c *wordCache) put(w string, ids []int) {
	if len(w) > maxCachedWordLen || c.n.Load() >= maxCachedWords {
		return
	}
	if _, loaded := c.m.LoadOrStore(w, ids); !loaded {
		c.n.Add(1)
	}
}

// charID is the vocab id of the one-character token r.
func (m *bpeModel) charID(r rune) (int, bool) {
	if r >= 0 && int(r) < len(m.charIDs) {
		id := m.charIDs[r]
		return int(id), id >= 0
	}
	id, ok := m.vocab[string(r)]
	return id, ok
}

// symbol is one part of a word being merged, linked to its live neighbours.
type symbol struct {
	id         int
	prev, next int // indices into the word's symbols; -1 at the ends
	dead       bool
}

// pairMerge is a candidate merge of symbols[pos] with its right neighbour.
type pairMerge struct {
	rank, pos int
	newID     int
}

type mergeQueue []pairMerge

func (q mergeQueue) Len() int { return len(q) }
func (q mergeQueue) Less(i, j int) bool {
	if q[i].rank != q[j].rank {
		return q[i].rank < q[j].rank
	}
	return q[i].pos < q[j].pos
}
func (q mergeQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *mergeQueue) Push(x any)   { *q = append(*q, x.(pairMerge)) }
func (q *mergeQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// tokenize appends the ids of one pre-tokenized word (already spelled in the byte-level
// alphabet) to dst: repeatedly merge the adjacent pair with the lowest merge rank, leftmost
// first, until no adjacent pair is a merge. A heap keeps long words (a run of 10k letters is a
// single piece) at O(n log n).
func (m *bpeModel) tokenize(dst []int, word string) []int {
	if word == "" {
		return dst
	}
	if m.ignoreMerges {
		if id, ok := m.vocab[word]; ok {
			return append(dst, id)
		}
	}
	if ids, ok := m.cache.get(word); ok {
		return append(dst, ids...)
	}
	start := len(dst)
	dst = m.merge(dst, word)
	m.cache.put(word, slices.Clone(dst[start:])) // a copy: callers may modify what Encode returns
	return dst
}

// merge is tokenize without the shortcuts.
func (m *bpeModel) merge(dst []int, word string) []int {
	syms := make([]symbol, 0, len(word))
	pendingUnk := false
	flushUnk := func() {
		if pendingUnk {
			syms = append(syms, symbol{id: m.unkID})
			pendingUnk = false
		}
	}
	for _, r := range word {
		if id, ok := m.charID(r); ok {
			flushUnk()
			syms = append(syms, symbol{id: id})
			continue
		}
		// Characters outside the vocab become unk (fused when fuse_unk) or, without an
		// unk_token, are dropped — as Hugging Face does; a full byte-level vocab never hits this.
		if m.unkID < 0 {
			continue
		}
		if !m.fuseUnk {
			flushUnk()
		}
		pendingUnk = true
	}
	flushUnk()
	for i := range syms {
		syms[i].prev, syms[i].next = i-1, i+1
	}
	if len(syms) > 0 {
		syms[len(syms)-1].next = -1
	}

	q := make(mergeQueue, 0, len(syms))
	for i := 0; i+1 < len(syms); i++ {
		if r, ok := m.merges[mergeKey(syms[i].id, syms[i+1].id)]; ok {
			q = append(q, pairMerge{rank: r.rank, pos: i, newID: r.newID})
		}
	}
	heap.Init(&q)
	for q.Len() > 0 {
		top := heap.Pop(&q).(pairMerge)
		s := &syms[top.pos]
		if s.dead || s.next < 0 {
			continue
		}
		// Stale if the pair changed since it was queued. Like word.rs, compare the merge
		// result rather than the pair: with two merges spelling the same token the two
		// differ, and Hugging Face's answer is the one to reproduce.
		if r, ok := m.merges[mergeKey(s.id, syms[s.next].id)]; !ok || r.newID != top.newID {
			continue
		}
		right := s.next
		s.id = top.newID
		syms[right].dead = true
		s.next = syms[right].next
		if s.next >= 0 {
			syms[s.next].prev = top.pos
		}
		if s.prev >= 0 {
			p := s.prev
			if r, ok := m.merges[mergeKey(syms[p].id, s.id)]; ok {
				heap.Push(&q, pairMerge{rank: r.rank, pos: p, newID: r.newID})
			}
		}
		if s.next >= 0 {
			n := s.next
			if r, ok := m.merges[mergeKey(s.id, syms[n].id)]; ok {
				heap.Push(&q, pairMerge{rank: r.rank, pos: top.pos, newID: r.newID})
			}
		}
	}
	for i := range syms {
		if !syms[i].dead {
			dst = append(dst, syms[i].id)
		}
	}
	return dst
}
