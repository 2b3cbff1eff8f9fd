package llm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sync"

	"github.com/pantrypilot/recipe-dpo/transforms/blob"
)

// Cache is a content-addressed store of successful LLM answers, keyed by CacheKey of the
// request. A hit replays the original answer byte for byte, usage and latency included,
// so re-running a stage writes identical rows and costs nothing.
type Cache interface {
	// Get returns the value stored under key; ok is false when there is none.
	Get(ctx context.Context, key string) (val []byte, ok bool, err error)
	// Put stores val under key, atomically: readers see all of it or nothing.
	Put(ctx context.Context, key string, val []byte) error
}

// CacheKey is the hex SHA-256 of the canonical JSON of parts: object keys sorted, no
// insignificant space, numbers as encoding/json writes them. parts should hold everything
// that determines the answer (kind of call, model, messages, sampling parameters,
// response format) and nothing that does not: never the endpoint URL or the API key.
// It panics if parts cannot be marshalled, which is a programming error.
func CacheKey(parts any) string {
	b, err := canonicalJSON(parts)
	if err != nil {
		panic(fmt.Sprintf("llm.CacheKey: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// canonicalJSON marshals v, decodes it into generic values and marshals again, so that the
// result depends on the data only: not on struct field order or map iteration.
func canonicalJSON(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(generic); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n")), nil
}

// validKey guards the file layout: keys become path elements, so only lower-case hex
// of at least 3 characters is accepted.
func validKey(key string) error {
	if len(key) < 3 {
		return fmt.Errorf("llm cache: key %q too short", key)
	}
	for _, c := range key {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("llm cache: key %q is not lower-case hex", key)
		}
	}
	return nil
}

// blobCache stores one file per key, <root>/<key[:2]>/<key>.json, through transforms/blob.
type blobCache struct{ root string }

// NewBlobCache returns a Cache of one JSON file per answer under root, a local directory
// or a gs://bucket/prefix URL: <root>/<key[:2]>/<key>.json. Writes are atomic, so
// concurrent workers writing the same key leave one complete file.
func NewBlobCache(root string) Cache { return blobCache{root: root} }

// RunCache is the call cache of a job under its run root, or nil (no caching) when off
// (--no_cache).
func RunCache(root string, off bool) Cache {
	if off {
		return nil
	}
	return NewBlobCache(root)
}

func (c blobCache) path(key string) string { return blob.Join(c.root, key[:2], key+".json") }

// Get implements Cache.
func (c blobCache) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := validKey(key); err != nil {
		return nil, false, err
	}
	b, err := blob.ReadFile(ctx, c.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("llm cache get: %w", err)
	}
	return b, true, nil
}

// Put implements Cache.
func (c blobCache) Put(ctx context.Context, key string, val []byte) error {
	if err := validKey(key); err != nil {
		return err
	}
	if err := blob.WriteFile(ctx, c.path(key), val); err != nil {
		return fmt.Errorf("llm cache put: %w", err)
	}
	return nil
}

// MemCache is an in-memory Cache for tests and for the in-process generator.
type MemCache struct {
	mu sync.Mutex
	m  map[string][]byte
}

// NewMemCache returns an empty MemCache.
func NewMemCache() *MemCache { return &MemCache{m: map[string][]byte{}} }

// Get implements Cache. The returned slice is a copy.
func (c *MemCache) Get(_ context.Context, key string) ([]byte, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[key]
	return bytes.Clone(v), ok, nil
}

// Put implements Cache.
func (c *MemCache) Put(_ context.Context, key string, val []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[key] = bytes.Clone(val)
	return nil
}

// Len returns the number of stored answers.
func (c *MemCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
