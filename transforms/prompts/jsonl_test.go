package prompts

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/pantrypilot/recipe-dpo/schemas"
)

func TestReadPrompts(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantIDs []string
		wantErr string
	}{
		{
			name:    "valid with optional fields and blank lines",
			in:      `{"prompt_id":"p-00000","persona_id":"persona_a_korean_spicy","request":"Cook tofu."}` + "\n\n" + `{"prompt_id":"p-00001","persona_id":"persona_a_korean_spicy","request":"Cook rice.","pantry":["rice"],"includes_forbidden":true}`,
			wantIDs: []string{"p-00000", "p-00001"},
		},
		{name: "empty", in: "", wantIDs: nil},
		{name: "windows line endings", in: `{"prompt_id":"a","persona_id":"b","request":"c"}` + "\r\n", wantIDs: []string{"a"}},
		{
			name:    "malformed json",
			in:      `{"prompt_id":"a","persona_id":"b","request":"c"}` + "\n" + `{"prompt_id":"b",` + "\n",
			wantErr: "prompts.jsonl:2: line 2 is not valid prompt JSON: unexpected EOF",
		},
		{
			name:    "not json",
			in:      `{"prompt_id":"a","persona_id":"b","request":"c"}` + "\n{not json\n",
			wantErr: "prompts.jsonl:2: line 2 is not valid prompt JSON: invalid character 'n'",
		},
		{
			name:    "unknown field",
			in:      `{"prompt_id":"a","persona_id":"b","request":"c","persona":"x"}`,
			wantErr: `prompts.jsonl:1: line 1 is not valid prompt JSON: json: unknown field "persona"`,
		},
		{
			name:    "wrong type",
			in:      `{"prompt_id":"a","persona_id":"b","request":"c","pantry":"rice"}`,
			wantErr: "prompts.jsonl:1: line 1 is not valid prompt JSON: json: cannot unmarshal",
		},
		{
			name:    "trailing data",
			in:      `{"prompt_id":"a","persona_id":"b","request":"c"} {"prompt_id":"d"}`,
			wantErr: "prompts.jsonl:1: line 1 is not valid prompt JSON: data after the object",
		},
		{
			// Well-formed but invalid rows are returned; the job dead-letters them.
			name:    "missing request",
			in:      "\n\n" + `{"prompt_id":"a","persona_id":"b"}`,
			wantIDs: []string{"a"},
		},
		{
			name:    "duplicate id",
			in:      `{"prompt_id":"a","persona_id":"b","request":"c"}` + "\n" + `{"prompt_id":"a","persona_id":"b","request":"d"}`,
			wantErr: `prompts.jsonl:2: duplicate prompt_id "a" (first at line 1)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadPrompts("prompts.jsonl", strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			var ids []string
			for _, p := range got {
				ids = append(ids, p.PromptID)
			}
			if !slices.Equal(ids, tt.wantIDs) {
				t.Errorf("got ids %v, want %v", ids, tt.wantIDs)
			}
		})
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	ps, err := schemas.DefaultPersonas()
	if err != nil {
		t.Fatal(err)
	}
	var want []schemas.Prompt
	for _, p := range ps {
		want = append(want, Generate(p, 10, 1)...)
	}
	var buf bytes.Buffer
	if err := WritePrompts(&buf, want); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(buf.String(), "\n"); lines != len(want) {
		t.Errorf("got %d lines, want %d", lines, len(want))
	}
	got, err := ReadPrompts("roundtrip.jsonl", &buf)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got, want, equalPrompt) {
		t.Errorf("round trip changed the prompts: got %d, want %d equal prompts", len(got), len(want))
	}
}
