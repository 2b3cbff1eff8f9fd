package report

import (
	"bytes"
	"context"
	"image/png"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/pantrypilot/recipe-dpo/schemas"
)

// chromiumPath finds a headless-capable Chromium, or skips the test saying how to get one.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("headless Chromium test skipped under -short")
	}
	for _, name := range []string{os.Getenv("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium not found (install Debian's: apt-get install -y chromium, or set $CHROMIUM)")
	return ""
}

// chromium runs a headless Chromium with no network side channels on args and returns its
// stdout.
func chromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\nstderr:\n%s", bin, args, err, stderr.Bytes())
	}
	return stdout.Bytes()
}

func count(dom []byte, re string) int {
	return len(regexp.MustCompile(re).FindAllIndex(dom, -1))
}

// caseTag matches a case row's start tag attribute by attribute, so a '>' inside a quoted
// (hostile) attribute value does not end it.
var caseTag = regexp.MustCompile(`<tbody class="case"((?:\s+[a-z-]+(?:="[^"]*")?)*)\s*>`)

// caseRows counts the case rows of a DOM and those with the hidden attribute.
func caseRows(dom []byte) (all, hidden int) {
	for _, m := range caseTag.FindAllSubmatch(dom, -1) {
		all++
		if regexp.MustCompile(`\shidden(=""|\s|$)`).Match(m[1]) {
			hidden++
		}
	}
	return all, hidden
}

// TestRenderHTMLInChromium loads the report in headless Chromium and checks, on the DOM after
// the scripts ran, that the charts and every case row are there, that the filter script ran
// without error, and that a filter given in the URL fragment hides the other rows.
// REPORT_SCREENSHOT=/path.png also saves a screenshot for a human to look at.
func TestRenderHTMLInChromium(t *testing.T) {
	bin := chromiumPath(t)
	rows := append(sampleRun(60), hostile())
	path := filepath.Join(t.TempDir(), HTMLFile)
	s := Summarize(rows, "gemini-2.0-flash")
	if err := WriteFile(path, func(w io.Writer) error { return RenderHTML(w, s, rows) }); err != nil {
		t.Fatal(err)
	}
	page := url.URL{Scheme: "file", Path: path}

	t.Run("unfiltered", func(t *testing.T) {
		dom := chromium(t, bin, "--dump-dom", page.String())
		if count(dom, `<body[^>]* data-report-ready="1"`) != 1 {
			t.Fatalf("body data-report-ready: want \"1\" (the filter script ran to the end); DOM starts:\n%.600s", dom)
		}
		checks := []struct {
			what string
			re   string
			want int
		}{
			{"charts", `<svg id="chart-(win-persona|win-category|scores|violations)" class="chart-svg"`, 4},
			{"visible count", `<table id="cases" data-total="61" data-visible="61"`, 1},
			{"filter selects", `<select id="f-(persona|category|outcome)"`, 3},
			{"escaped hostile output", `<pre class="output dpo">&lt;script&gt;alert\(1\)&lt;/script&gt;</pre>`, 1},
		}
		for _, c := range checks {
			if got := count(dom, c.re); got != c.want {
				t.Errorf("%s (%s): got %d, want %d", c.what, c.re, got, c.want)
			}
		}
		if all, hidden := caseRows(dom); all != len(rows) || hidden != 0 {
			t.Errorf("case rows: got %d (%d hidden), want %d (0 hidden)", all, hidden, len(rows))
		}
		for _, bar := range []string{"bar win", "bar loss", "bar tie", "bar sft", "bar dpo", "box sft", "box dpo"} {
			if count(dom, `<rect [^>]*class="`+bar+`"`) == 0 {
				t.Errorf("charts: want at least one <rect class=%q>", bar)
			}
		}
	})

	t.Run("filtered by fragment", func(t *testing.T) {
		const persona = "persona_b_indian_veg"
		want := 0
		for _, r := range rows {
			if r.PersonaID == persona && r.Error == "" && r.Winner == schemas.WinnerDPO {
				want++
			}
		}
		if want == 0 || want == len(rows) {
			t.Fatalf("sample run: %d DPO wins of %s, want some rows shown and some hidden", want, persona)
		}
		filtered := page
		filtered.Fragment = "persona=" + persona + "&outcome=dpo"
		dom := chromium(t, bin, "--dump-dom", filtered.String())
		if all, hidden := caseRows(dom); all != len(rows) || hidden != len(rows)-want {
			t.Errorf("case rows: got %d (%d hidden), want %d (%d hidden)", all, hidden, len(rows), len(rows)-want)
		}
		m := regexp.MustCompile(`<table id="cases" data-total="\d+" data-visible="(\d+)"`).FindSubmatch(dom)
		if m == nil {
			t.Fatal("table#cases data-visible: not found")
		}
		if got, _ := strconv.Atoi(string(m[1])); got != want {
			t.Errorf("data-visible: got %d, want %d DPO wins of %s", got, want, persona)
		}
		if count(dom, `<b id="shown">`+strconv.Itoa(want)+`</b>`) != 1 {
			t.Errorf("counter: want \"showing %d\"", want)
		}
	})

	t.Run("screenshot", func(t *testing.T) {
		shot := os.Getenv("REPORT_SCREENSHOT")
		if shot == "" {
			shot = filepath.Join(t.TempDir(), "report.png")
		}
		chromium(t, bin, "--hide-scrollbars", "--window-size=1280,2600", "--screenshot="+shot, page.String())
		f, err := os.Open(shot)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		img, err := png.Decode(f)
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 2600 {
			t.Errorf("screenshot: got %v, want 1280x2600", b)
		}
	})
}
