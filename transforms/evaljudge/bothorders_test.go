package evaljudge

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/evaljudge/geminitest"
	"github.com/pantrypilot/recipe-dpo/transforms/llm"
)

// stubJudge answers from a per-order script: sftFirst for (A = SFT, B = DPO), dpoFirst for
// the swapped order.
type stubJudge struct {
	sft                string // the SFT output, to tell the orders apart
	sftFirst, dpoFirst func() (Verdict, error)
	calls              int
}

func (s *stubJudge) Judge(_ context.Context, r Request) (Verdict, error) {
	s.calls++
	if r.RecipeA == s.sft {
		return s.sftFirst()
	}
	return s.dpoFirst()
}

// verdict builds a stub answer; a and b are every score of A and B.
func verdict(winner, confidence string, a, b float64, tokens int64) func() (Verdict, error) {
	all := func(x float64) schemas.EvalScores {
		return schemas.EvalScores{PersonaAlignment: x, ConstraintCompliance: x, PreferredIngredients: x, RecipeQuality: x, OverallSuitability: x}
	}
	return func() (Verdict, error) {
		return Verdict{Winner: winner, Confidence: confidence, ScoresA: all(a), ScoresB: all(b), Reasoning: winner + " wins",
			Model: "stub", PromptTokens: tokens, CompletionTokens: tokens / 10}, nil
	}
}

func failing(err error) func() (Verdict, error) {
	return func() (Verdict, error) { return Verdict{Model: "stub", PromptTokens: 7}, err }
}

func TestJudgeBothOrdersLogic(t *testing.T) {
	p, c := fixture(t)
	old := now
	now = func() time.Time { return time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC) }
	t.Cleanup(func() { now = old })
	rateLimited := &llm.APIError{StatusCode: 429, Code: "RESOURCE_EXHAUSTED", Message: "quota"}

	tests := []struct {
		name               string
		sftFirst, dpoFirst func() (Verdict, error)
		wantWinner         string
		wantConfidence     string
		wantAgreement      bool
		wantSFT, wantDPO   float64 // every SFT / DPO score
		wantError          string  // substring of Result.Error; "" for a judged row
		wantCalls          int
	}{
		{
			name:     "both orders pick DPO: DPO wins",
			sftFirst: verdict(WinnerB, "high", 4, 8, 100), dpoFirst: verdict(WinnerA, "medium", 9, 3, 100),
			wantWinner: schemas.WinnerDPO, wantConfidence: schemas.ConfidenceMedium, wantAgreement: true,
			wantSFT: 3.5, wantDPO: 8.5, wantCalls: 2,
		},
		{
			name:     "both orders pick SFT: SFT wins",
			sftFirst: verdict(WinnerA, "high", 8, 2, 100), dpoFirst: verdict(WinnerB, "high", 2, 8, 100),
			wantWinner: schemas.WinnerSFT, wantConfidence: schemas.ConfidenceHigh, wantAgreement: true,
			wantSFT: 8, wantDPO: 2, wantCalls: 2,
		},
		{
			name:     "position bias (A both times): tie with low confidence",
			sftFirst: verdict(WinnerA, "high", 8, 5, 100), dpoFirst: verdict(WinnerA, "high", 8, 5, 100),
			wantWinner: schemas.WinnerTie, wantConfidence: schemas.ConfidenceLow, wantAgreement: false,
			wantSFT: 6.5, wantDPO: 6.5, wantCalls: 2,
		},
		{
			name:     "one order ties, the other picks DPO: tie with low confidence",
			sftFirst: verdict(WinnerTie, "medium", 6, 6, 100), dpoFirst: verdict(WinnerA, "high", 7, 6, 100),
			wantWinner: schemas.WinnerTie, wantConfidence: schemas.ConfidenceLow, wantAgreement: false,
			wantSFT: 6, wantDPO: 6.5, wantCalls: 2,
		},
		{
			name:     "both orders tie: an agreed tie",
			sftFirst: verdict(WinnerTie, "medium", 6, 6, 100), dpoFirst: verdict(WinnerTie, "high", 6, 6, 100),
			wantWinner: schemas.WinnerTie, wantConfidence: schemas.ConfidenceMedium, wantAgreement: true,
			wantSFT: 6, wantDPO: 6, wantCalls: 2,
		},
		{
			name:     "second order fails: error row",
			sftFirst: verdict(WinnerB, "high", 4, 8, 100), dpoFirst: failing(rateLimited),
			wantError: "order A=DPO,B=SFT: rate_limited: HTTP 429", wantCalls: 2,
		},
		{
			name:     "first order fails: error row, second not asked",
			sftFirst: failing(ErrBadVerdict), dpoFirst: verdict(WinnerA, "high", 9, 3, 100),
			wantError: "order A=SFT,B=DPO: bad_verdict: judge: unusable verdict", wantCalls: 1,
		},
		{
			name:     "a judge's out-of-range score: error row",
			sftFirst: verdict(WinnerB, "high", 4, 11, 100), dpoFirst: verdict(WinnerA, "high", 9, 3, 100),
			wantError: "bad_verdict", wantCalls: 1,
		},
		{
			name:     "a judge's unknown confidence: error row",
			sftFirst: verdict(WinnerB, "high", 4, 8, 100), dpoFirst: verdict(WinnerA, "certain", 9, 3, 100),
			wantError: `order A=DPO,B=SFT: bad_verdict: judge: unusable verdict: confidence "certain"`, wantCalls: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := &stubJudge{sft: chickenTikka, sftFirst: tt.sftFirst, dpoFirst: tt.dpoFirst}
			out, err := JudgeBothOrders(context.Background(), j, p, c, chickenTikka, palakPaneer)
			if err != nil {
				t.Fatalf("JudgeBothOrders: %v (only a canceled context may fail it)", err)
			}
			r := out.Result
			if j.calls != tt.wantCalls {
				t.Errorf("judge calls: got %d, want %d", j.calls, tt.wantCalls)
			}
			// Every row, judged or not, carries the case, both outputs and the rules facts.
			if r.CaseID != c.ID || r.PersonaID != c.PersonaID || r.Category != c.Category || r.Request != c.Request ||
				r.SFTOutput != chickenTikka || r.DPOOutput != palakPaneer || r.JudgedAt != "2025-06-01T12:00:00Z" || r.JudgeModel != "stub" {
				t.Errorf("row identity: got %+v", r)
			}
			if !slices.Equal(r.SFTViolations, chickenViolations) || len(r.DPOViolations) != 0 || !r.SFTParsedOK || !r.DPOParsedOK {
				t.Errorf("rules facts: got SFT %v (parsed %v), DPO %v (parsed %v); want SFT %v, DPO none, both parsed",
					r.SFTViolations, r.SFTParsedOK, r.DPOViolations, r.DPOParsedOK, chickenViolations)
			}
			if tt.wantError != "" {
				if !strings.Contains(r.Error, tt.wantError) || out.Err == nil {
					t.Errorf("error row: got Error %q (Err %v), want it to contain %q", r.Error, out.Err, tt.wantError)
				}
				if r.Winner != "" || r.Confidence != "" {
					t.Errorf("error row: got winner %q confidence %q, want neither", r.Winner, r.Confidence)
				}
				if r.PromptTokens == 0 {
					t.Errorf("error row: got 0 prompt tokens, want the tokens spent before the failure")
				}
				return
			}
			if r.Error != "" || out.Err != nil {
				t.Fatalf("got error %q (%v), want a judged row", r.Error, out.Err)
			}
			if r.Winner != tt.wantWinner || r.Confidence != tt.wantConfidence || r.OrderAgreement != tt.wantAgreement {
				t.Errorf("got winner %q confidence %q agreement %v, want %q %q %v", r.Winner, r.Confidence, r.OrderAgreement, tt.wantWinner, tt.wantConfidence, tt.wantAgreement)
			}
			if r.SFTScores.PersonaAlignment != tt.wantSFT || r.SFTScores.OverallSuitability != tt.wantSFT ||
				r.DPOScores.RecipeQuality != tt.wantDPO || r.DPOScores.ConstraintCompliance != tt.wantDPO {
				t.Errorf("mean scores: got SFT %+v DPO %+v, want every SFT score %g and DPO %g", r.SFTScores, r.DPOScores, tt.wantSFT, tt.wantDPO)
			}
			if r.PromptTokens != 200 || r.CompletionTokens != 20 {
				t.Errorf("tokens: got %d/%d, want 200/20 summed over both orders", r.PromptTokens, r.CompletionTokens)
			}
			if out.SFTFirst == nil || out.DPOFirst == nil {
				t.Errorf("verdicts: got %v and %v, want both", out.SFTFirst, out.DPOFirst)
			}
			r.RunID, r.RunDate = "run-1", "2025-06-01"
			if err := r.Validate(); err != nil {
				t.Errorf("row does not validate: %v", err)
			}
		})
	}
}

// TestJudgeBothOrdersCanceled: a canceled context is returned, with the error row.
func TestJudgeBothOrdersCanceled(t *testing.T) {
	p, c := fixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out, err := JudgeBothOrders(ctx, NewRulesJudge(nil), p, c, chickenTikka, palakPaneer)
	if !errors.Is(err, context.Canceled) || !strings.Contains(out.Result.Error, "canceled") {
		t.Errorf("got %v and Error %q, want context.Canceled and a canceled error row", err, out.Result.Error)
	}
}

// TestJudgeBothOrdersGemini runs the both-order logic end to end through the fake.
func TestJudgeBothOrdersGemini(t *testing.T) {
	p, c := fixture(t)
	tests := []struct {
		name       string
		responder  geminitest.Responder
		fault      func(n int64, r geminitest.Request) *geminitest.Fault
		wantWinner string
		wantConf   string
		wantAgree  bool
		wantError  string
	}{
		{name: "consistent judge: DPO wins", responder: fairJudge, wantWinner: schemas.WinnerDPO, wantConf: schemas.ConfidenceHigh, wantAgree: true},
		{name: "position-biased judge: tie", responder: biasedJudge, wantWinner: schemas.WinnerTie, wantConf: schemas.ConfidenceLow},
		{
			name: "second order rejected: error row", responder: fairJudge,
			fault: func(n int64, _ geminitest.Request) *geminitest.Fault {
				if n == 2 {
					return geminitest.BadRequest("Request contains an invalid argument.")
				}
				return nil
			},
			wantError: "order A=DPO,B=SFT: bad_request: ",
		},
	}
	for _, backend := range backends {
		for _, tt := range tests {
			t.Run(backend+"/"+tt.name, func(t *testing.T) {
				s := startServer(t, geminitest.Config{Responder: tt.responder, Fault: tt.fault})
				j := newJudge(t, backend, s, testCaller(t, fastLimits(), llm.NewMemCache()))
				out, err := JudgeBothOrders(context.Background(), j, p, c, chickenTikka, palakPaneer)
				if err != nil {
					t.Fatal(err)
				}
				r := out.Result
				if tt.wantError != "" {
					if !strings.Contains(r.Error, tt.wantError) {
						t.Errorf("Error: got %q, want it to contain %q", r.Error, tt.wantError)
					}
					return
				}
				if r.Error != "" || r.Winner != tt.wantWinner || r.Confidence != tt.wantConf || r.OrderAgreement != tt.wantAgree || r.JudgeModel != judgeModel {
					t.Errorf("got %+v, want winner %q confidence %q agreement %v by %s", r, tt.wantWinner, tt.wantConf, tt.wantAgree, judgeModel)
				}
				if got := s.Requests(); got != 2 {
					t.Errorf("requests: got %d, want 2 (one per order)", got)
				}
				all := s.AllRequests()
				if a := between(all[1].Contents[0].Text(), "<recipe_a>", "</recipe_a>"); !strings.Contains(a, "Palak Paneer") {
					t.Errorf("second order: recipe A is %q, want the DPO output", a)
				}
				// A re-run of the case costs nothing.
				again, err := JudgeBothOrders(context.Background(), j, p, c, chickenTikka, palakPaneer)
				if err != nil || !again.CacheHit || again.Result.Winner != r.Winner || s.Requests() != 2 {
					t.Errorf("re-run: got hit %v winner %q (%v) after %d requests, want a cache hit and no request", again.CacheHit, again.Result.Winner, err, s.Requests())
				}
			})
		}
	}
}
