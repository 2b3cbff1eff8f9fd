package prompts

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/pantrypilot/recipe-dpo/schemas"
)

// ReadPrompts reads a JSONL prompt file: one schemas.Prompt JSON object per line with
// prompt_id, persona_id and request, and optionally pantry and includes_forbidden. Blank
// lines are skipped. It is strict about the file, since a prompt file is a hand-edited
// input: malformed JSON, unknown fields, trailing data and a repeated prompt_id are errors
// naming path and line ("prompts.jsonl:12: ..."). A well-formed row that fails
// Prompt.Validate (an empty request, say) is returned as is: the data-preparation job
// dead-letters it with its reason, so one bad row neither stops a run nor goes missing.
// Lines may be of any length.
func ReadPrompts(path string, r io.Reader) ([]schemas.Prompt, error) {
	br := bufio.NewReader(r)
	var out []schemas.Prompt
	firstLine := map[string]int{}
	for line := 1; ; line++ {
		raw, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s:%d: read: %w", path, line, err)
		}
		if text := bytes.TrimSpace(raw); len(text) > 0 {
			p, perr := decodePrompt(text, line)
			if perr != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, line, perr)
			}
			if prev, dup := firstLine[p.PromptID]; dup && p.PromptID != "" {
				return nil, fmt.Errorf("%s:%d: duplicate prompt_id %q (first at line %d); prompt ids must be unique", path, line, p.PromptID, prev)
			}
			firstLine[p.PromptID] = line
			out = append(out, p)
		}
		if errors.Is(err, io.EOF) {
			return out, nil
		}
	}
}

// decodePrompt decodes JSONL line number line. JSON errors repeat the line
// number in words because encoding/json's own messages only give byte offsets.
func decodePrompt(text []byte, line int) (schemas.Prompt, error) {
	var p schemas.Prompt
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("line %d is not valid prompt JSON: %w; each line must be one object like "+
			`{"prompt_id": "...", "persona_id": "...", "request": "..."}`, line, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return p, fmt.Errorf("line %d is not valid prompt JSON: data after the object; put exactly one prompt object per line", line)
	}
	return p, nil
}

// WritePrompts writes prompts as JSONL, the format ReadPrompts reads.
func WritePrompts(w io.Writer, ps []schemas.Prompt) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, p := range ps {
		if err := enc.Encode(p); err != nil {
			return fmt.Errorf("write prompt %s: %w", p.PromptID, err)
		}
	}
	return bw.Flush()
}
