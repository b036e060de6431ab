// Package tlsutil loads the private CA an admin names with a ca_file key, for every
// client seafbak opens (the file server, the notification server, an S3 store).
package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// AddCA appends the PEM certificates of file to pool; a file with none is an error,
// as a ca_file that trusts nothing is a mistake, not a choice.
func AddCA(pool *x509.CertPool, file string) error {
	pem, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("ca_file: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("ca_file %s holds no PEM certificate", file)
	}
	return nil
}

// PrivateCA is a client configuration that trusts only the CA in file (TLS 1.2 or
// later), or the system's roots when file is "": a server with a private CA is
// verified against that CA alone.
func PrivateCA(file string) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if file == "" {
		return conf, nil
	}
	pool := x509.NewCertPool()
	if err := AddCA(pool, file); err != nil {
		return nil, err
	}
	conf.RootCAs = pool
	return conf, nil
}
