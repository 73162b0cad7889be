package listen

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// TLSOptions are the files of a TLS listener.
type TLSOptions struct {
	// CertFile and KeyFile hold the server's PEM certificate chain (leaf
	// first) and private key.
	CertFile, KeyFile string
	// ClientCAFile, if set, holds the PEM certificates of the authorities
	// whose client certificates are accepted. Without it no client
	// certificate is asked for.
	ClientCAFile string
	// RequireClientCert refuses handshakes without a valid client
	// certificate (mutual TLS); otherwise a client certificate is verified
	// if one is given. It needs ClientCAFile.
	RequireClientCert bool
}

// TLS is a server TLS configuration whose certificate, key and client CAs
// can be reloaded from their files while listeners use it: handshakes
// started after Reload use the new files, established connections are not
// affected. It is safe for concurrent use.
type TLS struct {
	opts TLSOptions
	cur  atomic.Pointer[tlsState]
	base *tls.Config
}

type tlsState struct {
	cfg  *tls.Config
	leaf *x509.Certificate
}

// NewTLS loads the files of o. Errors name the file at fault.
func NewTLS(o TLSOptions) (*TLS, error) {
	if o.CertFile == "" || o.KeyFile == "" {
		return nil, errors.New("TLS: a certificate file and a key file are both needed")
	}
	if o.RequireClientCert && o.ClientCAFile == "" {
		return nil, errors.New("TLS: requiring client certificates needs a client CA file")
	}
	t := &TLS{opts: o}
	if err := t.Reload(); err != nil {
		return nil, err
	}
	t.base = &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return t.cur.Load().cfg, nil
		},
	}
	return t, nil
}

// Config returns the configuration to give tls.NewListener or tls.Server.
// It refers to t, so later Reloads apply to it. Do not modify it.
func (t *TLS) Config() *tls.Config { return t.base }

// Reload reads the files again. On error the previous certificate and CAs
// stay in use.
func (t *TLS) Reload() error {
	cert, err := tls.LoadX509KeyPair(t.opts.CertFile, t.opts.KeyFile)
	if err != nil {
		return fmt.Errorf("TLS certificate %s / key %s: %w", t.opts.CertFile, t.opts.KeyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("TLS certificate %s: %w", t.opts.CertFile, err)
		}
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}
	if t.opts.ClientCAFile != "" {
		pool, err := loadCAs(t.opts.ClientCAFile)
		if err != nil {
			return err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if t.opts.RequireClientCert {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	t.cur.Store(&tlsState{cfg: cfg, leaf: leaf})
	return nil
}

// NotAfter returns the expiry time of the server certificate in use.
func (t *TLS) NotAfter() time.Time { return t.cur.Load().leaf.NotAfter }

// loadCAs reads a PEM file of CA certificates.
func loadCAs(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("TLS client CA file: %w", err)
	}
	pool := x509.NewCertPool()
	n := 0
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("TLS client CA file %s: certificate %d: %w", path, n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("TLS client CA file %s: no PEM certificate", path)
	}
	return pool, nil
}

// IdentityField selects what part of a client certificate stands for the
// user name.
type IdentityField string

// The identity fields.
const (
	IdentityCN    IdentityField = "cn"    // the subject common name
	IdentityDNS   IdentityField = "dns"   // the first DNS name of the subject alternative names
	IdentityEmail IdentityField = "email" // the first e-mail address of the subject alternative names
	IdentityURI   IdentityField = "uri"   // the first URI of the subject alternative names
)

// ParseIdentityField checks a configured identity field name.
func ParseIdentityField(s string) (IdentityField, error) {
	switch f := IdentityField(strings.ToLower(s)); f {
	case IdentityCN, IdentityDNS, IdentityEmail, IdentityURI:
		return f, nil
	}
	return "", fmt.Errorf("certificate identity field %q: want cn, dns, email or uri", s)
}

// ClientIdentity returns the identity the client certificate of a completed
// handshake stands for, for use as the user name. It returns false unless
// the certificate was verified against the client CAs (an unverified
// certificate proves nothing) and the field is present, non-empty, valid
// UTF-8 and without U+0000.
func ClientIdentity(state *tls.ConnectionState, field IdentityField) (string, bool) {
	if state == nil || !state.HandshakeComplete || len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return "", false
	}
	c := state.VerifiedChains[0][0]
	var id string
	switch field {
	case IdentityCN:
		id = c.Subject.CommonName
	case IdentityDNS:
		if len(c.DNSNames) > 0 {
			id = c.DNSNames[0]
		}
	case IdentityEmail:
		if len(c.EmailAddresses) > 0 {
			id = c.EmailAddresses[0]
		}
	case IdentityURI:
		if len(c.URIs) > 0 {
			id = c.URIs[0].String()
		}
	}
	if id == "" || !utf8.ValidString(id) || strings.ContainsRune(id, 0) {
		return "", false
	}
	return id, true
}
