package listen

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/cairn-mqtt/cairn/engine/listen/testpki"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testCA is a testpki CA with the leaf shapes these tests use.
type testCA struct{ *testpki.CA }

func newCA(t *testing.T, name string) *testCA { return &testCA{testpki.NewCA(t, name)} }

func (ca *testCA) server(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	return ca.IssueTemplate(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
}

func (ca *testCA) client(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	u, _ := url.Parse("spiffe://example.org/" + cn)
	return ca.IssueTemplate(t, &x509.Certificate{
		Subject:        pkix.Name{CommonName: cn},
		DNSNames:       []string{cn + ".devices.example.org", "second.example.org"},
		EmailAddresses: []string{cn + "@example.org"},
		URIs:           []*url.URL{u},
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

func writeTemp(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
