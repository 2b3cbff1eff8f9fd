// Package gcstest starts fake-gcs-server on 127.0.0.1 for tests and points the GCS client
// at it through STORAGE_EMULATOR_HOST, the variable production code honours.
package gcstest

import (
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/pantrypilot/recipe-dpo/transforms/blob"
)

// Start runs a fake GCS server with the given buckets for the duration of the test, sets
// STORAGE_EMULATOR_HOST, and resets the blob package's client so it talks to this server.
func Start(t testing.TB, buckets ...string) *fakestorage.Server {
	t.Helper()
	// PublicHost must be the host:port the client dials or object reads are not routed, so
	// pick the port first.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("gcstest: pick a port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	host := fmt.Sprintf("127.0.0.1:%d", port)
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme:     "http",
		Host:       "127.0.0.1",
		Port:       uint16(port),
		PublicHost: host,
		Writer:     io.Discard,
	})
	if err != nil {
		t.Fatalf("gcstest: start fake-gcs-server: %v", err)
	}
	for _, b := range buckets {
		srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: b})
	}
	t.Setenv("STORAGE_EMULATOR_HOST", host)
	blob.ResetClientForTest()
	t.Cleanup(func() {
		blob.ResetClientForTest()
		srv.Stop()
	})
	return srv
}
