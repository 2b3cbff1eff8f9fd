package bqload

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/option"
)

// TestRunLoadConflict covers what the emulator cannot: real BigQuery answers jobs.insert
// with 409 when the job id exists (the emulator loads the rows again, then fails), and
// records failed jobs. A fake speaking the REST protocol answers jobs.insert with 409 and
// jobs.get with the existing job.
func TestRunLoadConflict(t *testing.T) {
	const id = "recipe_dpo_eval_run-1_abc"
	tests := []struct {
		name     string
		existing map[string]any // the job's status
		wantErr  string
	}{
		{"existing job succeeded", map[string]any{"state": "DONE"}, ""},
		{"existing job failed", map[string]any{"state": "DONE",
			"errorResult": map[string]any{"reason": "invalid", "message": "bad row"}}, "bad row"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var inserts, gets int
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				switch {
				case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/projects/p/jobs"):
					inserts++
					w.WriteHeader(http.StatusConflict)
					json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": 409,
						"message": "Already Exists: Job p:US." + id, "errors": []any{map[string]any{"reason": "duplicate"}}}})
				case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/projects/p/jobs/"+id):
					gets++
					json.NewEncoder(w).Encode(map[string]any{
						"jobReference": map[string]any{"projectId": "p", "jobId": id, "location": "US"},
						"configuration": map[string]any{"load": map[string]any{
							"sourceUris":       []string{"gs://b/x.json"},
							"destinationTable": map[string]any{"projectId": "p", "datasetId": "d", "tableId": "t"},
						}},
						"status": tt.existing,
					})
				default:
					t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
					http.Error(w, "unexpected", http.StatusNotImplemented)
				}
			}))
			defer srv.Close()
			ctx := context.Background()
			c, err := bigquery.NewClient(ctx, "p", option.WithEndpoint(srv.URL), option.WithoutAuthentication())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = runLoad(ctx, c, c.Dataset("d").Table("t"), "US", "gs://b/x.json", id)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("got %v, want error containing %q", err, tt.wantErr)
			}
			if inserts != 1 || gets != 1 {
				t.Errorf("got %d inserts and %d gets, want 1 and 1", inserts, gets)
			}
			// A job of that id loading into another table is an error, not a success.
			if err := runLoad(ctx, c, c.Dataset("d").Table("other"), "US", "gs://b/x.json", id); err == nil || !strings.Contains(err.Error(), "not a load into d.other") {
				t.Errorf("other table: got %v, want an error", err)
			}
		})
	}
}
