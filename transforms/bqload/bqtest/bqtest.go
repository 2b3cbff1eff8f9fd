// Package bqtest runs goccy/bigquery-emulator on 127.0.0.1 for tests and returns a
// bigquery.Client talking to it over the real REST protocol.
//
// The emulator is not a dependency of this module: it takes ~15 min and several GB of memory
// to compile, so tools/bqemulator (its own module) builds it once into
// .cache/bin/bigquery-emulator (`make .cache/bin/bigquery-emulator`, a prerequisite of
// `make test`) and tests run that binary as a subprocess.
package bqtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/option"
)

// EnvBinary overrides where the emulator binary is looked up.
const EnvBinary = "BIGQUERY_EMULATOR_BIN"

// RelPath is the binary's path under the repository root, as the Makefile builds it.
const RelPath = ".cache/bin/bigquery-emulator"

// MakeTarget is the command that builds the binary.
const MakeTarget = "make " + RelPath

// Binary returns the emulator binary's path: $BIGQUERY_EMULATOR_BIN, or RelPath under the
// first parent of the working directory that has it.
func Binary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvBinary, p, err)
		}
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, RelPath)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			// The module root: stop here rather than find another checkout's binary.
			return "", fmt.Errorf("%s not found under %s", RelPath, dir)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%s not found", RelPath)
		}
		dir = parent
	}
}

// Emulator is a running emulator.
type Emulator struct {
	// Project is the emulator's one project.
	Project string
	// Endpoint is its REST endpoint, "http://127.0.0.1:PORT".
	Endpoint string
	// Client talks to it; closed at the end of the test.
	Client *bigquery.Client
}

// Start runs the emulator for the duration of the test with one project, and returns a
// client for it. Loads from gs:// URIs read through the GCS emulator named by
// STORAGE_EMULATOR_HOST, so call gcstest.Start first when a test loads from GCS.
//
// Without the binary the test is skipped under -short and fails otherwise, naming the make
// target that builds it.
func Start(t testing.TB, project string) *Emulator {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		msg := fmt.Sprintf("bigquery-emulator binary missing (%v); build it once with `%s` (several minutes and ~6.5 GB of memory; or set %s)", err, MakeTarget, EnvBinary)
		if testing.Short() {
			t.Skip(msg)
		}
		t.Fatal(msg)
	}
	httpPort, grpcPort := freePort(t), freePort(t)
	cmd := exec.Command(bin, "--project="+project, "--host=127.0.0.1",
		fmt.Sprintf("--port=%d", httpPort), fmt.Sprintf("--grpc-port=%d", grpcPort), "--log-level=error")
	env := os.Environ()
	if host := os.Getenv("STORAGE_EMULATOR_HOST"); host != "" && !strings.Contains(host, "://") {
		// The emulator passes the variable to option.WithEndpoint, which needs a scheme;
		// the storage client used by this module adds one itself.
		env = append(env, "STORAGE_EMULATOR_HOST=http://"+host)
	}
	cmd.Env = env
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("bqtest: start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("bigquery-emulator output:\n%s", out.String())
		}
	})

	endpoint := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	if err := waitReady(endpoint, project, exited); err != nil {
		t.Fatalf("bqtest: %v\n%s", err, out.String())
	}
	ctx := context.Background()
	client, err := bigquery.NewClient(ctx, project, option.WithEndpoint(endpoint), option.WithoutAuthentication())
	if err != nil {
		t.Fatalf("bqtest: client: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	return &Emulator{Project: project, Endpoint: endpoint, Client: client}
}

// waitReady polls the project's dataset list until the emulator answers.
func waitReady(endpoint, project string, exited <-chan error) error {
	url := endpoint + "/bigquery/v2/projects/" + project + "/datasets"
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("bigquery-emulator exited before it was ready: %v", err)
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("bigquery-emulator not ready after 60s")
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("bqtest: pick a port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer collects the subprocess's output from two pipes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
